package deploytest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocdn/ocdn/internal/netns"
)

// The deployment, host by host. Every host is a network namespace; links
// are veth pairs. Addresses are documentation and private ranges: they
// exist only inside this run's namespaces, so they never collide with
// the machine's or another run's.
//
//	isp1 (AS 64501, BIRD)──site LAN (bridge in s1)──a1, a2   embedded site of isp1
//	  │ └──home line: tbf, then user-space delay and loss   (tbf on the isp1↔site port)
//	  │    to home clients (access_test.go)
//	isp2 (AS 64502, BIRD)──IXP LAN──x1                      IXP site; isp2 peers there
//	  │                              │
//	core (the CDN's backbone router) ┴── c1, c2 (control replicas), origin, db (PostgreSQL)
//
// Clients run in the ISP hosts with source addresses inside their ISP's
// announced prefixes (made local there); the backbone routes those
// prefixes back to the ISP, since appliances learn routes over BGP but
// never install them in the kernel.
const (
	cdnASN  = 2906
	isp1ASN = 64501
	isp2ASN = 64502
	// maxPrefixes is every appliance neighbor's limit; the test floods
	// one session past it.
	maxPrefixes = 8
	contentPort = 443 // HTTPS by name (docs/dns.md)
	opsPort     = 9180
	apiPort     = 8080
	dnsPort     = 53
	originPort  = 8081
)

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// Client prefixes (different lengths) and what each router announces to
// each appliance. Embedded appliances reject IPv4 longer than /24 and IPv6
// longer than /48, so more-specifics stop there.
var (
	p1Wide   = pfx("198.51.100.0/24")   // a1 MED 10, a2 MED 20: a1 first
	p1CGN    = pfx("100.64.0.0/16")     // a1 with AS path prepended twice, a2 plain: a2 first
	p1More   = pfx("100.64.7.0/24")     // a1 only; withdrawn and re-announced
	p1Wide6  = pfx("2001:db8:100::/40") // a1 MED 10, a2 MED 20
	p1More6  = pfx("2001:db8:107::/48") // a2 only; withdrawn and re-announced
	p2Doc    = pfx("203.0.113.0/24")    // isp2 → x1
	p2CGN    = pfx("100.65.0.0/16")     // isp2 → x1, prepended once
	p2Wide6  = pfx("2001:db8:200::/40") // isp2 → x1
	isp1Pfxs = []netip.Prefix{p1Wide, p1CGN, p1Wide6}
	isp2Pfxs = []netip.Prefix{p2Doc, p2CGN, p2Wide6}
	// flood6 are the extra /48s isp1 sends a2 over IPv6 to exceed its
	// max-prefix.
	flood6 = func() []netip.Prefix {
		var out []netip.Prefix
		for i := range maxPrefixes + 4 {
			out = append(out, pfx(fmt.Sprintf("2001:db8:1f%x::/48", i)))
		}
		return out
	}()
	// allowPrefixes exempts the documentation and shared ranges from the
	// appliances' bogon filter.
	allowPrefixes = []string{"198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/10", "2001:db8::/32"}
)

// cdnDomain is the zone the control planes' DNS servers answer for; each
// replica is one of its name servers.
const cdnDomain = "cdn.example.net"

// Addresses of the hosts on their links.
var (
	r1Site4, r1Site6 = addr("10.1.0.1"), addr("2001:db8:ff01::1")
	a1Addr4, a1Addr6 = addr("10.1.0.11"), addr("2001:db8:ff01::11")
	a2Addr4, a2Addr6 = addr("10.1.0.12"), addr("2001:db8:ff01::12")
	r2IXP4, r2IXP6   = addr("10.3.0.2"), addr("2001:db8:ff03::2")
	x1Addr4, x1Addr6 = addr("10.3.0.10"), addr("2001:db8:ff03::10")
	c1Addr4, c1Addr6 = addr("10.0.11.2"), addr("2001:db8:ff00:11::2")
	c2Addr4, c2Addr6 = addr("10.0.12.2"), addr("2001:db8:ff00:12::2")
	originAddr       = addr("10.0.13.2")
	dbAddr           = addr("10.0.14.2")
)

// backbone is a host's point-to-point link to core: core is .1 / ::1,
// the host .2 / ::2.
type backbone struct {
	host string
	n    int // 10.0.n.0/30, 2001:db8:ff00:n::/64
}

