package measure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors of the ingester.
var (
	// ErrClosed is returned by Ingest after Close.
	ErrClosed = errors.New("measure: ingester is closed")
	// ErrNotStored means the report could not be made durable (a WAL
	// write or fsync failed, or a concurrent upload of the same id did);
	// the client should retry later. After a WAL failure the ingester
	// refuses every report until it is reopened, because the state of a
	// file whose fsync failed is unknown.
	ErrNotStored = errors.New("measure: report not stored")
)

// Options configures an Ingester. The zero value is usable.
type Options struct {
	// Registerer receives the ingester's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger receives compaction and recovery messages; nil discards.
	Logger *slog.Logger
	// Now is the server clock; nil means time.Now.
	Now func() time.Time
	// SegmentMaxBytes closes a WAL segment once it holds this many bytes
	// (default 64 MiB).
	SegmentMaxBytes int64
	// SegmentMaxAge closes a WAL segment this long after its first
	// record (default 1 minute). It bounds how stale the Parquet files
	// are: a report shows up in Parquet at most about this long after it
	// was acknowledged.
	SegmentMaxAge time.Duration
	// Observe, when set, sees every report once it is durable (not
	// duplicates, not reports replayed from the WAL at Open), on the
	// upload path: it must be quick and must not keep r.
	Observe func(Observed)
	// Contexts verifies the signed recipe context every browser report
	// must carry (see ContextSigner); nil refuses browser reports.
	Contexts *ContextSigner
	// DedupeWindow is how long a report id is remembered (default 48 h,
	// by server receive time). An upload repeated after the window is
	// stored again. Memory is about 100 bytes per remembered report: 48 h
	// at 100 reports/s is ~1.7 GB, so high-rate deployments should
	// shorten the window (client retries come within minutes).
	DedupeWindow time.Duration
	// Claims, when set, is shared with the ingesters of other
	// control-plane replicas so that a report reaches the Parquet store
	// once even when a client sends it to several (claims.go). Each
	// replica then needs its own directory.
	Claims Claims
	// Resolvers, when set, joins dns pulses with the authoritative DNS
	// server's log (which resolver asked for the pulse's name).
	Resolvers ResolverJoiner

	// hook, in tests, is called at the crash windows of the claim
	// protocol ("wal-synced", "claimed", "compact-claimed",
	// "compact-written").
	hook func(point string)
	// retryDelay is the wait before a failed compaction is retried
	// (default 5s; tests shorten it); claimTimeout bounds a claim at
	// upload (defaultClaimTimeout; tests that count who stored what on a
	// loaded machine lengthen it).
	retryDelay   time.Duration
	claimTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SegmentMaxBytes <= 0 {
		o.SegmentMaxBytes = 64 << 20
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = time.Minute
	}
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = 48 * time.Hour
	}
	if o.retryDelay <= 0 {
		o.retryDelay = 5 * time.Second
	}
	if o.claimTimeout <= 0 {
		o.claimTimeout = defaultClaimTimeout
	}
	if o.hook == nil {
		o.hook = func(string) {}
	}
}

// ContextAssignedArm is the context key under which stored rows carry
// Annotation.Arm.
const ContextAssignedArm = "assigned_arm"

// ContextIssuedAt is the context key under which a recipe carries the
// time the control plane issued it (RFC 3339, UTC, the server's clock):
// a report received after a change may hold pulses of a recipe issued
// before it, and an analysis that compares before and after needs to know.
const ContextIssuedAt = "issued_at"

// Observed is a durable report with what the server annotated.
type Observed struct {
	Received    time.Time
	Client      netip.Addr
	PrefixGroup string
	// Sites is the resolved site of each pulse; QoESite that of the first
	// appliance that served the playback record.
	Sites       []string
	QoESite     string
	AssignedArm string
	Report      *Report
}

// Result is the outcome of an accepted upload.
type Result struct {
	Duplicate bool // the report id was already stored; nothing was added
	Pulses    int  // pulses stored by this upload (0 for a duplicate)
}

