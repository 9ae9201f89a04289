package bgptest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// BIRDSession is one BGP protocol of a BIRD router and the routes it
// exports on it.
type BIRDSession struct {
	// Name is the protocol's name, used with Disable, Enable and State.
	// The session's static routes live in protocol "static_<Name>".
	Name         string
	Local        netip.Addr
	LocalPort    uint16
	LocalAS      uint32
	Neighbor     netip.Addr
	NeighborPort uint16
	PeerAS       uint32
	// IPv6 makes the channel ipv6 (the transport is whatever Local and
	// Neighbor are).
	IPv6     bool
	Passive  bool
	Password string
	Routes   []Route
}

// BIRDConfig renders a BIRD 2 config with, per session, a routing table,
// a static protocol and a BGP protocol; each BGP protocol exports only its
// own static routes, so sessions may announce one prefix with different
// attributes. Per TESTING-NOTES it sets `multihop` (BIRD refuses a 127.x eBGP
// neighbor as not directly connected) and a documentation next hop
// (GoBGP treats a 127.x next hop as a withdrawal). BIRD itself drops
// 127.0.0.0/8 routes as bogus, so announce other ranges.
//
// One BIRD runs one session per neighbor address at a time: to give one
// neighbor two sessions, run two BIRDs on two addresses.
func BIRDConfig(routerID netip.Addr, sessions ...BIRDSession) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\nprotocol device {}\n", routerID)
	for _, s := range sessions {
		ch, nh := "ipv4", NextHop4
		if s.IPv6 {
			ch, nh = "ipv6", NextHop6
		}
		// A table per session: BIRD's shared master table keeps one best
		// route per prefix, so sessions announcing the same prefix with
		// different attributes would otherwise see only one protocol's.
		fmt.Fprintf(&b, "%s table t_%s;\nprotocol static static_%s { %s { table t_%s; };\n", ch, s.Name, s.Name, ch, s.Name)
		for _, r := range s.Routes {
			fmt.Fprintf(&b, "  route %s blackhole;\n", r.Prefix)
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "protocol bgp %s {\n  local %s port %d as %d;\n  neighbor %s port %d as %d;\n  multihop;\n",
			s.Name, s.Local, s.LocalPort, s.LocalAS, s.Neighbor, s.NeighborPort, s.PeerAS)
		// Lower BIRD's connect delay (5 s) and retry (120 s) so sessions come
		// up promptly; correctness never depends on these.
		b.WriteString("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n")
		// Listen on the local address only: by default BIRD listens on
		// 0.0.0.0 at the port, which any socket on the machine that happens
		// to hold that port number (an outgoing connection of another test
		// package) blocks with "bind: Address already in use".
		b.WriteString("  strict bind on;\n")
		if s.Passive {
			b.WriteString("  passive on;\n")
		}
		if s.Password != "" {
			fmt.Fprintf(&b, "  password %q;\n", s.Password)
		}
		fmt.Fprintf(&b, "  %s { table t_%s; import none; export filter {\n    if proto != \"static_%s\" then reject;\n    bgp_next_hop = %s;\n", ch, s.Name, s.Name, nh)
		for _, r := range s.Routes {
			var attrs []string
			for range r.Prepend {
				attrs = append(attrs, fmt.Sprintf("bgp_path.prepend(%d);", s.LocalAS))
			}
			if r.MED != 0 {
				attrs = append(attrs, fmt.Sprintf("bgp_med = %d;", r.MED))
			}
			if r.Origin != "" {
				attrs = append(attrs, fmt.Sprintf("bgp_origin = %s;", r.Origin))
			}
			if len(attrs) > 0 {
				fmt.Fprintf(&b, "    if net = %s then { %s }\n", r.Prefix, strings.Join(attrs, " "))
			}
		}
		b.WriteString("    accept;\n  }; };\n}\n")
	}
	return b.String()
}

// BIRD is a BIRD 2 process owned by a test.
type BIRD struct {
	*process
	dir, conf, sock string

	mu      sync.Mutex
	current string // the config last written
}

