package lab

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/analyze"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/netns"
)

// The lab's IPv6 network. The host has only ::1, so IPv6 lives in a
// network namespace the lab makes (it needs root): the documentation
// prefix 2001:db8::/32 is routed to its loopback, so clients bind any
// address of their ISP's IPv6 prefixes there and appliances and the
// control plane listen on theirs, through the daemons' listen_netns
// setting. Clients dial into it from the lab's process (netem.DialerIn);
// IPv4 stays on the host's loopback. Without root the lab runs IPv4 only
// and its report says why.

// lab6Range holds every IPv6 address of the lab.
var lab6Range = netip.MustParsePrefix("2001:db8::/32")

// lab6Infra is the CDN's own IPv6 space: appliances' address6 and the
// control plane (control6); ISPs' prefixes are elsewhere in lab6Range.
var lab6Infra = netip.MustParsePrefix("2001:db8:ffff::/48")

// control6 is the control plane's IPv6 address (each replica on its own
// port, as on IPv4).
var control6 = netip.MustParseAddr("2001:db8:ffff::c")

// labNextHop6 is the next hop of IPv6 routes (see labNextHop).
var labNextHop6 = netip.MustParseAddr("2001:db8:ffff::fe")

// hasIPv6 says whether the scenario asks for IPv6: an appliance with an
// address6 or a dual-stack client.
func (s *Scenario) hasIPv6() bool {
	return slices.ContainsFunc(s.Appliances, func(a config.Appliance) bool { return a.Address6.IsValid() }) ||
		slices.ContainsFunc(s.Clients, func(c ClientGroup) bool { return c.IPv6Share > 0 })
}

// ipv4Only is the scenario without IPv6: no address6, no IPv6 prefixes,
// no dual-stack clients (a lab without root).
func (s *Scenario) ipv4Only() *Scenario {
	out := *s
	out.Inventory.Appliances = slices.Clone(s.Appliances)
	for i := range out.Appliances {
		out.Appliances[i].Address6 = config.AddrPort{}
	}
	out.Inventory.ISPs = slices.Clone(s.ISPs)
	for i := range out.ISPs {
		out.ISPs[i].Prefixes = prefixesOf(s.ISPs[i], false)
	}
	out.Clients = slices.Clone(s.Clients)
	for i := range out.Clients {
		out.Clients[i].IPv6Share = 0
	}
	return &out
}

// prefixesOf are an ISP's IPv6 prefixes (v6) or IPv4 ones.
func prefixesOf(isp config.ISP, v6 bool) []config.Prefix {
	var out []config.Prefix
	for _, p := range isp.Prefixes {
		if p.Addr().Is6() == v6 {
			out = append(out, p)
		}
	}
	return out
}

// validateIPv6 checks the scenario's IPv6 addresses: ISPs' prefixes in
// lab6Range outside lab6Infra, appliances' address6 in lab6Infra, and a
// dual-stack share only for an ISP with an IPv6 prefix.
func (s *Scenario) validateIPv6(isps map[string]config.ISP) error {
	for i, isp := range s.ISPs {
		for j, p := range isp.Prefixes {
			if !p.Addr().Is6() {
				continue
			}
			if !lab6Range.Contains(p.Addr()) || p.Bits() < 32 || p.Bits() > 64 || p.Overlaps(lab6Infra) {
				return config.Errf(fmt.Sprintf("isps[%d].prefixes[%d]", i, j), "%s: lab clients bind IPv6 addresses in their ISP's prefixes, so each must be inside %s, /32 to /64, outside the CDN's %s", p.Prefix, lab6Range, lab6Infra)
			}
		}
	}
	for i, a := range s.Appliances {
		if a.Address6.IsValid() && (!lab6Infra.Contains(a.Address6.Addr()) || a.Address6.Addr() == control6 || a.Address6.Addr() == labNextHop6) {
			return config.Errf(fmt.Sprintf("appliances[%d].address6", i), "%s: lab appliances' IPv6 addresses are inside %s (but not %s, the control plane's, or %s)", a.Address6.Addr(), lab6Infra, control6, labNextHop6)
		}
	}
	for i, c := range s.Clients {
		f := fmt.Sprintf("clients[%d].ipv6_share", i)
		if c.IPv6Share < 0 || c.IPv6Share > 1 {
			return config.Errf(f, "%v is not a share from 0 to 1", c.IPv6Share)
		}
		if c.IPv6Share > 0 && len(prefixesOf(isps[c.ISP], true)) == 0 {
			return config.Errf(f, "ISP %q has no IPv6 prefix to put dual-stack clients in", c.ISP)
		}
	}
	return nil
}

