// Package placement provides content placement: which appliances of a
// manifest cluster hold which files. Files are spread by weighted
// rendezvous hashing (weights = capacity), so adding or removing one
// appliance moves only the files it gains or loses, and every appliance
// fills to its capacity.
package placement

import (
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/content"
)

// Node is an appliance that can hold files.
type Node struct {
	ID       string
	Capacity int64
}

// score is the weighted rendezvous score of key on node: -w/ln(u) with u
// uniform in (0,1) from the hash. The highest score wins; with weights
// proportional to capacity each node wins in proportion to its weight.
func score(key, node string, weight float64) float64 {
	h := xxhash.Sum64String(key + "\x00" + node)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -weight / math.Log(u)
}

// Rank orders nodes for key, best first (weights = capacity).
func Rank(key string, nodes []Node) []Node {
	type scored struct {
		n Node
		s float64
	}
	ss := make([]scored, len(nodes))
	for i, n := range nodes {
		ss[i] = scored{n, score(key, n.ID, float64(max(n.Capacity, 1)))}
	}
	// Insertion sort: clusters are small and this keeps Rank allocation-light.
	for i := 1; i < len(ss); i++ {
		for j := i; j > 0 && ss[j].s > ss[j-1].s; j-- {
			ss[j], ss[j-1] = ss[j-1], ss[j]
		}
	}
	out := make([]Node, len(ss))
	for i, s := range ss {
		out[i] = s.n
	}
	return out
}

// Cluster places files, most valuable first, on the nodes of one cluster:
// each file on up to replicas nodes in rendezvous order, skipping nodes
// that are full. It returns each node's files.
func Cluster(files []content.File, nodes []Node, replicas int) map[string][]content.File {
	free := make(map[string]int64, len(nodes))
	out := make(map[string][]content.File, len(nodes))
	for _, n := range nodes {
		free[n.ID] = n.Capacity
		out[n.ID] = nil
	}
	for _, f := range files {
		placed := 0
		for _, n := range Rank(f.Path, nodes) {
			if placed == replicas {
				break
			}
			if free[n.ID] >= f.Size {
				free[n.ID] -= f.Size
				out[n.ID] = append(out[n.ID], f)
				placed++
			}
		}
	}
	return out
}