var backbones = []backbone{{"isp1", 1}, {"isp2", 2}, {"x1", 3}, {"c1", 11}, {"c2", 12}, {"origin", 13}, {"db", 14}}

func (b backbone) core4() netip.Addr { return addr(fmt.Sprintf("10.0.%d.1", b.n)) }
func (b backbone) host4() netip.Addr { return addr(fmt.Sprintf("10.0.%d.2", b.n)) }
func (b backbone) core6() netip.Addr { return addr(fmt.Sprintf("2001:db8:ff00:%d::1", b.n)) }
func (b backbone) host6() netip.Addr { return addr(fmt.Sprintf("2001:db8:ff00:%d::2", b.n)) }

// hostNames are every host of the deployment.
var hostNames = []string{"core", "isp1", "isp2", "s1", "a1", "a2", "x1", "c1", "c2", "origin", "db"}

// buildNetwork makes the hosts, links, addresses and routes.
func buildNetwork(t *testing.T, n *netns.Net) map[string]*netns.Host {
	t.Helper()
	h := map[string]*netns.Host{}
	for _, name := range hostNames {
		host, err := n.Host(name)
		must(t, err)
		h[name] = host
	}
	with := func(p netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(p, bits) }
	for _, b := range backbones {
		must(t, n.Link(h["core"], b.host, h[b.host], "core"))
		must(t, h["core"].Addr(b.host, with(b.core4(), 30)))
		must(t, h["core"].Addr(b.host, with(b.core6(), 64)))
		must(t, h[b.host].Addr("core", with(b.host4(), 30)))
		must(t, h[b.host].Addr("core", with(b.host6(), 64)))
		must(t, h[b.host].DefaultRoute(b.core4()))
		must(t, h[b.host].DefaultRoute(b.core6()))
	}
	// The embedded site: a switch (bridge) with isp1's router and the
	// two appliances on one LAN, so BGP runs between directly connected
	// neighbors. The isp1↔site port is where the test puts a bottleneck.
	must(t, n.Link(h["isp1"], "site", h["s1"], "isp1"))
	must(t, n.Link(h["a1"], "eth0", h["s1"], "a1"))
	must(t, n.Link(h["a2"], "eth0", h["s1"], "a2"))
	must(t, h["s1"].Bridge("br0", "isp1", "a1", "a2"))
	must(t, h["isp1"].Addr("site", with(r1Site4, 24)))
	must(t, h["isp1"].Addr("site", with(r1Site6, 64)))
	for _, a := range []struct {
		name   string
		v4, v6 netip.Addr
	}{{"a1", a1Addr4, a1Addr6}, {"a2", a2Addr4, a2Addr6}} {
		must(t, h[a.name].Addr("eth0", with(a.v4, 24)))
		must(t, h[a.name].Addr("eth0", with(a.v6, 64)))
		must(t, h[a.name].DefaultRoute(r1Site4))
		must(t, h[a.name].DefaultRoute(r1Site6))
	}
	// The IXP: isp2's router and x1 on the exchange LAN.
	must(t, n.Link(h["isp2"], "ixp", h["x1"], "ixp"))
	must(t, h["isp2"].Addr("ixp", with(r2IXP4, 24)))
	must(t, h["isp2"].Addr("ixp", with(r2IXP6, 64)))
	must(t, h["x1"].Addr("ixp", with(x1Addr4, 24)))
	must(t, h["x1"].Addr("ixp", with(x1Addr6, 64)))
	// x1 answers isp2's clients over the exchange, the rest by the backbone.
	for _, p := range isp2Pfxs {
		must(t, h["x1"].Route(p, via(p, r2IXP4, r2IXP6)))
	}
	// The ISPs' clients: their prefixes are local to the ISP host.
	// isp1's home line (access_test.go) is the exception: isp1 routes
	// homePfx onwards to it.
	for _, p := range isp1Pfxs {
		for _, q := range without(p, homePfx) {
			must(t, h["isp1"].Local(q))
		}
	}
	for _, p := range isp2Pfxs {
		must(t, h["isp2"].Local(p))
	}
	for _, r := range []string{"core", "isp1", "isp2"} {
		must(t, h[r].Router())
	}
	// The backbone knows where everything is.
	bb := map[string]backbone{}
	for _, b := range backbones {
		bb[b.host] = b
	}
	for _, r := range []struct {
		dst []netip.Prefix
		to  string
	}{
		{append([]netip.Prefix{pfx("10.1.0.0/24"), pfx("2001:db8:ff01::/64")}, isp1Pfxs...), "isp1"},
		{isp2Pfxs, "isp2"},
		{[]netip.Prefix{pfx("10.3.0.0/24"), pfx("2001:db8:ff03::/64")}, "x1"},
	} {
		for _, p := range r.dst {
			must(t, h["core"].Route(p, via(p, bb[r.to].host4(), bb[r.to].host6())))
		}
	}
	return h
}

