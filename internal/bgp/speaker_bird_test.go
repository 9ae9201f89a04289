package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

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
	t.Parallel()
	tn := newTestNet()
	port, birdPort := freePort(t, tn.Speaker), freePort(t, tn.Router)
	routes := []birdRoute{
		{Prefix: "198.51.100.0/24", Prepend: 2, MED: 50, Origin: "ORIGIN_IGP"},
		{Prefix: "203.0.113.0/24", MED: 7, Origin: "ORIGIN_EGP"},
		{Prefix: "185.1.0.0/16"}, // BIRD drops 127/8 routes as "bogus", so no loopback prefix here
		{Prefix: "8.8.8.0/24", Prepend: 1, Origin: "ORIGIN_INCOMPLETE"},
		// Rejected by the import policy:
		{Prefix: "0.0.0.0/0"},         // default route
		{Prefix: "198.51.100.128/25"}, // longer than /24
		{Prefix: "10.1.0.0/16"},       // bogon (RFC 1918)
		{Prefix: "192.168.7.0/24"},    // bogon (RFC 1918)
	}
	sess := birdSession{Name: "isp4", Local: tn.Router, LocalPort: birdPort, LocalAS: routerAS,
		Neighbor: tn.Speaker, NeighborPort: port, PeerAS: speakerAS, Family: FamilyIPv4, Routes: routes}
	bird := startBird(t, birdConfig(tn.Router, sess))

	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr:    netip.AddrPortFrom(tn.Speaker, port),
		AllowPrefixes: labAllow,
		Neighbors: []NeighborConfig{{Address: tn.Router, Port: birdPort, PeerASN: routerAS,
			Family: FamilyIPv4, Passive: true}},
	})
	bird.waitState(t, "isp4", "Established")

	want := map[netip.Prefix]rib.Route{}
	add := func(p string, path []uint32, origin rib.Origin, med uint32) {
		pfx := netip.MustParsePrefix(p)
		want[pfx] = rib.Route{Prefix: pfx, NextHop: netip.MustParseAddr("192.0.2.1"), LocalPref: 100,
			ASPath: path, Origin: origin, MED: med, PeerASN: routerAS, PeerRouterID: tn.Router, EBGP: true}
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
	sess.Routes = slices.DeleteFunc(slices.Clone(routes), func(r birdRoute) bool {
		return r.Prefix == "8.8.8.0/24" || r.Prefix == "0.0.0.0/0"
	})
	n := len(evs)
	bird.reconfigure(t, birdConfig(tn.Router, sess))
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
	bird.kill(t)
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
