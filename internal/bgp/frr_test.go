package bgp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/bgp/bgptest"
	"github.com/ocdn/ocdn/internal/rib"
)

// TestFRRAnnounce checks a second BGP implementation: FRR bgpd originates
// prefixes with an AS path prepend and a MED, and the import policy drops
// its bogon and over-specific routes. The speaker connects actively to
// FRR's non-standard port, so NeighborConfig.Port is exercised too.
func TestFRRAnnounce(t *testing.T) {
	tn := newTestNet()
	const frrAS = 64510
	frrPort := bgptest.FreePort(t, tn.Router)
	conf := fmt.Sprintf(`frr defaults traditional
hostname isp
!
router bgp %[1]d
 bgp router-id %[2]s
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor %[3]s remote-as %[4]d
 neighbor %[3]s passive
 neighbor %[3]s update-source %[2]s
 neighbor %[3]s disable-connected-check
 !
 address-family ipv4 unicast
  network 185.40.0.0/16 route-map ORIGINATE
  network 185.41.0.0/24
  network 185.41.1.0/25
  network 10.9.0.0/16
  neighbor %[3]s route-map TO-OCA out
 exit-address-family
!
route-map ORIGINATE permit 10
 set as-path prepend 65001 65002
 set metric 33
!
! GoBGP treats a 127.x next hop as a withdrawal; steering ignores it anyway.
route-map TO-OCA permit 10
 set ip next-hop 192.0.2.1
!
`, frrAS, tn.Router, tn.Speaker, speakerAS)
	frr := bgptest.StartFRR(t, tn.Router, frrPort, conf)

	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr: netip.AddrPortFrom(tn.Speaker, bgptest.FreePort(t, tn.Speaker)),
		Neighbors:  []NeighborConfig{{Address: tn.Router, Port: frrPort, PeerASN: frrAS, Family: FamilyIPv4}},
	})
	frr.WaitEstablished(t, tn.Speaker)
	evs := sp.events.waitFor(t, "FRR routes", func(evs []Event) bool { return len(routeView(evs)[tn.Router]) == 2 })
	nh := netip.MustParseAddr("192.0.2.1")
	want := map[netip.Prefix]rib.Route{
		netip.MustParsePrefix("185.40.0.0/16"): {Prefix: netip.MustParsePrefix("185.40.0.0/16"), Attrs: rib.Attrs{NextHop: nh, LocalPref: 100, ASPath: []uint32{frrAS, 65001, 65002}, Origin: rib.OriginIGP, MED: 33, PeerASN: frrAS, PeerRouterID: tn.Router, EBGP: true}},
		netip.MustParsePrefix("185.41.0.0/24"): {Prefix: netip.MustParsePrefix("185.41.0.0/24"), Attrs: rib.Attrs{NextHop: nh, LocalPref: 100, ASPath: []uint32{frrAS}, Origin: rib.OriginIGP, PeerASN: frrAS, PeerRouterID: tn.Router, EBGP: true}},
	}
	if diff := cmp.Diff(want, routeView(evs)[tn.Router], cmpNetip); diff != "" {
		t.Errorf("routes from FRR (-want +got):\n%s", diff)
	}
	sp.events.waitFor(t, "FRR rejections counted", func([]Event) bool { return sp.status(tn.Router).PrefixesRejected == 2 })
	if got := sp.Rejected(); got[RejectBogon] != 1 || got[RejectTooSpecific] != 1 {
		t.Errorf("Rejected() = %v, want 1 bogon and 1 too_specific", got)
	}

	// Withdraw one prefix through FRR's CLI.
	if out, err := frr.Vtysh("configure terminal", fmt.Sprintf("router bgp %d", frrAS),
		"address-family ipv4 unicast", "no network 185.41.0.0/24"); err != nil {
		t.Fatalf("vtysh: %v: %s", err, out)
	}
	evs = sp.events.waitFor(t, "withdrawal of 185.41.0.0/24", func(evs []Event) bool {
		return !hasPrefix(routeView(evs)[tn.Router], "185.41.0.0/24")
	})
	if w, ok := lastEvent(evs, Withdraw, tn.Router); !ok || !cmp.Equal(w.Withdrawn, mustPrefixes("185.41.0.0/24"), cmpNetip) {
		t.Errorf("last Withdraw = %+v, want [185.41.0.0/24]", w)
	}
}
