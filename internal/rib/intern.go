package rib

import (
	"encoding/binary"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"
	"weak"
)

// interned holds one weak reference to every attribute set a table uses,
// by hash. References do not keep a set alive: once no table points to it
// the collector frees it and a cleanup drops its entry, so the pool never
// outgrows the live tables however routes churn.
var interned = attrsPool{sets: make(map[uint64][]weak.Pointer[Attrs])}

type attrsPool struct {
	mu   sync.Mutex
	seed maphash.Seed
	sets map[uint64][]weak.Pointer[Attrs]
}

func init() { interned.seed = maphash.MakeSeed() }

// intern returns the shared attribute set equal to a, making one (with
// its own copy of the AS path) when none is alive. The result must not be
// modified.
func intern(a *Attrs) *Attrs {
	h := interned.hash(a)
	interned.mu.Lock()
	defer interned.mu.Unlock()
	for _, w := range interned.sets[h] {
		if p := w.Value(); p != nil && p.Equal(a) {
			return p
		}
	}
	p := new(Attrs)
	*p = *a
	p.ASPath = slices.Clip(slices.Clone(a.ASPath))
	interned.sets[h] = append(interned.sets[h], weak.Make(p))
	runtime.AddCleanup(p, interned.forget, h)
	return p
}

// interner interns a batch of routes, remembering the last set: the
// routes of a dump or an UPDATE often share their attributes with the
// route before, and comparing with it is much cheaper than the pool.
type interner struct{ last *Attrs }

func (in *interner) intern(a *Attrs) *Attrs {
	if in.last == nil || !in.last.Equal(a) {
		in.last = intern(a)
	}
	return in.last
}

// forget drops the collected sets among those with hash h.
func (ap *attrsPool) forget(h uint64) {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	live := slices.DeleteFunc(ap.sets[h], func(w weak.Pointer[Attrs]) bool { return w.Value() == nil })
	if len(live) == 0 {
		delete(ap.sets, h)
	} else {
		ap.sets[h] = live
	}
}

// hash covers every field Equal compares.
func (ap *attrsPool) hash(a *Attrs) uint64 {
	var buf [128]byte // room for a 12-hop path without allocating
	b := buf[:0]
	nh, rid := a.NextHop.As16(), a.PeerRouterID.As16()
	b = append(b, nh[:]...)
	b = append(b, rid[:]...)
	b = append(b, byte(a.NextHop.BitLen()), byte(a.PeerRouterID.BitLen()), byte(a.Origin))
	if a.EBGP {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, a.LocalPref)
	b = binary.LittleEndian.AppendUint32(b, a.MED)
	b = binary.LittleEndian.AppendUint32(b, a.PeerASN)
	for _, asn := range a.ASPath {
		b = binary.LittleEndian.AppendUint32(b, asn)
	}
	return maphash.Bytes(ap.seed, b)
}
