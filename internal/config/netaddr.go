package config

import "net/netip"

// Prefix is a netip.Prefix that decodes leniently: a malformed value is kept
// as Raw and reported by validation, which knows the field's name (a decode
// error would only know the line).
type Prefix struct {
	netip.Prefix
	Raw string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) error {
	p.Raw = string(b)
	p.Prefix, _ = netip.ParsePrefix(p.Raw)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (p Prefix) MarshalText() ([]byte, error) { return p.Prefix.MarshalText() }

// AddrPort is a netip.AddrPort that decodes leniently, like Prefix.
type AddrPort struct {
	netip.AddrPort
	Raw string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *AddrPort) UnmarshalText(b []byte) error {
	a.Raw = string(b)
	a.AddrPort, _ = netip.ParseAddrPort(a.Raw)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (a AddrPort) MarshalText() ([]byte, error) { return a.AddrPort.MarshalText() }
