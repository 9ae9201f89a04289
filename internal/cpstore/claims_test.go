package cpstore

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/cpstore/pgtest"
)

// exerciseClaims: two handles (two replicas) claim overlapping id sets at
// once; every id ends with exactly one holder, and both see the same one.
func exerciseClaims(t *testing.T, dsn string) {
	ctx := context.Background()
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	at := time.Unix(1_800_000_000, 0)
	ids := make([]string, 1200) // more than two chunks
	for i := range ids {
		ids[i] = fmt.Sprintf("r%05d", i)
	}
	// Replica 0 claims the first two thirds, replica 1 the last two
	// thirds (reversed: the store must not deadlock on the order), both
	// at once and several times over.
	var got [2][]map[string]string
	var wg sync.WaitGroup
	for r := range 2 {
		for range 3 {
			mine := ids[:800]
			if r == 1 {
				mine = make([]string, 0, 800)
				for i := len(ids) - 1; i >= 400; i-- {
					mine = append(mine, ids[i])
				}
			}
			res := make(map[string]string)
			got[r] = append(got[r], res)
			wg.Go(func() {
				m, err := stores[r].ClaimReports(ctx, fmt.Sprintf("store%d/1", r), at, mine)
				if err != nil {
					t.Error(err)
					return
				}
				for k, v := range m {
					res[k] = v
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	holder := map[string]string{}
	for r := range 2 {
		for _, m := range got[r] {
			if len(m) != 800 {
				t.Errorf("replica %d: %d holders returned, want one per id (800)", r, len(m))
			}
			for id, h := range m {
				if prev, ok := holder[id]; ok && prev != h {
					t.Fatalf("id %s: holder %s in one answer, %s in another", id, prev, h)
				}
				holder[id] = h
			}
		}
	}
	for i, id := range ids {
		want := ""
		switch {
		case i < 400:
			want = "store0/1"
		case i >= 800:
			want = "store1/1"
		}
		if want != "" && holder[id] != want {
			t.Errorf("%s: holder %q, want %q (only one replica claimed it)", id, holder[id], want)
		}
	}
	// Forgetting: claims made before the cut go, a later claim stays.
	if _, err := stores[0].ClaimReports(ctx, "store0/2", at.Add(time.Hour), []string{"late"}); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].ForgetReportClaims(ctx, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	m, err := stores[1].ClaimReports(ctx, "store1/3", at.Add(2*time.Hour), []string{ids[0], "late"})
	if err != nil {
		t.Fatal(err)
	}
	if m[ids[0]] != "store1/3" || m["late"] != "store0/2" {
		t.Errorf("after ForgetReportClaims: holders %v; want %s re-claimed by store1/3 and late kept by store0/2", m, ids[0])
	}
}

func TestClaimsSQLite(t *testing.T) { exerciseClaims(t, filepath.Join(t.TempDir(), "cp.db")) }

func TestClaimsPostgreSQL(t *testing.T) { exerciseClaims(t, pgtest.Start(t)) }

// Replicas starting at the same moment both create the schema.
func TestConcurrentOpenPostgreSQL(t *testing.T) {
	dsn := pgtest.Start(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}
