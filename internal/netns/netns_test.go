package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/netem"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// echo serves one line back per connection at addr inside host h.
func echo(t *testing.T, h *Host, addr string) {
	t.Helper()
	ln, err := netem.ListenIn(context.Background(), h.Name(), "tcp", addr)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() { // owner: the test; ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "%s from %s", strings.TrimSpace(line), c.RemoteAddr())
			c.Close()
		}
	}()
}

// ask dials addr from host h, optionally from source src, and returns the
// answer.
func ask(t *testing.T, h *Host, src netip.Addr, addr string) string {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	var c net.Conn
	err := netem.InNetns(h.Name(), func() (err error) {
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, h.name, err)
	}
	defer c.Close()
	fmt.Fprintf(c, "hello\n")
	b := make([]byte, 200)
	k, _ := c.Read(b)
	return string(b[:k])
}

// Two hosts on a bridge, a router, and a host behind it: IPv4 and IPv6
// reach across, clients bind addresses of a local prefix, and the server
// sees them as sources.
func TestTopology(t *testing.T) {
	rootLinks := links(t)
	n := ForTest(t, "ocdn-nstest")
	var a, b, sw, r, far *Host
	for _, p := range []struct {
		h    **Host
		name string
	}{{&a, "a"}, {&b, "b"}, {&sw, "sw"}, {&r, "r"}, {&far, "far"}} {
		h, err := n.Host(p.name)
		must(t, err)
		*p.h = h
	}
	must(t, n.Link(a, "eth0", sw, "pa"))
	must(t, n.Link(b, "eth0", sw, "pb"))
	must(t, n.Link(r, "eth0", sw, "pr"))
	must(t, sw.Bridge("br0", "pa", "pb", "pr"))
	must(t, n.Link(r, "eth1", far, "eth0"))
	pp := netip.MustParsePrefix
	ad := netip.MustParseAddr
	must(t, a.Addr("eth0", pp("10.9.0.1/24")))
	must(t, a.Addr("eth0", pp("2001:db8:9::1/64")))
	must(t, b.Addr("eth0", pp("10.9.0.2/24")))
	must(t, r.Addr("eth0", pp("10.9.0.254/24")))
	must(t, r.Addr("eth0", pp("2001:db8:9::fe/64")))
	must(t, r.Addr("eth1", pp("10.9.1.1/30")))
	must(t, r.Addr("eth1", pp("2001:db8:9:1::1/64")))
	must(t, far.Addr("eth0", pp("10.9.1.2/30")))
	must(t, far.Addr("eth0", pp("2001:db8:9:1::2/64")))
	must(t, r.Router())
	must(t, a.DefaultRoute(ad("10.9.0.254")))
	must(t, a.DefaultRoute(ad("2001:db8:9::fe")))
	must(t, far.DefaultRoute(ad("10.9.1.1")))
	must(t, far.DefaultRoute(ad("2001:db8:9:1::1")))
	// a's clients live in 198.51.100.0/24 and 2001:db8:100::/48; the
	// router sends them back to a.
	must(t, a.Local(pp("198.51.100.0/24")))
	must(t, a.Local(pp("2001:db8:100::/48")))
	must(t, r.Route(pp("198.51.100.0/24"), ad("10.9.0.1")))
	must(t, r.Route(pp("2001:db8:100::/48"), ad("2001:db8:9::1")))

	echo(t, b, "10.9.0.2:7000")
	echo(t, far, "10.9.1.2:7000")
	echo(t, far, "[2001:db8:9:1::2]:7000")
	if got := ask(t, a, netip.Addr{}, "10.9.0.2:7000"); !strings.HasPrefix(got, "hello from 10.9.0.1:") {
		t.Errorf("a → b over the bridge: %q", got)
	}
	if got := ask(t, a, ad("198.51.100.77"), "10.9.1.2:7000"); !strings.HasPrefix(got, "hello from 198.51.100.77:") {
		t.Errorf("client 198.51.100.77 → far through the router: %q", got)
	}
	if got := ask(t, a, ad("2001:db8:100::77"), "[2001:db8:9:1::2]:7000"); !strings.HasPrefix(got, "hello from [2001:db8:100::77]:") {
		t.Errorf("client 2001:db8:100::77 → far through the router: %q", got)
	}
	// Nothing of this is in the machine's own namespace.
	if got := links(t); got != rootLinks {
		t.Errorf("the machine's own links changed:\n%s\nwant\n%s", got, rootLinks)
	}
}