// openIPv6 makes the lab's IPv6 namespace when the scenario asks for
// IPv6; without root it drops IPv6 from the scenario and records why.
func (l *Lab) openIPv6() error {
	if !l.sc.hasIPv6() {
		return nil
	}
	n, err := netns.New("ocdnlab")
	if err == nil {
		var h *netns.Host
		if h, err = n.Host("v6"); err == nil {
			if err = h.Local(lab6Range); err == nil {
				l.v6, l.v6net = h.Name(), n
				return nil
			}
		}
		n.Close()
	}
	l.ipv6Fallback = err.Error()
	l.log.Warn("IPv6 falls back to none: the lab runs IPv4 only", "err", err)
	l.status("IPv6: " + err.Error() + "; running IPv4 only (no dual-stack clients)")
	l.sc = l.sc.ipv4Only()
	return nil
}

// closeIPv6 removes the IPv6 namespace (after the daemons have stopped).
func (l *Lab) closeIPv6() {
	if l.v6net != nil {
		if err := l.v6net.Close(); err != nil {
			l.log.Error("removing the IPv6 namespace", "err", err)
		}
	}
}

// clientAddr6 is dual-stack client i's IPv6 address: one /64 each
// within the ISP's IPv6 prefixes, as households get.
func clientAddr6(isp config.ISP, i int) netip.Addr {
	ps := prefixesOf(isp, true)
	p := ps[i%len(ps)].Prefix
	b := p.Addr().As16()
	k := uint64(i/len(ps)) % (1 << (64 - min(p.Bits(), 64)))
	for j := 7; j >= 0 && k > 0; j-- {
		b[j] |= byte(k)
		k >>= 8
	}
	b[15] = 0x10
	return netip.AddrFrom16(b)
}

// labClient is one viewer's network: its IPv4 source, an IPv6 source when
// it is dual-stack, and how its connections are made.
type labClient struct {
	src, src6 netip.Addr
	// dial reaches appliances through their emulated links and the
	// control plane directly, over the family of the address dialed.
	dial netem.DialFunc
	// direct reaches anything directly (uploads to the control plane).
	direct netem.DialFunc
	// controlURLs are the control plane's replicas, IPv6 first for a
	// dual-stack client (it then steers by its IPv6 address, as a
	// dual-stack host that prefers IPv6 does).
	controlURLs []string
}

// dualStack says the client has an IPv6 address too.
func (c *labClient) dualStack() bool { return c.src6.IsValid() }

// newClient sets up client i of isp; dual gives it an IPv6 address.
func (l *Lab) newClient(isp config.ISP, i int, dual bool, controlURLs []string) *labClient {
	c := &labClient{src: clientAddr(isp, i), controlURLs: controlURLs}
	base4 := &net.Dialer{LocalAddr: &net.TCPAddr{IP: c.src.AsSlice()}, Timeout: 3 * time.Second}
	direct4 := netem.DialFunc(base4.DialContext)
	c.dial = dialVia(l.packetDialer(isp.Name, c.src), netem.Via(direct4, l.linkFor(isp.Name)))
	c.direct = direct4
	if !dual || l.v6 == "" {
		return c
	}
	c.src6 = clientAddr6(isp, i)
	direct6 := netem.DialerIn(l.v6, &net.Dialer{LocalAddr: &net.TCPAddr{IP: c.src6.AsSlice()}, Timeout: 3 * time.Second})
	byFamily := func(v4, v6 netem.DialFunc) netem.DialFunc {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
				return v6(ctx, network, addr)
			}
			return v4(ctx, network, addr)
		}
	}
	c.dial = byFamily(c.dial, netem.Via(direct6, l.linkFor(isp.Name)))
	c.direct = byFamily(direct4, direct6)
	c.controlURLs = append(l.controlURLs6(), controlURLs...)
	return c
}

// controlURLs6 are the control plane's replicas' IPv6 URLs.
func (l *Lab) controlURLs6() []string {
	var out []string
	for _, c := range append([]config.Control{l.dep.Control}, l.dep.Replicas...) {
		for _, ns := range c.ListenNetns {
			for _, a := range ns.Listen {
				if a.Addr().Is6() {
					out = append(out, "http://"+a.AddrPort.String())
				}
			}
		}
	}
	return out
}

// listenIPv6 has a daemon that listens on listen also listen on addr6:
// inside the IPv6 namespace ns (the lab's), or on the host when ns is
// empty, as a deployment would (--print-configs).
func listenIPv6(ns string, addr6 netip.AddrPort, listen *config.AddrList, inNetns *[]config.NetnsListen) {
	if ns == "" {
		*listen = append(slices.Clone(*listen), addrList(addr6)...)
		return
	}
	*inNetns = append(slices.Clone(*inNetns), config.NetnsListen{Name: ns, Listen: addrList(addr6)})
}

// ipv6Report says how the lab ran IPv6; nil when the scenario asked for
// none.
func (l *Lab) ipv6Report() *IPv6Report {
	if l.v6 == "" && l.ipv6Fallback == "" {
		return nil
	}
	r := &IPv6Report{Namespace: l.v6, Fallback: l.ipv6Fallback}
	for _, g := range l.sc.Clients {
		r.DualStackClients += dualStackCount(g)
	}
	return r
}

