package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/content"
)

// zipfItems makes n files of 1-4 MB whose demand follows Zipf(s) by index.
func zipfItems(n int, s float64, rng *rand.Rand) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{File: content.File{Path: fmt.Sprintf("t%06d/v.mp4", i), Size: int64(1+rng.IntN(4)) << 20},
			Demand: 1e9 / math.Pow(float64(i+1), s)}
	}
	return out
}

func heteroNodes(n int, base int64) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: fmt.Sprintf("node-%04d", i), Capacity: base * int64(1+i%3)} // 1×, 2×, 3×
	}
	return out
}

func TestPlanCapacityReplicasAndBoundedLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	items := zipfItems(5000, 0.9, rng)
	nodes := heteroNodes(12, 400<<20)
	res := Plan(items, nodes, Options{MinReplicas: 1, Epsilon: 0.1})
	var placed int64
	for _, nd := range nodes {
		placed += res.Bytes[nd.ID]
	}
	var capTotal int64
	for _, nd := range nodes {
		capTotal += nd.Capacity
	}
	for _, nd := range nodes {
		if res.Bytes[nd.ID] > nd.Capacity {
			t.Errorf("node %s holds %d bytes, capacity %d", nd.ID, res.Bytes[nd.ID], nd.Capacity)
		}
		fair := 1.1*float64(placed)*float64(nd.Capacity)/float64(capTotal) + 4<<20
		if float64(res.Bytes[nd.ID]) > fair {
			t.Errorf("node %s holds %d bytes, above (1+ε)× its fair share %.0f", nd.ID, res.Bytes[nd.ID], fair)
		}
	}
	if float64(placed) < 0.9*float64(capTotal) {
		t.Errorf("placed %d of %d bytes of capacity; want the cluster filled", placed, capTotal)
	}
	if got := res.Copies[items[0].File.Path]; got != len(nodes) {
		t.Errorf("hottest file has %d copies, want one per node (%d)", got, len(nodes))
	}
	// Copies never increase down the ranking of files that are placed.
	if a, b := res.Copies[items[1].File.Path], res.Copies[items[50].File.Path]; a < b {
		t.Errorf("copies of rank 2 = %d < copies of rank 51 = %d", a, b)
	}
	// Each node's files are distinct.
	for id, fs := range res.Nodes {
		seen := map[string]bool{}
		for _, f := range fs {
			if seen[f.Path] {
				t.Fatalf("node %s holds %s twice", id, f.Path)
			}
			seen[f.Path] = true
		}
	}
}

// TestChurnSmallShuffle perturbs every file's demand so that ranks move by
// about ±5% and checks that at most 5% of stored bytes are replaced.
func TestChurnSmallShuffle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	items := zipfItems(20000, 0.9, rng)
	nodes := heteroNodes(20, 512<<20) // about 40% of the catalog
	first := Plan(items, nodes, Options{})
	next := slices.Clone(items)
	for i := range next {
		// ±5% rank shift: demand of rank i becomes that of rank i·(1±0.05).
		shift := 1 + (rng.Float64()*2-1)*0.05
		next[i].Demand = 1e9 / math.Pow(float64(i+1)*shift, 0.9)
	}
	second := Plan(next, nodes, Options{Prev: first.Copies})
	replaced, stored := Churn(first.Nodes, second.Nodes)
	share := float64(replaced) / float64(stored)
	t.Logf("churn after ±5%% rank shuffle: %.2f%% of %d stored bytes replaced", 100*share, stored)
	if share > 0.05 {
		t.Errorf("churn = %.2f%%, want ≤ 5%%", 100*share)
	}
}

// holders turns a plan into PrevNodes.
func holders(r Result) map[string][]string {
	out := map[string][]string{}
	for id, fs := range r.Nodes {
		for _, f := range fs {
			out[f.Path] = append(out[f.Path], id)
		}
	}
	return out
}

// TestChurnBound turns the coldest fifth of the catalog into the hottest
// and replans with a bound of 5% of capacity per plan: every plan adds at
// most the bound (counted as fill counts it: bytes new on a node), the
// hottest files come first, and a few plans reach what an unbounded plan
// would place.
func TestChurnBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	items := zipfItems(4000, 0.9, rng)
	nodes := heteroNodes(8, 256<<20)
	var capTotal int64
	for _, nd := range nodes {
		capTotal += nd.Capacity
	}
	first := Plan(items, nodes, Options{MinReplicas: 2})
	// Unchanged demand: nothing moves, bound or not.
	same := Plan(items, nodes, Options{MinReplicas: 2, PrevNodes: holders(first), MaxAdded: capTotal / 20})
	if same.Added != 0 || same.Capped {
		t.Errorf("replan with unchanged demand: added %d bytes, capped %v; want 0, false", same.Added, same.Capped)
	}
	shifted := slices.Clone(items)
	n := len(items)
	for i := range shifted {
		if i >= n*4/5 { // the coldest fifth becomes the hottest
			shifted[i].Demand = 2e9 / math.Pow(float64(n-i), 0.9)
		}
	}
	hot := shifted[n-1].File.Path
	bound := capTotal / 20
	unbounded := Plan(shifted, nodes, Options{MinReplicas: 2, PrevNodes: holders(first)})
	if unbounded.Added <= 2*bound {
		t.Fatalf("test is too gentle: the unbounded replan adds only %d bytes (bound %d)", unbounded.Added, bound)
	}
	prev := first
	for step := 1; ; step++ {
		res := Plan(shifted, nodes, Options{MinReplicas: 2, PrevNodes: holders(prev), MaxAdded: bound})
		replaced, _ := Churn(prev.Nodes, res.Nodes)
		if res.Added != replaced || res.Added > bound {
			t.Fatalf("step %d: Added = %d, Churn = %d; want equal and ≤ the bound %d", step, res.Added, replaced, bound)
		}
		for id, b := range res.Bytes {
			var c int64
			for _, nd := range nodes {
				if nd.ID == id {
					c = nd.Capacity
				}
			}
			if b > c {
				t.Fatalf("step %d: node %s holds %d bytes, capacity %d", step, id, b, c)
			}
		}
		before := holders(prev)
		for p, c := range res.Copies {
			if len(before[p]) == 0 && c < 2 {
				t.Fatalf("step %d: new file %s came in with %d copy, want at least MinReplicas (2)", step, p, c)
			}
		}
		if step == 1 && res.Copies[hot] == 0 {
			t.Errorf("step 1: the new hottest file %s is not placed; the bound must spend on the hottest first", hot)
		}
		prev = res
		if !res.Capped {
			t.Logf("converged after %d bounded plans of ≤ %d bytes (the unbounded plan adds %d)", step, bound, unbounded.Added)
			break
		}
		if step > 3*int(unbounded.Added/bound+1) {
			t.Fatalf("still capped after %d plans", step)
		}
	}
	for p, c := range unbounded.Copies {
		if prev.Copies[p] == 0 && c > 0 {
			t.Errorf("after convergence %s (placed unbounded with %d copies) is not placed", p, c)
			break
		}
	}
}

