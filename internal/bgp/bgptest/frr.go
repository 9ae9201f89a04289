package bgptest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FRRBgpd is where Debian's frr package installs bgpd.
const FRRBgpd = "/usr/lib/frr/bgpd"

// FRRNeighbor is one neighbor of an FRR router and the routes it sends
// to it.
type FRRNeighbor struct {
	Address netip.Addr
	// Port is the neighbor's port FRR connects to; 0 means 179. With
	// Passive, FRR never connects and the neighbor connects to FRR.
	Port    uint16
	AS      uint32
	Passive bool
	Routes  []Route
}

// FRRConfig renders a bgpd config for router localAS at routerID (also
// the update source): every route of every neighbor is originated with a
// `network` statement, and each neighbor's outbound route-map sends it
// only its own routes, with their prepends and MEDs and the documentation
// next hop (GoBGP treats a 127.x next hop as a withdrawal). IPv4 only.
// Use Vtysh with `no network P` to withdraw a prefix from every neighbor.
func FRRConfig(localAS uint32, routerID netip.Addr, neighbors ...FRRNeighbor) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname isp\n!\nrouter bgp %d\n bgp router-id %s\n", localAS, routerID)
	b.WriteString(" no bgp ebgp-requires-policy\n no bgp network import-check\n")
	for _, n := range neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n neighbor %s disable-connected-check\n",
			n.Address, n.AS, n.Address, routerID, n.Address)
		if n.Port != 0 {
			fmt.Fprintf(&b, " neighbor %s port %d\n", n.Address, n.Port)
		}
		if n.Passive {
			fmt.Fprintf(&b, " neighbor %s passive\n", n.Address)
		}
		// Reconnect and advertise promptly; correctness never depends on it.
		fmt.Fprintf(&b, " neighbor %s timers connect 1\n neighbor %s advertisement-interval 0\n", n.Address, n.Address)
	}
	var all []netip.Prefix
	for _, n := range neighbors {
		for _, r := range n.Routes {
			if !slices.Contains(all, r.Prefix) {
				all = append(all, r.Prefix)
			}
		}
	}
	b.WriteString(" !\n address-family ipv4 unicast\n")
	for _, p := range all {
		fmt.Fprintf(&b, "  network %s\n", p)
	}
	for i := range neighbors {
		fmt.Fprintf(&b, "  neighbor %s route-map TO-%d out\n", neighbors[i].Address, i)
	}
	b.WriteString(" exit-address-family\n!\n")
	for i, n := range neighbors {
		for j, r := range n.Routes {
			fmt.Fprintf(&b, "ip prefix-list N%d-R%d seq 5 permit %s\n", i, j, r.Prefix)
		}
		for j, r := range n.Routes {
			fmt.Fprintf(&b, "route-map TO-%d permit %d\n match ip address prefix-list N%d-R%d\n set ip next-hop %s\n", i, 10*(j+1), i, j, NextHop4)
			if r.Prepend > 0 {
				b.WriteString(" set as-path prepend")
				for range r.Prepend {
					fmt.Fprintf(&b, " %d", localAS)
				}
				b.WriteByte('\n')
			}
			if r.MED != 0 {
				fmt.Fprintf(&b, " set metric %d\n", r.MED)
			}
		}
		// A neighbor without routes gets none: a route-map without
		// entries would deny everything too, but must exist.
		fmt.Fprintf(&b, "route-map TO-%d deny 65000\n!\n", i)
	}
	return b.String()
}

// FRR is an FRR bgpd process owned by a test, run without zebra (-Z) and
// without touching the kernel (-n), with its vty socket in the test's temp
// dir and no vty TCP port (-P 0) so that instances do not clash.
type FRR struct {
	*process
	dir  string
	conf string
}

// StartFRR runs bgpd on conf, listening for BGP on addr:port, and kills it
// when the test ends. It skips or fails the test (see RequireProgram)
// without the frr package.
func StartFRR(t testing.TB, addr netip.Addr, port uint16, conf string) *FRR {
	t.Helper()
	bin := RequireProgram(t, FRRBgpd, "frr")
	RequireProgram(t, "vtysh", "frr")
	dir := t.TempDir()
	f := &FRR{dir: dir, conf: conf}
	confPath := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -S: run as the invoking user (root here) without switching to the frr
	// user, whose group the test's temp dir does not belong to.
	f.process = start(t, "bgpd", exec.Command(bin, "-f", confPath, "-i", filepath.Join(dir, "bgpd.pid"), "--vty_socket", dir,
		"-Z", "-n", "-S", "-P", "0", "-p", fmt.Sprint(port), "-l", addr.String(), "--log", "stdout"),
		func() string { return conf })
	return f
}

// Vtysh runs each command in turn in one vtysh session, e.g.
// Vtysh("configure terminal", "router bgp 64500", "address-family ipv4 unicast", "no network 192.0.2.0/24").
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("vtysh", args...).CombinedOutput()
	return string(out), err
}

// MustVtysh is Vtysh failing the test on error.
func (f *FRR) MustVtysh(t testing.TB, cmds ...string) string {
	t.Helper()
	out, err := f.Vtysh(cmds...)
	if err != nil {
		t.Fatalf("vtysh %q: %v\n%s", cmds, err, out)
	}
	return out
}

// PeerState returns FRR's state for its IPv4 neighbor nb ("Established",
// "Active", "Idle (Admin)", ...) and vtysh's output.
func (f *FRR) PeerState(nb netip.Addr) (string, string) {
	out, err := f.Vtysh("show bgp summary json")
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

// WaitEstablished waits until the session with nb is Established.
func (f *FRR) WaitEstablished(t testing.TB, nb netip.Addr) {
	t.Helper()
	f.poll(t, fmt.Sprintf("FRR session with %s", nb), func() (bool, string) {
		st, out := f.PeerState(nb)
		return st == "Established", out
	})
}

// Kill kills bgpd at once, as a crash would. It is safe to call more
// than once.
func (f *FRR) Kill(t testing.TB) {
	t.Helper()
	f.kill(t)
}

// Output is what bgpd has logged so far.
func (f *FRR) Output() string { return f.out.String() }
