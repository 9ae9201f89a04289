package bgp

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/rib"
)

const frrBgpd = "/usr/lib/frr/bgpd"

// frrRouter is an FRR bgpd process owned by the test, run without zebra
// (-Z) and without touching the kernel (-n), with its vty socket in the
// test's temp dir and no vty TCP port (-P 0) so that instances do not clash.
type frrRouter struct {
	dir    string
	addr   netip.Addr
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
}

func startFRR(t *testing.T, addr netip.Addr, port uint16, conf string) *frrRouter {
	t.Helper()
	bin := requireProgram(t, frrBgpd, "frr")
	requireProgram(t, "vtysh", "frr")
	dir := t.TempDir()
	f := &frrRouter{dir: dir, addr: addr, exited: make(chan struct{}), out: &lockedBuffer{}}
	confPath := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -S: run as the invoking user (root here) without switching to the frr
	// user, whose group the test's temp dir does not belong to.
	f.cmd = exec.Command(bin, "-f", confPath, "-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir,
		"-Z", "-n", "-S", "-P", "0", "-p", fmt.Sprint(port), "-l", addr.String(), "--log", "stdout")
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("starting bgpd: %v", err)
	}
	go func() { // owner: the test; exits when bgpd exits (killed at cleanup)
		_ = f.cmd.Wait()
		close(f.exited)
	}()
	t.Cleanup(func() {
		_ = f.cmd.Process.Kill()
		select {
		case <-f.exited:
		case <-time.After(10 * time.Second):
			t.Errorf("bgpd (pid %d) did not exit after SIGKILL", f.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("bgpd config:\n%s\nbgpd output:\n%s", conf, f.out.String())
		}
	})
	return f
}

// vtysh runs each command in turn in one vtysh session.
func (f *frrRouter) vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	return string(out), err
}

// peerState returns FRR's state for its neighbor nb ("Established", ...).
func (f *frrRouter) peerState(nb netip.Addr) (string, string) {
	out, err := f.vtysh("show bgp summary json")
	if err != nil {
		return "", out
	}
	var sum map[string]struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return "", out
	}
	return sum["ipv4Unicast"].Peers[nb.String()].State, out
}

func (f *frrRouter) waitEstablished(t *testing.T, nb netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(sessionTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, out := f.peerState(nb)
		if st == "Established" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for FRR session with %s; last output:\n%s", sessionTimeout, nb, out)
		}
		select {
		case <-tick.C:
		case <-f.exited:
			t.Fatalf("bgpd exited: %s", f.out.String())
		}
	}
}

// TestFRRAnnounce checks a second BGP implementation: FRR bgpd originates
// prefixes with an AS path prepend and a MED, and the import policy drops
// its bogon and over-specific routes. The speaker connects actively to
// FRR's non-standard port, so NeighborConfig.Port is exercised too.
func TestFRRAnnounce(t *testing.T) {
	tn := newTestNet()
	const frrAS = 64510
	frrPort := freePort(t, tn.Router)
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
	frr := startFRR(t, tn.Router, frrPort, conf)

	sp := startSpeaker(t, Config{
		LocalASN: speakerAS, RouterID: tn.Speaker,
		ListenAddr: netip.AddrPortFrom(tn.Speaker, freePort(t, tn.Speaker)),
		Neighbors:  []NeighborConfig{{Address: tn.Router, Port: frrPort, PeerASN: frrAS, Family: FamilyIPv4}},
	})
	frr.waitEstablished(t, tn.Speaker)
	evs := sp.events.waitFor(t, "FRR routes", func(evs []Event) bool { return len(routeView(evs)[tn.Router]) == 2 })
	nh := netip.MustParseAddr("192.0.2.1")
	want := map[netip.Prefix]rib.Route{
		netip.MustParsePrefix("185.40.0.0/16"): {Prefix: netip.MustParsePrefix("185.40.0.0/16"), NextHop: nh, LocalPref: 100,
			ASPath: []uint32{frrAS, 65001, 65002}, Origin: rib.OriginIGP, MED: 33, PeerASN: frrAS, PeerRouterID: tn.Router, EBGP: true},
		netip.MustParsePrefix("185.41.0.0/24"): {Prefix: netip.MustParsePrefix("185.41.0.0/24"), NextHop: nh, LocalPref: 100,
			ASPath: []uint32{frrAS}, Origin: rib.OriginIGP, PeerASN: frrAS, PeerRouterID: tn.Router, EBGP: true},
	}
	if diff := cmp.Diff(want, routeView(evs)[tn.Router], cmpNetip); diff != "" {
		t.Errorf("routes from FRR (-want +got):\n%s", diff)
	}
	sp.events.waitFor(t, "FRR rejections counted", func([]Event) bool { return sp.status(tn.Router).PrefixesRejected == 2 })
	if got := sp.Rejected(); got[RejectBogon] != 1 || got[RejectTooSpecific] != 1 {
		t.Errorf("Rejected() = %v, want 1 bogon and 1 too_specific", got)
	}

	// Withdraw one prefix through FRR's CLI.
	if out, err := frr.vtysh("configure terminal", fmt.Sprintf("router bgp %d", frrAS),
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