// dualStackCount is how many of a group's clients are dual-stack: the
// first IPv6Share of them.
func dualStackCount(g ClientGroup) int {
	return int(math.Ceil(g.IPv6Share * float64(g.Count)))
}

// FamiliesReport is ocdn analyze's address-family and resolver analysis
// over the run's pulses (analyze.Families, analyze.Resolvers): IPv6 minus
// IPv4 per ISP from dual-stack clients' paired probes of the same
// appliance, and where the clients' resolvers are and how long resolution
// took, each with its 95% interval.
type FamiliesReport struct {
	Diffs []FamilyDiff `json:"diffs"`
	// DNSPulses are the successful dns pulses, Joined those matched with
	// the authoritative server's log of who asked.
	DNSPulses int `json:"dns_pulses"`
	Joined    int `json:"joined"`
	// DNSMsP50 is the median resolution time with its interval.
	DNSMsP50   float64 `json:"dns_ms_p50"`
	DNSMsP50Lo float64 `json:"dns_ms_p50_lo"`
	DNSMsP50Hi float64 `json:"dns_ms_p50_hi"`
	// Resolvers are per ISP ("*": all): clients, the share using a
	// distant or public resolver with its interval.
	Resolvers []ResolverFigure `json:"resolvers"`
	Note      string           `json:"note,omitempty"`
}

// FamilyDiff is IPv6 minus IPv4 for an ISP ("*": all) and metric: paired
// over the clients that measured the same appliance over both.
type FamilyDiff struct {
	ISP      string  `json:"isp"`
	Metric   string  `json:"metric"`
	Pairs    int     `json:"pairs"`
	Diff     float64 `json:"diff"`
	Lo       float64 `json:"lo"`
	Hi       float64 `json:"hi"`
	Interval bool    `json:"interval"`
}

// ResolverFigure is one ISP's resolver picture.
type ResolverFigure struct {
	ISP       string  `json:"isp"`
	Clients   int     `json:"clients"`
	Distant   float64 `json:"distant"`
	DistantLo float64 `json:"distant_lo"`
	DistantHi float64 `json:"distant_hi"`
}

// familiesReport analyses the pulses in dir; nil when the run had no
// dual-stack clients.
func (l *Lab) familiesReport(dir string) *FamiliesReport {
	if l.v6 == "" {
		return nil
	}
	r := &FamiliesReport{}
	rows, _, err := analyze.Load(dir, analyze.Filter{}, nil)
	if err != nil {
		r.Note = err.Error()
		return r
	}
	for _, d := range analyze.Families(rows, 0.95) {
		r.Diffs = append(r.Diffs, FamilyDiff{ISP: d.ISP, Metric: d.Metric.String(), Pairs: d.Pairs,
			Diff: num(d.PairedDiff), Lo: num(d.PairedLo), Hi: num(d.PairedHi), Interval: d.PairedOK})
	}
	res := analyze.Resolvers(rows, 0.95)
	r.DNSPulses, r.Joined = res.DNSPulses, res.Joined
	for _, t := range res.Times {
		if t.Family == "*" && t.Distance == "*" && t.Q == 0.5 && t.OK {
			r.DNSMsP50, r.DNSMsP50Lo, r.DNSMsP50Hi = t.Est, t.Lo, t.Hi
		}
	}
	for _, i := range res.ISPs {
		r.Resolvers = append(r.Resolvers, ResolverFigure{ISP: i.ISP, Clients: i.Clients,
			Distant: num(i.Distant.Est), DistantLo: num(i.Distant.Lo), DistantHi: num(i.Distant.Hi)})
	}
	return r
}

// print writes the families section of the report.
func (r *FamiliesReport) print(w io.Writer) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nAddress families and resolvers (ocdn analyze over the run's pulses):\n")
	if r.Note != "" {
		fmt.Fprintf(w, "  %s\n", r.Note)
	}
	for _, d := range r.Diffs {
		if d.Interval {
			fmt.Fprintf(w, "  IPv6 − IPv4 %-5s %-14s %+.3g [%.3g, %.3g] (paired, %d clients)\n", d.ISP, d.Metric, d.Diff, d.Lo, d.Hi, d.Pairs)
		} else {
			fmt.Fprintf(w, "  IPv6 − IPv4 %-5s %-14s no interval (%d paired clients)\n", d.ISP, d.Metric, d.Pairs)
		}
	}
	fmt.Fprintf(w, "  dns pulses %d, %d joined with the server's log; resolution p50 %.2f ms [%.2f, %.2f]\n", r.DNSPulses, r.Joined, r.DNSMsP50, r.DNSMsP50Lo, r.DNSMsP50Hi)
	for _, x := range r.Resolvers {
		fmt.Fprintf(w, "  resolvers %-5s %d clients, distant or public %.0f%% [%.0f%%, %.0f%%]\n", x.ISP, x.Clients, 100*x.Distant, 100*x.DistantLo, 100*x.DistantHi)
	}
}
