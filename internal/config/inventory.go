package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// SiteKind says where a site sits relative to the ISPs it serves. The order
// of the constants is the steering preference: embedded first.
type SiteKind string

// Site kinds.
const (
	SiteEmbedded SiteKind = "embedded"
	SitePrivate  SiteKind = "private" // private peering with an ISP
	SiteIXP      SiteKind = "ixp"
	SiteFallback SiteKind = "fallback"
)

// Tier is the steering rank of a kind: lower is preferred.
func (k SiteKind) Tier() int {
	switch k {
	case SiteEmbedded:
		return 0
	case SitePrivate:
		return 1
	case SiteIXP:
		return 2
	default:
		return 3
	}
}

// ISP is an access network whose clients the CDN serves.
type ISP struct {
	Name string `yaml:"name" json:"name"`
	ASN  uint32 `yaml:"asn" json:"asn"`
	// Prefixes are the client prefixes the ISP announces. Until appliances
	// learn them over BGP they stand in for the announcements.
	Prefixes []Prefix `yaml:"prefixes" json:"prefixes"`
	Location Location `yaml:"location" json:"location"`
}

// Location is a point on the map, used as the last steering tie-break.
type Location struct {
	Lat float64 `yaml:"lat" json:"lat"`
	Lon float64 `yaml:"lon" json:"lon"`
}

// Site is a group of appliances at one place; the appliances of a site form
// one manifest cluster.
type Site struct {
	ID       string   `yaml:"id" json:"id"`
	Kind     SiteKind `yaml:"kind" json:"kind"`
	ISP      string   `yaml:"isp,omitempty" json:"isp,omitempty"` // embedded and private sites
	Location Location `yaml:"location" json:"location"`
	TimeZone string   `yaml:"time_zone,omitempty" json:"time_zone,omitempty"`
}

// Appliance is one edge cache.
type Appliance struct {
	ID   string `yaml:"id" json:"id"`
	Site string `yaml:"site" json:"site"`
	// Address is where the appliance serves: IPv4 or IPv6. A dual-stack
	// appliance gives its IPv4 address here and its IPv6 one in Address6.
	Address AddrPort `yaml:"address" json:"address"`
	// Address6 is a dual-stack appliance's IPv6 address (with Address
	// IPv4). Each family gets its own DNS name (docs/dns.md).
	Address6 AddrPort `yaml:"address6,omitempty" json:"address6,omitzero"`
	// Capacity is the storage the appliance offers, e.g. "2GiB".
	Capacity ByteSize `yaml:"capacity" json:"capacity"`
	// TLS says the appliance serves HTTPS (its config has a tls section)
	// on the port of Address (and Address6): steering then hands out
	// https:// URLs, and the control plane's prober verifies its
	// certificate against appliance_ca_file and the appliance's name
	// (docs/dns.md).
	TLS bool `yaml:"tls,omitempty" json:"tls,omitempty"`
}

// Inventory is what the control plane knows about the CDN's footprint.
type Inventory struct {
	ISPs       []ISP       `yaml:"isps" json:"isps"`
	Sites      []Site      `yaml:"sites" json:"sites"`
	Appliances []Appliance `yaml:"appliances" json:"appliances"`
}

