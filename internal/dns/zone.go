package dns

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/dnsname"
)

// Zone is the authoritative data for the CDN domain: the apex's SOA and
// NS records, the name servers' glue, and every appliance's A or AAAA
// record. It is immutable once built, so the server reads it without a
// lock; a new inventory means a new Zone (Server.SetZone).
type Zone struct {
	apex   string // canonical FQDN: lower case with the root's dot
	soa    *mdns.SOA
	negSOA []mdns.RR // the SOA with the negative TTL, for NXDOMAIN and NODATA
	ns     []mdns.RR
	glue   []mdns.RR
	ttl    uint32
	names  map[string]*node // canonical FQDN → records
}

// node is one name of the zone. A node without records is an empty
// non-terminal: it exists (NODATA) because a name beneath it does.
type node struct {
	a, aaaa []mdns.RR
	// appliance is the appliance this name belongs to; only appliance
	// names have probe names beneath them.
	appliance string
	family    dnsname.Family
}

// ZoneConfig is what a zone is built from.
type ZoneConfig struct {
	// Domain is the zone's apex (any case, trailing dot optional).
	Domain string
	// Appliances are the appliances' names (config.DNS.Names).
	Appliances []config.ApplianceName
	// Nameservers are the zone's NS records; empty means one,
	// ns1.<domain>, at DefaultNSAddrs.
	Nameservers    []config.Nameserver
	DefaultNSAddrs []netip.Addr
	// TTL of appliance records; NegativeTTL of NXDOMAIN and NODATA.
	TTL, NegativeTTL time.Duration
	// Serial is the SOA serial; a rebuilt zone must have a larger one.
	Serial uint32
}

// Infrastructure records (SOA, NS, glue) change only with the config:
// an hour is the common choice.
const infraTTL = 3600

// NewZone builds a zone, checking what config validation checks too
// (for zones built in code).
func NewZone(cfg ZoneConfig) (*Zone, error) {
	domain, err := dnsname.Domain(cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("domain: %w", err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = config.DefaultDNSTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = config.DefaultDNSNegativeTTL
	}
	z := &Zone{apex: domain + ".", ttl: uint32(cfg.TTL / time.Second), names: map[string]*node{}}
	neg := uint32(cfg.NegativeTTL / time.Second)
	nss := cfg.Nameservers
	if len(nss) == 0 {
		def := config.Nameserver{Name: "ns1." + domain}
		for _, a := range cfg.DefaultNSAddrs {
			def.Addresses = append(def.Addresses, config.Addr{Addr: a})
		}
		nss = []config.Nameserver{def}
	}
	for _, ns := range nss {
		host, err := dnsname.Hostname(ns.Name)
		if err != nil {
			return nil, fmt.Errorf("name server: %w", err)
		}
		fq := host + "."
		z.ns = append(z.ns, &mdns.NS{Hdr: hdr(z.apex, mdns.TypeNS, infraTTL), Ns: fq})
		if !dnsname.InZone(host, domain) {
			continue
		}
		if len(ns.Addresses) == 0 {
			return nil, fmt.Errorf("name server %s is inside %s and has no addresses", host, domain)
		}
		n := z.add(fq)
		for _, a := range ns.Addresses {
			rr := addrRR(fq, a.Addr, infraTTL)
			if a.Addr.Is4() {
				n.a = append(n.a, rr)
			} else {
				n.aaaa = append(n.aaaa, rr)
			}
			z.glue = append(z.glue, rr)
		}
	}
	z.soa = &mdns.SOA{Hdr: hdr(z.apex, mdns.TypeSOA, infraTTL), Ns: z.ns[0].(*mdns.NS).Ns, Mbox: "hostmaster." + z.apex,
		Serial: cfg.Serial, Refresh: 3600, Retry: 900, Expire: 7 * 24 * 3600, Minttl: neg}
	// RFC 2308 §3: a negative answer's SOA has the lower of its own TTL
	// and its minimum field, which is what resolvers cache it for.
	negSOA := *z.soa
	negSOA.Hdr.Ttl = min(neg, infraTTL)
	z.negSOA = []mdns.RR{&negSOA}
	for _, an := range cfg.Appliances {
		if !dnsname.InZone(an.Name, domain) {
			return nil, fmt.Errorf("appliance %q: name %s is outside %s", an.Appliance, an.Name, domain)
		}
		fq := an.Name + "."
		if old, ok := z.names[fq]; ok && old.appliance != "" {
			return nil, fmt.Errorf("appliance %q: name %s is appliance %q's", an.Appliance, an.Name, old.appliance)
		} else if ok && len(old.a)+len(old.aaaa) > 0 {
			return nil, fmt.Errorf("appliance %q: name %s is a name server's", an.Appliance, an.Name)
		}
		n := z.add(fq)
		n.appliance, n.family = an.Appliance, an.Family
		rr := addrRR(fq, an.Addr, z.ttl)
		if an.Addr.Is4() {
			n.a = append(n.a, rr)
		} else {
			n.aaaa = append(n.aaaa, rr)
		}
	}
	return z, nil
}

// add returns fq's node, creating it and the empty non-terminals
// between it and the apex.
func (z *Zone) add(fq string) *node {
	n, ok := z.names[fq]
	if !ok {
		n = &node{}
		z.names[fq] = n
	}
	for p := fq; ; {
		_, parent, _ := strings.Cut(p, ".")
		if len(parent) <= len(z.apex) {
			break
		}
		if _, ok := z.names[parent]; !ok {
			z.names[parent] = &node{}
		}
		p = parent
	}
	return n
}

// Domain is the zone's apex, canonical, without the trailing dot.
func (z *Zone) Domain() string { return strings.TrimSuffix(z.apex, ".") }

func hdr(name string, t uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

func addrRR(name string, a netip.Addr, ttl uint32) mdns.RR {
	if a.Is4() {
		return &mdns.A{Hdr: hdr(name, mdns.TypeA, ttl), A: a.AsSlice()}
	}
	return &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA, ttl), AAAA: a.AsSlice()}
}

// ZoneFromConfig builds the zone a control plane's config describes.
func ZoneFromConfig(d *config.DNS, inv config.Inventory, serial uint32) (*Zone, error) {
	names, err := d.Names(inv)
	if err != nil {
		return nil, err
	}
	zc := ZoneConfig{Domain: d.Domain, Appliances: names, Nameservers: d.Nameservers, TTL: d.TTL, NegativeTTL: d.NegativeTTL, Serial: serial}
	seen := map[netip.Addr]bool{}
	for _, l := range d.Listen {
		if a := l.Addr().Unmap(); !seen[a] {
			seen[a] = true
			zc.DefaultNSAddrs = append(zc.DefaultNSAddrs, a)
		}
	}
	return NewZone(zc)
}
