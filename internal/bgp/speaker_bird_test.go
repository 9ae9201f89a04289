package bgp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/rib"
)

const (
	speakerAS = 2906
	routerAS  = 64500
)

// labAllow is what the lab passes as Config.AllowPrefixes: loopback and the
// documentation ranges its routers announce.
var labAllow = mustPrefixes("127.0.0.0/8", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")

// TestBIRDAnnounceFilterWithdrawDown follows one IPv4 session with BIRD
// through its life: announcements with attributes, the import policy,
// a withdrawal after reconfiguration, and the router dying.
func TestBIRDAnnounceFilterWithdrawDown(t *testing.T) {
	tn := newTestNet()
	port, birdPort := bgptest.FreePort(t, tn.Speaker), bgptest.FreePort(t, tn.Router)
	routes := []bgptest.Route{
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Prepend: 2, MED: 50, Origin: "ORIGIN_IGP"},
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), MED: 7, Origin: "ORIGIN_EGP"},
		{Prefix: netip.MustParsePrefix("185.1.0.0/16")}, // BIRD drops 127/8 routes as "bogus", so no loopback prefix here
		{Prefix: netip.MustParsePrefix("8.8.8.0/24"), Prepend: 1, Origin: "ORIGIN_INCOMPLETE"},
		// Rejected by the import policy:
		{Prefix: netip.MustParsePrefix("0.0.0.0/0")},         // default route
		{Prefix: netip.MustParsePrefix("198.51.100.128/25")}, // longer than /24
		{Prefix: netip.MustParsePrefix("10.1.0.0/16")},       // bogon (RFC 1918)
		{Prefix: netip.MustParsePrefix("192.168.7.0/24")},    // bogon (RFC 1918)
	}
	sess := bgptest.BIRDSession{Name: "isp4", Local: tn.Router, LocalPort: birdPort, LocalAS: routerAS,
		Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, Routes: routes}
	bird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router, sess))

	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr:    netip.AddrPortFrom(tn.Speaker, port),
		AllowPrefixes: labAllow,
		Neighbors: []NeighborConfig{{Address: tn.Router, Port: birdPort, PeerASN: routerAS,
			Family: FamilyIPv4, Passive: true}},
	})
	bird.WaitState(t, "isp4", "Established")

	want := map[netip.Prefix]rib.Route{}
	add := func(p string, path []uint32, origin rib.Origin, med uint32) {
		pfx := netip.MustParsePrefix(p)
		want[pfx] = rib.Route{Prefix: pfx, Attrs: rib.Attrs{NextHop: netip.MustParseAddr("192.0.2.1"), LocalPref: 100, ASPath: path, Origin: origin, MED: med, PeerASN: routerAS, PeerRouterID: tn.Router, EBGP: true}}
	}
	// BIRD exports static routes with ORIGIN IGP unless the filter says
	// otherwise, and prepends its own ASN once on export.
	add("198.51.100.0/24", []uint32{routerAS, routerAS, routerAS}, rib.OriginIGP, 50)
	add("203.0.113.0/24", []uint32{routerAS}, rib.OriginEGP, 7)
	add("185.1.0.0/16", []uint32{routerAS}, rib.OriginIGP, 0)
	add("8.8.8.0/24", []uint32{routerAS, routerAS}, rib.OriginIncomplete, 0)

	evs := sp.events.waitFor(t, "all accepted routes", func(evs []Event) bool {
		return len(routeView(evs)[tn.Router]) == len(want)
	})
	if !hasEvent(evs, SessionUp, tn.Router) {
		t.Errorf("no SessionUp event before routes:\n%s", formatEvents(evs))
	}
	if diff := cmp.Diff(want, routeView(evs)[tn.Router], cmpNetip); diff != "" {
		t.Errorf("routes from BIRD (-want +got):\n%s", diff)
	}
	for _, ev := range evs {
		if ev.Family != FamilyIPv4 || ev.Neighbor != tn.Router {
			t.Errorf("event %s has neighbor %s family %q, want %s ipv4", ev.Kind, ev.Neighbor, ev.Family, tn.Router)
		}
	}
	// The four rejected routes arrive in the same UPDATE stream; wait for
	// the status to count them.
	sp.events.waitFor(t, "status counts", func([]Event) bool { return sp.status(tn.Router).PrefixesReceived == 8 })
	st := sp.status(tn.Router)
	if st.State != StateEstablished || st.PrefixesAccepted != 4 || st.PrefixesRejected != 4 || st.Uptime <= 0 {
		t.Errorf("Status() = %+v, want established, 8 received, 4 accepted, 4 rejected, uptime > 0", st)
	}
	if got, want := sp.Rejected(), map[RejectReason]uint64{RejectDefaultRoute: 1, RejectTooSpecific: 1, RejectBogon: 2, RejectWrongFamily: 0}; !cmp.Equal(got, want) {
		t.Errorf("Rejected() = %v, want %v", got, want)
	}

	// Withdraw 8.8.8.0/24 and the rejected default route by reconfiguring.
	sess.Routes = slices.DeleteFunc(slices.Clone(routes), func(r bgptest.Route) bool {
		return r.Prefix == netip.MustParsePrefix("8.8.8.0/24") || r.Prefix == netip.MustParsePrefix("0.0.0.0/0")
	})
	n := len(evs)
	bird.Reconfigure(t, bgptest.BIRDConfig(tn.Router, sess))
	evs = sp.events.waitFor(t, "withdrawal of 8.8.8.0/24", func(evs []Event) bool {
		return !hasPrefix(routeView(evs)[tn.Router], "8.8.8.0/24")
	})
	for _, ev := range evs[n:] {
		if ev.Kind != Withdraw || !slices.Equal(ev.Withdrawn, mustPrefixes("8.8.8.0/24")) {
			t.Errorf("after reconfigure got %s %v, want only Withdraw [8.8.8.0/24] (a rejected route's withdrawal is not an event)", ev.Kind, ev.Withdrawn)
		}
	}
	sp.events.waitFor(t, "status after withdrawal", func([]Event) bool { return sp.status(tn.Router).PrefixesReceived == 6 })

	// The router dies: the session goes down and the consumer drops it all.
	bird.Kill(t)
	evs = sp.events.waitFor(t, "SessionDown", func(evs []Event) bool {
		_, ok := lastEvent(evs, SessionDown, tn.Router)
		return ok
	})
	down, _ := lastEvent(evs, SessionDown, tn.Router)
	if down.State == StateEstablished || down.State == "" {
		t.Errorf("SessionDown state = %q, want a non-established state", down.State)
	}
	if st := sp.status(tn.Router); st.State == StateEstablished || st.PrefixesReceived != 0 || st.Uptime != 0 {
		t.Errorf("Status() after router died = %+v, want not established, 0 prefixes, no uptime", st)
	}
	if v := routeView(evs); len(v[tn.Router]) != 0 {
		t.Errorf("consumer still holds %v after SessionDown", prefixesOf(v, tn.Router))
	}
}

