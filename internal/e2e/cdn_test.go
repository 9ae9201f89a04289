package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// The CDN under test: one ISP (AS ispAS) with an embedded site A (a1, a2)
// and a private-peering site B (b1), both speaking BGP with the ISP's
// router, and an IXP site X (x1) without BGP that serves any client after
// every routed appliance.
const (
	cdnAS      = 2906
	ispAS      = 64500
	adminToken = "e2e-admin-token"
	// heartbeat is the appliances' and control plane's interval: an
	// appliance is down after three missed beats. These tests are about
	// routes, so beats are slow enough that a race-enabled run on a busy
	// machine never misses three and takes an appliance out of answers.
	heartbeat = time.Second
	// routeHold is how long an appliance keeps the routes of a session
	// that went down.
	routeHold = 500 * time.Millisecond
	// convergenceBound is issue 4's bound on a routing change reaching
	// steering answers.
	convergenceBound = 5 * time.Second
	// setupTimeout bounds sessions coming up and appliances filling: an
	// upper bound for a loaded machine, never an expectation.
	setupTimeout = 60 * time.Second
)

// Client prefixes the router announces, all from documentation or shared
// ranges (BIRD drops 127/8 routes as bogus), and the probe address of a
// client inside each.
var (
	pfxCover  = netip.MustParsePrefix("100.64.0.0/16")   // a1, a2, b1: equal attributes
	pfxB1Only = netip.MustParsePrefix("100.64.7.0/24")   // b1 only: more specific than pfxCover
	pfxPath   = netip.MustParsePrefix("198.51.100.0/24") // AS path 1 (a1), 2 (b1), 3 (a2)
	pfxMED    = netip.MustParsePrefix("203.0.113.0/24")  // MED 50 (a1), 10 (a2), 30 (b1)
	pfxA1Only = netip.MustParsePrefix("192.0.2.0/24")    // a1 only: partial at site A, no backup

	clientCover  = netip.MustParseAddr("100.64.3.3")
	clientB1Only = netip.MustParseAddr("100.64.7.9")
	clientPath   = netip.MustParseAddr("198.51.100.20")
	clientMED    = netip.MustParseAddr("203.0.113.20")
	clientA1Only = netip.MustParseAddr("192.0.2.77")

	// allowPrefixes exempts the test ranges from the appliances' bogon
	// filter, as the lab does for its loopback prefixes.
	allowPrefixes = []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10"), pfxPath, pfxMED, pfxA1Only}
)

// announcements is what the router sends each appliance at the start of
// every scenario.
func announcements() map[string][]bgptest.Route {
	return map[string][]bgptest.Route{
		"a1": {{Prefix: pfxCover}, {Prefix: pfxPath}, {Prefix: pfxMED, MED: 50}, {Prefix: pfxA1Only}},
		"a2": {{Prefix: pfxCover}, {Prefix: pfxPath, Prepend: 2}, {Prefix: pfxMED, MED: 10}},
		"b1": {{Prefix: pfxCover}, {Prefix: pfxPath, Prepend: 1}, {Prefix: pfxMED, MED: 30}, {Prefix: pfxB1Only}},
	}
}

// routed lists the appliances with BGP sessions, in a fixed order.
var routed = []string{"a1", "a2", "b1"}

// testFile is the catalog's only file.
const testFile = "t0000/video_500k.mp4"

// netCounter gives each CDN its own loopback addresses.
var netCounter atomic.Uint32

// node is one appliance of the CDN.
type node struct {
	id      string
	site    string
	addr    netip.Addr
	http    netip.AddrPort
	bgpPort uint16
	d       *daemon.Appliance
}

// cdn is a running origin, control plane and appliances.
type cdn struct {
	controlURL string
	nodes      map[string]*node
	logs       *bgptest.LockedBuffer
}

// nextNet returns the ISP router's address and the index k of the next
// CDN's addresses, so that tests never share an address.
func nextNet() (router netip.Addr, k byte) {
	k = byte(netCounter.Add(1))
	return netip.AddrFrom4([4]byte{127, 0, 150 + k, 1}), k
}

// applianceIDs are the CDN's appliances, in inventory order.
var applianceIDs = []string{"a1", "a2", "b1", "x1"}

// applianceAddr is the loopback address of appliance id in CDN k.
func applianceAddr(k byte, id string) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, 150 + k, byte(slices.Index(applianceIDs, id) + 1)})
}

// cdnOptions says how the appliances reach the router.
type cdnOptions struct {
	router     netip.Addr
	k          byte
	routerPort uint16 // the router's BGP port, when the appliances connect to it
	passive    bool   // the appliances wait for the router to connect
}

