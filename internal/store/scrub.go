package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/clock"
)

// ScrubPause is how long Scrub rests between passes, so a small store is
// not re-read in a tight loop.
const ScrubPause = time.Minute

type scrubCounters struct {
	passes      atomic.Uint64
	objects     atomic.Uint64
	bytes       atomic.Uint64
	quarantined atomic.Uint64
}

// ScrubStats counts what the scrubber has done since the store was opened.
type ScrubStats struct {
	Passes      uint64 `json:"passes"`      // complete passes over the store
	Objects     uint64 `json:"objects"`     // objects re-hashed
	Bytes       uint64 `json:"bytes"`       // bytes re-hashed
	Quarantined uint64 `json:"quarantined"` // objects moved to quarantine/
}

// ScrubStats reports the scrubber's counters.
func (s *Store) ScrubStats() ScrubStats {
	return ScrubStats{
		Passes:      s.scrub.passes.Load(),
		Objects:     s.scrub.objects.Load(),
		Bytes:       s.scrub.bytes.Load(),
		Quarantined: s.scrub.quarantined.Load(),
	}
}

// Quarantined is how many objects the scrubber has quarantined.
func (s *Store) Quarantined() uint64 { return s.scrub.quarantined.Load() }

// Collectors returns Prometheus metrics for the store: usage, capacity,
// object count and the scrubber's counters. Register them once per store.
func (s *Store) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		counter("ocdn_store_quarantined_objects_total", "Objects the scrubber found corrupt and moved to quarantine.", &s.scrub.quarantined),
		counter("ocdn_store_scrubbed_bytes_total", "Bytes re-hashed by the scrubber.", &s.scrub.bytes),
		counter("ocdn_store_scrubbed_objects_total", "Objects re-hashed by the scrubber.", &s.scrub.objects),
		counter("ocdn_store_scrub_passes_total", "Complete scrubber passes over the store.", &s.scrub.passes),
		gauge("ocdn_store_used_bytes", "Bytes of verified objects in the store.", func() float64 { u, _, _ := s.Usage(); return float64(u) }),
		gauge("ocdn_store_capacity_bytes", "Store capacity in bytes (0 means unlimited).", func() float64 { _, c, _ := s.Usage(); return float64(c) }),
		gauge("ocdn_store_objects", "Objects in the store.", func() float64 { s.mu.RLock(); defer s.mu.RUnlock(); return float64(len(s.index)) }),
	}
}

// Scrub re-hashes every stored object, pass after pass, reading no more
// than bytesPerSecond, until ctx ends; then it returns nil. An object whose
// bytes no longer match its SHA-256 (bit rot, a bad disk, someone editing
// files by hand) is moved to quarantine/ and dropped from the index, so it
// is never served again and the next fill fetches a good copy.
func (s *Store) Scrub(ctx context.Context, bytesPerSecond int64) error {
	if bytesPerSecond <= 0 {
		return fmt.Errorf("scrub rate %d bytes/s: must be positive", bytesPerSecond)
	}
	if s.readOnly {
		return ErrReadOnly
	}
	p := newPacer(bytesPerSecond)
	for {
		if _, err := s.scrubPass(ctx, p); err != nil {
			return nil // only the context ends a pass early
		}
		if clock.Sleep(ctx, ScrubPause) != nil {
			return nil
		}
	}
}

