package bgp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/ocdn/ocdn/internal/rib"
)

// These tests drive the translation layer with GoBGP's own types, for the
// cases real routers are awkward to make send (AS_SET, iBGP LOCAL_PREF,
// exact max-prefix boundaries); the BIRD and FRR tests cover the wire.

var (
	tNeighbor = netip.MustParseAddr("127.0.0.10")
	tRouterID = netip.MustParseAddr("10.255.0.1")
)

func newTestSpeaker(t *testing.T, peerAS uint32, maxPrefixes int) (*Speaker, *eventLog) {
	t.Helper()
	log := newEventLog()
	sp, err := New(Config{LocalASN: speakerAS, RouterID: netip.MustParseAddr("127.1.0.1"),
		AllowPrefixes: labAllow,
		Neighbors:     []NeighborConfig{{Address: tNeighbor, PeerASN: peerAS, Family: FamilyIPv4, MaxPrefixes: maxPrefixes}},
	}, nil, log.add)
	if err != nil {
		t.Fatal(err)
	}
	return sp, log
}

func peerState(sp *Speaker, st gobgp.FSMState) {
	sp.handlePeer(&apiutil.WatchEventMessage_PeerEvent{Type: apiutil.PEER_EVENT_STATE, Peer: apiutil.Peer{
		State: apiutil.PeerState{NeighborAddress: tNeighbor, SessionState: st, RouterID: tRouterID},
	}}, time.Now())
}

func path(t *testing.T, prefix string, withdraw bool, attrs ...gobgp.PathAttributeInterface) *apiutil.Path {
	t.Helper()
	nlri, err := gobgp.NewIPAddrPrefix(netip.MustParsePrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return &apiutil.Path{Nlri: nlri, Attrs: attrs, Withdrawal: withdraw, PeerAddress: tNeighbor, PeerID: tRouterID}
}

func TestTranslateAttributes(t *testing.T) {
	sp, log := newTestSpeaker(t, speakerAS, 0) // iBGP: LOCAL_PREF is kept
	peerState(sp, gobgp.BGP_FSM_ESTABLISHED)
	nh, _ := gobgp.NewPathAttributeNextHop(netip.MustParseAddr("192.0.2.9"))
	sp.handlePaths([]*apiutil.Path{
		path(t, "185.70.0.0/16", false,
			gobgp.NewPathAttributeOrigin(1), nh,
			gobgp.NewPathAttributeAsPath([]gobgp.AsPathParamInterface{
				gobgp.NewAs4PathParam(gobgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{4200000001, 64500}),
				gobgp.NewAs4PathParam(gobgp.BGP_ASPATH_ATTR_TYPE_SET, []uint32{65010, 65011}),
			}),
			gobgp.NewPathAttributeMultiExitDisc(42), gobgp.NewPathAttributeLocalPref(250)),
		path(t, "185.71.0.0/16", false, nh), // no ORIGIN, MED, LOCAL_PREF or AS_PATH
	}, time.Now())
	evs, _ := log.snapshot()
	nhAddr := netip.MustParseAddr("192.0.2.9")
	want := map[netip.Prefix]rib.Route{
		netip.MustParsePrefix("185.70.0.0/16"): {Prefix: netip.MustParsePrefix("185.70.0.0/16"), Attrs: rib.Attrs{NextHop: nhAddr, LocalPref: 250, ASPath: []uint32{4200000001, 64500, 65010, 65011}, Origin: rib.OriginEGP, MED: 42, PeerASN: speakerAS, PeerRouterID: tRouterID, EBGP: false}},
		netip.MustParsePrefix("185.71.0.0/16"): {Prefix: netip.MustParsePrefix("185.71.0.0/16"), Attrs: rib.Attrs{NextHop: nhAddr, LocalPref: 100, Origin: rib.OriginIncomplete, PeerASN: speakerAS, PeerRouterID: tRouterID, EBGP: false}},
	}
	if diff := cmp.Diff(want, routeView(evs)[tNeighbor], cmpNetip); diff != "" {
		t.Errorf("translated routes (-want +got):\n%s", diff)
	}
	if len(evs) != 2 || evs[0].Kind != SessionUp || evs[1].Kind != Announce {
		t.Errorf("events = %s, want SessionUp then one Announce for the batch", formatEvents(evs))
	}
}

func TestMaxPrefixBoundaryAndRejectedWithdrawals(t *testing.T) {
	sp, log := newTestSpeaker(t, routerAS, 2)
	peerState(sp, gobgp.BGP_FSM_ESTABLISHED)
	nh, _ := gobgp.NewPathAttributeNextHop(netip.MustParseAddr("192.0.2.1"))
	// Exactly at the limit, plus rejected routes that do not count.
	sp.handlePaths([]*apiutil.Path{
		path(t, "185.80.0.0/16", false, nh), path(t, "185.81.0.0/16", false, nh),
		path(t, "10.0.0.0/8", false, nh), path(t, "0.0.0.0/0", false, nh),
	}, time.Now())
	// A rejected route's withdrawal is not an event; re-announcing an
	// accepted route unchanged is not one either.
	sp.handlePaths([]*apiutil.Path{path(t, "10.0.0.0/8", true), path(t, "185.80.0.0/16", false, nh)}, time.Now())
	if st := sp.Status()[0]; st.State != StateEstablished || st.PrefixesAccepted != 2 || st.PrefixesRejected != 1 {
		t.Errorf("Status() at the limit = %+v, want established, 2 accepted, 1 rejected", st)
	}
	evs, _ := log.snapshot()
	if len(evs) != 2 {
		t.Errorf("events = %s, want SessionUp and one Announce", formatEvents(evs))
	}
	// One more accepted prefix crosses the limit.
	sp.handlePaths([]*apiutil.Path{path(t, "185.82.0.0/16", false, nh)}, time.Now())
	evs, _ = log.snapshot()
	last := evs[len(evs)-1]
	if last.Kind != SessionDown || last.State != StateMaxPrefixExceeded {
		t.Fatalf("last event = %s, want SessionDown %q", formatEvents(evs[len(evs)-1:]), StateMaxPrefixExceeded)
	}
	select {
	case addr := <-sp.disableCh:
		if addr != tNeighbor {
			t.Errorf("disable request for %s, want %s", addr, tNeighbor)
		}
	default:
		t.Error("no disable request sent to Run")
	}
	// Updates racing the shutdown and GoBGP's own state change add nothing.
	n := len(evs)
	sp.handlePaths([]*apiutil.Path{path(t, "185.83.0.0/16", false, nh)}, time.Now())
	peerState(sp, gobgp.BGP_FSM_IDLE)
	if evs, _ = log.snapshot(); len(evs) != n {
		t.Errorf("events after max-prefix shutdown: %s", formatEvents(evs[n:]))
	}
	if st := sp.Status()[0]; st.State != StateMaxPrefixExceeded || st.PrefixesReceived != 0 {
		t.Errorf("Status() = %+v, want %q and no prefixes", st, StateMaxPrefixExceeded)
	}
	if got := sp.Rejected(); got[RejectBogon] != 1 || got[RejectDefaultRoute] != 1 {
		t.Errorf("Rejected() = %v, want 1 bogon, 1 default_route", got)
	}
}