// newCDN starts the origin, the control plane and the four appliances;
// everything stops when the test ends. It does not wait for sessions.
func newCDN(t *testing.T, opts cdnOptions) *cdn {
	t.Helper()
	c := &cdn{nodes: map[string]*node{}, logs: &bgptest.LockedBuffer{}}
	logger := slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() { // owner: the test; returns when ctx is cancelled at cleanup
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s stopped: %v", name, err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("components did not stop within 30s of cancel")
		}
		if t.Failed() {
			t.Logf("ocdn logs:\n%s", c.logs.String())
		}
	})

	// The CDN is started as an operator starts it: from config files,
	// through internal/daemon, the one place each role is assembled.
	dir := t.TempDir()
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{500}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	catJSON, err := cat.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := json.Marshal(urlsign.Generate())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "catalog.json"), catJSON)
	writeFile(t, filepath.Join(dir, "keys.json"), keys)
	writeFile(t, filepath.Join(dir, "admin.token"), []byte(adminToken))
	secret := auth.NewSecret()
	writeFile(t, filepath.Join(dir, "appliance.secret"), []byte(secret.Encode()))
	hooks := daemon.Hooks{Logger: logger, ShutdownGrace: 2 * time.Second}

	originAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bgptest.FreePort(t, netip.MustParseAddr("127.0.0.1")))
	org := loadConfig(t, dir, "origin.yaml", fmt.Sprintf("listen: %s\ncatalog: catalog.json\n", originAddr), &config.Origin{})
	od, err := daemon.NewOrigin(org, hooks)
	if err != nil {
		t.Fatal(err)
	}
	run("origin", od.Run)

	var appliances strings.Builder
	for _, n := range []struct{ id, site string }{{"a1", "A"}, {"a2", "A"}, {"b1", "B"}, {"x1", "X"}} {
		addr := applianceAddr(opts.k, n.id)
		nd := &node{id: n.id, site: n.site, addr: addr,
			http: netip.AddrPortFrom(addr, bgptest.FreePort(t, addr)), bgpPort: bgptest.FreePort(t, addr)}
		c.nodes[n.id] = nd
		fmt.Fprintf(&appliances, "  - {id: %s, site: %s, address: %s, capacity: 1MiB}\n", n.id, n.site, nd.http)
	}
	controlAddr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bgptest.FreePort(t, netip.MustParseAddr("127.0.0.1")))
	ctlCfg := loadConfig(t, dir, "control.yaml", fmt.Sprintf(`listen: %s
catalog: catalog.json
origin_url: http://%s
key_file: keys.json
admin_token_file: admin.token
appliance_secret_file: appliance.secret
heartbeat_interval: %s
turn_up: {enabled: false}
isps:
  - {name: isp, asn: %d, prefixes: [100.64.0.0/10], location: {lat: 52.37, lon: 4.90}}
sites:
  - {id: A, kind: embedded, isp: isp, location: {lat: 52.37, lon: 4.90}, time_zone: Europe/Amsterdam}
  - {id: B, kind: private, isp: isp, location: {lat: 52.37, lon: 4.90}, time_zone: Europe/Amsterdam}
  - {id: X, kind: ixp, location: {lat: 52.37, lon: 4.90}, time_zone: Europe/Amsterdam}
appliances:
%s`, controlAddr, originAddr, heartbeat, ispAS, appliances.String()), &config.Control{})
	cd, err := daemon.NewControl(ctx, ctlCfg, hooks)
	if err != nil {
		t.Fatal(err)
	}
	c.controlURL = cd.URLs()[0]
	run("control", cd.Run)

	allow := make([]string, len(allowPrefixes))
	for i, p := range allowPrefixes {
		allow[i] = p.String()
	}
	for _, id := range applianceIDs {
		nd := c.nodes[id]
		writeFile(t, filepath.Join(dir, id+".token"), []byte(secret.Mint(id, time.Now().Add(time.Hour))))
		y := fmt.Sprintf(`id: %s
listen: %s
control_urls: [%s]
token_file: %s.token
store: store-%s
capacity: 1MiB
key_file: keys.json
heartbeat_interval: %s
drain_grace: 1ms
drain_timeout: 2s
access_log: "off"
`, id, nd.http, c.controlURL, id, id, heartbeat)
		if nd.site != "X" {
			y += fmt.Sprintf(`bgp:
  local_asn: %d
  local_address: %s
  listen_port: %d
  route_hold: %s
  allow_prefixes: [%s]
  neighbors:
    - {address: %s, port: %d, peer_asn: %d, passive: %t}
`, cdnAS, nd.addr, nd.bgpPort, routeHold, strings.Join(allow, ", "), opts.router, opts.routerPort, ispAS, opts.passive)
		}
		cfg := loadConfig(t, dir, "appliance-"+id+".yaml", y, &config.ApplianceDaemon{})
		// NewAppliance starts the BGP speaker: GoBGP v4.8.0 writes
		// package-level settings in StartBgp that every instance reads
		// while processing updates, so every speaker starts before any
		// session can come up (bgp.Speaker.Start).
		if nd.d, err = daemon.NewAppliance(cfg, hooks, false); err != nil {
			t.Fatalf("appliance %s: %v", id, err)
		}
	}
	for _, id := range applianceIDs {
		run("appliance "+id, c.nodes[id].d.Run)
	}
	return c
}

