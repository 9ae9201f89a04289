package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/netns"
	"github.com/ocdn/ocdn/internal/player"
	"github.com/ocdn/ocdn/internal/speedtest"
)

const (
	// setupTimeout bounds every wait for something to come up (sessions,
	// fills, turn-up): an upper bound for a loaded machine, never an
	// expectation.
	setupTimeout = 90 * time.Second
	// withdrawBound is issue 13's bound on a withdrawal (and a
	// re-announcement) reaching the steering answers of every replica.
	withdrawBound = time.Second
	// tbfRate is the kernel bottleneck put on the isp1↔site link.
	tbfRate = 8e6 // bit/s
	// probeFile is the file steering is asked about.
	probeFile = "t0000/video_400k.mp4"
)

// cdn is the running deployment.
type cdn struct {
	t       *testing.T
	net     *netns.Net
	h       map[string]*netns.Host
	bin     string
	cfg     *configs
	procs   map[string]*netns.Proc
	killed  map[string]bool // daemons the test stopped on purpose
	r1, r2  *bgptest.BIRD
	ops     *http.Client // the operator's client, on the backbone router
	admin   string
	logsDir string
	mu      sync.Mutex        // guards procs, killed and sent
	sent    map[string]upload // every report a probe uploaded, by id
}

// upload is a report a probe uploaded, and from where.
type upload struct {
	report *measure.Report
	host   string
	src    netip.Addr
}

// figures are what the test measures and asserts, printed at the end.
type figures struct {
	withdraw, reannounce map[string]time.Duration // "c1 ipv4" → time to steering
	failovers            int                      // a1-first sessions' failovers after a1 was killed
	a1Sessions           int
	replicaKillSessions  int
	reportsSent          int            // distinct reports the probes uploaded
	reportsResent        int            // uploads repeated to both replicas
	reportsDuplicate     int            // of those, answered "duplicate"
	reportsStored        int            // distinct report ids in the union of the replicas' Parquet
	storedBy             map[string]int // distinct report ids in each replica's store
	pulsesSent           int
	pulsesStored         int
	heartbeatsDropped    int64
	unshapedBps          float64
	shapedBps            float64
	maxPrefixDown        string
	access               accessFigures
}

// TestCDNAcrossHosts runs the deployment of docs/deploy.md across network
// namespaces and checks what an operator relies on (issue 13, item 5).
func TestCDNAcrossHosts(t *testing.T) {
	c := setUp(t)
	var fig figures
	defer func() { c.printFigures(&fig) }()

	c.checkSteering()
	c.baseline(&fig)
	c.withdrawAndReannounce(&fig)
	c.killReplica(&fig)
	c.resendReports(&fig)
	c.maxPrefix(&fig)
	c.bottleneck(&fig)
	c.accessLine(&fig)
	c.killAppliance(&fig)
	c.checkStore(&fig)
}

