package deploytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/netem/netemtest"
	"github.com/ocdn/ocdn/internal/netns"
)

// The access line of isp1's home subscribers (issue 17, item 3): a kernel
// bottleneck and user-space delay and loss in series, as a subscriber
// meets them behind a shaper and a lossy last mile.
//
//	a1 ── s1 ── isp1 ──home (tbf, accessRate)── bng ══ netem.Path ══ home (clients in homePfx)
//	                                                 delay, random loss
//
// bng and home are the two namespaces of a netem.Path: every packet
// between them goes through the test process, which delays it (RTT
// accessRTT, split over both directions) and drops accessLoss of those
// towards the clients at random, so TCP meets real loss and real delay.
// bng is also a router: a veth joins it to isp1, whose egress on that
// veth carries the tbf. The tbf sits on traffic isp1 forwards, not on a
// sender's own interface, so it fills and drops as a remote bottleneck
// does (the kernel holds a local sender back before its own qdisc
// overflows; netns.TBF).
var (
	// homePfx lies inside isp1's p1Wide, so steering sends its clients
	// to a1 first, as any of isp1's; isp1 routes it to bng, keeping the
	// rest of p1Wide local for its other clients (buildNetwork).
	homePfx    = pfx("198.51.100.192/26")
	homeClient = addr("198.51.100.200")
	// The access link isp1 ── bng.
	accessISP, accessBNG = addr("10.1.9.1"), addr("10.1.9.2")
	// bigFile is the ladder's 16 Mbit/s rung of t0000: 16 MB, enough for
	// seconds at the access rate. Players are capped below it.
	bigFile = "t0000/video_16000k.mp4"
)

const (
	accessRate = 20e6 // bit/s of frames, the tbf's
	accessRTT  = 30 * time.Millisecond
	accessLoss = 0.01 // towards the clients
	// rangeBytes is the range each download asks for.
	rangeBytes = 8 << 20
)

// accessFigures are what accessLine measures.
type accessFigures struct {
	connectMin, connectMedian time.Duration
	shapedBps, otherBps       float64 // the range from home (delay, no loss) and from isp2's client
	lossyBps                  float64 // the range from home with loss planted
	downPackets, lossDrops    uint64  // what the path carried towards home during the lossy range
	retrans, tbfDrops         uint64  // the serving appliance's TCP retransmissions; the tbf's drops
	served, congestion        string  // which appliance served, with which congestion control
}

// homeLine builds the access line and returns the path.
func (c *cdn) homeLine() *netem.Path {
	t := c.t
	p := netemtest.NewPath(t, netem.PathConfig{
		ClientPrefixes: []netip.Prefix{homePfx},
		// The server side is a router here, not a server: its own
		// prefix is a documentation one nobody uses, and the routes
		// below send the deployment's addresses through it.
		ServerPrefixes: []netip.Prefix{pfx("192.0.2.0/24")},
		Link:           netem.Symmetric(accessRTT, 0, 0),
		Seed:           17,
	})
	isp1 := c.h["isp1"]
	bng := p.ServerNetns()
	must(t, ipCmd("link", "add", "home", "netns", isp1.Name(), "type", "veth", "peer", "name", "isp1", "netns", bng))
	// The veth and the routes through it vanish with bng (the path's
	// Close), before the network is torn down.
	for _, args := range [][]string{
		{"-n", isp1.Name(), "addr", "add", netip.PrefixFrom(accessISP, 30).String(), "dev", "home"},
		{"-n", isp1.Name(), "link", "set", "home", "up"},
		{"-n", bng, "addr", "add", netip.PrefixFrom(accessBNG, 30).String(), "dev", "isp1"},
		{"-n", bng, "link", "set", "isp1", "up"},
		{"-n", bng, "route", "add", "default", "via", accessISP.String()},
		// The home reaches every deployment address through the path.
		{"-n", p.ClientNetns(), "route", "add", "10.0.0.0/8", "dev", "netem0", "src", homeClient.String()},
		// The rest of p1Wide is local to isp1 (buildNetwork).
		{"-n", isp1.Name(), "route", "add", homePfx.String(), "via", accessBNG.String()},
	} {
		must(t, ipCmd(args...))
	}
	for k, v := range map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.isp1.rp_filter": "0"} {
		out, err := exec.Command("ip", "netns", "exec", bng, "sysctl", "-qw", k+"="+v).CombinedOutput()
		if err != nil {
			t.Fatalf("bng: sysctl %s=%s: %v: %s", k, v, err, out)
		}
	}
	// The access rate: tbf on what isp1 sends towards the home, with a
	// 100 ms queue (netns.DefaultTBFLatency).
	must(t, isp1.Shape("home", netns.TBF{RateBps: accessRate}))
	return p
}

