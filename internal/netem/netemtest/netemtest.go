// Package netemtest provides a packet path for tests: started, skipped
// with a reason when the machine cannot (not root, no iproute2) or failed
// instead under OCDN_REQUIRE_EXTERNAL=1, and always removed at the end.
package netemtest

import (
	"errors"
	"os"
	"testing"

	"github.com/ocdn/ocdn/internal/netem"
)

// NewPath starts a netem.Path for t and closes it in t.Cleanup, checking
// that its namespaces are gone afterwards.
func NewPath(t testing.TB, cfg netem.PathConfig) *netem.Path {
	t.Helper()
	// A test binary killed by its timeout leaves its namespaces behind.
	if err := netem.RemoveStale(); err != nil {
		t.Logf("removing stale paths: %v", err)
	}
	p, err := netem.NewPath(cfg)
	if err != nil {
		if errors.Is(err, netem.ErrNeedsRoot) || errors.Is(err, netem.ErrNoIP) {
			if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
				t.Fatalf("packet path: %v", err)
			}
			t.Skipf("packet path: %v; set OCDN_REQUIRE_EXTERNAL=1 to make this a failure", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the packet path: %v", err)
		}
		for _, ns := range []string{p.ClientNetns(), p.ServerNetns()} {
			if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s still exists after Close (stat: %v)", ns, err)
			}
		}
	})
	return p
}
