package measure

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// dedupe is the set of report ids stored within the window, keyed by id,
// with the Unix hour each was received. An id whose WAL append is still in
// flight carries a waiter, so that a concurrent second upload of the same
// report waits for the first one's outcome instead of being told
// "duplicate" for a report that might not get stored.
//
// At Open it is rebuilt from DIR/ids/<seq>.ids (one file per compacted
// WAL segment: a "hour <unix-hour>" line, then one id per line) and from
// the leftover WAL segments. Files older than the window are deleted,
// except the newest, which also records the highest segment number used so
// that part file names are never reused.
type dedupe struct {
	mu        sync.Mutex
	ids       map[string]dedupeEntry
	window    int64 // hours
	lastSweep int64
}

type dedupeEntry struct {
	hour int64
	w    *waiter // nil once durable
}

type waiter struct {
	done chan struct{}
	err  error // set before done is closed
}

// reserve returns (nil, false) and records id as in flight if it is new;
// otherwise it returns (w, true) with w the in-flight upload's waiter, or
// nil if the id is already durable.
func (d *dedupe) reserve(id string, hour int64) (*waiter, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if hour > d.lastSweep {
		d.sweep(hour)
	}
	if e, ok := d.ids[id]; ok {
		return e.w, true
	}
	w := &waiter{done: make(chan struct{})}
	d.ids[id] = dedupeEntry{hour: hour, w: w}
	return w, false
}

// finish settles an in-flight id: durable if err is nil, forgotten
// otherwise (so that a retry can store it).
func (d *dedupe) finish(id string, w *waiter, err error) {
	d.mu.Lock()
	if err != nil {
		delete(d.ids, id)
	} else if e, ok := d.ids[id]; ok {
		e.w = nil
		d.ids[id] = e
	}
	d.mu.Unlock()
	w.err = err
	close(w.done)
}

func (d *dedupe) addDurable(id string, hour int64) {
	d.mu.Lock()
	d.ids[id] = dedupeEntry{hour: hour}
	d.mu.Unlock()
}

// sweep forgets durable ids older than the window. It runs once per hour
// of the clock, under the lock; it is linear in the number of ids.
func (d *dedupe) sweep(nowHour int64) {
	d.lastSweep = nowHour
	for id, e := range d.ids {
		if e.w == nil && e.hour < nowHour-d.window {
			delete(d.ids, id)
		}
	}
}

func idsFileName(seq uint64) string { return fmt.Sprintf("%012d.ids", seq) }

// load reads the id files in dir, deleting those older than the window
// (but never the newest), and returns the highest segment number found.
func (d *dedupe) load(dir string, nowHour int64) (uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".ids") {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".ids"), 10, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	var max uint64
	for _, s := range seqs {
		if s > max {
			max = s
		}
	}
	removed := false
	for _, seq := range seqs {
		path := filepath.Join(dir, idsFileName(seq))
		hour, ids, err := readIDsFile(path)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if hour < nowHour-d.window {
			if seq != max {
				if err := os.Remove(path); err != nil {
					return 0, err
				}
				removed = true
			}
			continue
		}
		for _, id := range ids {
			d.ids[id] = dedupeEntry{hour: hour}
		}
	}
	d.lastSweep = nowHour
	if removed {
		return max, syncDir(dir)
	}
	return max, nil
}

func readIDsFile(path string) (hour int64, ids []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, nil, fmt.Errorf("empty id file")
	}
	if _, err := fmt.Sscanf(sc.Text(), "hour %d", &hour); err != nil {
		return 0, nil, fmt.Errorf("header %q: %w", sc.Text(), err)
	}
	for sc.Scan() {
		if t := sc.Text(); t != "" {
			ids = append(ids, t)
		}
	}
	return hour, ids, sc.Err()
}