// accessLine measures, from a client behind isp1's access line, the round
// trip, the throughput of a large range and the loss, and checks each
// against what was planted; the same range from isp2's client (no
// bottleneck) is the comparison.
func (c *cdn) accessLine(fig *figures) {
	t := c.t
	p := c.homeLine()
	f := &fig.access
	home := p.Dialer(&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: homeClient.AsSlice()}})

	// Round trip: TCP connects to the appliance, each one SYN, SYN-ACK,
	// ACK across the path. The minimum is the path's delay plus the
	// machine's own (well under a millisecond when it is idle).
	var connects []time.Duration
	for range 7 {
		start := time.Now()
		conn, err := home(context.Background(), "tcp", netip.AddrPortFrom(a1Addr4, contentPort).String())
		d := time.Since(start)
		must(t, err)
		conn.Close()
		connects = append(connects, d)
	}
	f.connectMin, f.connectMedian = minMedian(connects)
	// A connect can never beat the planted delay; a busy machine only
	// adds to it, so the upper bound just catches a path that delays
	// twice (or holds packets somewhere).
	if f.connectMin < accessRTT || f.connectMin >= 2*accessRTT {
		t.Errorf("connect from %s through the access line: min %v (median %v), want in [%v, %v)", homeClient, f.connectMin, f.connectMedian, accessRTT, 2*accessRTT)
	}

	// Throughput, delay only: the tbf is the bottleneck.
	u, served := c.steerURL(homeClient, bigFile)
	f.served = served
	if served != "a1" && served != "a2" {
		t.Fatalf("steering sends %s to %s for %s, want isp1's embedded site", homeClient, served, bigFile)
	}
	appl := c.h[served]
	f.congestion = strings.TrimSpace(c.output(appl, "cat", "/proc/sys/net/ipv4/tcp_congestion_control"))
	bps, err := c.rangeRate(home, u, served)
	must(t, err)
	f.shapedBps = bps

	// The other ISP: the same range from isp2's client, from x1, with no
	// bottleneck on the way.
	other := addr("203.0.113.50")
	uo, servedO := c.steerURL(other, bigFile)
	if servedO != "x1" {
		t.Fatalf("steering sends %s to %s for %s, want x1", other, servedO, bigFile)
	}
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: other.AsSlice()}}
	f.otherBps, err = c.rangeRate(netem.DialerIn(c.h["isp2"].Name(), d), uo, servedO)
	must(t, err)

	// Goodput through the tbf cannot exceed its rate: a frame carries at
	// most 1448 payload bytes in 1514 (95.6%), the bucket (10 kB) adds
	// 0.1% over the range, and the clock includes a round trip and slow
	// start. So the upper bound is tight: the rate itself. A slow,
	// loaded machine can only make the transfer slower (the path is
	// relayed by this test process), so the lower bound is loose: a
	// third of the rate still shows the bytes came through the shaped
	// line; the figures print how near the rate it really came.
	if f.shapedBps > accessRate || f.shapedBps < accessRate/3 {
		t.Errorf("range of %d MiB through the access line: %.2f Mbit/s, want at most the tbf's %.0f Mbit/s and at least a third of it",
			rangeBytes>>20, f.shapedBps/1e6, accessRate/1e6)
	}
	// Veth pairs carry hundreds of Mbit/s even on a busy machine; half
	// is far from the bottleneck's rate, and far below any fair share.
	if f.shapedBps > f.otherBps/2 {
		t.Errorf("range through the access line %.2f Mbit/s, from isp2's unshaped client %.2f Mbit/s; want the shaped one below half", f.shapedBps/1e6, f.otherBps/1e6)
	}

	// Loss: the same range with accessLoss planted towards the clients.
	// Every packet the path drops at random must be sent again by the
	// appliance's TCP: its namespace's retransmission counter shows it.
	lossy := netem.Symmetric(accessRTT, 0, accessLoss)
	must(t, p.SetLink(lossy))
	st0, retr0, tbf0 := p.Stats(), c.retransSegs(appl), c.tbfStats()
	f.lossyBps, err = c.rangeRate(home, u, served)
	must(t, err)
	if f.lossyBps > accessRate {
		t.Errorf("range through the lossy access line: %.2f Mbit/s, above the tbf's %.0f Mbit/s", f.lossyBps/1e6, accessRate/1e6)
	}
	st1, retr1, tbf1 := p.Stats(), c.retransSegs(appl), c.tbfStats()
	f.downPackets, f.lossDrops = st1.Down.Packets-st0.Down.Packets, st1.Down.LossDrops-st0.Down.LossDrops
	f.retrans, f.tbfDrops = retr1-retr0, tbf1.Drops-tbf0.Drops
	// The emulator: drops are binomial(packets, accessLoss); five
	// standard deviations is a bound a correct emulator breaks once in
	// millions of runs, whatever the machine's speed.
	want := accessLoss * float64(f.downPackets)
	if sd := math.Sqrt(want * (1 - accessLoss)); math.Abs(float64(f.lossDrops)-want) > 5*sd {
		t.Errorf("the path dropped %d of %d packets towards the home (%.2f%%), planted %.1f%%: outside 5 binomial sd (%.1f packets)",
			f.lossDrops, f.downPackets, 100*float64(f.lossDrops)/float64(f.downPackets), 100*accessLoss, sd)
	}
	// TCP: every dropped data segment is retransmitted at least once; a
	// few of the drops may be pure ACKs, which are not. More
	// retransmissions than drops come from the tbf's own drops and from
	// spurious ones (a stalled relay looks like loss): bounded loosely.
	if f.retrans+3 < f.lossDrops || f.retrans > 2*(f.lossDrops+f.tbfDrops)+20 {
		t.Errorf("%s retransmitted %d segments; the path dropped %d at random and the tbf %d: want at least the random drops, and not more than twice all drops",
			served, f.retrans, f.lossDrops, f.tbfDrops)
	}
}