// without returns the prefixes that cover p except hole: p itself when
// they do not overlap, nothing when hole covers p, else the halves of p,
// split until each lies outside hole.
func without(p, hole netip.Prefix) []netip.Prefix {
	switch {
	case !p.Overlaps(hole):
		return []netip.Prefix{p}
	case hole.Bits() <= p.Bits():
		return nil
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	// The upper half starts at p's address with bit p.Bits() set.
	b := p.Addr().AsSlice()
	b[p.Bits()/8] |= 0x80 >> (p.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	hi := netip.PrefixFrom(hiAddr, p.Bits()+1)
	return append(without(lo, hole), without(hi, hole)...)
}

func via(p netip.Prefix, v4, v6 netip.Addr) netip.Addr {
	if p.Addr().Is4() {
		return v4
	}
	return v6
}

// birdRoute is a route a router announces to one neighbor.
type birdRoute struct {
	prefix  netip.Prefix
	prepend int
	med     int
}

// birdNeighbor is one BGP session of a router.
type birdNeighbor struct {
	name          string
	local, remote netip.Addr
	routes        []birdRoute
}

// birdConfig renders a router's BIRD 2 config as an ISP would write it:
// one static protocol per family originating the client prefixes, and per
// appliance session an export filter choosing the prefixes and setting
// AS-path prepends and MEDs. Sessions are directly connected eBGP (no
// multihop); BIRD sets its own address as next hop.
func birdConfig(routerID netip.Addr, asn int, sessions []birdNeighbor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\nprotocol device {}\n", routerID)
	statics := map[bool][]netip.Prefix{}
	seen := map[netip.Prefix]bool{}
	for _, s := range sessions {
		for _, r := range s.routes {
			if !seen[r.prefix] {
				seen[r.prefix] = true
				statics[r.prefix.Addr().Is4()] = append(statics[r.prefix.Addr().Is4()], r.prefix)
			}
		}
	}
	for _, v4 := range []bool{true, false} {
		ch, name := "ipv4", "clients4"
		if !v4 {
			ch, name = "ipv6", "clients6"
		}
		fmt.Fprintf(&b, "protocol static %s {\n  %s;\n", name, ch)
		for _, p := range statics[v4] {
			fmt.Fprintf(&b, "  route %s blackhole;\n", p)
		}
		b.WriteString("}\n")
	}
	for _, s := range sessions {
		ch := "ipv4"
		if s.remote.Is6() {
			ch = "ipv6"
		}
		fmt.Fprintf(&b, "protocol bgp %s {\n  local %s as %d;\n  neighbor %s as %d;\n", s.name, s.local, asn, s.remote, cdnASN)
		// BIRD's defaults (5 s connect delay, 120 s retry) are for
		// production; a test wants sessions up as soon as both ends are.
		b.WriteString("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n")
		fmt.Fprintf(&b, "  %s {\n    import none;\n    export filter {\n", ch)
		var nets []string
		for _, r := range s.routes {
			nets = append(nets, r.prefix.String())
		}
		if len(nets) == 0 {
			b.WriteString("      reject;\n")
		} else {
			fmt.Fprintf(&b, "      if !(net ~ [ %s ]) then reject;\n", strings.Join(nets, ", "))
		}
		for _, r := range s.routes {
			var attrs []string
			for range r.prepend {
				attrs = append(attrs, fmt.Sprintf("bgp_path.prepend(%d);", asn))
			}
			if r.med != 0 {
				attrs = append(attrs, fmt.Sprintf("bgp_med = %d;", r.med))
			}
			if len(attrs) > 0 {
				fmt.Fprintf(&b, "      if net = %s then { %s }\n", r.prefix, strings.Join(attrs, " "))
			}
		}
		b.WriteString("      accept;\n    };\n  };\n}\n")
	}
	return b.String()
}

// isp1Sessions are isp1's four sessions with the embedded appliances;
// more announces the more-specifics p1More and p1More6, flood sends a2
// the flood6 prefixes over IPv6.
func isp1Sessions(more, flood bool) []birdNeighbor {
	a1v4 := []birdRoute{{prefix: p1Wide, med: 10}, {prefix: p1CGN, prepend: 2}}
	a1v6 := []birdRoute{{prefix: p1Wide6, med: 10}}
	a2v4 := []birdRoute{{prefix: p1Wide, med: 20}, {prefix: p1CGN}}
	a2v6 := []birdRoute{{prefix: p1Wide6, med: 20}}
	if more {
		a1v4 = append(a1v4, birdRoute{prefix: p1More})
		a2v6 = append(a2v6, birdRoute{prefix: p1More6})
	}
	if flood {
		for _, p := range flood6 {
			a2v6 = append(a2v6, birdRoute{prefix: p})
		}
	}
	return []birdNeighbor{
		{"a1_v4", r1Site4, a1Addr4, a1v4}, {"a1_v6", r1Site6, a1Addr6, a1v6},
		{"a2_v4", r1Site4, a2Addr4, a2v4}, {"a2_v6", r1Site6, a2Addr6, a2v6},
	}
}

func isp2Sessions() []birdNeighbor {
	return []birdNeighbor{
		{"x1_v4", r2IXP4, x1Addr4, []birdRoute{{prefix: p2Doc}, {prefix: p2CGN, prepend: 1}}},
		{"x1_v6", r2IXP6, x1Addr6, []birdRoute{{prefix: p2Wide6}}},
	}
}

// configs holds the paths of the files an operator would write.
type configs struct {
	dir                      string
	controlURLs              []string
	control                  map[string]string // replica → control.yaml
	appliance                map[string]string // id → appliance.yaml
	origin, catalog, adminTk string
	measureRoot              string // the replicas' measure dirs are its children
}

// writeConfigs writes the deployment's config files under dir, laid out
// as they would be on the hosts: shared files at the top (catalog, keys,
// credentials, as copied to every host), then a directory per host.
// Appliance tokens are minted later with `ocdn control --mint-token`.
func writeConfigs(t *testing.T, dir, dsn string) *configs {
	t.Helper()
	c := &configs{dir: dir, control: map[string]string{}, appliance: map[string]string{},
		controlURLs: []string{fmt.Sprintf("http://%s:%d", c1Addr4, apiPort), fmt.Sprintf("http://%s:%d", c2Addr4, apiPort)},
		catalog:     filepath.Join(dir, "catalog.json"), adminTk: filepath.Join(dir, "admin.token"),
		measureRoot: filepath.Join(dir, "measure")}
	write := func(path, text string) string {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, []byte(text), 0o600))
		return path
	}
	inventory := fmt.Sprintf(`isps:
  - {name: isp1, asn: %d, prefixes: [%s], location: {lat: 52.37, lon: 4.90}}
  - {name: isp2, asn: %d, prefixes: [%s], location: {lat: 50.11, lon: 8.68}}
sites:
  - {id: isp1-embedded, kind: embedded, isp: isp1, time_zone: Europe/Amsterdam, location: {lat: 52.37, lon: 4.90}}
  - {id: ixp, kind: ixp, time_zone: Europe/Amsterdam, location: {lat: 52.36, lon: 4.94}}
appliances:
  - {id: a1, site: isp1-embedded, address: "%s:%d", address6: "[%s]:%d", capacity: 1GiB, tls: true}
  - {id: a2, site: isp1-embedded, address: "%s:%d", address6: "[%s]:%d", capacity: 1GiB, tls: true}
  - {id: x1, site: ixp, address: "%s:%d", address6: "[%s]:%d", capacity: 1GiB, tls: true}
`, isp1ASN, joinPrefixes(isp1Pfxs), isp2ASN, joinPrefixes(isp2Pfxs),
		a1Addr4, contentPort, a1Addr6, contentPort, a2Addr4, contentPort, a2Addr6, contentPort, x1Addr4, contentPort, x1Addr6, contentPort)
	for _, r := range []struct {
		name   string
		v4, v6 netip.Addr
	}{{"c1", c1Addr4, c1Addr6}, {"c2", c2Addr4, c2Addr6}} {
		// The replicas' files differ only in listen and, because this
		// machine has one disk, in where each keeps its measurements.
		c.control[r.name] = write(filepath.Join(dir, r.name, "control.yaml"), fmt.Sprintf(`listen: ["%s", "%s"]
catalog: ../catalog.json
origin_url: http://%s:%d
key_file: ../keys.json
admin_token_file: ../admin.token
appliance_secret_file: ../appliance.secret
heartbeat_interval: 500ms
replicas: 2
store: %s
sync_interval: 100ms
measure:
  dir: ../measure/%s
  recipe: {targets: 3, pulses: 2, pulse_size: 128KiB, pulse_delay: 10ms, pulse_timeout: 3s, interval: 10s}
turn_up: {fill_share: 1}
fill: {window_length: 24h}
dns:
  domain: %s
  listen: ["%s"]
  nameservers:
    - {name: ns1.%s, addresses: [%s]}
    - {name: ns2.%s, addresses: [%s]}
appliance_ca_file: ../pki/ca.pem
%s`, netip.AddrPortFrom(r.v4, apiPort), netip.AddrPortFrom(r.v6, apiPort), originAddr, originPort, dsn, r.name,
			cdnDomain, netip.AddrPortFrom(r.v4, dnsPort), cdnDomain, c1Addr4, cdnDomain, c2Addr4, inventory))
	}
	for _, a := range []struct {
		id, routerName string
		v4, v6         netip.Addr
		peerASN        int
		r4, r6         netip.Addr
	}{
		{"a1", "isp1", a1Addr4, a1Addr6, isp1ASN, r1Site4, r1Site6},
		{"a2", "isp1", a2Addr4, a2Addr6, isp1ASN, r1Site4, r1Site6},
		{"x1", "isp2", x1Addr4, x1Addr6, isp2ASN, r2IXP4, r2IXP6},
	} {
		c.appliance[a.id] = write(filepath.Join(dir, a.id, "appliance.yaml"), fmt.Sprintf(`id: %s
listen: ["%s", "%s"]
ops_listen: "%s"
control_urls: [%s]
token_file: %s.token
key_file: ../keys.json
store: store
capacity: 1GiB
heartbeat_interval: 500ms
drain_grace: 100ms
drain_timeout: 2s
access_log: "off"
control_ca_file: ../pki/ca.pem
fill: {concurrency: 4, interval: 200ms}
bgp:
  local_asn: %d
  local_address: %s
  allow_prefixes: [%s]
  neighbors:
    - {address: %s, peer_asn: %d, hold_time: 9s, max_prefixes: %d}
    - {address: "%s", peer_asn: %d, hold_time: 9s, max_prefixes: %d}
`, a.id, netip.AddrPortFrom(a.v4, contentPort), netip.AddrPortFrom(a.v6, contentPort), netip.AddrPortFrom(a.v4, opsPort), strings.Join(c.controlURLs, ", "), a.id,
			cdnASN, a.v4, strings.Join(allowPrefixes, ", "), a.r4, a.peerASN, maxPrefixes, a.r6, a.peerASN, maxPrefixes)+
			// Its pair from `ocdn pki issue` (setUp).
			fmt.Sprintf("tls: {cert_file: ../certs/%s.pem, key_file: ../certs/%s.key}\n", a.id, a.id))
	}
	c.origin = write(filepath.Join(dir, "origin", "origin.yaml"), fmt.Sprintf("listen: \"%s\"\ncatalog: ../catalog.json\n",
		netip.AddrPortFrom(originAddr, originPort)))
	return c
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWithout(t *testing.T) {
	for _, tc := range []struct {
		p, hole string
		want    string
	}{
		{"198.51.100.0/24", "198.51.100.192/26", "198.51.100.0/25 198.51.100.128/26"},
		{"198.51.100.0/24", "198.51.100.0/26", "198.51.100.64/26 198.51.100.128/25"},
		{"198.51.100.0/24", "198.51.100.200/32", "198.51.100.0/25 198.51.100.128/26 198.51.100.192/29 198.51.100.201/32 198.51.100.202/31 198.51.100.204/30 198.51.100.208/28 198.51.100.224/27"},
		{"100.64.0.0/16", "198.51.100.192/26", "100.64.0.0/16"},
		{"198.51.100.0/24", "198.51.0.0/16", ""},
		{"2001:db8:100::/40", "2001:db8:100::/41", "2001:db8:180::/41"},
	} {
		var got []string
		for _, q := range without(pfx(tc.p), pfx(tc.hole)) {
			got = append(got, q.String())
		}
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("without(%s, %s) = %q, want %q", tc.p, tc.hole, s, tc.want)
		}
	}
}
