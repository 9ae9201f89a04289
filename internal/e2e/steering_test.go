package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/rib"
)

// TestBIRDSteering runs BIRD 2 as the ISP's router, with one BGP protocol
// per appliance (a1, a2 at embedded site A, b1 at private site B), and
// checks that steering follows what BIRD announces: longest match, AS
// path, MED and the rendezvous spread among equals; the consistency
// report; a withdrawal of a route to one appliance and of a more-specific
// prefix; and an appliance disappearing after the route hold when its
// session is shut down, then coming back.
func TestBIRDSteering(t *testing.T) {
	checkLeaks(t)
	bgptest.RequireProgram(t, "bird", "bird2")
	router, k := nextNet()
	c := newCDN(t, cdnOptions{router: router, k: k, passive: true})
	birdPort := bgptest.FreePort(t, router)
	conf := func(ann map[string][]bgptest.Route) string {
		var ss []bgptest.BIRDSession
		for _, id := range routed {
			nd := c.nodes[id]
			ss = append(ss, bgptest.BIRDSession{Name: id, Local: router, LocalPort: birdPort, LocalAS: ispAS,
				Neighbor: nd.addr, NeighborPort: nd.bgpPort, PeerAS: cdnAS, Routes: ann[id]})
		}
		return bgptest.BIRDConfig(router, ss...)
	}
	ann := announcements()
	bird := bgptest.StartBIRD(t, conf(ann))
	for _, id := range routed {
		bird.WaitState(t, id, "Established")
	}
	c.waitReady(t, map[string]int{"a1": 4, "a2": 3, "b1": 4})
	checkAnnounced(t, c)

	// Withdraw the AS-path prefix from a1 only: b1 (path 2) and a2 (path 3)
	// remain, in that order.
	ann["a1"] = without(ann["a1"], pfxPath)
	start := time.Now()
	bird.Reconfigure(t, conf(ann))
	_, d := c.waitOrder(t, clientPath, start, convergenceBound, "b1", "a2", "x1")
	t.Logf("BIRD: withdrawal of %s from a1 reached steering in %v", pfxPath, d.Round(time.Millisecond))

	// Withdraw b1's more-specific /24: its clients fall back to the
	// covering /16, where site A's embedded appliances come first.
	ann["b1"] = without(ann["b1"], pfxB1Only)
	start = time.Now()
	bird.Reconfigure(t, conf(ann))
	_, d = c.waitSteer(t, clientB1Only, start, convergenceBound, "covering /16: a1 and a2, then b1, x1", coverOrder)
	t.Logf("BIRD: withdrawal of %s from b1 reached steering in %v", pfxB1Only, d.Round(time.Millisecond))

	want := rib.Report{
		Sites: []rib.SiteReport{
			{Site: "A", Appliances: []string{"a1", "a2"}, Partial: []rib.PartialPrefix{
				{Prefix: pfxA1Only, Missing: []string{"a2"}},
				{Prefix: pfxPath, Missing: []string{"a1"}},
			}},
			{Site: "B", Appliances: []string{"b1"}},
			{Site: "X", Appliances: []string{"x1"}},
		},
		NoBackup: []rib.NoBackup{{Prefix: pfxA1Only, Site: "A"}},
	}
	c.waitConsistency(t, want)

	// Shut a1's session down: after the route hold a1 leaves every answer
	// while a2 and b1 stay; a1 itself is still up, just without routes.
	start = time.Now()
	bird.Disable(t, "a1")
	sessionLoss(t, c, start)

	// The session comes back and a1 with it.
	start = time.Now()
	bird.Enable(t, "a1")
	bird.WaitState(t, "a1", "Established")
	c.waitOrder(t, clientA1Only, start, setupTimeout, "a1", "x1")
	c.waitOrder(t, clientMED, start, setupTimeout, "a2", "b1", "a1", "x1")
}

