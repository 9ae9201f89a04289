package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ocdn/ocdn/internal/dnsname"
)

// DNS is the control plane's authoritative DNS server for the CDN domain
// (the `dns` section of the control plane's config; docs/dns.md). It
// answers A and AAAA for every appliance's per-family name from the
// inventory.
type DNS struct {
	// Domain is the zone: appliances are named ipv4-<id>-<site>.<domain>
	// and ipv6-<id>-<site>.<domain>.
	Domain string `yaml:"domain,omitempty"`
	// Listen is where the server answers, over UDP and TCP on each
	// address (port 0 picks a free port, the same for both). Addresses
	// must be specific: a reply must leave from the address the query
	// was sent to.
	Listen AddrList `yaml:"listen,omitempty"`
	// TTL of the appliances' A and AAAA records (default 30s): short, so
	// an inventory change reaches clients quickly.
	TTL time.Duration `yaml:"ttl,omitempty"`
	// NegativeTTL is how long resolvers cache NXDOMAIN and NODATA (the
	// SOA minimum, default 10s).
	NegativeTTL time.Duration `yaml:"negative_ttl,omitempty"`
	// Nameservers are the zone's NS records. A name server inside the
	// domain needs its addresses (glue); one outside must not give
	// them. Default: ns1.<domain> at the listen addresses.
	Nameservers []Nameserver `yaml:"nameservers,omitempty"`
	// ProbeLogSize is how many queries for probe names are kept in
	// memory for the measurement side to join (default 65536).
	ProbeLogSize int `yaml:"probe_log_size,omitempty"`
}

// Nameserver is one NS record of the zone.
type Nameserver struct {
	Name      string `yaml:"name,omitempty"`
	Addresses []Addr `yaml:"addresses,omitempty"`
}

// Defaults of the DNS section.
const (
	DefaultDNSTTL         = 30 * time.Second
	DefaultDNSNegativeTTL = 10 * time.Second
	DefaultProbeLogSize   = 65536
)

// ApplianceName is one appliance's DNS name in one address family.
type ApplianceName struct {
	// Name is canonical: lower case, without the root's trailing dot.
	Name      string
	Family    dnsname.Family
	Appliance string
	Site      string
	Addr      netip.Addr
}

// CanonicalDomain is the domain in lower case without a trailing dot
// ("" when it is not a valid domain; Validate says why).
func (d *DNS) CanonicalDomain() string {
	z, _ := dnsname.Domain(d.Domain)
	return z
}

// Names lists the DNS names of every appliance in inv, in inventory
// order, IPv4 before IPv6. It fails on an appliance whose ids make no
// valid name, naming it; collisions are Validate's to find.
func (d *DNS) Names(inv Inventory) ([]ApplianceName, error) {
	zone, err := dnsname.Domain(d.Domain)
	if err != nil {
		return nil, Errf("dns.domain", "%v", err)
	}
	var out []ApplianceName
	for i, a := range inv.Appliances {
		for _, fam := range []dnsname.Family{dnsname.IPv4, dnsname.IPv6} {
			ap, ok := a.IPv4()
			if fam == dnsname.IPv6 {
				ap, ok = a.IPv6()
			}
			if !ok {
				continue
			}
			n, err := dnsname.Appliance(zone, a.ID, a.Site, fam)
			if err != nil {
				return nil, Errf(fmt.Sprintf("appliances[%d].id", i), "%v", err)
			}
			out = append(out, ApplianceName{Name: n, Family: fam, Appliance: a.ID, Site: a.Site, Addr: ap.Addr()})
		}
	}
	return out, nil
}

func (d *DNS) validate(inv Inventory) error {
	if d == nil {
		return nil
	}
	zone, err := dnsname.Domain(d.Domain)
	if err != nil {
		return Errf("dns.domain", "%v", err)
	}
	if err := d.Listen.validate("dns.listen", true); err != nil {
		return err
	}
	for i, a := range d.Listen {
		if a.Addr().IsUnspecified() {
			f := "dns.listen"
			if len(d.Listen) > 1 {
				f = fmt.Sprintf("dns.listen[%d]", i)
			}
			return Errf(f, "%s is a wildcard address; give the server's own addresses so that replies leave from the address asked", a.AddrPort)
		}
	}
	for _, t := range []struct {
		field string
		v     time.Duration
	}{{"dns.ttl", d.TTL}, {"dns.negative_ttl", d.NegativeTTL}} {
		if err := durationAtLeast(t.field, t.v, time.Second, 24*time.Hour); err != nil {
			return err
		}
		if t.v%time.Second != 0 {
			return Errf(t.field, "%s is not a whole number of seconds (DNS TTLs are seconds)", t.v)
		}
	}
	if d.ProbeLogSize < 0 || d.ProbeLogSize > 1<<24 {
		return Errf("dns.probe_log_size", "%d is not between 1 and %d (0 means the default, %d)", d.ProbeLogSize, 1<<24, DefaultProbeLogSize)
	}
	names, err := d.Names(inv)
	if err != nil {
		return err
	}
	owner := map[string]string{}
	for _, n := range names {
		if other, dup := owner[n.Name]; dup && other != n.Appliance {
			i := applianceIndex(inv, n.Appliance)
			return Errf(fmt.Sprintf("appliances[%d].id", i), "appliance %q at site %q gets the DNS name %s, which appliance %q already has (ids map to DNS labels by lowercasing and turning other characters than letters and digits into '-'): rename one", n.Appliance, n.Site, n.Name, other)
		}
		owner[n.Name] = n.Appliance
	}
	seen := map[string]bool{}
	for i, ns := range d.Nameservers {
		f := fmt.Sprintf("dns.nameservers[%d]", i)
		host, err := dnsname.Hostname(ns.Name)
		if err != nil {
			return Errf(f+".name", "%v", err)
		}
		if seen[host] {
			return Errf(f+".name", "%s is listed twice", host)
		}
		seen[host] = true
		if a, clash := owner[host]; clash {
			return Errf(f+".name", "%s is appliance %q's name", host, a)
		}
		inZone := dnsname.InZone(host, zone)
		if inZone && len(ns.Addresses) == 0 {
			return Errf(f+".addresses", "%s is inside %s, so resolvers need its addresses from this zone (glue): list them", host, zone)
		}
		if !inZone && len(ns.Addresses) > 0 {
			return Errf(f+".addresses", "%s is outside %s, whose own zone gives its addresses: remove them", host, zone)
		}
		for j, a := range ns.Addresses {
			if !a.IsValid() || a.IsUnspecified() {
				return Errf(fmt.Sprintf("%s.addresses[%d]", f, j), "%q is not an IP address such as 192.0.2.53", a.Raw)
			}
		}
	}
	return nil
}

func applianceIndex(inv Inventory, id string) int {
	for i := len(inv.Appliances) - 1; i >= 0; i-- {
		if inv.Appliances[i].ID == id {
			return i
		}
	}
	return -1
}
