package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocdn/ocdn/internal/atomicfile"
	"github.com/ocdn/ocdn/internal/measure"
)

// spool is the directory of batches cut but not yet acknowledged, one
// JSON file each, named <seq>-<records>.json so that its bookkeeping
// needs no file read. A batch keeps its id across retries and restarts,
// which is what makes delivery exactly-once (the ingester dedupes by
// id). Only Run's goroutine touches it after New.
type spool struct {
	dir     string
	max     int64
	files   []spoolFile // oldest first
	bytes   int64
	records int
	next    uint64
}

type spoolFile struct {
	seq  uint64
	n    int
	size int64
}

func (f spoolFile) name() string { return fmt.Sprintf("%020d-%d.json", f.seq, f.n) }

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("transport: spool dir: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("transport: spool dir: %w", err)
	}
	s := &spool{dir: dir, max: maxBytes}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") { // a temporary a crash left
			os.Remove(filepath.Join(dir, name))
			continue
		}
		seqS, rest, ok := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
		seq, err1 := strconv.ParseUint(seqS, 10, 64)
		n, err2 := strconv.Atoi(rest)
		info, err3 := e.Info()
		if !ok || err1 != nil || err2 != nil || err3 != nil || !e.Type().IsRegular() {
			continue // not ours
		}
		s.files = append(s.files, spoolFile{seq: seq, n: n, size: info.Size()})
		s.bytes += info.Size()
		s.records += n
		s.next = max(s.next, seq+1)
	}
	slices.SortFunc(s.files, func(a, b spoolFile) int { return compareUint(a.seq, b.seq) })
	return s, nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// put stores b, first removing the oldest batches until it fits within
// max; it returns how many records were dropped for room (b's own when
// it alone is over max).
func (s *spool) put(b *measure.TransportBatch) (dropped int, err error) {
	data, err := json.Marshal(b)
	if err != nil {
		return len(b.Records), err
	}
	size := int64(len(data))
	if size > s.max {
		return len(b.Records), nil
	}
	for s.bytes+size > s.max && len(s.files) > 0 {
		f := s.files[0]
		dropped += f.n
		s.remove(f) // a file that will not go is forgotten, and found again at the next start

	}
	f := spoolFile{seq: s.next, n: len(b.Records), size: size}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, f.name()), data, 0o600); err != nil && !errors.Is(err, atomicfile.ErrDirSync) {
		return dropped + f.n, err
	}
	s.next++
	s.files = append(s.files, f)
	s.bytes += size
	s.records += f.n
	return dropped, nil
}

// remove forgets f and deletes its file. The bookkeeping forgets it even
// when the deletion fails, so a stuck file cannot stall delivery; it is
// found again at the next start.
func (s *spool) remove(f spoolFile) error {
	if i := slices.IndexFunc(s.files, func(g spoolFile) bool { return g.seq == f.seq }); i >= 0 {
		s.files = slices.Delete(s.files, i, i+1)
		s.bytes -= f.size
		s.records -= f.n
	}
	if err := os.Remove(filepath.Join(s.dir, f.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *spool) read(f spoolFile) (*measure.TransportBatch, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, f.name()))
	if err != nil {
		return nil, err
	}
	return measure.DecodeTransportBatch(data)
}

// Run cuts queued records into batches every BatchInterval (or when one
// is full), spools them and delivers the spool oldest first; after a
// failed delivery it waits RetryDelay. It returns when ctx ends, having
// spooled what was queued (delivered by the next run).
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.BatchInterval)
	defer t.Stop()
	var retryAt time.Time
	down := false
	for {
		select {
		case <-ctx.Done():
			r.cut()
			return nil
		case <-t.C:
		case <-r.kick:
		}
		r.cut()
		if r.cfg.Sender == nil || time.Now().Before(retryAt) {
			continue
		}
		err := r.deliver(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			retryAt = time.Now().Add(r.cfg.RetryDelay)
			if !down {
				r.log.Warn("control plane unreachable; spooling transport records", "err", err,
					"spool_bytes", r.spool.bytes, "max_bytes", r.spool.max)
			}
			down = true
		case err == nil && down:
			r.log.Info("control plane reachable again; transport spool delivered")
			down = false
		}
	}
}

// cut moves the queued records into spooled batches.
func (r *Recorder) cut() {
	r.mu.Lock()
	recs := r.pending
	r.pending = nil
	r.mu.Unlock()
	for len(recs) > 0 {
		n := min(len(recs), r.cfg.BatchRecords)
		b := &measure.TransportBatch{ID: newID(), Appliance: r.cfg.Appliance, Site: r.cfg.Site,
			SentTime: r.cfg.Now(), Records: recs[:n:n]}
		recs = recs[n:]
		dropped, err := r.spool.put(b)
		if err != nil {
			r.log.Error("spooling transport records", "err", err)
			r.m.dropped.WithLabelValues(dropSpoolIO).Add(float64(dropped))
		} else {
			// Counted for its cost (encoded and written); one too big
			// for the whole spool was encoded only, and is rare.
			r.m.batchesSpooled.Inc()
			if dropped > 0 {
				r.m.dropped.WithLabelValues(dropSpoolFull).Add(float64(dropped))
			}
		}
		r.m.queued.Sub(float64(dropped))
		r.m.spoolBytes.Set(float64(r.spool.bytes))
	}
}

// deliver sends the spool oldest first until it is empty or a delivery
// fails, whose error it returns.
func (r *Recorder) deliver(ctx context.Context) error {
	for len(r.spool.files) > 0 {
		f := r.spool.files[0]
		b, err := r.spool.read(f)
		if err != nil {
			r.log.Error("unreadable transport batch in the spool; dropping it", "file", f.name(), "err", err)
			r.drop(f, dropSpoolIO)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = r.cfg.Sender.SendTransport(sctx, b)
		cancel()
		switch {
		case err == nil:
			r.m.sent.Add(float64(f.n))
			r.drop(f, "")
		case errors.Is(err, ErrRejected):
			// A control plane without a measurement store refuses every
			// batch the same way: say it once, count them all.
			if msg := err.Error(); msg != r.lastReject {
				r.lastReject = msg
				r.log.Error("the control plane refused a transport batch; dropping it (repeats of this refusal are only counted)",
					"batch", b.ID, "records", f.n, "err", err)
			}
			r.drop(f, dropRejected)
		default:
			r.m.sendFailures.Inc()
			return err
		}
	}
	return nil
}

// drop removes a spooled batch, counting its records as dropped for
// reason unless reason is "" (delivered).
func (r *Recorder) drop(f spoolFile, reason string) {
	if err := r.spool.remove(f); err != nil {
		r.log.Error("removing a transport batch from the spool", "file", f.name(), "err", err)
	}
	if reason != "" {
		r.m.dropped.WithLabelValues(reason).Add(float64(f.n))
	}
	r.m.queued.Sub(float64(f.n))
	r.m.spoolBytes.Set(float64(r.spool.bytes))
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