// TestFRRSteering runs FRR's bgpd as the ISP's router, with the CDN's
// appliances connecting to it, and checks the same steering order and
// consistency report as TestBIRDSteering, then withdrawals with `no
// network` and the loss of one appliance's session (`neighbor shutdown`).
func TestFRRSteering(t *testing.T) {
	checkLeaks(t)
	bgptest.RequireProgram(t, bgptest.FRRBgpd, "frr")
	router, k := nextNet()
	port := bgptest.FreePort(t, router)
	ann := announcements()
	var nbs []bgptest.FRRNeighbor
	for _, id := range routed {
		nbs = append(nbs, bgptest.FRRNeighbor{Address: applianceAddr(k, id), AS: cdnAS, Passive: true, Routes: ann[id]})
	}
	// FRR first, so that the appliances' first connection finds it.
	frr := bgptest.StartFRR(t, router, port, bgptest.FRRConfig(ispAS, router, nbs...))
	c := newCDN(t, cdnOptions{router: router, k: k, routerPort: port})
	for _, id := range routed {
		frr.WaitEstablished(t, c.nodes[id].addr)
	}
	c.waitReady(t, map[string]int{"a1": 4, "a2": 3, "b1": 4})
	checkAnnounced(t, c)

	bgpCmd := func(cmds ...string) {
		t.Helper()
		frr.MustVtysh(t, append([]string{"configure terminal", fmt.Sprintf("router bgp %d", ispAS)}, cmds...)...)
	}
	// Withdraw the MED prefix from everyone: only the IXP is left.
	start := time.Now()
	bgpCmd("address-family ipv4 unicast", "no network "+pfxMED.String())
	_, d := c.waitOrder(t, clientMED, start, convergenceBound, "x1")
	t.Logf("FRR: withdrawal of %s reached steering in %v", pfxMED, d.Round(time.Millisecond))

	// Withdraw b1's more-specific /24: its clients fall back to the /16.
	start = time.Now()
	bgpCmd("address-family ipv4 unicast", "no network "+pfxB1Only.String())
	_, d = c.waitSteer(t, clientB1Only, start, convergenceBound, "covering /16: a1 and a2, then b1, x1", coverOrder)
	t.Logf("FRR: withdrawal of %s reached steering in %v", pfxB1Only, d.Round(time.Millisecond))

	want := rib.Report{
		Sites: []rib.SiteReport{
			{Site: "A", Appliances: []string{"a1", "a2"}, Partial: []rib.PartialPrefix{{Prefix: pfxA1Only, Missing: []string{"a2"}}}},
			{Site: "B", Appliances: []string{"b1"}},
			{Site: "X", Appliances: []string{"x1"}},
		},
		NoBackup: []rib.NoBackup{{Prefix: pfxA1Only, Site: "A"}},
	}
	c.waitConsistency(t, want)

	start = time.Now()
	bgpCmd(fmt.Sprintf("neighbor %s shutdown", c.nodes["a1"].addr))
	// The MED prefix is gone; the remaining ones show a1 leaving.
	fs, d := c.waitOrder(t, clientA1Only, start, convergenceBound, "x1")
	checkHeld(t, d, fs)
	c.waitOrder(t, clientPath, start, convergenceBound, "b1", "a2", "x1")
	c.waitSteer(t, clientCover, start, convergenceBound, "a2, b1, x1", func(got []string) bool {
		return slices.Equal(got, []string{"a2", "b1", "x1"})
	})
	t.Logf("FRR: a1's session loss reached steering in %v (route hold %v)", d.Round(time.Millisecond), routeHold)
	checkUpWithoutRoutes(t, c, "a1")
}

// checkAnnounced checks the steering answers and the consistency report
// for announcements().
func checkAnnounced(t *testing.T, c *cdn) {
	t.Helper()
	now := time.Now()
	// Longest match: the /24 heard only by b1 beats the /16 heard by all,
	// so site A is not a candidate at all; the IXP is the global fallback.
	fs, _ := c.waitOrder(t, clientB1Only, now, convergenceBound, "b1", "x1")
	checkRoute(t, fs, "b1", pfxB1Only, 1, 0)
	// AS path before site tier: a1 (1), private b1 (2), a2 (3 with two prepends).
	fs, _ = c.waitOrder(t, clientPath, now, convergenceBound, "a1", "b1", "a2", "x1")
	checkRoute(t, fs, "a1", pfxPath, 1, 0)
	checkRoute(t, fs, "b1", pfxPath, 2, 0)
	checkRoute(t, fs, "a2", pfxPath, 3, 0)
	// Lower MED first: a2 (10), b1 (30), a1 (50).
	fs, _ = c.waitOrder(t, clientMED, now, convergenceBound, "a2", "b1", "a1", "x1")
	checkRoute(t, fs, "a2", pfxMED, 1, 10)
	checkRoute(t, fs, "b1", pfxMED, 1, 30)
	checkRoute(t, fs, "a1", pfxMED, 1, 50)
	// Only a1 heard it: diversity adds the IXP, not a2.
	c.waitOrder(t, clientA1Only, now, convergenceBound, "a1", "x1")

	// Equal routes: embedded a1 and a2 share the /16's clients by the
	// rendezvous hash, each /24 with one stable order; then private b1.
	firsts := map[string]int{}
	for i := range 32 {
		if i == 7 {
			continue // b1's /24
		}
		// Each answer is waited for, not taken at once: on a loaded
		// machine an appliance can leave the answers for a moment (a CI run
		// saw a1 gone from 23 /24s in a row) and come back.
		client := netip.AddrFrom4([4]byte{100, 64, byte(i), 10})
		fs, _ := c.waitSteer(t, client, time.Now(), convergenceBound, "a1 and a2 in either order, then b1, x1", coverOrder)
		got := order(fs)
		firsts[got[0]]++
		neighbor := netip.AddrFrom4([4]byte{100, 64, byte(i), 250})
		c.waitSteer(t, neighbor, time.Now(), convergenceBound, fmt.Sprintf("%v as for %s in the same /24", got, client),
			func(again []string) bool { return slices.Equal(again, got) })
	}
	if firsts["a1"] == 0 || firsts["a2"] == 0 {
		t.Errorf("first choices over 31 client /24s = %v, want both a1 and a2", firsts)
	}
	t.Logf("rendezvous over 31 client /24s of %s: first choice %v", pfxCover, firsts)

	want := rib.Report{
		Sites: []rib.SiteReport{
			{Site: "A", Appliances: []string{"a1", "a2"}, Partial: []rib.PartialPrefix{{Prefix: pfxA1Only, Missing: []string{"a2"}}}},
			{Site: "B", Appliances: []string{"b1"}},
			{Site: "X", Appliances: []string{"x1"}},
		},
		// Heard at one site only. b1's /24 is covered by the /16 at site A,
		// but the report is per prefix.
		NoBackup: []rib.NoBackup{{Prefix: pfxB1Only, Site: "B"}, {Prefix: pfxA1Only, Site: "A"}},
	}
	c.waitConsistency(t, want)
}