func hasPrefix(m map[netip.Prefix]rib.Route, p string) bool {
	_, ok := m[netip.MustParsePrefix(p)]
	return ok
}

// TestBIRDMaxPrefix: a neighbor announcing more accepted prefixes than its
// MaxPrefixes is shut down and reads "max-prefix exceeded", while the other
// neighbor's session and routes are unaffected.
func TestBIRDMaxPrefix(t *testing.T) {
	tn := newTestNet()
	port := bgptest.FreePort(t, tn.Speaker)
	leakPort, goodPort := bgptest.FreePort(t, tn.Router), bgptest.FreePort(t, tn.Router2)
	var leak []bgptest.Route
	for i := range 6 {
		leak = append(leak, bgptest.Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{185, 10, byte(i), 0}), 24)})
	}
	// Rejected routes do not count towards the limit.
	leak = append(leak, bgptest.Route{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, bgptest.Route{Prefix: netip.MustParsePrefix("192.168.0.0/16")})
	good := []bgptest.Route{{Prefix: netip.MustParsePrefix("185.20.0.0/16")}, {Prefix: netip.MustParsePrefix("185.21.0.0/16")}}
	// Two BIRD processes (two routers): one BIRD runs only one session per
	// neighbor address at a time, and both sessions go to the speaker.
	leakyBird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router,
		bgptest.BIRDSession{Name: "leaky", Local: tn.Router, LocalPort: leakPort, LocalAS: routerAS,
			Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, Routes: leak}))
	goodBird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router2,
		bgptest.BIRDSession{Name: "good", Local: tn.Router2, LocalPort: goodPort, LocalAS: routerAS,
			Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, Routes: good}))

	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr: netip.AddrPortFrom(tn.Speaker, port),
		Neighbors: []NeighborConfig{
			{Address: tn.Router, PeerASN: routerAS, Family: FamilyIPv4, Passive: true, MaxPrefixes: 5},
			{Address: tn.Router2, PeerASN: routerAS, Family: FamilyIPv4, Passive: true, MaxPrefixes: 2},
		},
	})
	evs := sp.events.waitFor(t, "max-prefix SessionDown and the good neighbor's routes", func(evs []Event) bool {
		_, down := lastEvent(evs, SessionDown, tn.Router)
		return down && len(routeView(evs)[tn.Router2]) == len(good)
	})
	down, _ := lastEvent(evs, SessionDown, tn.Router)
	if down.State != StateMaxPrefixExceeded || !strings.Contains(down.Reason, "more than 5 prefixes") {
		t.Errorf("SessionDown = {State:%q Reason:%q}, want state %q and a reason naming the limit", down.State, down.Reason, StateMaxPrefixExceeded)
	}
	if v := routeView(evs); len(v[tn.Router]) != 0 {
		t.Errorf("consumer holds %v from the shut-down neighbor", prefixesOf(v, tn.Router))
	}
	for _, ev := range evs {
		if ev.Neighbor == tn.Router && ev.Kind == Announce && len(routeView(evs[:1])[tn.Router]) > 5 {
			t.Errorf("more than 5 routes of the leaking neighbor were announced")
		}
	}
	// GoBGP disables the peer; BIRD sees the session closed and cannot
	// re-establish it, while the good session stays up.
	leakyBird.Poll(t, "leaky session closed", func() (bool, string) {
		st, out := leakyBird.State("leaky")
		return st != "Established", out
	})
	goodBird.WaitState(t, "good", "Established")
	if st := sp.status(tn.Router); st.State != StateMaxPrefixExceeded || st.PrefixesReceived != 0 {
		t.Errorf("Status(leaky) = %+v, want state %q and no prefixes", st, StateMaxPrefixExceeded)
	}
	if st := sp.status(tn.Router2); st.State != StateEstablished || st.PrefixesAccepted != 2 {
		t.Errorf("Status(good) = %+v, want established with 2 prefixes (exactly at its limit)", st)
	}
	if n := countEvents(sp.events, SessionDown, tn.Router2); n != 0 {
		t.Errorf("good neighbor had %d SessionDown events, want 0", n)
	}
}

