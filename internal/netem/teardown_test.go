package netem

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
		t.Fatal("packet paths need root")
	}
	t.Skip("packet paths need root; set OCDN_REQUIRE_EXTERNAL=1 to make this a failure")
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Whichever set-up step fails, NewPath removes every namespace and device
// it had made before returning the error.
func TestNewPathCleansUpAfterEveryFailingStep(t *testing.T) {
	requireRoot(t)
	cfg := PathConfig{
		ClientPrefixes: []netip.Prefix{netip.MustParsePrefix("127.64.0.0/16")},
		ServerPrefixes: []netip.Prefix{netip.MustParsePrefix("127.1.0.0/16")},
	}
	defer func() { runIP = ip }()
	steps := 0
	runIP = func(args ...string) error {
		if args[0] != "netns" || args[1] != "del" {
			steps++
		}
		return ip(args...)
	}
	p, err := NewPath(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("set-up runs %d ip commands", steps)
	fds := openFDs(t)
	injected := errors.New("injected failure")
	for fail := 1; fail <= steps; fail++ {
		n := 0
		var made []string
		runIP = func(args ...string) error {
			if args[0] == "netns" && args[1] == "del" {
				return ip(args...)
			}
			n++
			if n == fail {
				return injected
			}
			if args[0] == "netns" && args[1] == "add" {
				made = append(made, args[2])
			}
			return ip(args...)
		}
		p, err := NewPath(cfg)
		if !errors.Is(err, injected) || p != nil {
			t.Fatalf("NewPath failing at step %d = %v, %v; want the injected error", fail, p, err)
		}
		for _, ns := range made {
			if _, err := os.Stat(netnsDir + ns); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("step %d failed, yet namespace %s remains", fail, ns)
			}
		}
		if got := openFDs(t); got != fds {
			t.Errorf("step %d failed: %d file descriptors open, %d before (a TUN left open?)", fail, got, fds)
		}
	}
	ents, _ := os.ReadDir(netnsDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "ocdn-netem-"+strconv.Itoa(os.Getpid())+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}