// sessionLoss checks what follows shutting a1's session down at start.
func sessionLoss(t *testing.T, c *cdn, start time.Time) {
	t.Helper()
	fs, d := c.waitOrder(t, clientA1Only, start, convergenceBound, "x1")
	checkHeld(t, d, fs)
	c.waitOrder(t, clientMED, start, convergenceBound, "a2", "b1", "x1")
	c.waitOrder(t, clientCover, start, convergenceBound, "a2", "b1", "x1")
	t.Logf("a1's session loss reached steering in %v (route hold %v)", d.Round(time.Millisecond), routeHold)
	checkUpWithoutRoutes(t, c, "a1")
}

// knownBugSessionDownWithdraws: when a session goes down, GoBGP v4.8.0
// drops the peer's Adj-RIB-In and reports every path as withdrawn to the
// post-policy watcher before it reports the peer's new state
// (handleFSMMessage: dropAdjRIBIn, then broadcastPeerState). The speaker
// (internal/bgp, handlePaths) still sees the neighbor up and emits a
// Withdraw for every route ahead of SessionDown, against its documented
// contract, so the appliance drops the routes at once and RouteHold never
// applies. Until that is fixed the hold is logged, not required.
const knownBugSessionDownWithdraws = false

// checkHeld checks that routes outlived the session by the route hold:
// the hold timer starts only after the session went down, which is after
// the test shut it.
func checkHeld(t *testing.T, d time.Duration, fs api.FileSteer) {
	t.Helper()
	switch {
	case d < routeHold && knownBugSessionDownWithdraws:
		t.Logf("KNOWN BUG (internal/bgp speaker): a1 left steering %v after its session was shut, before the route hold (%v)", d, routeHold)
	case d < routeHold:
		t.Errorf("a1 left steering %v after its session was shut, before the route hold (%v); answer %+v", d, routeHold, fs)
	case knownBugSessionDownWithdraws:
		t.Logf("the route hold was honoured (%v ≥ %v): if internal/bgp is fixed, set knownBugSessionDownWithdraws to false", d, routeHold)
	}
	for _, why := range fs.Explanation {
		if why.Appliance == "a1" {
			t.Errorf("explanation still lists a1 without a route: %+v", why)
		}
	}
}

// checkUpWithoutRoutes checks that appliance id is up and holds the file
// but has no routes: it left steering for routing reasons, not health.
func checkUpWithoutRoutes(t *testing.T, c *cdn, id string) {
	t.Helper()
	var sts []control.ApplianceStatus
	if err := c.get("/v1/appliances", &sts); err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.ID == id && (st.State != "up" || st.Files != 1 || st.Prefixes != 0) {
			t.Errorf("GET /v1/appliances: %s = %+v, want up with the file and 0 prefixes", id, st)
		}
	}
}

// coverOrder reports whether got is the order for a client of the covering
// /16: the embedded a1 and a2 in either order, then b1, then x1.
func coverOrder(got []string) bool {
	return len(got) == 4 && got[2] == "b1" && got[3] == "x1" &&
		(slices.Equal(got[:2], []string{"a1", "a2"}) || slices.Equal(got[:2], []string{"a2", "a1"}))
}

// checkRoute checks the explanation's route for appliance id.
func checkRoute(t *testing.T, fs api.FileSteer, id string, p netip.Prefix, pathLen int, med uint32) {
	t.Helper()
	want := fmt.Sprintf("route %s local-pref 100 as-path-len %d med %d", p, pathLen, med)
	for _, why := range fs.Explanation {
		if why.Appliance == id {
			if why.Route != want || why.Excluded != "" {
				t.Errorf("explanation for %s = %+v, want route %q, not excluded", id, why, want)
			}
			return
		}
	}
	t.Errorf("explanation lists no %s; want route %q", id, want)
}

// without returns routes minus the route for p.
func without(routes []bgptest.Route, p netip.Prefix) []bgptest.Route {
	return slices.DeleteFunc(slices.Clone(routes), func(r bgptest.Route) bool { return r.Prefix == p })
}

var cmpReport = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}
