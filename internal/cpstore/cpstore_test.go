package cpstore

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
)

func exercise(t *testing.T, dsn string) {
	ctx := context.Background()
	a, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn) // a second client: another replica
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := time.Unix(1_800_000_000, 5)
	err = a.Apply(ctx, []Change{
		{ID: "a1", Beat: &Beat{At: at, Heartbeat: json.RawMessage(`{"appliance":"a1"}`), ContentGen: 3, Held: []string{"t1/a.mp4"}}},
		{ID: "a2", SetDrain: true, Drain: &Drain{Reason: "disk swap", Until: at.Add(time.Hour)}},
		{ID: "a1", Routes: &Routes{Routes: json.RawMessage(`[{"prefix":"10.0.0.0/8"}]`), Epoch: "e", Seq: 7}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, top, err := b.Changes(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i].Version = 0
		got[i].LastBeat = got[i].LastBeat.UTC()
	}
	want := []Appliance{
		{ID: "a2", Drain: &Drain{Reason: "disk swap", Until: at.Add(time.Hour)}},
		{ID: "a1", LastBeat: at.UTC(), Heartbeat: json.RawMessage(`{"appliance":"a1"}`), ContentGen: 3, Held: []string{"t1/a.mp4"},
			Routes: json.RawMessage(`[{"prefix":"10.0.0.0/8"}]`), RouteEpoch: "e", RouteSeq: 7},
	}
	for i := range want {
		if want[i].Drain != nil {
			want[i].Drain.Until = want[i].Drain.Until.Local()
		}
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y time.Time) bool { return x.Equal(y) })); diff != "" {
		t.Errorf("Changes(0) diff (-want +got):\n%s", diff)
	}
	if more, top2, err := b.Changes(ctx, top); err != nil || len(more) != 0 || top2 != top {
		t.Errorf("Changes(top) = %v, %d, %v; want nothing new", more, top2, err)
	}
	if err := a.Apply(ctx, []Change{{ID: "a2", SetDrain: true}}); err != nil {
		t.Fatal(err)
	}
	more, _, err := b.Changes(ctx, top)
	if err != nil || len(more) != 1 || more[0].ID != "a2" || more[0].Drain != nil {
		t.Errorf("after enabling a2: Changes = %+v, %v; want a2 without a drain", more, err)
	}
	if err := a.LogAdmin(ctx, at, "operator", "drain", `{"appliance":"a2"}`); err != nil {
		t.Fatal(err)
	}
	if log, err := b.AdminLog(ctx); err != nil || len(log) != 1 || log[0].Action != "drain" {
		t.Errorf("AdminLog = %+v, %v", log, err)
	}
	// A turn-up pass is recorded once: the first time stays.
	if err := a.Apply(ctx, []Change{{ID: "a1", TurnedUp: at}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, []Change{{ID: "a1", TurnedUp: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	more, _, err = b.Changes(ctx, top)
	if err != nil || len(more) != 2 || more[1].ID != "a1" || !more[1].TurnedUp.Equal(at) || !more[0].TurnedUp.IsZero() {
		t.Errorf("after a1 passed turn-up twice: Changes = %+v, %v; want a2 not turned up, then a1 turned up at %v", more, err, at)
	}
}

// TestSQLiteAddsColumns: a database made before a column existed gets it
// when opened (SQLite cannot say ADD COLUMN IF NOT EXISTS).
func TestSQLiteAddsColumns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.db")
	old, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.db.ExecContext(ctx, `ALTER TABLE appliances DROP COLUMN turned_up_ns`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("opening a database without turned_up_ns: %v", err)
	}
	defer s.Close()
	at := time.Unix(1_800_000_000, 0)
	if err := s.Apply(ctx, []Change{{ID: "a1", TurnedUp: at}}); err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Changes(ctx, 0); err != nil || len(got) != 1 || !got[0].TurnedUp.Equal(at) {
		t.Errorf("Changes = %+v, %v; want a1 turned up at %v", got, err, at)
	}
}

func TestSQLite(t *testing.T) { exercise(t, filepath.Join(t.TempDir(), "cp.db")) }

func TestPostgreSQL(t *testing.T) { exercise(t, pgtest.Start(t)) }

func TestRedact(t *testing.T) {
	if got := redact("postgres://u:hunter2@h:5432/db"); got != "postgres://u:***@h:5432/db" {
		t.Errorf("redact = %q", got)
	}
}