// setUp builds the network, writes the configs, and starts the database,
// the routers, the origin, the control-plane replicas and the appliances,
// in the order docs/deploy.md gives; it returns once every appliance is
// turned up and steering answers on both replicas.
func setUp(t *testing.T) *cdn {
	requireExternal(t)
	n := netns.ForTest(t, "ocdn-dt")
	c := &cdn{t: t, net: n, procs: map[string]*netns.Proc{}, killed: map[string]bool{}, sent: map[string]upload{}, logsDir: filepath.Join(n.Dir(), "logs")}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
	})
	start := time.Now()
	c.bin = buildOCDN(t, n.Dir())
	t.Logf("ocdn built in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	c.h = buildNetwork(t, n)
	c.ops = c.h["core"].HTTPClient(10*time.Second, netip.Addr{})
	t.Logf("network of %d hosts up (%s) in %v", len(c.h), n.Tag(), time.Since(start).Round(time.Millisecond))

	// The database host.
	dsn := pgtest.StartWith(t, pgtest.Options{Dir: filepath.Join(n.Dir(), "db"), Netns: c.h["db"].Name(), Listen: dbAddr}).DSN
	c.cfg = writeConfigs(t, filepath.Join(n.Dir(), "etc"), dsn)
	// Credentials and content, as an operator makes them.
	c.ocdn("catalog", "synth", "--titles", "3", "--duration", "8s", "--ladder", "400,1000,16000", "--audio-kbps", "0", "-o", c.cfg.catalog)
	c.ocdn("urlsign", "keygen", "--out", filepath.Join(c.cfg.dir, "keys.json"))
	c.admin = "deploytest-" + n.Tag() + "admin"
	must(t, os.WriteFile(c.cfg.adminTk, []byte(c.admin+"\n"), 0o600))
	// head -c 32 /dev/urandom | base64
	var secret [32]byte
	rand.Read(secret[:])
	must(t, os.WriteFile(filepath.Join(c.cfg.dir, "appliance.secret"), []byte(base64.StdEncoding.EncodeToString(secret[:])+"\n"), 0o600))
	for id := range c.cfg.appliance {
		tok := c.ocdn("control", "--config", c.cfg.control["c1"], "--mint-token", id)
		must(t, os.WriteFile(filepath.Join(c.cfg.dir, id, id+".token"), []byte(tok), 0o600))
	}
	// The CA and the appliances' certificates for their names
	// (docs/dns.md): clients verify with pki/ca.pem.
	c.ocdn("pki", "ca", "--out", filepath.Join(c.cfg.dir, "pki"), "--domain", cdnDomain)
	c.ocdn("pki", "issue", "--config", c.cfg.control["c1"], "--ca", filepath.Join(c.cfg.dir, "pki"), "--out", filepath.Join(c.cfg.dir, "certs"))

	// The ISPs' routers come first, so that the appliances' first
	// connection attempts find them.
	c.r1 = bgptest.StartBIRDInNetns(t, c.h["isp1"].Name(), birdConfig(r1Site4, isp1ASN, isp1Sessions(true, false)))
	c.r2 = bgptest.StartBIRDInNetns(t, c.h["isp2"].Name(), birdConfig(r2IXP4, isp2ASN, isp2Sessions()))
	c.start("origin", "origin", "origin", "--config", c.cfg.origin)
	for _, r := range []string{"c1", "c2"} {
		c.start(r, r, "control", "--config", c.cfg.control[r])
	}
	for _, u := range c.cfg.controlURLs {
		c.waitHealthy(u)
	}
	// Each ISP's recursive resolver, which its clients use: Unbound on
	// the ISP host's loopback, sending the CDN domain to the control
	// planes' name servers (the delegation's targets).
	for _, h := range []string{"isp1", "isp2"} {
		dnstest.Start(t, dnstest.UnboundConfig{Zone: cdnDomain, Auth: netip.AddrPortFrom(c1Addr4, dnsPort),
			MoreAuth: []netip.AddrPort{netip.AddrPortFrom(c2Addr4, dnsPort)}, Listen: ispResolver,
			Netns: c.h[h].Name(), Dial: c.h[h].DialContext})
	}
	for _, a := range []string{"a1", "a2", "x1"} {
		c.start(a, a, "appliance", "--config", c.cfg.appliance[a])
	}
	for _, s := range []string{"a1_v4", "a1_v6", "a2_v4", "a2_v6"} {
		c.r1.WaitState(t, s, "Established")
	}
	for _, s := range []string{"x1_v4", "x1_v6"} {
		c.r2.WaitState(t, s, "Established")
	}
	// Both replicas see every appliance filled, turned up and routed.
	for _, u := range c.cfg.controlURLs {
		c.waitFor("every appliance serving with routes at "+u, setupTimeout, func() (bool, string) {
			as, err := c.appliances(u)
			if err != nil {
				return false, err.Error()
			}
			ok := len(as) == 3
			for _, a := range as {
				ok = ok && a.Serving && a.Prefixes > 0
			}
			return ok, fmt.Sprintf("%+v", as)
		})
	}
	t.Logf("deployment up in %v", time.Since(start).Round(time.Millisecond))
	return c
}

// requireExternal fails (OCDN_REQUIRE_EXTERNAL=1) or skips without what
// the deployment runs on.
func requireExternal(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("the deployment test makes network namespaces: run it as root")
		}
		t.Skip("the deployment test makes network namespaces: run it as root")
	}
	bgptest.RequireProgram(t, "ip", "iproute2")
	bgptest.RequireProgram(t, "tc", "iproute2")
	bgptest.RequireProgram(t, "bird", "bird2")
	bgptest.RequireProgram(t, "go", "golang (to build the ocdn binary)")
}

// buildOCDN builds the ocdn binary the hosts run and copies it into dir.
// It builds into one place in the user's cache, where `go build` skips
// the link when nothing changed (seconds instead of half a minute on a
// busy machine); a lock keeps parallel runs from building it at once, and
// the copy keeps a later rebuild from changing a running run's binary.
func buildOCDN(t *testing.T, dir string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	must(t, err)
	cache = filepath.Join(cache, "ocdn-deploytest")
	must(t, os.MkdirAll(cache, 0o755))
	lock, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	must(t, err)
	defer lock.Close()
	must(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	built := filepath.Join(cache, "ocdn")
	out, err := exec.Command("go", "build", "-o", built, "github.com/ocdn/ocdn/cmd/ocdn").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/ocdn: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "ocdn")
	src, err := os.Open(built)
	must(t, err)
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	must(t, err)
	_, err = io.Copy(dst, src)
	must(t, err)
	must(t, dst.Close())
	return bin
}