// Ingester accepts reports, makes them durable in a write-ahead log before
// acknowledging them, and compacts the log into Parquet files:
//
//	DIR/wal/seg-<seq>.wal                                          accepted, not yet compacted
//	DIR/pulses/date=YYYY-MM-DD/hour=HH/part-<store>-<seq>.parquet  one row per pulse
//	DIR/qoe/date=YYYY-MM-DD/hour=HH/part-<store>-<seq>.parquet     one row per playback record
//	DIR/transport/date=YYYY-MM-DD/hour=HH/part-<store>-<seq>.parquet one row per appliance TCP_INFO sample
//	DIR/ids/<seq>.ids                                              report ids of compacted segments, for dedupe
//	DIR/store-id                                                   the store's name (<store>, 16 hex digits)
//	DIR/lock                                                       held while an ingester has the directory open
//
// Partitions are by server receive time (UTC); the store's name in part
// file names keeps the files of several replicas' stores apart when they
// are copied into one place. It owns two goroutines, the WAL writer and
// the compactor, started by Open and stopped by Close.
type Ingester struct {
	dir     string
	storeID string
	lock    *os.File
	annot   Annotator
	opts    Options
	log     *slog.Logger
	m       *metrics
	aggs    aggregates
	seen    dedupe

	mu      sync.RWMutex // guards closed against concurrent Ingest sends
	closed  bool
	reqs    chan *commitReq
	flushes chan chan uint64
	quit    chan struct{}
	wdone   chan struct{} // closed when the writer has exited

	comp   *compactor
	failed atomic.Pointer[error] // set by the WAL writer when it gives up

	// claimsDownUntil (Unix ns) skips claims at ingest after a failure;
	// lastForget is when old claims were last deleted (compactor only).
	claimsDownUntil atomic.Int64
	lastForget      time.Time
}

type commitReq struct {
	id     string
	hour   int64 // Unix hour of receipt
	frame  []byte
	pulses int
	seq    uint64 // the WAL segment the frame went into, set before done
	done   chan error
}