func countEvents(l *eventLog, kind EventKind, nb netip.Addr) int {
	evs, _ := l.snapshot()
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind && ev.Neighbor == nb {
			n++
		}
	}
	return n
}

// TestBIRDApplianceIPv4AndIPv6 runs the Open Connect shape: one IPv4 and one
// IPv6 session with the ISP, both passive on the speaker's one listen
// address. The IPv6 session is MP-BGP (ipv6-unicast only) over an IPv4
// loopback transport, because the host's only IPv6 address is ::1 and the
// speaker listens on 127.x; the UPDATEs are the same as over IPv6 transport,
// which TestBIRDIPv6Transport covers. The v6 next hop is set by the router.
func TestBIRDApplianceIPv4AndIPv6(t *testing.T) {
	tn := newTestNet()
	port := bgptest.FreePort(t, tn.Speaker)
	v4 := []bgptest.Route{{Prefix: netip.MustParsePrefix("185.30.0.0/16"), MED: 10}, {Prefix: netip.MustParsePrefix("0.0.0.0/0")}}
	v6 := []bgptest.Route{
		{Prefix: netip.MustParsePrefix("2001:db8:100::/48"), MED: 20, Prepend: 1},
		{Prefix: netip.MustParsePrefix("2a00:1450::/32")},
		{Prefix: netip.MustParsePrefix("::/0")},              // default
		{Prefix: netip.MustParsePrefix("2001:db8:200::/56")}, // longer than /48
		{Prefix: netip.MustParsePrefix("fd00:1::/48")},       // ULA bogon
		{Prefix: netip.MustParsePrefix("4000::/16")},         // outside 2000::/3
	}
	// One BIRD process per session: BIRD runs only one session per neighbor
	// address at a time, and both sessions go to the speaker's address.
	bird4 := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router,
		bgptest.BIRDSession{Name: "v4", Local: tn.Router, LocalPort: bgptest.FreePort(t, tn.Router), LocalAS: routerAS,
			Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, Routes: v4}))
	bird6 := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router2,
		bgptest.BIRDSession{Name: "v6", Local: tn.Router2, LocalPort: bgptest.FreePort(t, tn.Router2), LocalAS: routerAS,
			Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, IPv6: true, Routes: v6}))
	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr:    netip.AddrPortFrom(tn.Speaker, port),
		AllowPrefixes: labAllow,
		Neighbors: []NeighborConfig{
			{Address: tn.Router, PeerASN: routerAS, Family: FamilyIPv4, Passive: true},
			{Address: tn.Router2, PeerASN: routerAS, Family: FamilyIPv6, Passive: true},
		},
	})
	bird4.WaitState(t, "v4", "Established")
	bird6.WaitState(t, "v6", "Established")
	evs := sp.events.waitFor(t, "v4 and v6 routes", func(evs []Event) bool {
		v := routeView(evs)
		return len(v[tn.Router]) == 1 && len(v[tn.Router2]) == 2
	})
	nh6 := netip.MustParseAddr("2001:db8::1")
	want6 := map[netip.Prefix]rib.Route{
		netip.MustParsePrefix("2001:db8:100::/48"): {Prefix: netip.MustParsePrefix("2001:db8:100::/48"), Attrs: rib.Attrs{NextHop: nh6, LocalPref: 100, ASPath: []uint32{routerAS, routerAS}, MED: 20, PeerASN: routerAS, PeerRouterID: tn.Router2, EBGP: true}},
		netip.MustParsePrefix("2a00:1450::/32"):    {Prefix: netip.MustParsePrefix("2a00:1450::/32"), Attrs: rib.Attrs{NextHop: nh6, LocalPref: 100, ASPath: []uint32{routerAS}, PeerASN: routerAS, PeerRouterID: tn.Router2, EBGP: true}},
	}
	if diff := cmp.Diff(want6, routeView(evs)[tn.Router2], cmpNetip); diff != "" {
		t.Errorf("IPv6 routes (-want +got):\n%s", diff)
	}
	for _, ev := range evs {
		want := map[netip.Addr]Family{tn.Router: FamilyIPv4, tn.Router2: FamilyIPv6}[ev.Neighbor]
		if ev.Family != want {
			t.Errorf("%s event from %s has family %q, want %q", ev.Kind, ev.Neighbor, ev.Family, want)
		}
	}
	sp.events.waitFor(t, "v6 rejections counted", func([]Event) bool { return sp.status(tn.Router2).PrefixesRejected == 4 })
	got := sp.Status()
	want := []NeighborStatus{
		{Address: tn.Router, Family: FamilyIPv4, State: StateEstablished, PrefixesReceived: 2, PrefixesAccepted: 1, PrefixesRejected: 1},
		{Address: tn.Router2, Family: FamilyIPv6, State: StateEstablished, PrefixesReceived: 6, PrefixesAccepted: 2, PrefixesRejected: 4},
	}
	for i := range got {
		if got[i].Uptime <= 0 {
			t.Errorf("Status()[%d].Uptime = %v, want > 0 for an established session", i, got[i].Uptime)
		}
		got[i].Uptime = 0 // wall-clock dependent; checked above
	}
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("Status() (-want +got):\n%s", diff)
	}
	if got, want := sp.Rejected(), map[RejectReason]uint64{RejectDefaultRoute: 2, RejectTooSpecific: 1, RejectBogon: 2, RejectWrongFamily: 0}; !cmp.Equal(got, want) {
		t.Errorf("Rejected() = %v, want %v", got, want)
	}
}

