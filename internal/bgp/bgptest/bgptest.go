// Package bgptest provides real outside BGP routers for tests: BIRD 2 and
// FRR's bgpd, each run as a child process owned by one test, configured
// from Go values, driven through birdc and vtysh, and killed when the test
// ends. A missing program skips the test, or fails it when
// OCDN_REQUIRE_EXTERNAL=1 (make test), naming the Debian package.
//
// The package does not import internal/bgp, so that package's own tests
// can use it.
package bgptest

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// SessionTimeout bounds every wait on a real router (a session coming up,
// a control socket answering). It is an upper bound, never an expectation:
// helpers wait for conditions and return as soon as they hold.
const SessionTimeout = 30 * time.Second

// NextHop4 and NextHop6 are the documentation next hops the routers'
// export filters set: GoBGP treats a 127.x next hop as a withdrawal, and
// steering ignores next hops anyway (TESTING-NOTES).
var (
	NextHop4 = netip.MustParseAddr("192.0.2.1")
	NextHop6 = netip.MustParseAddr("2001:db8::1")
)

// Route is a route a test router originates, with the attributes its
// export policy sets towards one neighbor.
type Route struct {
	Prefix netip.Prefix
	// Prepend is how many extra copies of the router's ASN to put on the
	// AS path (the router always adds one itself on eBGP export).
	Prepend int
	MED     uint32 // 0: no MED
	// Origin is a BIRD origin constant (ORIGIN_IGP, ORIGIN_EGP,
	// ORIGIN_INCOMPLETE); empty leaves the router's default (IGP). FRR
	// ignores it.
	Origin string
}

// Routes parses prefixes into Routes without attributes; it panics on a
// malformed prefix, as test data should never have one.
func Routes(prefixes ...string) []Route {
	out := make([]Route, len(prefixes))
	for i, p := range prefixes {
		out[i] = Route{Prefix: netip.MustParsePrefix(p)}
	}
	return out
}

// RequireProgram returns the path of the executable path (a name looked up
// in PATH, or an absolute path). When it is missing the test is skipped,
// or fails when OCDN_REQUIRE_EXTERNAL=1, so that a missing peer never
// passes silently.
func RequireProgram(t testing.TB, path, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found (%v): install the Debian package %s", path, err, debianPkg)
	if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a TCP port that was free on addr a moment ago. Any
// 127.0.0.0/8 address can be bound without set-up.
func FreePort(t testing.TB, addr netip.Addr) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatalf("finding a free port on %s: %v", addr, err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// process is a router process owned by a test.
type process struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *LockedBuffer
}

// start runs cmd until the test ends; at cleanup it kills the process and,
// if the test failed, logs conf and the process's output.
func start(t testing.TB, name string, cmd *exec.Cmd, conf func() string) *process {
	t.Helper()
	p := &process{name: name, cmd: cmd, exited: make(chan struct{}), out: &LockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { // owner: the test; exits when the process exits (killed at cleanup at the latest)
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("%s config:\n%s\n%s output:\n%s", name, conf(), name, p.out.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit; it does nothing if
// the process has already exited.
func (p *process) kill(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

// poll checks cond every 100 ms until it holds or SessionTimeout passes,
// and fails the test early if the process exits.
func (p *process) poll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(SessionTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, out := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last output:\n%s", SessionTimeout, what, out)
		}
		select {
		case <-tick.C:
		case <-p.exited:
			t.Fatalf("%s exited while waiting for %s: %s", p.name, what, p.out.String())
		}
	}
}

// LockedBuffer collects a process's output for failure messages; it is
// safe for the process's writers and the test to use at once.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