// ValidateInventory checks references and uniqueness. When applianceRange
// is valid, every appliance address must lie inside it (the lab keeps
// appliances in 127.1.0.0/16); an address6 is checked only against an
// IPv6 range.
func (inv *Inventory) ValidateInventory(applianceRange netip.Prefix) error {
	isps := map[string]bool{}
	asns := map[uint32]string{}
	prefixes := map[netip.Prefix]string{}
	for i, isp := range inv.ISPs {
		f := fmt.Sprintf("isps[%d]", i)
		if isp.Name == "" {
			return Errf(f+".name", "must be set")
		}
		if isps[isp.Name] {
			return Errf(f+".name", "%q used twice", isp.Name)
		}
		isps[isp.Name] = true
		if isp.ASN == 0 {
			return Errf(f+".asn", "must be set")
		}
		if other, dup := asns[isp.ASN]; dup {
			return Errf(f+".asn", "%d already used by ISP %q", isp.ASN, other)
		}
		asns[isp.ASN] = isp.Name
		for j, p := range isp.Prefixes {
			pf := fmt.Sprintf("%s.prefixes[%d]", f, j)
			if !p.IsValid() {
				return Errf(pf, "%q is not a prefix such as 127.64.0.0/16", p.Raw)
			}
			if p.Prefix != p.Masked() {
				return Errf(pf, "%s has host bits set; did you mean %s?", p.Prefix, p.Masked())
			}
			if other, dup := prefixes[p.Prefix]; dup {
				return Errf(pf, "%s already announced by ISP %q", p.Prefix, other)
			}
			prefixes[p.Prefix] = isp.Name
		}
	}
	sites := map[string]Site{}
	for i, s := range inv.Sites {
		f := fmt.Sprintf("sites[%d]", i)
		if s.ID == "" {
			return Errf(f+".id", "must be set")
		}
		if _, dup := sites[s.ID]; dup {
			return Errf(f+".id", "%q used twice", s.ID)
		}
		switch s.Kind {
		case SiteEmbedded, SitePrivate:
			if !isps[s.ISP] {
				return Errf(f+".isp", "unknown ISP %q (a %s site belongs to one of the isps)", s.ISP, s.Kind)
			}
		case SiteIXP, SiteFallback:
			if s.ISP != "" {
				return Errf(f+".isp", "a %s site serves every ISP; remove isp %q", s.Kind, s.ISP)
			}
		default:
			return Errf(f+".kind", "%q is not one of embedded, private, ixp, fallback", s.Kind)
		}
		if s.TimeZone != "" {
			if _, err := time.LoadLocation(s.TimeZone); err != nil {
				return Errf(f+".time_zone", "%q is not an IANA time zone", s.TimeZone)
			}
		}
		sites[s.ID] = s
	}
	ids := map[string]bool{}
	addrs := map[netip.AddrPort]string{}
	for i, a := range inv.Appliances {
		f := fmt.Sprintf("appliances[%d]", i)
		if a.ID == "" || strings.ContainsAny(a.ID, "/ ") {
			return Errf(f+".id", "%q must be set and contain no '/' or space", a.ID)
		}
		if ids[a.ID] {
			return Errf(f+".id", "%q used twice", a.ID)
		}
		ids[a.ID] = true
		if _, ok := sites[a.Site]; !ok {
			return Errf(f+".site", "unknown site %q", a.Site)
		}
		if !a.Address.IsValid() || a.Address.Port() == 0 {
			return Errf(f+".address", "%q is not IP:port, such as 127.1.0.1:8080", a.Address.Raw)
		}
		if applianceRange.IsValid() && !applianceRange.Contains(a.Address.Addr()) {
			return Errf(f+".address", "%s is outside %s", a.Address.Addr(), applianceRange)
		}
		if other, dup := addrs[a.Address.AddrPort]; dup {
			return Errf(f+".address", "%s already used by appliance %q", a.Address.AddrPort, other)
		}
		addrs[a.Address.AddrPort] = a.ID
		if a.Address6.Raw != "" || a.Address6.IsValid() {
			if !a.Address6.IsValid() || a.Address6.Port() == 0 || !a.Address6.Addr().Is6() || a.Address6.Addr().Is4In6() {
				return Errf(f+".address6", "%q is not an IPv6 [address]:port, such as [2001:db8::1]:8080", a.Address6.Raw)
			}
			if !a.Address.Addr().Is4() {
				return Errf(f+".address", "%s is not IPv4: address6 is for the IPv6 address of an appliance whose address is IPv4 (an IPv6-only appliance gives its address in address)", a.Address.Addr())
			}
			if applianceRange.IsValid() && applianceRange.Addr().Is6() && !applianceRange.Contains(a.Address6.Addr()) {
				return Errf(f+".address6", "%s is outside %s", a.Address6.Addr(), applianceRange)
			}
			if other, dup := addrs[a.Address6.AddrPort]; dup {
				return Errf(f+".address6", "%s already used by appliance %q", a.Address6.AddrPort, other)
			}
			addrs[a.Address6.AddrPort] = a.ID
		}
		if a.Capacity <= 0 {
			return Errf(f+".capacity", "must be a positive size such as 4GiB")
		}
	}
	return nil
}

// IPv4 is the appliance's IPv4 address, if it has one.
func (a Appliance) IPv4() (netip.AddrPort, bool) {
	if a.Address.Addr().Is4() {
		return a.Address.AddrPort, true
	}
	return netip.AddrPort{}, false
}

// IPv6 is the appliance's IPv6 address, if it has one: Address6, or
// Address on an IPv6-only appliance.
func (a Appliance) IPv6() (netip.AddrPort, bool) {
	switch {
	case a.Address6.IsValid():
		return a.Address6.AddrPort, true
	case a.Address.Addr().Is6():
		return a.Address.AddrPort, true
	}
	return netip.AddrPort{}, false
}

// SiteByID returns the site with the given id.
func (inv *Inventory) SiteByID(id string) (Site, bool) {
	for _, s := range inv.Sites {
		if s.ID == id {
			return s, true
		}
	}
	return Site{}, false
}

// ByteSize is a size in bytes that YAML may give as "512MiB", "2GB" or a number.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}

// ParseByteSize parses "512MiB", "2GB", "1024".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 2GB", s)
	}
	return ByteSize(n * float64(mult)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used by YAML and flags).
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText writes the size in the largest unit that divides it
// ("256KiB", "2GiB", "100MB"), or in bytes.
func (b ByteSize) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return []byte(strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(b), 10)), nil
}