// TestBIRDActiveMD5: the speaker connects out (not passive) to BIRD's port
// with a TCP MD5 password, and the password never appears in its logs.
func TestBIRDActiveMD5(t *testing.T) {
	tn := newTestNet()
	const password = "md5-Secret-4-test"
	birdPort := bgptest.FreePort(t, tn.Router)
	bird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router, bgptest.BIRDSession{Name: "isp", Local: tn.Router, LocalPort: birdPort,
		LocalAS: routerAS, Neighbor: tn.Speaker, NeighborPort: 179, PeerAS: speakerAS,
		Passive: true, Password: password, Routes: []bgptest.Route{{Prefix: netip.MustParsePrefix("185.60.0.0/16")}}}))
	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		// Listening is not needed for an active session, but it sets the
		// source address BIRD expects.
		ListenAddr: netip.AddrPortFrom(tn.Speaker, bgptest.FreePort(t, tn.Speaker)),
		Neighbors: []NeighborConfig{{Address: tn.Router, Port: birdPort, PeerASN: routerAS,
			Family: FamilyIPv4, MD5Password: password}},
	})
	bird.WaitState(t, "isp", "Established")
	sp.events.waitFor(t, "route over the MD5 session", func(evs []Event) bool {
		return hasPrefix(routeView(evs)[tn.Router], "185.60.0.0/16")
	})
	sp.stop(t)
	if logs := sp.logs.String(); strings.Contains(logs, password) {
		t.Errorf("speaker logs contain the MD5 password:\n%s", logs)
	}
}