// ScrubOnce makes one paced pass over the store and returns the objects it
// quarantined. It returns ctx's error if ctx ends first.
func (s *Store) ScrubOnce(ctx context.Context, bytesPerSecond int64) ([]Problem, error) {
	if bytesPerSecond <= 0 {
		return nil, fmt.Errorf("scrub rate %d bytes/s: must be positive", bytesPerSecond)
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	return s.scrubPass(ctx, newPacer(bytesPerSecond))
}

func (s *Store) scrubPass(ctx context.Context, p *pacer) ([]Problem, error) {
	var bad []Problem
	for _, e := range s.List() {
		reason, fi, err := s.scrubCheck(ctx, p, e)
		if err != nil {
			return bad, err
		}
		s.scrub.objects.Add(1)
		if reason == "" {
			continue
		}
		if s.quarantine(e, fi, reason) {
			bad = append(bad, Problem{Path: e.Path, Reason: reason})
		}
	}
	s.scrub.passes.Add(1)
	return bad, nil
}

// scrubCheck hashes one object at the pacer's rate. It returns why the
// object is bad ("" if good) and the identity of the file it read, so that
// quarantine moves only that file and never a good copy published
// meanwhile. The error is non-nil only when ctx ended.
func (s *Store) scrubCheck(ctx context.Context, p *pacer, e Entry) (string, os.FileInfo, error) {
	f, err := os.Open(s.objectFile(e))
	if errors.Is(err, fs.ErrNotExist) {
		return "file missing", nil, nil
	}
	if err != nil {
		return "", nil, nil // unreadable now (e.g. permissions); not evidence of corruption
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, nil
	}
	h := sha256.New()
	buf := make([]byte, p.chunk)
	var n int64
	for {
		if err := p.wait(ctx, len(buf)); err != nil {
			return "", nil, err
		}
		m, rerr := f.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		s.scrub.bytes.Add(uint64(m))
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "read error: " + rerr.Error(), fi, nil
		}
	}
	switch sum := hex.EncodeToString(h.Sum(nil)); {
	case n != e.Size:
		return fmt.Sprintf("size %d, want %d", n, e.Size), fi, nil
	case sum != e.SHA256:
		return fmt.Sprintf("sha256 %s, want %s", sum, e.SHA256), fi, nil
	}
	return "", fi, nil
}

// quarantine moves a bad object out of objects/ and drops it from the
// index, unless the object changed since it was checked. It reports
// whether it did.
func (s *Store) quarantine(e Entry, checked os.FileInfo, reason string) bool {
	src := s.objectFile(e)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.index[e.Path]; !ok || cur != e {
		return false // removed or replaced while being checked
	}
	if checked != nil {
		now, err := os.Stat(src)
		if err != nil || !os.SameFile(now, checked) {
			return false // a fresh copy was published over it meanwhile
		}
		title, file, _ := strings.Cut(e.Path, "/")
		dst := filepath.Join(s.quarantineDir(), title, file+"~"+e.SHA256+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
		err = os.MkdirAll(filepath.Dir(dst), 0o755)
		if err == nil {
			err = os.Rename(src, dst)
		}
		if err != nil {
			// Keeping a corrupt object servable is worse than losing
			// the evidence.
			s.log.Error("cannot quarantine object; removing it", "path", e.Path, "err", err)
			if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Error("cannot remove corrupt object", "path", e.Path, "err", err)
			}
		} else {
			s.log.Warn("object failed scrub; quarantined", "path", e.Path, "reason", reason, "file", dst)
		}
	} else {
		s.log.Warn("object failed scrub; dropped from index", "path", e.Path, "reason", reason)
	}
	delete(s.index, e.Path)
	s.used -= e.Size
	s.gen++
	s.scrub.quarantined.Add(1)
	return true
}

// pacer is a token bucket: bytes read ≤ chunk + rate × elapsed.
type pacer struct {
	rate   float64 // bytes per second
	chunk  int
	tokens float64
	last   time.Time
}

func newPacer(bytesPerSecond int64) *pacer {
	chunk := int(min(max(bytesPerSecond, 4<<10), 256<<10))
	return &pacer{rate: float64(bytesPerSecond), chunk: chunk, tokens: float64(chunk), last: time.Now()}
}

// wait takes n tokens, sleeping until the bucket has paid for them.
func (p *pacer) wait(ctx context.Context, n int) error {
	now := time.Now()
	p.tokens = min(float64(p.chunk), p.tokens+now.Sub(p.last).Seconds()*p.rate)
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return ctx.Err()
	}
	return clock.Sleep(ctx, time.Duration(-p.tokens/p.rate*float64(time.Second)))
}
