package steer

import (
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

// TestArmTokens: a client's token names its experiment arm and the arm's
// congestion control; tokens are shared within an arm and differ between
// arms; a client outside any experiment gets the untagged token.
func TestArmTokens(t *testing.T) {
	ks := urlsign.Generate()
	now := time.Unix(1_800_000_000, 0)
	e := &Engine{Keys: func() *urlsign.KeySet { return ks }, TokenTTL: time.Hour, Now: func() time.Time { return now }}
	bbr := Arm{Experiment: "cc1", Name: "bbr", CongestionControl: "bbr"}
	cubic := Arm{Experiment: "cc1", Name: "cubic", CongestionControl: "cubic"}
	tb, err := e.ArmToken("t0001/a.mp4", bbr)
	if err != nil {
		t.Fatal(err)
	}
	tb2, _ := e.ArmToken("t0001/b.mp4", bbr)
	tc, _ := e.ArmToken("t0001/a.mp4", cubic)
	plain, _ := e.Token("t0001/a.mp4")
	if tb != tb2 {
		t.Errorf("two files of one title in one arm got different tokens")
	}
	if tb == tc || tb == plain || tc == plain {
		t.Errorf("arms share a token: bbr %q, cubic %q, none %q", tb, tc, plain)
	}
	for tok, want := range map[string]Arm{tb: bbr, tc: cubic, plain: {}} {
		g, err := ks.Parse(tok)
		if err != nil {
			t.Fatal(err)
		}
		if got := (Arm{g.Experiment, g.Arm, g.CongestionControl}); got != want || g.Scope != "t0001/" {
			t.Errorf("token grant %+v, want arm %+v on scope t0001/", g, want)
		}
	}
}