// TestBIRDIPv6Transport runs the IPv6 session over real IPv6 transport on
// ::1, the only IPv6 address the host has: BIRD listens on its own port and
// the speaker connects to it (active), so both ends can share ::1.
func TestBIRDIPv6Transport(t *testing.T) {
	tn := newTestNet()
	lo6 := netip.IPv6Loopback()
	birdPort := bgptest.FreePort(t, lo6)
	bird := bgptest.StartBIRD(t, bgptest.BIRDConfig(tn.Router, bgptest.BIRDSession{Name: "isp6", Local: lo6, LocalPort: birdPort,
		LocalAS: routerAS, Neighbor: lo6, NeighborPort: 179, PeerAS: speakerAS, IPv6: true, Passive: true,
		Routes: []bgptest.Route{{Prefix: netip.MustParsePrefix("2a00:1450::/32"), MED: 5}, {Prefix: netip.MustParsePrefix("2001:db8:7::/48")}, {Prefix: netip.MustParsePrefix("fd00:5::/48")}}})) // BIRD itself drops link-local routes
	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		AllowPrefixes: labAllow,
		Neighbors:     []NeighborConfig{{Address: lo6, Port: birdPort, PeerASN: routerAS, Family: FamilyIPv6}},
	})
	bird.WaitState(t, "isp6", "Established")
	evs := sp.events.waitFor(t, "IPv6 routes", func(evs []Event) bool { return len(routeView(evs)[lo6]) == 2 })
	got := routeView(evs)[lo6][netip.MustParsePrefix("2a00:1450::/32")]
	want := rib.Route{Prefix: netip.MustParsePrefix("2a00:1450::/32"), Attrs: rib.Attrs{NextHop: netip.MustParseAddr("2001:db8::1"), LocalPref: 100, ASPath: []uint32{routerAS}, MED: 5, PeerASN: routerAS, PeerRouterID: tn.Router, EBGP: true}}
	if diff := cmp.Diff(want, got, cmpNetip); diff != "" {
		t.Errorf("route over IPv6 transport (-want +got):\n%s", diff)
	}
	sp.events.waitFor(t, "ULA rejected", func([]Event) bool { return sp.status(lo6).PrefixesRejected == 1 })
}
