package fill

import (
	"cmp"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/content"
)

// A file leaves steering before it is deleted. The control plane steers
// clients to an appliance for the files the appliance reports holding
// (its heartbeat's Held list, sent whenever the reported generation
// changes). A file the manifest no longer lists is therefore first
// retired: the agent stops reporting it — the generation moves on, so the
// next heartbeat carries the shorter list — while the store keeps serving
// it to clients that already have its URL. Only when a heartbeat reply
// acknowledges a generation at which the file was no longer reported (the
// control plane has rebuilt steering without it) and RetireGrace has
// passed since, does the agent delete it. Until then the old file serves:
// an appliance keeps what it has until it must make room or its new
// manifest has landed (make before break).
//
// Files are retired when every listed file has landed, or when the files
// to fill now need more room than is free; a retired file the manifest
// lists again is reported again at once.

// retiree is a file being retired.
type retiree struct {
	entry content.File
	gen   uint64    // the first reported generation without it
	since time.Time // when it was retired (wall clock: grace is for clients)
	acked bool
}

// Advertised is what the appliance reports holding: every verified file
// in the store except those being retired, and the generation of that
// list, which changes whenever the list does (the store's generation plus
// the retirements so far; both only grow). The generation is read before
// the list, so a change in between makes the report look older than it
// is, never newer.
func (a *Agent) Advertised() (gen uint64, held []string) {
	a.mu.Lock()
	gen = a.advertisedGenLocked()
	retiring := make(map[string]bool, len(a.retiring))
	for p := range a.retiring {
		retiring[p] = true
	}
	a.mu.Unlock()
	for _, e := range a.cfg.Store.List() {
		if !retiring[e.Path] {
			held = append(held, e.Path)
		}
	}
	return gen, held
}

func (a *Agent) advertisedGenLocked() uint64 {
	_, _, storeGen := a.cfg.Store.Usage()
	return storeGen + a.retireGen
}

// Acknowledge records the generation the control plane last received a
// full list for (a heartbeat reply's known_content_gen): every file retired
// at or before it has left steering. A generation this agent has not
// reported yet (a control plane that remembers an earlier process of this
// appliance) acknowledges nothing.
func (a *Agent) Acknowledge(known uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if known > a.advertisedGenLocked() {
		return
	}
	for _, r := range a.retiring {
		if known >= r.gen {
			r.acked = true
		}
	}
}

// retire stops reporting files (not already retiring).
func (a *Agent) retire(files []content.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	for _, f := range files {
		if _, ok := a.retiring[f.Path]; ok {
			continue
		}
		a.retireGen++
		a.retiring[f.Path] = &retiree{entry: f, gen: a.advertisedGenLocked(), since: now}
		a.log.Info("retiring a file the manifest no longer lists", "path", f.Path)
	}
}

// unretire reports again the retiring files the manifest lists.
func (a *Agent) unretire(want map[string]content.File) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, r := range a.retiring {
		if w, ok := want[p]; ok && w.SHA256 == r.entry.SHA256 {
			delete(a.retiring, p)
			a.retireGen++
		}
	}
}

// deleteRetired deletes the retired files that have left steering and
// whose grace has passed.
func (a *Agent) deleteRetired() {
	a.mu.Lock()
	var done []string
	for p, r := range a.retiring {
		if r.acked && time.Since(r.since) >= a.cfg.RetireGrace {
			done = append(done, p)
		}
	}
	a.mu.Unlock()
	for _, p := range done {
		// The store's generation moves on as the object goes: the list
		// reported is unchanged (it was not in it).
		a.cfg.Store.Remove(p)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range done {
		delete(a.retiring, p)
	}
}

// extras are the stored files the manifest does not list and that are not
// retiring yet, largest first.
func (a *Agent) extras(want map[string]content.File) []content.File {
	a.mu.Lock()
	retiring := make(map[string]bool, len(a.retiring))
	for p := range a.retiring {
		retiring[p] = true
	}
	a.mu.Unlock()
	var out []content.File
	for _, e := range a.cfg.Store.List() {
		if _, ok := want[e.Path]; !ok && !retiring[e.Path] {
			out = append(out, content.File{Path: e.Path, Size: e.Size, SHA256: e.SHA256})
		}
	}
	slices.SortFunc(out, func(x, y content.File) int {
		if c := cmp.Compare(y.Size, x.Size); c != 0 {
			return c
		}
		return cmp.Compare(x.Path, y.Path)
	})
	return out
}

// makeRoom retires unlisted files while the files to fill need more room
// than is free (counting what retiring files will free), and returns how
// many bytes of them can be written now.
func (a *Agent) makeRoom(want map[string]content.File, need int64) (free int64) {
	used, capacity, _ := a.cfg.Store.Usage()
	if capacity <= 0 {
		return need
	}
	free = max(capacity-used, 0)
	if need <= free {
		return free
	}
	a.mu.Lock()
	var freeing int64
	for _, r := range a.retiring {
		freeing += r.entry.Size
	}
	a.mu.Unlock()
	var more []content.File
	for _, f := range a.extras(want) {
		if free+freeing >= need {
			break
		}
		more = append(more, f)
		freeing += f.Size
	}
	a.retire(more)
	return free
}

// Retiring is how many files are being retired.
func (a *Agent) Retiring() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.retiring)
}