// ocdn runs the binary on the machine itself (operator commands that need
// no network) and returns its standard output.
func (c *cdn) ocdn(args ...string) string {
	c.t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("ocdn %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// start runs `ocdn args…` as the daemon called name on host.
func (c *cdn) start(name, host string, args ...string) *netns.Proc {
	c.t.Helper()
	p, err := c.h[host].Start(name, filepath.Join(c.logsDir, name+".log"), append([]string{c.bin}, args...)...)
	must(c.t, err)
	c.mu.Lock()
	c.procs[name] = p
	delete(c.killed, name)
	c.mu.Unlock()
	return p
}

// stop sends sig to daemon name, which the test then expects to be gone.
func (c *cdn) stop(name string, sig syscall.Signal) *netns.Proc {
	c.mu.Lock()
	p := c.procs[name]
	c.killed[name] = true
	c.mu.Unlock()
	p.Signal(sig)
	return p
}

// died returns an error naming a daemon that exited without being
// stopped, with its log.
func (c *cdn) died() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.procs {
		select {
		case <-p.Done():
			if !c.killed[name] {
				return fmt.Errorf("%s exited: %v\n%s", name, p.Wait(context.Background()), p.Log(3000))
			}
		default:
		}
	}
	return nil
}

// client runs an ocdn client command on host (an ISP's) and returns its
// standard output; a non-zero exit is an error carrying its stderr.
func (c *cdn) client(ctx context.Context, host string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.h[host].Name(), c.bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("ocdn %s on %s: %w\n%s", strings.Join(args, " "), host, err, stderr.String())
	}
	return string(out), nil
}

// ispResolver is where each ISP host's Unbound answers its clients.
var ispResolver = netip.MustParseAddrPort("127.0.0.1:53")

// caFile is the CA bundle clients verify the appliances with.
func (c *cdn) caFile() string { return filepath.Join(c.cfg.dir, "pki", "ca.pem") }

// controlFlag is the --control list every client is given.
func (c *cdn) controlFlag() string { return strings.Join(c.cfg.controlURLs, ",") }

// controlFlagFrom is the control plane's URLs over src's family: an IPv6
// client asks the replicas over IPv6 and is steered by its IPv6 address.
func (c *cdn) controlFlagFrom(src netip.Addr) string {
	if src.Is4() {
		return c.controlFlag()
	}
	return fmt.Sprintf("http://[%s]:%d,http://[%s]:%d", c1Addr6, apiPort, c2Addr6, apiPort)
}

// waitFor polls cond every 20 ms until it holds, failing the test after
// timeout with cond's last description.
func (c *cdn) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	c.t.Helper()
	if err := c.poll(what, timeout, cond); err != nil {
		c.t.Fatal(err)
	}
}

// poll is waitFor for goroutines other than the test's: it returns the
// error instead. A daemon dying meanwhile ends the wait at once.
func (c *cdn) poll(what string, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return nil
		}
		if err := c.died(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		<-tick.C
	}
}

func (c *cdn) waitHealthy(base string) {
	c.t.Helper()
	c.waitFor(base+"/healthz", setupTimeout, func() (bool, string) {
		resp, err := c.ops.Get(base + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, b)
	})
}

// getJSON fetches base+path as the operator (admin token) into v.
func (c *cdn) getJSON(base, path string, v any) error {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := c.ops.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: %s: %s", base, path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

func (c *cdn) appliances(base string) ([]api.ApplianceStatus, error) {
	var as []api.ApplianceStatus
	err := c.getJSON(base, "/v1/appliances", &as)
	return as, err
}

// steer asks a replica for client's ranked appliances for probeFile.
func (c *cdn) steer(base string, client netip.Addr) ([]string, error) {
	var r api.SteerResponse
	if err := c.getJSON(base, "/v1/steer?n=5&files="+url.QueryEscape(probeFile)+"&client="+client.String(), &r); err != nil {
		return nil, err
	}
	if len(r.Files) != 1 {
		return nil, fmt.Errorf("steer: %d files in the answer, want 1", len(r.Files))
	}
	var ids []string
	for _, u := range r.Files[0].URLs {
		ids = append(ids, u.Appliance)
	}
	return ids, nil
}

// applianceOpsURL is where an appliance serves /metrics and /v1/status.
func applianceOpsURL(id string) string {
	a := map[string]netip.Addr{"a1": a1Addr4, "a2": a2Addr4, "x1": x1Addr4}[id]
	return fmt.Sprintf("http://%s", netip.AddrPortFrom(a, opsPort))
}

func (c *cdn) status(id string) (api.ApplianceRuntime, error) {
	var st api.ApplianceRuntime
	err := c.getJSON(applianceOpsURL(id), "/v1/status", &st)
	return st, err
}

// metrics returns the samples of a Prometheus text exposition whose name
// is name, keyed by their label set as written ("{neighbor=\"…\"}").
func (c *cdn) metrics(base, name string) (map[string]float64, error) {
	resp, err := c.ops.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", name, line, err)
		}
		out[strings.TrimSpace(rest[:i])] = v
	}
	return out, sc.Err()
}

// The client addresses the test steers and plays from, and who should
// serve them first.
var steerCases = []struct {
	client netip.Addr
	want   []string
	why    string
}{
	{addr("198.51.100.10"), []string{"a1", "a2", "x1"}, "equal AS paths, a1's MED 10 beats a2's 20; x1 serves anyone"},
	{addr("100.64.1.10"), []string{"a2", "a1", "x1"}, "a1's AS path is prepended twice"},
	{addr("100.64.7.10"), []string{"a1", "x1"}, "the more-specific /24 only a1 hears"},
	{addr("2001:db8:100::10"), []string{"a1", "a2", "x1"}, "IPv6: MED"},
	{addr("2001:db8:107::10"), []string{"a2", "x1"}, "IPv6: the more-specific /48 only a2 hears"},
	{addr("203.0.113.10"), []string{"x1"}, "isp2 announces to x1 at the IXP"},
	{addr("100.65.3.10"), []string{"x1"}, "isp2's prepended /16"},
	{addr("2001:db8:200::10"), []string{"x1"}, "isp2 over IPv6"},
}