// loadConfig writes a config file and loads it as the daemon would.
func loadConfig[T config.Validator](t *testing.T, dir, name, yaml string, cfg T) T {
	t.Helper()
	path := filepath.Join(dir, name)
	writeFile(t, path, []byte(yaml))
	if err := config.Load(path, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits until every appliance is up and holds the file, and the
// control plane holds want[id] prefixes for each routed appliance.
func (c *cdn) waitReady(t *testing.T, want map[string]int) {
	t.Helper()
	var last []control.ApplianceStatus
	poll(t, setupTimeout, "appliances up, filled and routed", func() bool {
		last = nil
		if err := c.get("/v1/appliances", &last); err != nil {
			return false
		}
		for _, st := range last {
			if st.State != "up" || st.Files != 1 || st.Prefixes != want[st.ID] {
				return false
			}
		}
		return len(last) == len(c.nodes)
	}, func() string { return fmt.Sprintf("%+v", last) })
}

// get GETs path from the control plane as an operator and decodes the
// JSON answer into out.
func (c *cdn) get(path string, out any) error {
	req, err := http.NewRequest(http.MethodGet, c.controlURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(b.String()))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// steer asks the control plane, as an operator, for client's ranked list
// of the test file with the explanation.
func (c *cdn) steer(t *testing.T, client netip.Addr) api.FileSteer {
	t.Helper()
	var resp api.SteerResponse
	q := url.Values{"files": {testFile}, "client": {client.String()}, "explain": {"1"}, "n": {"5"}}
	if err := c.get("/v1/steer?"+q.Encode(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Client != client.String() || len(resp.Files) != 1 {
		t.Fatalf("GET /v1/steer?%s = client %q, %d files; want client %s, 1 file", q.Encode(), resp.Client, len(resp.Files), client)
	}
	return resp.Files[0]
}

// order is the appliance ids of a steering answer, best first.
func order(fs api.FileSteer) []string {
	out := make([]string, len(fs.URLs))
	for i, u := range fs.URLs {
		out[i] = u.Appliance
	}
	return out
}

// waitSteer polls client's steering answer until cond holds on its order
// and returns the answer and how long after since it held. It fails the
// test after timeout from since.
func (c *cdn) waitSteer(t *testing.T, client netip.Addr, since time.Time, timeout time.Duration, what string, cond func([]string) bool) (api.FileSteer, time.Duration) {
	t.Helper()
	var fs api.FileSteer
	poll(t, timeout-time.Since(since), fmt.Sprintf("steering for %s: %s", client, what), func() bool {
		fs = c.steer(t, client)
		return cond(order(fs))
	}, func() string { return fmt.Sprintf("order %v, explanation %+v", order(fs), fs.Explanation) })
	return fs, time.Since(since)
}

// waitOrder is waitSteer for an exact order.
func (c *cdn) waitOrder(t *testing.T, client netip.Addr, since time.Time, timeout time.Duration, want ...string) (api.FileSteer, time.Duration) {
	t.Helper()
	return c.waitSteer(t, client, since, timeout, fmt.Sprintf("order %v", want), func(got []string) bool { return slices.Equal(got, want) })
}

// consistency returns the control plane's consistency report with its
// lists sorted, so that it compares independently of map order.
func (c *cdn) consistency(t *testing.T) rib.Report {
	t.Helper()
	var rep rib.Report
	if err := c.get("/v1/routes/consistency", &rep); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rep.NoBackup, func(a, b rib.NoBackup) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	for i := range rep.Sites {
		slices.SortFunc(rep.Sites[i].Partial, func(a, b rib.PartialPrefix) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	}
	return rep
}

// waitConsistency polls GET /v1/routes/consistency until it equals want.
// Route reports from several appliances arrive independently, so the
// report converges within convergenceBound rather than at the instant
// one client's steering answer changed.
func (c *cdn) waitConsistency(t *testing.T, want rib.Report) {
	t.Helper()
	var diff string
	poll(t, convergenceBound, "GET /v1/routes/consistency to match", func() bool {
		diff = cmp.Diff(want, c.consistency(t), cmpReport)
		return diff == ""
	}, func() string { return "(-want +got):\n" + diff })
}

// poll checks cond every 20 ms until it holds, failing the test with
// describe() after timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout.Round(time.Millisecond), what, describe())
		}
		<-tick.C
	}
}

// checkLeaks fails the test if goroutines running ocdn or GoBGP code are
// left when it ends. Register it first so that it runs after every other
// cleanup.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		var leaked []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			buf := make([]byte, 4<<20)
			buf = buf[:runtime.Stack(buf, true)]
			leaked = leaked[:0]
			for i, g := range strings.Split(string(buf), "\n\n") {
				if i == 0 {
					continue // this goroutine
				}
				if strings.Contains(g, "github.com/ocdn/ocdn/internal/") || strings.Contains(g, "github.com/osrg/gobgp") {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the runtime's goroutine list
		}
		if len(leaked) > 0 {
			t.Errorf("%d goroutines left running after the test:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
	})
}
