package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// birdRoute is a route a test BIRD router announces, with the attributes
// its export filter sets.
type birdRoute struct {
	Prefix  string
	Prepend int    // extra copies of the router's ASN
	MED     uint32 // 0 = no MED
	Origin  string // "", or a BIRD origin constant like ORIGIN_IGP
}

// birdSession is one BGP protocol of a test BIRD router towards the speaker.
type birdSession struct {
	Name         string
	Local        netip.Addr
	LocalPort    uint16
	LocalAS      uint32
	Neighbor     netip.Addr
	NeighborPort uint16
	PeerAS       uint32
	Family       Family // channel; transport is always IPv4 loopback
	Passive      bool
	Password     string
	Routes       []birdRoute
}

// birdConfig renders a BIRD 2 config. Per TESTING-NOTES: `multihop` because
// BIRD refuses 127.x eBGP neighbors as not directly connected, and a
// documentation next hop because GoBGP treats a 127.x next hop as a
// withdrawal.
func birdConfig(routerID netip.Addr, sessions ...birdSession) string {
	var b strings.Builder
	fmt.Fprintf(&b, "log stderr all;\nrouter id %s;\nprotocol device {}\n", routerID)
	for _, s := range sessions {
		ch, nh := "ipv4", "192.0.2.1"
		if s.Family == FamilyIPv6 {
			ch, nh = "ipv6", "2001:db8::1"
		}
		fmt.Fprintf(&b, "protocol static static_%s { %s;\n", s.Name, ch)
		for _, r := range s.Routes {
			fmt.Fprintf(&b, "  route %s blackhole;\n", r.Prefix)
		}
		b.WriteString("}\n")
		fmt.Fprintf(&b, "protocol bgp %s {\n  local %s port %d as %d;\n  neighbor %s port %d as %d;\n  multihop;\n",
			s.Name, s.Local, s.LocalPort, s.LocalAS, s.Neighbor, s.NeighborPort, s.PeerAS)
		// Lower BIRD's connect delay (5 s) and retry (120 s) so sessions come
		// up promptly; correctness never depends on these.
		b.WriteString("  connect delay time 1;\n  connect retry time 2;\n  error wait time 1, 5;\n")
		if s.Passive {
			b.WriteString("  passive on;\n")
		}
		if s.Password != "" {
			fmt.Fprintf(&b, "  password %q;\n", s.Password)
		}
		fmt.Fprintf(&b, "  %s { import none; export filter {\n    if proto != \"static_%s\" then reject;\n    bgp_next_hop = %s;\n", ch, s.Name, nh)
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

// birdRouter is a BIRD 2 process owned by the test.
type birdRouter struct {
	dir, conf, sock string
	cmd             *exec.Cmd
	exited          chan struct{}
	out             *lockedBuffer
}

// startBird runs `bird -f` (foreground, so the test owns the process) on conf
// and kills it when the test ends.
func startBird(t *testing.T, conf string) *birdRouter {
	t.Helper()
	bin := requireProgram(t, "bird", "bird2")
	requireProgram(t, "birdc", "bird2")
	dir := t.TempDir()
	b := &birdRouter{
		dir:    dir,
		conf:   filepath.Join(dir, "bird.conf"),
		sock:   filepath.Join(dir, "bird.ctl"),
		exited: make(chan struct{}),
		out:    &lockedBuffer{},
	}
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, "-f", "-c", b.conf, "-s", b.sock, "-P", filepath.Join(dir, "bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting bird: %v", err)
	}
	go func() { // owner: the test; exits when bird exits (killed at cleanup)
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.kill(t)
		if t.Failed() {
			t.Logf("bird config:\n%s\nbird output:\n%s", conf, b.out.String())
		}
	})
	// Wait until birdc can talk to it, so later commands do not race startup.
	b.poll(t, "bird control socket", func() (bool, string) {
		out, err := b.ctl("show", "status")
		return err == nil && strings.Contains(out, "Daemon is up"), out
	})
	return b
}

func (b *birdRouter) ctl(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// poll checks cond every 100 ms until it holds or sessionTimeout passes; it
// stops early if BIRD exits.
func (b *birdRouter) poll(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(sessionTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		ok, out := cond()
		if ok {
			return
		}
		last = out
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last output:\n%s", sessionTimeout, what, last)
		}
		select {
		case <-tick.C:
		case <-b.exited:
			t.Fatalf("bird exited while waiting for %s: %s", what, b.out.String())
		}
	}
}

// protocolState returns the Info column of `show protocols NAME`
// (e.g. "Established", "Active", "Connect").
func (b *birdRouter) protocolState(name string) (string, string) {
	out, err := b.ctl("show", "protocols", name)
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

func (b *birdRouter) waitState(t *testing.T, name, want string) {
	t.Helper()
	b.poll(t, fmt.Sprintf("BIRD protocol %s %s", name, want), func() (bool, string) {
		st, out := b.protocolState(name)
		return st == want, out
	})
}

// reconfigure rewrites the config and applies it with `birdc configure`.
func (b *birdRouter) reconfigure(t *testing.T, conf string) {
	t.Helper()
	if err := os.WriteFile(b.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := b.ctl("configure")
	if err != nil || !strings.Contains(out, "Reconfigured") {
		t.Fatalf("birdc configure: %v\n%s", err, out)
	}
}

func (b *birdRouter) kill(t *testing.T) {
	t.Helper()
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Kill()
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("bird (pid %d) did not exit after SIGKILL", b.cmd.Process.Pid)
	}
}