// steerURL asks a replica (as the operator) for client's first URL for
// file and the appliance it names.
func (c *cdn) steerURL(client netip.Addr, file string) (string, string) {
	var r api.SteerResponse
	must(c.t, c.getJSON(c.cfg.controlURLs[1], "/v1/steer?n=1&files="+url.QueryEscape(file)+"&client="+client.String(), &r))
	if len(r.Files) != 1 || len(r.Files[0].URLs) == 0 {
		c.t.Fatalf("steer %s for %s: %+v, want one URL", file, client, r)
	}
	return r.Files[0].URLs[0].URL, r.Files[0].URLs[0].Appliance
}

// rangeRate fetches the first rangeBytes of u from appliance id over
// HTTPS through dial, and returns the goodput of that range in bit/s:
// body bytes over the time from the request to the last byte, on a
// connection a one-byte request opened first (so connection set-up and
// the TLS handshake are not in it).
func (c *cdn) rangeRate(dial netem.DialFunc, u, id string) (float64, error) {
	pem, err := os.ReadFile(c.caFile())
	if err != nil {
		return 0, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return 0, fmt.Errorf("no certificate in %s", c.caFile())
	}
	to := map[string]netip.Addr{"a1": a1Addr4, "a2": a2Addr4, "x1": x1Addr4}[id]
	tr := &http.Transport{
		// The appliance's name is in the URL (and verified by TLS); the
		// test dials its address without asking DNS.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial(ctx, network, netip.AddrPortFrom(to, contentPort).String())
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	get := func(last int64) (int64, time.Duration, error) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", last))
		var wrote time.Time
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		}))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		took := time.Since(wrote)
		if err != nil {
			return n, took, err
		}
		if resp.StatusCode != http.StatusPartialContent || n != last+1 {
			return n, took, fmt.Errorf("GET %s bytes=0-%d from %s: %s with %d bytes, want 206 with %d", u, last, id, resp.Status, n, last+1)
		}
		return n, took, nil
	}
	if _, _, err := get(0); err != nil {
		return 0, err
	}
	n, took, err := get(rangeBytes - 1)
	if err != nil {
		return 0, err
	}
	return float64(n) * 8 / took.Seconds(), nil
}

// output runs a command inside host h and returns its standard output.
func (c *cdn) output(h *netns.Host, name string, args ...string) string {
	c.t.Helper()
	out, err := h.Output(name, args...)
	must(c.t, err)
	return string(out)
}

// retransSegs is the TCP segments host h's kernel has retransmitted
// (RetransSegs of /proc/net/snmp, which is per namespace).
func (c *cdn) retransSegs(h *netns.Host) uint64 {
	c.t.Helper()
	v, err := snmpTCP(c.output(h, "cat", "/proc/net/snmp"), "RetransSegs")
	must(c.t, err)
	return v
}

// snmpTCP reads one counter of the Tcp lines of /proc/net/snmp: a line of
// names, then a line of values.
func snmpTCP(snmp, name string) (uint64, error) {
	var names []string
	for _, line := range strings.Split(snmp, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
		break
	}
	return 0, fmt.Errorf("/proc/net/snmp has no Tcp %s", name)
}

// tbfStats reads the access line's tbf.
func (c *cdn) tbfStats() netns.QdiscStats {
	c.t.Helper()
	st, err := c.h["isp1"].ShapeStats("home")
	must(c.t, err)
	if st.Kind != "tbf" {
		c.t.Fatalf("isp1's home interface has qdisc %q, want tbf", st.Kind)
	}
	return st
}

func minMedian(ds []time.Duration) (time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[0], s[len(s)/2]
}

// ipCmd runs iproute2's ip; its output is in the error.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