// checkSteering: both replicas answer what the routers announced, for
// IPv4 and IPv6 clients; and `ocdn routes lookup --control` shows the
// route behind an answer.
func (c *cdn) checkSteering() {
	t := c.t
	for _, u := range c.cfg.controlURLs {
		for _, tc := range steerCases {
			c.waitFor(fmt.Sprintf("steering of %s at %s (%s)", tc.client, u, tc.why), setupTimeout, func() (bool, string) {
				got, err := c.steer(u, tc.client)
				if err != nil {
					return false, err.Error()
				}
				return slices.Equal(got, tc.want), fmt.Sprintf("%v, want %v", got, tc.want)
			})
		}
	}
	out, err := c.client(context.Background(), "core", "routes", "lookup", "--control", c.cfg.controlURLs[1],
		"--admin-token-file", c.cfg.adminTk, "100.64.7.10")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, p1More.String()) || !strings.Contains(out, "a1") {
		t.Errorf("ocdn routes lookup 100.64.7.10 =\n%s\nwant %s heard by a1", out, p1More)
	}
}

// play runs `ocdn play` on host from src.
func (c *cdn) play(ctx context.Context, host string, src netip.Addr) (*player.Session, error) {
	// Capped below bigFile's rung, which is there for accessLine's
	// ranges, not for playback.
	out, err := c.client(ctx, host, "play", "--control", c.controlFlagFrom(src), "--title", "t0000", "--segment", "1s", "--max-bitrate", "1000",
		"--source", src.String(), "--json", "--ca", c.caFile(), "--resolver", ispResolver.String())
	var s player.Session
	if jerr := json.Unmarshal([]byte(out), &s); jerr != nil && err == nil {
		err = fmt.Errorf("play from %s: %v in %q", src, jerr, out)
	}
	// By name through the ISP's Unbound, over verified HTTPS.
	if st := s.Startup; err == nil && (st == nil || !st.HTTPS || (!st.Reused && st.DNSMs <= 0)) {
		err = fmt.Errorf("play from %s: startup %+v, want an https first request whose name was resolved", src, st)
	}
	return &s, err
}

// probe runs `ocdn probe --once` on host from src and records the report
// it uploaded.
func (c *cdn) probe(ctx context.Context, host string, src netip.Addr) error {
	spool := filepath.Join(c.net.Dir(), "spool", src.String())
	out, err := c.client(ctx, host, "probe", "--control", c.controlFlag(), "--source", src.String(), "--spool", spool, "--json",
		"--ca", c.caFile(), "--resolver", ispResolver.String())
	if err != nil {
		return err
	}
	var r measure.Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		return fmt.Errorf("probe from %s: %v in %q", src, err, out)
	}
	c.mu.Lock()
	c.sent[r.ID] = upload{&r, host, src}
	c.mu.Unlock()
	return nil
}

func (c *cdn) speedtest(ctx context.Context, host string, src netip.Addr) (*speedtest.Result, error) {
	out, err := c.client(ctx, host, "speedtest", "--control", c.controlFlag(), "--source", src.String(),
		"--urls", "1", "--max-duration", "4s", "--json", "--ca", c.caFile(), "--resolver", ispResolver.String())
	if err != nil {
		return nil, err
	}
	var r speedtest.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("speedtest from %s: %v in %q", src, err, out)
	}
	return &r, nil
}

// group runs fns at once and returns their errors.
func group(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	return errs
}

// servedBy checks a session completed and that only the allowed
// appliances served it.
func servedBy(s *player.Session, allowed ...string) error {
	if !s.Completed || s.Error != "" {
		return fmt.Errorf("session did not complete: %s", s.Error)
	}
	for a := range s.ServedBy {
		if !slices.Contains(allowed, a) {
			return fmt.Errorf("served by %v, want only %v", s.ServedOrder, allowed)
		}
	}
	if s.ControlWaits != 0 {
		return fmt.Errorf("%d waits for the control plane", s.ControlWaits)
	}
	return nil
}

