package placement

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/rendezvous"
)

// Item is a file with its predicted demand in the cluster's region.
type Item struct {
	File content.File
	// Demand is predicted bytes served per day.
	Demand float64
}

// Options tune Plan. The zero value is usable.
type Options struct {
	// MinReplicas is the fewest copies of a placed file (default 1; it is
	// capped by the number of nodes).
	MinReplicas int
	// Epsilon is the bounded-load slack: no node holds more than
	// (1+Epsilon)× its capacity-proportional share of the placed bytes
	// (default 0.1).
	Epsilon float64
	// Fill is the share of the cluster's capacity to use (default 0.95;
	// the rest is headroom for fill in progress).
	Fill float64
	// Prev is the previous plan's copies per path. Files already placed
	// keep their copy count while their demand stays within Hysteresis of
	// its band, and are preferred by that margin at the capacity cut-off,
	// so small popularity changes move few bytes.
	Prev map[string]int
	// Hysteresis is that margin (default 0.1).
	Hysteresis float64
	// PrevNodes is the previous plan's holders of each path. A file keeps
	// its copies on the nodes that held them (while they have room under
	// the load cap) rather than moving to where rendezvous would put it
	// today; without Prev, the copy counts are taken from it.
	PrevNodes map[string][]string
	// MaxAdded bounds the bytes the plan adds to nodes that did not hold
	// them in PrevNodes (0: no bound). Files and extra copies are taken
	// in rank order while they fit the bound; what does not fit waits for
	// the next plan (Result.Capped), and the files it would have
	// displaced stay. A plan that still adds more, because the load cap
	// moved copies, is retried with a smaller budget, and in the end
	// replaced by the previous placement itself.
	MaxAdded int64
}

// Result is a cluster's placement.
type Result struct {
	// Nodes is each node's files, most valuable first.
	Nodes map[string][]content.File
	// Copies is how many nodes hold each placed file.
	Copies map[string]int
	// Bytes is each node's stored bytes.
	Bytes map[string]int64
	// Added is the bytes placed on nodes that did not hold them in
	// Options.PrevNodes: what fill must download.
	Added int64
	// Capped says the MaxAdded bound held back files or copies the
	// ranking wanted: another plan soon would move more.
	Capped bool
}

// Plan places files on the nodes of one manifest cluster:
//
//  1. Selection. Files are ranked by predicted bytes served per byte
//     stored (Demand/Size). Each gets r = ⌈N·d/d_max⌉ copies (replicas ∝
//     popularity: the hottest file on all N nodes), clamped to
//     [MinReplicas, N]. Files are taken in rank order while the copies fit
//     in Fill × capacity; a file that does not fit with r copies is tried
//     with fewer. Capacity left over then buys extra copies, hottest
//     first, up to N.
//  2. Assignment. Each file's copies go to the first nodes of its weighted
//     rendezvous order (weights = capacity, so heterogeneous nodes fill in
//     proportion) that still have room under the bounded-load cap
//     min(capacity, (1+ε)·share·placed + largest file). Rendezvous keeps a
//     file on the same nodes from plan to plan; the cap keeps an unlucky
//     node from being overfilled.
//
// The rendezvous order is computed for the best few nodes only, in
// parallel, which keeps 100,000 files × 1,000 nodes within seconds.
func Plan(items []Item, nodes []Node, opt Options) Result {
	opt = opt.withDefaults()
	if opt.MaxAdded <= 0 || len(opt.PrevNodes) == 0 {
		return plan(items, nodes, opt, -1)
	}
	budget := opt.MaxAdded
	for range 4 {
		res := plan(items, nodes, opt, budget)
		if res.Added <= opt.MaxAdded {
			return res
		}
		// The load cap moved copies the selection did not count: ask
		// for less, by the excess and a little more.
		budget -= res.Added - opt.MaxAdded + budget/10
		if budget <= 0 {
			break
		}
	}
	return keepPrev(items, nodes, opt)
}

func (opt Options) withDefaults() Options {
	if opt.MinReplicas <= 0 {
		opt.MinReplicas = 1
	}
	if opt.Epsilon <= 0 {
		opt.Epsilon = 0.1
	}
	if opt.Fill <= 0 || opt.Fill > 1 {
		opt.Fill = 0.95
	}
	if opt.Hysteresis <= 0 {
		opt.Hysteresis = 0.1
	}
	if opt.Prev == nil && opt.PrevNodes != nil {
		opt.Prev = make(map[string]int, len(opt.PrevNodes))
		for p, ns := range opt.PrevNodes {
			opt.Prev[p] = len(ns)
		}
	}
	return opt
}