// waitInside waits until n processes run in namespace ns: `ip netns exec`
// enters it only after it started.
func waitInside(t *testing.T, ns string, n int) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(10 * time.Second); ; <-tick.C {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		if len(strings.Fields(string(out))) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes never entered namespace %s", n, ns)
		}
	}
}

// links lists the interfaces of the test process's own namespace.
func links(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	must(t, err)
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, f[1])
		}
	}
	return strings.Join(names, " ")
}

// Close kills what runs inside and removes every namespace and the run's
// directory.
func TestCloseRemovesEverything(t *testing.T) {
	n := ForTest(t, "ocdn-nstest") // closed below; closing again at the end is a no-op
	h, err := n.Host("h")
	must(t, err)
	p, err := h.Start("sleep", filepath.Join(n.Dir(), "sleep.log"), "sleep", "600")
	must(t, err)
	// A process the network did not start (a daemon that forked).
	stray := exec.Command("ip", "netns", "exec", h.Name(), "sleep", "600")
	must(t, stray.Start())
	strayDone := make(chan error, 1)
	go func() { strayDone <- stray.Wait() }() // owner: the test; ends when Close kills it
	waitInside(t, h.Name(), 2)
	must(t, n.Close())
	select {
	case <-p.Done():
	default:
		t.Error("the started process still runs after Close")
	}
	select {
	case <-strayDone:
	case <-time.After(10 * time.Second):
		t.Error("the stray process still runs after Close")
	}
	if _, err := os.Stat(filepath.Join(runDir, h.Name())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s remains after Close (%v)", h.Name(), err)
	}
	if _, err := os.Stat(n.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run directory %s remains after Close (%v)", n.Dir(), err)
	}
}

// A run that died (its pid is gone) left a namespace with a process in it
// and its directory; the next New removes both, and leaves live runs' alone.
func TestNewSweepsDeadRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(ErrNeedsRoot)
		}
		t.Skip(ErrNeedsRoot)
	}
	const prefix = "ocdn-nssweep"
	gone := exec.Command("true")
	must(t, gone.Run())
	deadPid := gone.Process.Pid // exited and reaped: no such process now
	if alive(deadPid) {
		t.Skipf("pid %d was reused already", deadPid)
	}
	deadNS := fmt.Sprintf("%s%d-abcdef-host", prefix, deadPid)
	liveNS := fmt.Sprintf("%s%d-abcdef-host", prefix, os.Getpid())
	deadDir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-abcdef", prefix, deadPid))
	for _, ns := range []string{deadNS, liveNS} {
		must(t, ip("netns", "add", ns))
		t.Cleanup(func() { remove(ns) })
	}
	must(t, os.Mkdir(deadDir, 0o755))
	t.Cleanup(func() { os.RemoveAll(deadDir) })
	left := exec.Command("ip", "netns", "exec", deadNS, "sleep", "600")
	left.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	must(t, left.Start())
	leftDone := make(chan struct{})
	go func() { left.Wait(); close(leftDone) }() // owner: the test; ends when the sweep kills it
	waitInside(t, deadNS, 1)                     // as a dead run's process would long be

	n := ForTest(t, prefix)
	if _, err := os.Stat(filepath.Join(runDir, deadNS)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run's namespace %s not swept (%v)", deadNS, err)
	}
	if _, err := os.Stat(deadDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dead run's directory %s not swept (%v)", deadDir, err)
	}
	select {
	case <-leftDone:
	case <-time.After(10 * time.Second):
		t.Error("the process left in the dead run's namespace still runs")
	}
	if _, err := os.Stat(filepath.Join(runDir, liveNS)); err != nil {
		t.Errorf("a live run's namespace was swept: %v", err)
	}
	if !strings.HasPrefix(n.Tag(), fmt.Sprintf("%s%d-", prefix, os.Getpid())) {
		t.Errorf("Tag() = %q, want %s<pid>-…", n.Tag(), prefix)
	}
}
