package placement

import (
	"fmt"
	"math"
	"testing"

	"github.com/ocdn/ocdn/internal/content"
)

func files(n int, size int64) []content.File {
	out := make([]content.File, n)
	for i := range out {
		out[i] = content.File{Path: fmt.Sprintf("t%04d/v.mp4", i), Size: size}
	}
	return out
}

func TestClusterReplicasAndCapacity(t *testing.T) {
	nodes := []Node{{"a", 1000}, {"b", 1000}, {"c", 500}}
	got := Cluster(files(20, 100), nodes, 2)
	copies := map[string]int{}
	for id, fs := range got {
		var used int64
		for _, f := range fs {
			copies[f.Path]++
			used += f.Size
		}
		var capacity int64
		for _, n := range nodes {
			if n.ID == id {
				capacity = n.Capacity
			}
		}
		if used > capacity {
			t.Errorf("node %s holds %d bytes, capacity %d", id, used, capacity)
		}
	}
	// 2500 bytes hold 25 copies. The most valuable files come first, so
	// the first ten (20 copies, which any placement fits) get both, and
	// greedy packing wastes at most a couple of slots.
	total := 0
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("t%04d/v.mp4", i)
		if i < 10 && copies[p] != 2 {
			t.Errorf("%s has %d copies, want 2", p, copies[p])
		}
		if copies[p] > 2 {
			t.Errorf("%s has %d copies, more than the 2 replicas asked for", p, copies[p])
		}
		total += copies[p]
	}
	if total < 23 {
		t.Errorf("placed %d copies in room for 25", total)
	}
}

func TestRankIsWeightedAndStable(t *testing.T) {
	nodes := []Node{{"small", 1}, {"big", 3}}
	wins := 0
	const n = 20000
	for i := 0; i < n; i++ {
		if Rank(fmt.Sprint(i), nodes)[0].ID == "big" {
			wins++
		}
	}
	if share := float64(wins) / n; math.Abs(share-0.75) > 0.02 {
		t.Errorf("node with 3/4 of the weight wins %.3f of keys, want 0.75", share)
	}
	// Removing a node moves only the keys it had.
	three := []Node{{"a", 1}, {"b", 1}, {"c", 1}}
	moved := 0
	for i := 0; i < n; i++ {
		k := fmt.Sprint(i)
		before := Rank(k, three)[0].ID
		after := Rank(k, three[:2])[0].ID
		if before != "c" && before != after {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys moved between surviving nodes when one node left", moved)
	}
}
