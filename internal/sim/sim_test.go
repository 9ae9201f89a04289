package sim

import (
	"context"
	"testing"
)

func TestRunSmallWorld(t *testing.T) {
	w := testWorld(t)
	sc := testScenario(t)
	sm, err := New(w, sc, Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sm.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s)
}