// baseline: players, probes and a speed test from both ISPs; isp1's
// sessions are served by its embedded site, isp2's by the IXP.
func (c *cdn) baseline(fig *figures) {
	t := c.t
	ctx := context.Background()
	check := func(host string, src netip.Addr, allowed ...string) func() error {
		return func() error { return c.playServed(host, src, allowed...) }
	}
	probeFrom := func(host string, src netip.Addr) func() error {
		return func() error { return c.probe(ctx, host, src) }
	}
	errs := group(
		check("isp1", addr("198.51.100.10"), "a1", "a2"),
		check("isp1", addr("100.64.1.10"), "a2", "a1"),
		check("isp2", addr("203.0.113.10"), "x1"),
		// IPv6 clients, steered to the appliances' IPv6 names.
		check("isp1", addr("2001:db8:100::20"), "a1", "a2"),
		check("isp2", addr("2001:db8:200::20"), "x1"),
		probeFrom("isp1", addr("198.51.100.11")),
		probeFrom("isp1", addr("100.64.1.11")),
		probeFrom("isp2", addr("203.0.113.11")),
		func() error {
			r, err := c.speedtest(ctx, "isp1", addr("198.51.100.12"))
			if err == nil {
				fig.unshapedBps = r.DownloadBps
			}
			return err
		},
	)
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// withdrawAndReannounce: isp1 withdraws its more-specifics and announces
// them again; each change reaches the steering answers of both replicas
// within withdrawBound.
func (c *cdn) withdrawAndReannounce(fig *figures) {
	t := c.t
	type probeCase struct {
		name          string
		client        netip.Addr
		before, after []string
	}
	cases := []probeCase{
		{"ipv4", addr("100.64.7.10"), []string{"a1", "x1"}, []string{"a2", "a1", "x1"}},
		{"ipv6", addr("2001:db8:107::10"), []string{"a2", "x1"}, []string{"a1", "a2", "x1"}},
	}
	measureChange := func(conf string, want func(probeCase) []string) map[string]time.Duration {
		took := map[string]time.Duration{}
		var mu sync.Mutex
		var fns []func() error
		start := time.Now()
		c.r1.Reconfigure(t, conf)
		for i, u := range c.cfg.controlURLs {
			for _, pc := range cases {
				fns = append(fns, func() error {
					deadline := start.Add(30 * time.Second)
					// Every 5 ms: the figure's resolution.
					tick := time.NewTicker(5 * time.Millisecond)
					defer tick.Stop()
					for ; ; <-tick.C {
						got, err := c.steer(u, pc.client)
						if err == nil && slices.Equal(got, want(pc)) {
							mu.Lock()
							took[fmt.Sprintf("c%d %s", i+1, pc.name)] = time.Since(start)
							mu.Unlock()
							return nil
						}
						if time.Now().After(deadline) {
							return fmt.Errorf("c%d: steering of %s is %v (%v), want %v", i+1, pc.client, got, err, want(pc))
						}
					}
				})
			}
		}
		for _, err := range group(fns...) {
			if err != nil {
				t.Error(err)
			}
		}
		return took
	}
	fig.withdraw = measureChange(birdConfig(r1Site4, isp1ASN, isp1Sessions(false, false)), func(p probeCase) []string { return p.after })
	fig.reannounce = measureChange(birdConfig(r1Site4, isp1ASN, isp1Sessions(true, false)), func(p probeCase) []string { return p.before })
	for _, m := range []map[string]time.Duration{fig.withdraw, fig.reannounce} {
		for k, d := range m {
			if d > withdrawBound {
				t.Errorf("%s: a routing change took %v to reach steering, want at most %v", k, d, withdrawBound)
			}
		}
	}
}

// killReplica: with probes uploading to c1 (the first of every client's
// and appliance's list), c1 is SIGKILLed; players then start and get their
// steering from c2, the probes' recipes and reports go to c2, and so do
// the appliances' heartbeats: nothing is lost, no appliance leaves
// service. c1 then restarts and catches up.
func (c *cdn) killReplica(fig *figures) {
	t := c.t
	ctx := context.Background()
	beats0, err := c.metrics(c.cfg.controlURLs[1], "ocdn_control_heartbeats_total")
	must(t, err)
	var mu sync.Mutex
	uploads := map[string]int{}
	stop := make(chan struct{})
	var background []func() error
	for _, p := range []struct {
		host string
		src  netip.Addr
	}{{"isp1", addr("198.51.100.31")}, {"isp2", addr("203.0.113.31")}} {
		background = append(background, func() error {
			// At most a few each: resendReports repeats every report
			// from its client's address, whose /24 the control plane
			// rate-limits (a burst of 20).
			for range 4 {
				select {
				case <-stop:
					return nil
				default:
				}
				if err := c.probe(ctx, p.host, p.src); err != nil {
					return err
				}
				mu.Lock()
				uploads[p.host]++
				mu.Unlock()
			}
			return nil
		})
	}
	// The operator's view from the surviving replica, sampled every 50
	// ms: no appliance leaves service while heartbeats fail over.
	background = append(background, func() error {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return nil
			case <-tick.C:
			}
			as, err := c.appliances(c.cfg.controlURLs[1])
			if err != nil {
				return fmt.Errorf("c2 during the outage of c1: %w", err)
			}
			for _, a := range as {
				if !a.Serving {
					return fmt.Errorf("c2 took %s out of service (%s: %s) while c1 was down", a.ID, a.State, a.Reason)
				}
			}
		}
	})
	bgErrs := make(chan []error, 1)
	go func() { bgErrs <- group(background...) }() // owner: this phase; ends at close(stop)
	// Kill c1 once both probes have uploaded through it.
	err = c.poll("a report from each ISP through c1", setupTimeout, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return uploads["isp1"] > 0 && uploads["isp2"] > 0, fmt.Sprint(uploads)
	})
	if err == nil {
		c.stop("c1", syscall.SIGKILL).Kill()
		errs := group(
			func() error { return c.playServed("isp1", addr("198.51.100.30"), "a1", "a2") },
			func() error { return c.playServed("isp1", addr("100.64.1.30"), "a2", "a1") },
			func() error { return c.playServed("isp2", addr("203.0.113.30"), "x1") },
		)
		for _, e := range errs {
			if e != nil {
				t.Error(e)
				continue
			}
			fig.replicaKillSessions++
		}
	}
	close(stop)
	for _, e := range append(<-bgErrs, err) {
		if e != nil {
			t.Error(e)
		}
	}
	beats1, err := c.metrics(c.cfg.controlURLs[1], "ocdn_control_heartbeats_total")
	must(t, err)
	if beats1[""] <= beats0[""] {
		t.Errorf("c2 received no heartbeat while c1 was down (%v → %v)", beats0, beats1)
	}
	for _, id := range []string{"a1", "a2", "x1"} {
		st, err := c.status(id)
		must(t, err)
		fig.heartbeatsDropped += st.Reports.Dropped
		if st.Reports.Dropped != 0 || st.Reports.Pending != 0 || st.ControlPlane != "serving" {
			t.Errorf("%s after c1's death: heartbeat records %+v, control plane %q; want none dropped or pending", id, st.Reports, st.ControlPlane)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// c1 comes back (replaying its measurement WAL) and catches up.
	c.start("c1", "c1", "control", "--config", c.cfg.control["c1"])
	c.waitHealthy(c.cfg.controlURLs[0])
	c.waitFor("c1 back with every appliance serving", setupTimeout, func() (bool, string) {
		as, err := c.appliances(c.cfg.controlURLs[0])
		if err != nil {
			return false, err.Error()
		}
		ok := len(as) == 3
		for _, a := range as {
			ok = ok && a.Serving
		}
		return ok, fmt.Sprintf("%+v", as)
	})
}

// playServed plays from src on host and checks that the session
// completed, served by allowed[0] first and by no appliance outside
// allowed.
func (c *cdn) playServed(host string, src netip.Addr, allowed ...string) error {
	s, err := c.play(context.Background(), host, src)
	if err != nil {
		return err
	}
	if err := servedBy(s, allowed...); err != nil {
		return fmt.Errorf("play from %s: %w", src, err)
	}
	if s.ServedOrder[0] != allowed[0] {
		return fmt.Errorf("play from %s: first served by %s, want %s", src, s.ServedOrder[0], allowed[0])
	}
	return nil
}

// resendReports plays clients whose answers were lost: every report is
// uploaded again, from its client's address, to both replicas (one of
// which stored it). Each must be answered "duplicate".
func (c *cdn) resendReports(fig *figures) {
	t := c.t
	fig.reportsSent = len(c.sent)
	for _, up := range c.sent {
		r := up.report
		fig.pulsesSent += len(r.Pulses)
		body, err := json.Marshal(r)
		must(t, err)
		hc := c.h[up.host].HTTPClient(10*time.Second, up.src)
		for _, u := range c.cfg.controlURLs {
			resp, err := hc.Post(u+"/v1/reports", "application/json", bytes.NewReader(body))
			must(t, err)
			var ar measure.AcceptResponse
			err = json.NewDecoder(resp.Body).Decode(&ar)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("re-sending report %s to %s: rate limited; the test sends too fast", r.ID, u)
			}
			fig.reportsResent++
			if err != nil || resp.StatusCode != http.StatusOK || !ar.Accepted || !ar.Duplicate {
				t.Errorf("re-sending report %s to %s: %s %+v %v; want accepted as a duplicate", r.ID, u, resp.Status, ar, err)
				continue
			}
			fig.reportsDuplicate++
		}
	}
}

