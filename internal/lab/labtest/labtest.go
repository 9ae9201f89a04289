// Package labtest gives tests that drive a running lab from outside (a
// browser through the console or the web client) the built-in scenario made
// light enough to share a small machine, and appliance addresses nobody
// else on the machine is using.
package labtest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/lab"
)

// Shrink says how much lighter than the built-in scenario a test's lab is.
type Shrink struct {
	// Titles is the catalog's size (the built-in one has 12).
	Titles int
	// ClientShare scales every client group's count (at least one client
	// a group stays).
	ClientShare float64
	// ProbeEvery, when set, is how often clients probe: shorter than the
	// built-in interval makes measurements arrive within seconds.
	ProbeEvery time.Duration
}

// Scenario is the built-in lab scenario without its scheduled events (the
// test makes its own), running ten minutes whatever the built-in duration
// is (long enough for the slowest machine; the test ends the lab), shrunk
// as s says.
func Scenario(t testing.TB, s Shrink) *lab.Scenario {
	t.Helper()
	sc, err := lab.LoadScenario("")
	if err != nil {
		t.Fatalf("built-in scenario: %v", err)
	}
	sc.Events = nil
	sc.Duration = 10 * time.Minute
	if s.Titles > 0 {
		sc.Catalog.Titles = s.Titles
	}
	if s.ClientShare > 0 {
		for i := range sc.Clients {
			sc.Clients[i].Count = max(1, int(float64(sc.Clients[i].Count)*s.ClientShare))
		}
	}
	if s.ProbeEvery > 0 {
		sc.Probes.Every = s.ProbeEvery
	}
	if err := sc.Validate(); err != nil {
		t.Fatalf("shrunk scenario: %v", err)
	}
	return sc
}

// FreeOctet is a lab.Options.ApplianceOctet in 100–239 under which the
// built-in scenario's appliance addresses (127.1.0.* to 127.1.2.*, port
// 18080) are free now: other packages' lab tests, or other runs on the
// machine, may be using theirs.
func FreeOctet(t testing.TB) int {
	t.Helper()
	free := func(o int) bool {
		for site := range 3 {
			for host := 1; host <= 2; host++ {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.1.%d.%d:18080", o+site, host))
				if err != nil {
					return false
				}
				ln.Close()
			}
		}
		return true
	}
	start := rand.IntN(140)
	for i := range 140 {
		if o := 100 + (start+i)%140; free(o) {
			return o
		}
	}
	t.Fatal("no free appliance addresses in 127.1.100.0 to 127.1.241.0")
	return 0
}