// StartBIRD runs `bird -f` (foreground, so the test owns the process) on
// conf, waits until its control socket answers, and kills it when the test
// ends. It skips or fails the test (see RequireProgram) without bird2.
func StartBIRD(t testing.TB, conf string) *BIRD {
	t.Helper()
	return startBIRD(t, "", conf)
}

// StartBIRDInNetns is StartBIRD with BIRD inside the named network
// namespace (`ip netns exec`), as the router of a test network's host;
// birdc still reaches it through its control socket, a file. BIRD dies
// with the test process even when that is killed, since a router left
// running would keep the namespace alive.
func StartBIRDInNetns(t testing.TB, netns, conf string) *BIRD {
	t.Helper()
	RequireProgram(t, "ip", "iproute2")
	return startBIRD(t, netns, conf)
}

func startBIRD(t testing.TB, netns, conf string) *BIRD {
	t.Helper()
	bin := RequireProgram(t, "bird", "bird2")
	RequireProgram(t, "birdc", "bird2")
	dir := t.TempDir()
	b := &BIRD{
		dir:     dir,
		conf:    filepath.Join(dir, "bird.conf"),
		sock:    filepath.Join(dir, "bird.ctl"),
		current: conf,
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", "-c", b.conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	name := "bird"
	if netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns}, cmd.Args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		name = "bird in " + netns
	}
	b.process = start(t, name, cmd, b.config)
	// Wait until birdc can talk to it, so later commands do not race startup.
	b.Poll(t, "bird control socket", func() (bool, string) {
		out, err := b.Ctl("show", "status")
		return err == nil && strings.Contains(out, "Daemon is up"), out
	})
	return b
}

func (b *BIRD) config() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

// Ctl runs birdc with args against this BIRD and returns its output.
func (b *BIRD) Ctl(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// Poll checks cond every 100 ms until it holds, failing the test after
// SessionTimeout or if BIRD exits. cond returns whether it holds and the
// output to show if it never does.
func (b *BIRD) Poll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	b.poll(t, what, cond)
}

// State returns the Info column of `show protocols NAME` ("Established",
// "Active", "Connect", ...; empty for a disabled protocol) and birdc's
// output.
func (b *BIRD) State(name string) (string, string) {
	out, err := b.Ctl("show", "protocols", name)
	if err != nil {
		return "", out
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[0] == name {
			return f[5], out
		}
	}
	return "", out
}

// WaitState waits until protocol name's state is want.
func (b *BIRD) WaitState(t testing.TB, name, want string) {
	t.Helper()
	b.Poll(t, fmt.Sprintf("BIRD protocol %s %s", name, want), func() (bool, string) {
		st, out := b.State(name)
		return st == want, out
	})
}

// Reconfigure rewrites the config and applies it with `birdc configure`:
// routes removed from a session are withdrawn, routes added announced,
// and changed attributes re-announced, without resetting the sessions.
func (b *BIRD) Reconfigure(t testing.TB, conf string) {
	t.Helper()
	b.mu.Lock()
	b.current = conf
	b.mu.Unlock()
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := b.Ctl("configure")
	if err != nil || !strings.Contains(out, "Reconfigured") {
		t.Fatalf("birdc configure: %v\n%s", err, out)
	}
}

// Disable shuts protocol name down (BIRD sends a CEASE), as an operator's
// `birdc disable` does; the session stays down until Enable.
func (b *BIRD) Disable(t testing.TB, name string) {
	t.Helper()
	b.run(t, "disable", name)
}

// Enable brings a disabled protocol back.
func (b *BIRD) Enable(t testing.TB, name string) {
	t.Helper()
	b.run(t, "enable", name)
}

func (b *BIRD) run(t testing.TB, verb, name string) {
	t.Helper()
	out, err := b.Ctl(verb, name)
	if err != nil || !strings.Contains(out, name+": ") {
		t.Fatalf("birdc %s %s: %v\n%s", verb, name, err, out)
	}
}

// Kill kills BIRD at once, as a crash would: its sessions end without a
// NOTIFICATION. It is safe to call more than once.
func (b *BIRD) Kill(t testing.TB) {
	t.Helper()
	b.kill(t)
}

// Output is what BIRD has logged so far.
func (b *BIRD) Output() string { return b.out.String() }