// Open opens (creating if needed) the ingest directory dir, replays any WAL
// segments left by a previous run (they are compacted in the background),
// and loads the report ids seen within the dedupe window. annot may be nil:
// rows then carry DefaultPrefix and the sites clients reported.
func Open(dir string, annot Annotator, opts Options) (*Ingester, error) {
	opts.setDefaults()
	for _, d := range []string{"wal", "ids", "pulses", "qoe", "transport"} {
		if err := mkdirAllSync(filepath.Join(dir, d)); err != nil {
			return nil, fmt.Errorf("measure: opening %s: %w", dir, err)
		}
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	storeID, err := loadStoreID(dir)
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	in := &Ingester{
		dir: dir, storeID: storeID, lock: lock, annot: annot, opts: opts,
		log:     opts.Logger.With("component", "measure"),
		reqs:    make(chan *commitReq, 4096),
		flushes: make(chan chan uint64),
		quit:    make(chan struct{}),
		wdone:   make(chan struct{}),
	}
	if in.m, err = newMetrics(opts.Registerer); err != nil {
		return nil, err
	}
	in.aggs.m = make(map[aggKey]*aggSketch)
	in.seen.window = int64(opts.DedupeWindow / time.Hour)
	if in.seen.window < 1 {
		in.seen.window = 1
	}
	in.seen.ids = make(map[string]dedupeEntry)

	nowHour := opts.Now().Unix() / 3600
	maxIDs, err := in.seen.load(filepath.Join(dir, "ids"), nowHour)
	if err != nil {
		return nil, fmt.Errorf("measure: loading report ids: %w", err)
	}
	walDir := filepath.Join(dir, "wal")
	segs, err := listSegments(walDir)
	if err != nil {
		return nil, fmt.Errorf("measure: listing WAL: %w", err)
	}
	var pending []uint64
	var walBytes int64
	for _, seq := range segs {
		n, size, err := in.recoverSegment(walDir, seq)
		if err != nil {
			return nil, fmt.Errorf("measure: replaying WAL segment %d: %w", seq, err)
		}
		if n == 0 {
			continue
		}
		in.log.Info("replaying WAL segment", "seq", seq, "reports", n)
		pending = append(pending, seq)
		walBytes += size
	}
	next := maxIDs + 1
	if len(segs) > 0 && segs[len(segs)-1] >= next {
		next = segs[len(segs)-1] + 1
	}
	in.m.walBytes.Set(float64(walBytes))
	in.comp = newCompactor(in, pending)
	w := &walWriter{in: in, dir: walDir, next: next}
	go w.run()
	go in.comp.run()
	ok = true
	return in, nil
}

// recoverSegment registers the ids of a leftover segment as seen, cuts off
// a torn tail, and removes a segment with no intact record.
func (in *Ingester) recoverSegment(walDir string, seq uint64) (n int, size int64, err error) {
	path := filepath.Join(walDir, segmentName(seq))
	good, err := readFrames(path, func(p []byte) error {
		var rec walRecord
		if err := json.Unmarshal(p, &rec); err != nil || rec.Report == nil {
			return fmt.Errorf("record %d: intact checksum but undecodable: %v", n, err)
		}
		in.seen.addDurable(rec.Report.ID, rec.Received/int64(time.Hour))
		n++
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		if err := os.Remove(path); err != nil {
			return 0, 0, err
		}
		return 0, 0, syncDir(walDir)
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	if st.Size() != good {
		in.log.Warn("WAL segment has a torn tail (unacknowledged); truncating", "seq", seq, "bytes", st.Size()-good)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return 0, 0, err
		}
		err = f.Truncate(good)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return n, good, nil
}

// Ingest validates r, and unless its id was already stored, appends it to
// the WAL and returns once it is fsynced: a nil error means the report is
// durable. client is the uploader's address (from the connection). ctx
// bounds only the wait to enter the WAL queue; once queued, Ingest waits
// for the (group) fsync so that its answer is definite.
func (in *Ingester) Ingest(ctx context.Context, client netip.Addr, r *Report) (Result, error) {
	res, err := in.ingest(ctx, client, r)
	in.m.reports.WithLabelValues(outcome(res, err)).Inc()
	return res, err
}

// outcome is the ocdn_measure_reports_total label of an Ingest result.
func outcome(res Result, err error) string {
	switch {
	case errors.Is(err, ErrFutureDated):
		return OutcomeFutureDated
	case errors.Is(err, ErrTooOld):
		return OutcomeTooOld
	case errors.Is(err, ErrInvalidReport):
		return OutcomeInvalid
	case err != nil:
		return OutcomeError
	case res.Duplicate:
		return OutcomeDuplicate
	}
	return OutcomeAccepted
}

func (in *Ingester) ingest(ctx context.Context, client netip.Addr, r *Report) (Result, error) {
	now := in.opts.Now()
	if err := r.Validate(now); err != nil {
		return Result{}, err
	}
	client = client.Unmap()
	hour := now.Unix() / 3600

	// Reserve the id first, so two concurrent uploads of one report
	// cannot both be appended.
	w, dup := in.seen.reserve(r.ID, hour)
	if dup {
		if w != nil {
			<-w.done
			if w.err != nil {
				return Result{}, fmt.Errorf("%w: the concurrent upload of id %s failed: %v", ErrNotStored, r.ID, w.err)
			}
		}
		return Result{Duplicate: true}, nil
	}

	rec := walRecord{Received: now.UnixNano(), Client: client.String(), Report: r}
	in.annotate(&rec, client)
	payload, err := json.Marshal(&rec)
	if err != nil {
		in.seen.finish(r.ID, w, err)
		return Result{}, fmt.Errorf("%w: encoding: %v", ErrNotStored, err)
	}
	req := &commitReq{id: r.ID, hour: hour, frame: appendFrame(make([]byte, 0, len(payload)+walHeaderLen), payload),
		pulses: len(r.Pulses), done: make(chan error, 1)}

	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		in.seen.finish(r.ID, w, ErrClosed)
		return Result{}, ErrClosed
	}
	select {
	case in.reqs <- req:
	case <-ctx.Done():
		in.mu.RUnlock()
		in.seen.finish(r.ID, w, ctx.Err())
		return Result{}, ctx.Err()
	}
	in.mu.RUnlock()
	err = <-req.done
	if err != nil {
		in.seen.finish(r.ID, w, err)
		return Result{}, fmt.Errorf("%w: %v", ErrNotStored, err)
	}
	in.opts.hook("wal-synced")
	elsewhere := in.claimAtIngest(ctx, r.ID, req.seq, now)
	in.opts.hook("claimed")
	in.seen.finish(r.ID, w, nil)
	if elsewhere {
		// Another replica stored it first; this copy is dropped at
		// compaction.
		return Result{Duplicate: true}, nil
	}
	in.aggs.add(&rec)
	if in.opts.Observe != nil && r.Transport == nil { // observers read probe reports
		in.opts.Observe(Observed{Received: now, Client: client, PrefixGroup: rec.PrefixGroup, Sites: rec.Sites,
			QoESite: rec.QoESite, AssignedArm: rec.AssignedArm, Report: r})
	}
	in.m.pulses.Add(float64(len(r.Pulses)))
	return Result{Pulses: len(r.Pulses)}, nil
}

func (in *Ingester) annotate(rec *walRecord, client netip.Addr) {
	r := rec.Report
	rec.ClientPrefix = DefaultPrefix(client)
	rec.Sites = make([]string, len(r.Pulses))
	var cache map[string]Annotation
	get := func(appliance string) Annotation {
		if a, ok := cache[appliance]; ok {
			return a
		}
		a := in.annot.Annotate(client, appliance)
		if cache == nil {
			cache = make(map[string]Annotation, 2)
		}
		cache[appliance] = a
		return a
	}
	first := true
	apply := func(a Annotation) {
		if !first {
			return
		}
		first = false
		if a.ClientPrefix != "" {
			rec.ClientPrefix = a.ClientPrefix
		}
		rec.PrefixGroup, rec.ASN, rec.ISP, rec.AssignedArm = a.PrefixGroup, a.ASN, a.ISP, a.Arm
	}
	for i := range r.Pulses {
		rec.Sites[i] = r.Pulses[i].Site
		if in.annot == nil {
			continue
		}
		a := get(r.Pulses[i].Appliance)
		apply(a)
		if a.Site != "" {
			rec.Sites[i] = a.Site
		}
	}
	if q := r.Player; q != nil && len(q.ServedBy) > 0 && in.annot != nil {
		a := get(q.ServedBy[0])
		apply(a)
		rec.QoESite = a.Site
	}
	if first && in.annot != nil { // no pulses, no appliance: the client alone
		apply(in.annot.Annotate(client, ""))
	}
	if rec.PrefixGroup == "" {
		rec.PrefixGroup = rec.ClientPrefix
	}
	if in.opts.Resolvers != nil {
		for i := range r.Pulses {
			p := &r.Pulses[i]
			if p.Nonce == "" {
				continue
			}
			if _, done := rec.Resolvers[p.Nonce]; done {
				continue
			}
			if j, ok := in.opts.Resolvers.JoinResolver(client, p.Nonce); ok {
				if rec.Resolvers == nil {
					rec.Resolvers = make(map[string]ResolverJoin, 2)
				}
				rec.Resolvers[p.Nonce] = j
			}
		}
	}
}

// Flush closes the current WAL segment and waits until every report
// acknowledged before the call is in Parquet files (or ctx ends). It
// returns the compactor's error if a segment could not be compacted; the
// segment then stays in the WAL and is retried.
func (in *Ingester) Flush(ctx context.Context) error {
	reply := make(chan uint64, 1)
	select {
	case in.flushes <- reply:
	case <-in.wdone:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	var upTo uint64
	select {
	case upTo = <-reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := in.failed.Load(); err != nil {
		return fmt.Errorf("%w: WAL failed, segments stay for the next Open: %v", ErrNotStored, *err)
	}
	return in.comp.waitFor(ctx, upTo)
}

// Close stops accepting reports, closes the WAL, compacts what it holds and
// stops the ingester's goroutines. A compaction error is returned; the
// segments concerned stay in the WAL and are compacted by the next Open.
func (in *Ingester) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return ErrClosed
	}
	in.closed = true
	in.mu.Unlock()
	close(in.quit)
	<-in.wdone
	err := in.comp.stop()
	in.lock.Close() // releases the flock
	return err
}

// walWriter is the single goroutine that appends to the WAL. It takes every
// request queued while the previous fsync ran and commits them with one
// write and one fsync (group commit): the cost of an fsync is shared by
// all the uploads that arrived during the last one.
type walWriter struct {
	in     *Ingester
	dir    string
	next   uint64
	f      *os.File
	seq    uint64
	hour   int64
	size   int64
	opened time.Time
	failed error
	buf    []byte
	batch  []*commitReq
}

func (w *walWriter) run() {
	defer close(w.in.wdone)
	tick := time.NewTicker(w.in.opts.SegmentMaxAge / 4)
	defer tick.Stop()
	for {
		select {
		case req := <-w.in.reqs:
			w.batch = append(w.batch[:0], req)
		drain:
			for len(w.batch) < 8192 {
				select {
				case r := <-w.in.reqs:
					w.batch = append(w.batch, r)
				default:
					break drain
				}
			}
			w.commit()
		case reply := <-w.in.flushes:
			w.rotate()
			reply <- w.next - 1
		case <-tick.C:
			if w.f != nil && time.Since(w.opened) >= w.in.opts.SegmentMaxAge {
				w.rotate()
			}
		case <-w.in.quit:
			// Ingest holds the read lock while sending, and Close took
			// the write lock after setting closed, so nothing more
			// arrives; commit what is queued.
			for {
				select {
				case r := <-w.in.reqs:
					w.batch = append(w.batch[:0], r)
					w.commit()
					continue
				default:
				}
				break
			}
			w.rotate()
			return
		}
	}
}

func (w *walWriter) commit() {
	batch := w.batch
	if w.failed != nil {
		for _, r := range batch {
			r.done <- w.failed
		}
		return
	}
	// A batch may straddle a segment boundary (size or hour); write and
	// fsync each part into its own segment.
	w.buf = w.buf[:0]
	var err error
	for _, r := range batch {
		if w.f != nil && (r.hour != w.hour || w.size+int64(len(w.buf)) >= w.in.opts.SegmentMaxBytes) {
			if err = w.write(); err != nil {
				break
			}
			w.rotate()
		}
		if w.f == nil {
			if err = w.open(r.hour); err != nil {
				break
			}
		}
		w.buf = append(w.buf, r.frame...)
		r.seq = w.seq
	}
	if err == nil {
		err = w.write()
	}
	if err != nil {
		w.failed = fmt.Errorf("WAL segment %d: %w", w.seq, err)
		w.in.failed.Store(&w.failed)
		w.in.log.Error("WAL write failed; refusing reports until reopened", "err", err)
		err = w.failed
	}
	for _, r := range batch {
		r.done <- err
	}
}

// write appends the buffered frames to the current segment and fsyncs.
func (w *walWriter) write() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.size += int64(len(w.buf))
	w.in.m.walBytes.Add(float64(len(w.buf)))
	w.buf = w.buf[:0]
	return nil
}

func (w *walWriter) open(hour int64) error {
	seq := w.next
	f, err := os.OpenFile(filepath.Join(w.dir, segmentName(seq)), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// The segment's directory entry must be durable before any record
	// in it is acknowledged.
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.next++
	w.f, w.seq, w.hour, w.size, w.opened = f, seq, hour, 0, time.Now()
	return nil
}

// rotate closes the current segment (already fsynced by write) and hands
// it to the compactor.
func (w *walWriter) rotate() {
	if w.f == nil {
		return
	}
	if err := w.f.Close(); err != nil && w.failed == nil {
		w.failed = err
	}
	w.f = nil
	if w.failed == nil {
		w.in.comp.enqueue(w.seq)
	}
}