// maxPrefix: isp1 floods a2's IPv6 session past its max-prefix; that
// session stops, and no other session of any router or appliance flaps.
func (c *cdn) maxPrefix(fig *figures) {
	t := c.t
	transitions := func() map[string]float64 {
		all := map[string]float64{}
		for _, id := range []string{"a1", "a2", "x1"} {
			m, err := c.metrics(applianceOpsURL(id), "ocdn_bgp_session_transitions_total")
			must(t, err)
			for k, v := range m {
				all[id+k] = v
			}
		}
		return all
	}
	before := transitions()
	c.r1.Reconfigure(t, birdConfig(r1Site4, isp1ASN, isp1Sessions(true, true)))
	flooded := fmt.Sprintf(`a2{neighbor="%s"}`, r1Site6)
	c.waitFor("a2's IPv6 session to stop at max-prefix", setupTimeout, func() (bool, string) {
		st, err := c.status("a2")
		if err != nil {
			return false, err.Error()
		}
		for _, s := range st.BGP {
			if s.Neighbor == r1Site6.String() && s.State == bgp.StateMaxPrefixExceeded {
				fig.maxPrefixDown = s.State
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st.BGP)
	})
	c.waitFor("BIRD to see a2_v6 down", setupTimeout, func() (bool, string) {
		st, out := c.r1.State("a2_v6")
		return st != "Established", out
	})
	// The others stayed up all along: established now, and no
	// transition counted since before the flood.
	for _, s := range []string{"a1_v4", "a1_v6", "a2_v4"} {
		if st, out := c.r1.State(s); st != "Established" {
			t.Errorf("isp1 session %s is %q after a2_v6 hit max-prefix, want Established\n%s", s, st, out)
		}
	}
	for _, s := range []string{"x1_v4", "x1_v6"} {
		if st, out := c.r2.State(s); st != "Established" {
			t.Errorf("isp2 session %s is %q, want Established\n%s", s, st, out)
		}
	}
	after := transitions()
	for k, v := range after {
		if k != flooded && v != before[k] {
			t.Errorf("session %s changed state %v times during the flood, want 0", k, v-before[k])
		}
	}
	if after[flooded] == before[flooded] {
		t.Errorf("session %s counted no transition, yet it stopped", flooded)
	}
	// Without the flood the session stays down (max-prefix is sticky
	// until the appliance restarts); the rest of the test does not need it.
	c.r1.Reconfigure(t, birdConfig(r1Site4, isp1ASN, isp1Sessions(true, false)))
}

// bottleneck: a tbf qdisc on the site's port towards isp1 caps what `ocdn
// speedtest` measures from isp1 to its home appliance.
func (c *cdn) bottleneck(fig *figures) {
	t := c.t
	s1 := c.h["s1"]
	rate := fmt.Sprintf("%.0f Mbit/s", tbfRate/1e6)
	must(t, s1.Shape("isp1", netns.TBF{RateBps: tbfRate, BurstBytes: 4000, Latency: 400 * time.Millisecond}))
	defer func() { must(t, s1.Unshape("isp1")) }()
	r, err := c.speedtest(context.Background(), "isp1", addr("198.51.100.12"))
	must(t, err)
	fig.shapedBps = r.DownloadBps
	// tbf lets a burst through, and the estimate leaves ramp-up out; 10%
	// above the rate is the allowance.
	if r.DownloadBps > 1.10*tbfRate {
		t.Errorf("speedtest through a %s tbf measured %.2f Mbit/s, want at most %.2f", rate, r.DownloadBps/1e6, 1.10*tbfRate/1e6)
	}
	// No lower bound: a busy machine may measure less, and speed is
	// printed, not asserted.
	if r.DownloadBps <= 0 {
		t.Errorf("speedtest through a %s tbf measured nothing", rate)
	}
}

// killAppliance: a1 dies while three players stream from it; each fails
// over and completes.
func (c *cdn) killAppliance(fig *figures) {
	t := c.t
	ctx := context.Background()
	st0, err := c.status("a1")
	must(t, err)
	srcs := []netip.Addr{addr("198.51.100.40"), addr("198.51.100.41"), addr("198.51.100.42")}
	fns := []func() error{}
	sessions := make([]*player.Session, len(srcs))
	for i, src := range srcs {
		fns = append(fns, func() error {
			s, err := c.play(ctx, "isp1", src)
			sessions[i] = s
			if err != nil {
				return err
			}
			return servedBy(s, "a1", "a2", "x1")
		})
	}
	fns = append(fns, func() error {
		err := c.poll("a1 streaming to every player", setupTimeout, func() (bool, string) {
			st, err := c.status("a1")
			if err != nil {
				return false, err.Error()
			}
			// A few segments each: every player is streaming from a1.
			reqs, bytes := st.Requests-st0.Requests, st.ClientBytes-st0.ClientBytes
			return reqs >= int64(2*len(srcs)) && bytes >= 200<<10, fmt.Sprintf("%d requests, %d bytes", reqs, bytes)
		})
		c.stop("a1", syscall.SIGKILL).Kill()
		return err
	})
	for _, err := range group(fns...) {
		if err != nil {
			t.Error(err)
		}
	}
	midStream := 0
	for i, s := range sessions {
		if s == nil {
			continue
		}
		fig.a1Sessions++
		fig.failovers += s.Failovers
		// Every session was steered to a1 first, so each fails over; one
		// whose first segment was cut off by the kill has no a1 bytes.
		if s.Failovers == 0 || len(s.ServedOrder) == 0 || slices.Contains(s.ServedOrder[1:], "a1") {
			t.Errorf("session from %s: served by %v with %d failovers; want a failover away from a1", srcs[i], s.ServedOrder, s.Failovers)
		}
		if len(s.ServedOrder) > 1 && s.ServedOrder[0] == "a1" {
			midStream++
		}
	}
	if midStream == 0 {
		t.Errorf("no session had bytes from a1 before it died; the kill came too early to test a failover mid-stream")
	}
}

// checkStore stops the replicas (draining their measurement WALs into
// Parquet) and reads the union of their stores with `ocdn measure
// export`: every report the probes sent is there exactly once.
func (c *cdn) checkStore(fig *figures) {
	t := c.t
	for _, r := range []string{"c1", "c2"} {
		p := c.stop(r, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		err := p.Wait(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s after SIGTERM: %v\n%s", r, err, p.Log(4000))
		}
	}
	rows := c.exportRows(c.cfg.measureRoot)
	for _, pulses := range rows {
		for _, n := range pulses {
			fig.pulsesStored += n
		}
	}
	fig.reportsStored = len(rows)
	fig.storedBy = map[string]int{}
	for _, r := range []string{"c1", "c2"} {
		fig.storedBy[r] = len(c.exportRows(filepath.Join(c.cfg.measureRoot, r)))
	}
	for id, up := range c.sent {
		if got := rows[id]; len(got) != len(up.report.Pulses) {
			t.Errorf("report %s: %d of its %d pulses stored", id, len(got), len(up.report.Pulses))
		}
	}
	for id, pulses := range rows {
		if _, ok := c.sent[id]; !ok {
			t.Errorf("report %s stored but never sent", id)
		}
		for k, n := range pulses {
			if n != 1 {
				t.Errorf("report %s pulse %s stored %d times, want once", id, k, n)
			}
		}
	}
}

// exportRows runs `ocdn measure export` on dir and counts its pulse rows:
// report id → "target/type/seq" → rows.
func (c *cdn) exportRows(dir string) map[string]map[string]int {
	rows := map[string]map[string]int{}
	out := strings.TrimSpace(c.ocdn("measure", "export", "--data", dir, "--format", "jsonl"))
	if out == "" {
		return rows
	}
	for _, line := range strings.Split(out, "\n") {
		var row struct {
			ReportID string `json:"report_id"`
			Target   string `json:"target"`
			Type     string `json:"type"`
			Seq      int    `json:"seq"`
		}
		must(c.t, json.Unmarshal([]byte(line), &row))
		if rows[row.ReportID] == nil {
			rows[row.ReportID] = map[string]int{}
		}
		rows[row.ReportID][fmt.Sprintf("%s/%s/%d", row.Target, row.Type, row.Seq)]++
	}
	return rows
}

func (c *cdn) printFigures(fig *figures) {
	t := c.t
	var b strings.Builder
	b.WriteString("figures:\n")
	for _, m := range []struct {
		name string
		d    map[string]time.Duration
	}{{"withdraw → steering", fig.withdraw}, {"re-announce → steering", fig.reannounce}} {
		keys := make([]string, 0, len(m.d))
		for k := range m.d {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %-24s %-8s %.3f s (bound %.0f s)\n", m.name, k, m.d[k].Seconds(), withdrawBound.Seconds())
		}
	}
	fmt.Fprintf(&b, "  replica c1 killed         %d sessions completed on c2, %d heartbeat records dropped\n", fig.replicaKillSessions, fig.heartbeatsDropped)
	fmt.Fprintf(&b, "  appliance a1 killed       %d sessions, %d failovers, all completed\n", fig.a1Sessions, fig.failovers)
	fmt.Fprintf(&b, "  probe reports             %d sent (%d pulses), %d re-sent to both replicas of which %d answered duplicate, %d stored (%d pulse rows; c1 holds %d, c2 %d)\n",
		fig.reportsSent, fig.pulsesSent, fig.reportsResent, fig.reportsDuplicate, fig.reportsStored, fig.pulsesStored, fig.storedBy["c1"], fig.storedBy["c2"])
	fmt.Fprintf(&b, "  max-prefix                a2's IPv6 session: %q, every other session up\n", fig.maxPrefixDown)
	fmt.Fprintf(&b, "  speedtest isp1 → a1       %.1f Mbit/s unshaped, %.2f Mbit/s through tbf %.0f Mbit/s\n",
		fig.unshapedBps/1e6, fig.shapedBps/1e6, tbfRate/1e6)
	a := fig.access
	fmt.Fprintf(&b, "  access line isp1 → home   tbf %.0f Mbit/s, RTT %v, loss %.1f%% planted (%s served, %s)\n",
		accessRate/1e6, accessRTT, 100*accessLoss, a.served, a.congestion)
	fmt.Fprintf(&b, "    connect                 min %.1f ms, median %.1f ms (planted %v)\n",
		float64(a.connectMin)/1e6, float64(a.connectMedian)/1e6, accessRTT)
	fmt.Fprintf(&b, "    %-24s%.2f Mbit/s through the line (%.1f%% of the tbf rate), %.1f Mbit/s from isp2 unshaped\n",
		fmt.Sprintf("%d MiB range", rangeBytes>>20), a.shapedBps/1e6, 100*a.shapedBps/accessRate, a.otherBps/1e6)
	if a.downPackets > 0 {
		fmt.Fprintf(&b, "    with loss               %.2f Mbit/s; path dropped %d of %d packets (%.2f%%), tbf %d; %s retransmitted %d (%.2f%% of the packets)\n",
			a.lossyBps/1e6, a.lossDrops, a.downPackets, 100*float64(a.lossDrops)/float64(a.downPackets), a.tbfDrops,
			a.served, a.retrans, 100*float64(a.retrans)/float64(a.downPackets))
	}
	t.Log(b.String())
}

// dumpLogs shows the tail of every daemon's log after a failure.
func (c *cdn) dumpLogs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.procs))
	for n := range c.procs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c.t.Logf("--- %s log (tail) ---\n%s", n, c.procs[n].Log(3000))
	}
}