// keepPrev is the previous placement, unchanged (files no longer in items
// dropped): what a plan that cannot meet MaxAdded falls back to.
func keepPrev(items []Item, nodes []Node, opt Options) Result {
	res := Result{Nodes: make(map[string][]content.File, len(nodes)), Copies: map[string]int{}, Bytes: make(map[string]int64, len(nodes)), Capped: true}
	known := make(map[string]bool, len(nodes))
	for _, nd := range nodes {
		res.Nodes[nd.ID] = nil
		known[nd.ID] = true
	}
	for _, it := range items {
		for _, id := range opt.PrevNodes[it.File.Path] {
			if known[id] {
				res.Nodes[id] = append(res.Nodes[id], it.File)
				res.Bytes[id] += it.File.Size
				res.Copies[it.File.Path]++
			}
		}
	}
	return res
}

// plan is Plan with a churn budget for the selection (negative: none).
func plan(items []Item, nodes []Node, opt Options, churnBudget int64) Result {
	res := Result{Nodes: make(map[string][]content.File, len(nodes)), Copies: map[string]int{}, Bytes: make(map[string]int64, len(nodes))}
	n := len(nodes)
	for _, nd := range nodes {
		res.Nodes[nd.ID] = nil
	}
	if n == 0 || len(items) == 0 {
		return res
	}
	var capTotal float64
	for _, nd := range nodes {
		capTotal += float64(max(nd.Capacity, 0))
	}
	minR := min(opt.MinReplicas, n)

	// 1. Selection.
	type sel struct {
		i       int // index into items
		density float64
		r       int
	}
	var dmax float64
	for _, it := range items {
		dmax = max(dmax, it.Demand)
	}
	cand := make([]sel, 0, len(items))
	for i, it := range items {
		if it.File.Size <= 0 {
			continue
		}
		d := max(it.Demand, 0)
		density := d / float64(it.File.Size)
		prev, had := opt.Prev[it.File.Path]
		if had {
			density *= 1 + opt.Hysteresis
		}
		r := minR
		if dmax > 0 {
			x := float64(n) * d / dmax
			r = int(math.Ceil(x))
			if had && prev > 0 && x > float64(prev-1)*(1-opt.Hysteresis) && x <= float64(prev)*(1+opt.Hysteresis) {
				r = prev
			}
			r = min(max(r, minR), n)
		}
		cand = append(cand, sel{i: i, density: density, r: r})
	}
	// The item index as the last key makes this a total order, so the
	// unstable sort gives what a stable one would, several times faster
	// (the simulator plans thousands of sites).
	slices.SortFunc(cand, func(a, b sel) int {
		if c := cmp.Compare(b.density, a.density); c != 0 {
			return c
		}
		if c := cmp.Compare(items[a.i].File.Path, items[b.i].File.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	budget := opt.Fill * capTotal
	var used float64
	// Copies beyond a file's previous count are new bytes on some node:
	// they spend the churn budget (when there is one).
	churn := float64(churnBudget)
	added := func(c sel, from, to int) float64 {
		prev := len(opt.PrevNodes[items[c.i].File.Path])
		return float64(max(to, prev)-max(from, prev)) * float64(items[c.i].File.Size)
	}
	capped := false
	chosen := cand[:0]
	for _, c := range cand {
		size := float64(items[c.i].File.Size)
		r := c.r
		for r > 0 && used+float64(r)*size > budget {
			r--
		}
		// Capped only when the churn bound, not capacity, refuses. A
		// file comes in (or back to strength) with at least MinReplicas
		// copies or not at all: one copy of a new file is one failure
		// from a miss.
		if churnBudget >= 0 && r > 0 && added(c, 0, r) > churn {
			capped = true
			prev := len(opt.PrevNodes[items[c.i].File.Path])
			for r > prev && added(c, 0, r) > churn {
				r--
			}
			if r > prev && r < min(minR, c.r) {
				r = prev
			}
		}
		if r == 0 {
			continue // a smaller file further down may still fit
		}
		if churnBudget >= 0 {
			churn -= added(c, 0, r)
		}
		c.r = r
		used += float64(r) * size
		chosen = append(chosen, c)
	}
	for k := range chosen {
		size := float64(items[chosen[k].i].File.Size)
		for chosen[k].r < n && used+size <= budget {
			if churnBudget >= 0 {
				cost := added(chosen[k], chosen[k].r, chosen[k].r+1)
				if cost > churn {
					capped = true
					break
				}
				churn -= cost
			}
			chosen[k].r++
			used += size
		}
	}
	res.Capped = capped

	// 2. Assignment.
	var maxSize int64
	for _, c := range chosen {
		maxSize = max(maxSize, items[c.i].File.Size)
	}
	limit := make([]int64, n)
	weights := make([]float64, n)
	nodeHash := make([]uint64, n)
	for j, nd := range nodes {
		share := float64(max(nd.Capacity, 0)) / capTotal
		limit[j] = min(nd.Capacity, int64((1+opt.Epsilon)*share*used)+maxSize)
		weights[j] = float64(max(nd.Capacity, 1))
		nodeHash[j] = xxhash.Sum64String(nd.ID)
	}
	// Best few nodes per file, computed in parallel.
	const slack = 6
	tops := make([][]int32, len(chosen))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	chunk := (len(chosen) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(chosen))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			scores := make([]float64, 0, 16)
			for k := lo; k < hi; k++ {
				c := chosen[k]
				kk := min(n, c.r+slack)
				tops[k], scores = topK(xxhash.Sum64String(items[c.i].File.Path), nodeHash, weights, kk, scores[:0])
			}
		}()
	}
	wg.Wait()
	var index map[string]int32
	if len(opt.PrevNodes) > 0 {
		index = make(map[string]int32, n)
		for j, nd := range nodes {
			index[nd.ID] = int32(j)
		}
	}
	bytes := make([]int64, n)
	var prevAt, taken []int32
	for k, c := range chosen {
		f := items[c.i].File
		prevAt, taken = prevAt[:0], taken[:0]
		for _, id := range opt.PrevNodes[f.Path] {
			if j, ok := index[id]; ok {
				prevAt = append(prevAt, j)
			}
		}
		take := func(j int32) {
			bytes[j] += f.Size
			res.Nodes[nodes[j].ID] = append(res.Nodes[nodes[j].ID], f)
			taken = append(taken, j)
			if !slices.Contains(prevAt, j) {
				res.Added += f.Size
			}
		}
		fits := func(j int32) bool {
			return len(taken) < c.r && !slices.Contains(taken, j) && bytes[j]+f.Size <= limit[j]
		}
		// Nodes that held the file keep it, best rendezvous rank first,
		// so that a file moves only when it must.
		if len(prevAt) > 0 {
			for _, j := range tops[k] {
				if slices.Contains(prevAt, j) && fits(j) {
					take(j)
				}
			}
			for _, j := range prevAt {
				if fits(j) {
					take(j)
				}
			}
		}
		for _, j := range tops[k] {
			if fits(j) {
				take(j)
			}
		}
		if len(taken) < c.r && len(tops[k]) < n {
			// Every one of the best few is at its cap: walk the full order.
			for _, j := range fullOrder(xxhash.Sum64String(f.Path), nodeHash, weights) {
				if fits(j) {
					take(j)
				}
			}
		}
		if len(taken) > 0 {
			res.Copies[f.Path] = len(taken)
		}
	}
	for j, nd := range nodes {
		res.Bytes[nd.ID] = bytes[j]
	}
	return res
}

// fastScore is the weighted rendezvous score -w/ln(u).
func fastScore(fh, nh uint64, w float64) float64 {
	h := rendezvous.Mix(fh ^ rendezvous.Mix(nh))
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -w / fastLog(u)
}

// fastLog is ln(x) for x in (0,1), several times faster than math.Log:
// with x = m·2^e, m in [1/√2, √2), ln x = e·ln 2 + 2·atanh((m−1)/(m+1)),
// the series cut after four terms (|z| < 0.172, so the relative error is
// below 1e-7, also near x = 1 where the winning scores are). Rendezvous
// only needs a deterministic, well-spread score, not a correctly rounded
// one.
func fastLog(x float64) float64 {
	b := math.Float64bits(x)
	e := int((b>>52)&0x7ff) - 1023
	m := math.Float64frombits(b&^(0x7ff<<52) | 1023<<52)
	if m > math.Sqrt2 { // keep m near 1 so that the error is relative near x = 1
		m /= 2
		e++
	}
	z := (m - 1) / (m + 1)
	z2 := z * z
	return float64(e)*math.Ln2 + 2*z*(1+z2*(1.0/3+z2*(1.0/5+z2*(1.0/7))))
}

// topK returns the k best nodes for the file, best first.
func topK(fh uint64, nodeHash []uint64, weights []float64, k int, scores []float64) ([]int32, []float64) {
	idx := make([]int32, 0, k)
	for j := range nodeHash {
		s := fastScore(fh, nodeHash[j], weights[j])
		if len(idx) == k && s <= scores[k-1] {
			continue
		}
		if len(idx) < k {
			idx = append(idx, 0)
			scores = append(scores, 0)
		}
		p := len(idx) - 1
		for p > 0 && scores[p-1] < s {
			idx[p], scores[p] = idx[p-1], scores[p-1]
			p--
		}
		idx[p], scores[p] = int32(j), s
	}
	return idx, scores
}

func fullOrder(fh uint64, nodeHash []uint64, weights []float64) []int32 {
	idx, _ := topK(fh, nodeHash, weights, len(nodeHash), make([]float64, 0, len(nodeHash)))
	return idx
}

// Churn compares two placements of the same nodes: replaced is the bytes
// the new one stores on a node that did not hold them before (what fill
// must download), stored is the new placement's total.
func Churn(old, new map[string][]content.File) (replaced, stored int64) {
	for id, files := range new {
		had := make(map[string]bool, len(old[id]))
		for _, f := range old[id] {
			had[f.Path] = true
		}
		for _, f := range files {
			stored += f.Size
			if !had[f.Path] {
				replaced += f.Size
			}
		}
	}
	return replaced, stored
}