// TestOffloadVsOracle simulates 30 days of Zipf demand with daily churn
// (popularity drifts, 1% of the catalog is released each day and announced
// in the new-release feed with a ±30% error) on one cluster holding a
// fifth of the catalog. Each day's placement uses the EWMA prediction of
// past days (content.Popularity); the oracle places with that day's true
// demand. Offload is the share of the day's requested bytes for files the
// cluster holds.
func TestOffloadVsOracle(t *testing.T) {
	const nFiles, days = 20000, 30
	rng := rand.New(rand.NewPCG(5, 6))
	items := zipfItems(nFiles, 0.9, rng)
	latent := make([]float64, nFiles) // popularity weight
	for i := range latent {
		latent[i] = 1 / math.Pow(float64(i+1), 0.9)
	}
	released := make([]bool, nFiles)
	for i := range released {
		released[i] = rng.Float64() < 0.7
	}
	var total int64
	for _, it := range items {
		total += it.File.Size
	}
	nodes := heteroNodes(10, total/5/20) // 10 nodes of 1-3 units: 20 units = a fifth of the catalog
	pop := content.NewPopularity(3*24*time.Hour, 24*time.Hour)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var prev map[string]int
	var sumOurs, sumOracle float64
	for day := 0; day < days; day++ {
		// Daily churn.
		var feed content.Feed
		for i := range latent {
			latent[i] *= math.Exp(rng.NormFloat64() * 0.15)
			if !released[i] && rng.Float64() < 0.01*1/0.3 {
				released[i] = true
				latent[i] = 1 / math.Pow(float64(1+rng.IntN(2000)), 0.9)
				feed.Predictions = append(feed.Predictions, content.Prediction{Path: items[i].File.Path,
					BytesPerDay: 1e10 * latent[i] * (1 + 0.3*(2*rng.Float64()-1))})
			}
		}
		pop.SetFeed(feed)
		truth := make([]Item, nFiles)
		var norm float64
		for i := range latent {
			if released[i] {
				norm += latent[i]
			}
		}
		for i := range truth {
			truth[i] = Item{File: items[i].File}
			if released[i] {
				truth[i].Demand = 1e10 * latent[i] / norm * 1.0
			}
		}
		predicted := make([]Item, nFiles)
		pred := pop.Region("site", clock)
		for i := range predicted {
			predicted[i] = Item{File: items[i].File, Demand: pred[items[i].File.Path]}
		}
		if day == 0 {
			predicted = truth // a warm start: day 0 has history
		}
		ours := Plan(predicted, nodes, Options{Prev: prev})
		prev = ours.Copies
		oracle := Plan(truth, nodes, Options{})
		off := func(r Result) float64 {
			var hit, all float64
			for _, it := range truth {
				all += it.Demand
				if r.Copies[it.File.Path] > 0 {
					hit += it.Demand
				}
			}
			return hit / all
		}
		o, q := off(ours), off(oracle)
		if day > 0 {
			sumOurs += o
			sumOracle += q
		}
		// The day's requests are observed and the clock moves on.
		for _, it := range truth {
			if it.Demand > 0 {
				pop.Observe("site", it.File.Path, int64(it.Demand), clock)
			}
		}
		clock = clock.Add(24 * time.Hour)
	}
	ours, oracle := sumOurs/(days-1), sumOracle/(days-1)
	fmt.Printf("offload over %d days: placement %.2f%%, oracle %.2f%%, gap %.2f pp\n", days-1, 100*ours, 100*oracle, 100*(oracle-ours))
	if oracle-ours > 0.05 {
		t.Errorf("offload %.2f%% is more than 5 pp below the oracle's %.2f%%", 100*ours, 100*oracle)
	}
}

// BenchmarkPlacement100kx1000 places 100,000 files on a cluster of 1,000
// heterogeneous appliances.
func BenchmarkPlacement100kx1000(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	items := zipfItems(100000, 0.9, rng)
	nodes := heteroNodes(1000, 200<<20)
	b.ResetTimer()
	for b.Loop() {
		Plan(items, nodes, Options{})
	}
}

func TestFastLog(t *testing.T) {
	for _, x := range []float64{1e-300, 1e-9, 0.001, 0.3, 0.5, 0.7071, 0.9, 0.999999} {
		if got, want := fastLog(x), math.Log(x); math.Abs(got-want) > 1e-7*math.Abs(want) {
			t.Errorf("fastLog(%g) = %g, want %g", x, got, want)
		}
	}
}
