package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Prefix is a netip.Prefix that decodes leniently: a malformed value is kept
// as Raw and reported by validation, which knows the field's name (a decode
// error would only know the line).
type Prefix struct {
	netip.Prefix
	Raw string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) error {
	return lenient(b, &p.Raw, &p.Prefix, netip.ParsePrefix)
}

// lenient keeps the text as raw and whatever parse makes of it, or the
// zero value, as v: validation reports a bad value by the field's name.
func lenient[T any](b []byte, raw *string, v *T, parse func(string) (T, error)) error {
	*raw = string(b)
	*v, _ = parse(*raw)
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
	return lenient(b, &a.Raw, &a.AddrPort, netip.ParseAddrPort)
}

// MarshalText implements encoding.TextMarshaler.
func (a AddrPort) MarshalText() ([]byte, error) { return a.AddrPort.MarshalText() }

// IsZero reports an unset address. YAML's and JSON's omitempty/omitzero
// need it: without it yaml.v3 sees only the unexported fields of
// netip.AddrPort and drops every set address as empty.
func (a AddrPort) IsZero() bool { return !a.IsValid() && a.Raw == "" }

// Addr is a netip.Addr that decodes leniently, like Prefix.
type Addr struct {
	netip.Addr
	Raw string
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Addr) UnmarshalText(b []byte) error {
	return lenient(b, &a.Raw, &a.Addr, netip.ParseAddr)
}

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) { return a.Addr.MarshalText() }

// IsZero reports an unset address (see AddrPort.IsZero).
func (a Addr) IsZero() bool { return !a.IsValid() && a.Raw == "" }

// AddrList is one listen address or a list of them (a daemon serving IPv4
// and IPv6 listens on one of each): YAML takes `listen: 10.0.0.1:443` or
// `listen: [10.0.0.1:443, "[2001:db8::1]:443"]`.
type AddrList []AddrPort

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *AddrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var a AddrPort
		if err := n.Decode(&a); err != nil {
			return err
		}
		*l = AddrList{a}
		return nil
	}
	var as []AddrPort
	if err := n.Decode(&as); err != nil {
		return err
	}
	*l = as
	return nil
}

// Strings returns the addresses as host:port strings.
func (l AddrList) Strings() []string {
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.AddrPort.String()
	}
	return out
}

// validate checks every address (a port is required unless allowZeroPort)
// and that none repeats.
func (l AddrList) validate(field string, allowZeroPort bool) error {
	if len(l) == 0 {
		return Errf(field, "must name at least one IP:port, such as 10.0.0.1:8080")
	}
	seen := map[netip.AddrPort]bool{}
	for i, a := range l {
		f := fmt.Sprintf("%s[%d]", field, i)
		if len(l) == 1 {
			f = field
		}
		if !a.IsValid() || (a.Port() == 0 && !allowZeroPort) {
			return Errf(f, "%q is not IP:port, such as 10.0.0.1:8080 or [2001:db8::1]:8080", a.Raw)
		}
		if seen[a.AddrPort] {
			return Errf(f, "%s is listed twice", a.AddrPort)
		}
		seen[a.AddrPort] = true
	}
	return nil
}

// NetnsListen is a network namespace (a name under /run/netns, as in
// `ip netns list`) a daemon listens in as well as its own: the socket
// belongs to that namespace for its life, the rest of the daemon stays in
// its own. Listen are the addresses to listen on there; empty means the
// daemon's own listen addresses. In YAML a plain name is a NetnsListen
// with the default addresses.
type NetnsListen struct {
	Name   string   `yaml:"name"`
	Listen AddrList `yaml:"listen,omitempty"`
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (n *NetnsListen) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		*n = NetnsListen{}
		return node.Decode(&n.Name)
	}
	type plain NetnsListen
	return node.Decode((*plain)(n))
}

// Addrs are the addresses to listen on in the namespace: its own, else
// def.
func (n NetnsListen) Addrs(def AddrList) AddrList {
	if len(n.Listen) > 0 {
		return n.Listen
	}
	return def
}

// validateNetns checks every namespace's name and addresses.
func validateNetns(field string, list []NetnsListen) error {
	for i, n := range list {
		f := fmt.Sprintf("%s[%d]", field, i)
		if n.Name == "" || strings.ContainsAny(n.Name, "/ ") || n.Name == "." || n.Name == ".." {
			return Errf(f+".name", "%q is not a network namespace name (as in ip netns list)", n.Name)
		}
		if len(n.Listen) > 0 {
			if err := n.Listen.validate(f+".listen", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// TLSFiles are a PEM certificate chain and its private key. Daemons load
// them at start (an unreadable or mismatched pair refuses the start) and
// again on SIGHUP, so certificates are renewed without a restart.
type TLSFiles struct {
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
}

func (t *TLSFiles) validate(field string) error {
	if t == nil {
		return nil
	}
	if t.CertFile == "" {
		return Errf(field+".cert_file", "must name a PEM certificate chain")
	}
	if t.KeyFile == "" {
		return Errf(field+".key_file", "must name the certificate's PEM private key")
	}
	return nil
}

// durationAtLeast checks an optional duration: zero takes the default, a
// set one must be at least lo (and at most hi when hi > 0).
func durationAtLeast(field string, d, lo, hi time.Duration) error {
	switch {
	case d < 0:
		return Errf(field, "%s is negative", d)
	case d == 0:
		return nil
	case d < lo:
		return Errf(field, "%s is below the minimum of %s", d, lo)
	case hi > 0 && d > hi:
		return Errf(field, "%s is above the maximum of %s", d, hi)
	}
	return nil
}

// resolve makes a relative path relative to dir; "" stays "".
func resolve(dir string, p *string) {
	if *p != "" && dir != "" && !filepath.IsAbs(*p) {
		*p = filepath.Join(dir, *p)
	}
}
