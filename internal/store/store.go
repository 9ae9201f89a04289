package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/atomicfile"
	"github.com/ocdn/ocdn/internal/content"
)

// Sentinel errors.
var (
	ErrNotFound     = errors.New("object not in store")
	ErrHashMismatch = errors.New("content does not match its SHA-256")
	ErrSizeMismatch = errors.New("content does not match its size")
	ErrFull         = errors.New("store capacity exceeded")
	ErrReadOnly     = errors.New("store opened read-only")
)

// openVerifyBytes is how much Open re-hashes itself before it returns, so
// that the few objects a crash leaves in doubt are served from the first
// request on; the rest are left to Run. 64 MiB is well under a second
// from any disk. A variable only so tests can exercise the background path.
var openVerifyBytes int64 = 64 << 20

// Entry describes one stored object.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// OpenReport says what Open found and did.
type OpenReport struct {
	// Clean says the previous run recorded a clean shutdown.
	Clean bool `json:"clean"`
	// Checkpoint is the file-system time from which objects were treated
	// as possibly changed; zero when it was unknown and every object was.
	Checkpoint time.Time `json:"checkpoint"`
	// Why is set when every object had to be re-hashed: no checkpoint,
	// an unreadable one, or a clock that went backwards.
	Why     string `json:"why,omitempty"`
	Objects int    `json:"objects"` // object files found
	Trusted int    `json:"trusted"` // unchanged since the checkpoint: served at once
	// Rehashed were re-hashed by Open itself; Pending are left to Run
	// and are not served until it has verified them.
	Rehashed int `json:"rehashed"`
	Pending  int `json:"pending"`
	// Quarantined failed their size check or re-hash.
	Quarantined []Problem     `json:"quarantined,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
}

// Store is safe for concurrent use.
type Store struct {
	root     string
	capacity int64
	log      *slog.Logger

	// readOnly stores (OpenReadOnly) never change anything on disk, so an
	// operator can inspect the store of a running appliance.
	readOnly bool

	mu sync.RWMutex
	// index holds the verified objects: the ones served and reported as
	// held. pending holds objects on disk that may have changed since
	// they were verified; they are not served until re-hashed. A path is
	// in at most one of the two.
	index   map[string]Entry
	pending map[string]Entry
	// legacy maps paths to files still named the old way (no size); only
	// a read-only store has any, since Open renames them.
	legacy   map[string]string
	used     int64 // bytes of indexed and pending objects
	reserved int64 // bytes promised to writers in progress
	// gen is bumped whenever the served set changes, so reporters can
	// send only news. It starts at a value unique to this open (the
	// time), never at 0: a restarted appliance whose store changed while
	// down (quarantine at open) must not claim the generation its
	// previous process reported, nor the 0 a control plane assumes for
	// an appliance it has never heard the held set of.
	gen    uint64
	strays []string // files in objects/ that are not named like objects

	// urgent carries pending paths a client asked for, so that the
	// verifier takes them first.
	urgent chan string

	ckMu         sync.Mutex // serializes checkpoints
	ck           checkpointState
	checkpointAt atomic.Int64 // ck.Checkpoint in Unix ns, for the metric
	opened       OpenReport

	scrub scrubCounters
}

func newStore(root string, capacity int64, logger *slog.Logger, readOnly bool) *Store {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Store{root: root, capacity: capacity, readOnly: readOnly, log: logger.With("component", "store"),
		gen:   uint64(time.Now().UnixNano()),
		index: map[string]Entry{}, pending: map[string]Entry{}, legacy: map[string]string{}, urgent: make(chan string, 64)}
}

// Open opens (creating if needed) the store under root, ready to serve.
// Writes a crash left unfinished are removed; objects are indexed from
// their names; an object whose size differs from the one in its name is
// quarantined; objects that may have changed since the last checkpoint
// are re-hashed (up to openVerifyBytes here, the rest by Run) and not
// served until they pass. capacity ≤ 0 means unlimited.
func Open(root string, capacity int64, logger *slog.Logger) (*Store, error) {
	start := time.Now()
	s := newStore(root, capacity, logger, false)
	for _, d := range []string{s.objectsDir(), s.tmpDir(), s.quarantineDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("clear partial writes: %w", err)
	}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return nil, err
	}
	rep := &s.opened
	prev, err := s.readCheckpoint()
	s.ck = prev
	s.checkpointAt.Store(unixNano(prev.Checkpoint))
	rep.Clean, rep.Checkpoint = prev.Clean, prev.Checkpoint
	now, nowErr := s.fsNow()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rep.Why = "no checkpoint.json"
	case err != nil:
		rep.Why = err.Error()
	case prev.Checkpoint.IsZero():
		rep.Why = "no checkpoint recorded"
	case nowErr != nil:
		rep.Why = "cannot read the file system clock: " + nowErr.Error()
	case now.Before(prev.Checkpoint):
		// Change times are only comparable on a clock that did not go
		// back; if it did, nothing can be trusted unread.
		rep.Why = fmt.Sprintf("the file system clock (%s) is behind the checkpoint (%s)",
			now.Format(time.RFC3339Nano), prev.Checkpoint.Format(time.RFC3339Nano))
	}
	if rep.Why != "" {
		rep.Checkpoint = time.Time{}
	}
	since := rep.Checkpoint
	if err := s.scan(func(ctime time.Time) bool { return since.IsZero() || !ctime.Before(since) }); err != nil {
		return nil, err
	}
	rep.Pending = len(s.pending)
	if err := s.verifyAtOpen(); err != nil {
		return nil, err
	}
	rep.Pending = len(s.pending)
	rep.Trusted = len(s.index) - rep.Rehashed
	// Before anything is served: record that this run has not ended
	// cleanly, and move the checkpoint if nothing is left pending.
	if err := s.checkpoint(false); err != nil {
		s.log.Error("store checkpoint failed; a crash now re-hashes more", "err", err)
	}
	rep.Duration = time.Since(start)
	args := []any{"objects", rep.Objects, "trusted", rep.Trusted, "rehashed", rep.Rehashed,
		"pending", rep.Pending, "quarantined", len(rep.Quarantined), "clean_shutdown", rep.Clean, "duration", rep.Duration}
	switch {
	case rep.Why != "" && rep.Objects > 0:
		s.log.Warn("store opened; every object re-verified before it is served", append(args, "why", rep.Why)...)
	case rep.Rehashed+rep.Pending+len(rep.Quarantined) > 0:
		s.log.Info("store opened; objects changed since the last checkpoint re-verified", append(args, "checkpoint", rep.Checkpoint)...)
	default: // the usual start: quiet, so a command-line tool stays so
		s.log.Debug("store opened", append(args, "checkpoint", rep.Checkpoint)...)
	}
	return s, nil
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (which UnixNano
// leaves undefined).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// OpenReadOnly opens an existing store for inspection (List, Lookup, Open,
// Verify) without touching anything on disk: partial writes stay, nothing
// is created, renamed or removed, and every object is listed as it is
// named. It is safe to use on the store of a running appliance; objects
// that appliance removes meanwhile are simply skipped.
func OpenReadOnly(root string, logger *slog.Logger) (*Store, error) {
	s := newStore(root, 0, logger, true)
	if info, err := os.Stat(s.objectsDir()); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("%s is not an ocdn store (no objects/ directory)", root)
	}
	if err := s.scan(func(time.Time) bool { return false }); err != nil {
		return nil, err
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

// Opened reports what Open found and did.
func (s *Store) Opened() OpenReport {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.opened
	r.Quarantined = append([]Problem(nil), r.Quarantined...)
	return r
}

// scan indexes objects/ by name. suspect says, from a file's change time,
// whether the object may have changed since it was verified; such objects
// go to pending. A writable store quarantines an object whose size is
// not the one in its name and renames legacy names; a read-only one
// indexes everything as found, for Verify to judge.
func (s *Store) scan(suspect func(ctime time.Time) bool) error {
	return filepath.WalkDir(s.objectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.objectsDir(), p)
		if err != nil {
			return err
		}
		e, legacy, ok := parseObjectName(filepath.ToSlash(rel))
		if !ok || !d.Type().IsRegular() {
			// A symlink named like an object could make the edge serve
			// any file on the machine.
			s.log.Warn("ignoring unexpected file in store", "file", p)
			s.strays = append(s.strays, p)
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since listed (read-only, beside a running appliance)
		}
		if err != nil {
			return err
		}
		ctime := changeTime(info)
		s.opened.Objects++
		pend := suspect(ctime)
		switch {
		case legacy && s.readOnly:
			e.Size = info.Size()
		case legacy:
			// Written before sizes joined names: its size was never
			// checked against anything, so it is re-hashed under its
			// new name.
			e.Size = info.Size()
			if err := os.Rename(p, s.objectFile(e)); err != nil {
				s.log.Warn("cannot rename object to the current layout; ignoring it", "file", p, "err", err)
				s.strays = append(s.strays, p)
				return nil
			}
			pend = true
		case info.Size() != e.Size && !s.readOnly:
			reason := sizeVerdict(info.Size(), e.Size)
			s.moveToQuarantine(p, e, reason)
			s.scrub.quarantined.Add(1)
			s.opened.Quarantined = append(s.opened.Quarantined, Problem{Path: e.Path, Reason: reason})
			return nil
		}
		if !s.keepNewer(e, ctime) {
			return nil
		}
		if legacy && s.readOnly {
			s.legacy[e.Path] = p
		}
		if pend && !s.readOnly {
			s.pending[e.Path] = e
		} else {
			s.index[e.Path] = e
		}
		s.used += e.Size
		return nil
	})
}

// keepNewer resolves two files for one path, left by a crash between
// publishing a new version and removing the old: the one changed last is
// the newer version. It reports whether e (changed at ctime) is kept.
func (s *Store) keepNewer(e Entry, ctime time.Time) bool {
	old, inIndex := s.index[e.Path]
	if !inIndex {
		var ok bool
		if old, ok = s.pending[e.Path]; !ok {
			return true
		}
	}
	if old == e && s.legacy[e.Path] == "" {
		return false // the same file, met again after a legacy name was renamed to it
	}
	oldFile := s.fileOf(old)
	oldInfo, err := os.Stat(oldFile)
	keep := err != nil || !changeTime(oldInfo).After(ctime)
	loser := old
	if !keep {
		loser = e
	}
	s.log.Warn("two versions of one object; keeping the newer", "path", e.Path, "dropped_sha256", loser.SHA256)
	if !keep {
		if !s.readOnly {
			s.dropFile(e)
		}
		return false
	}
	delete(s.index, old.Path)
	delete(s.pending, old.Path)
	delete(s.legacy, old.Path)
	s.used -= old.Size
	if !s.readOnly {
		if err := os.Remove(oldFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("remove object file", "path", old.Path, "err", err)
		}
	}
	return true
}

// verifyAtOpen re-hashes pending objects in path order, each that still
// fits in what is left of openVerifyBytes.
func (s *Store) verifyAtOpen() error {
	budget := openVerifyBytes
	for _, e := range s.pendingList() {
		if e.Size > budget {
			continue
		}
		budget -= e.Size
		bad, err := s.verifyOne(context.Background(), e)
		if err != nil {
			return err
		}
		if bad != nil {
			s.opened.Quarantined = append(s.opened.Quarantined, *bad)
		} else if _, ok := s.index[e.Path]; ok {
			s.opened.Rehashed++
		}
	}
	return nil
}

// Put stores the content of f read from r. It succeeds only if exactly
// f.Size bytes hashing to f.SHA256 arrive; otherwise nothing visible
// changes. Putting an object already present with the same hash is a no-op.
func (s *Store) Put(ctx context.Context, f content.File, r io.Reader) error {
	w, err := s.NewWriter(f)
	if err != nil {
		return err
	}
	if w == nil {
		return nil // already stored
	}
	defer w.Abort()
	if _, err := copyCtx(ctx, w, r); err != nil {
		return err
	}
	return w.Commit()
}

func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, werr := dst.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Writer receives one object's bytes; Commit makes it visible.
type Writer struct {
	s    *Store
	f    content.File
	tmp  *atomicfile.File
	hash interface {
		io.Writer
		Sum([]byte) []byte
	}
	n    int64
	done bool
}

// NewWriter starts writing f. It returns (nil, nil) when the object is
// already stored, verified, with the same hash. A copy pending
// verification is replaced by what is written.
func (s *Store) NewWriter(f content.File) (*Writer, error) {
	if err := content.ValidatePath(f.Path); err != nil {
		return nil, err
	}
	// The hash becomes part of the object's file name, so it must be
	// exactly lowercase hex: anything else could name a file elsewhere.
	if !isLowerHex64(f.SHA256) {
		return nil, fmt.Errorf("%s: sha256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
	}
	if f.Size < 0 {
		return nil, fmt.Errorf("%s: size %d is negative: %w", f.Path, f.Size, ErrSizeMismatch)
	}
	if s.readOnly {
		return nil, ErrReadOnly
	}
	// Space is reserved for the whole object up front, so concurrent
	// writers cannot together overshoot the capacity.
	s.mu.Lock()
	old, have := s.index[f.Path]
	if have && old.SHA256 == f.SHA256 {
		s.mu.Unlock()
		return nil, nil
	}
	free := s.capacity - s.used - s.reserved
	if s.capacity > 0 && f.Size > free {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s needs %d bytes, %d free: %w", f.Path, f.Size, max(free, 0), ErrFull)
	}
	s.reserved += f.Size
	s.mu.Unlock()
	tmp, err := atomicfile.CreateTemp(s.tmpDir(), "put-*")
	if err != nil {
		s.release(f.Size)
		return nil, err
	}
	return &Writer{s: s, f: f, tmp: tmp, hash: sha256.New()}, nil
}

func (s *Store) release(n int64) {
	s.mu.Lock()
	s.reserved -= n
	s.mu.Unlock()
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.f.Size {
		return 0, fmt.Errorf("%s: more than %d bytes: %w", w.f.Path, w.f.Size, ErrSizeMismatch)
	}
	n, err := w.tmp.Write(p)
	w.hash.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Commit verifies and publishes the object.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("writer already finished")
	}
	w.done = true
	defer w.s.release(w.f.Size)
	defer w.tmp.Abort() // a no-op once published
	if w.n != w.f.Size {
		return fmt.Errorf("%s: got %d of %d bytes: %w", w.f.Path, w.n, w.f.Size, ErrSizeMismatch)
	}
	if got := hex.EncodeToString(w.hash.Sum(nil)); got != w.f.SHA256 {
		return fmt.Errorf("%s: sha256 %s, want %s: %w", w.f.Path, got, w.f.SHA256, ErrHashMismatch)
	}
	return w.s.publish(w.tmp, Entry{Path: w.f.Path, Size: w.n, SHA256: w.f.SHA256})
}

// Abort discards an unfinished write.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.tmp.Abort()
		w.s.release(w.f.Size)
	}
}

func (s *Store) publish(tmp *atomicfile.File, e Entry) error {
	final := s.objectFile(e)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if err := tmp.Commit(final); errors.Is(err, atomicfile.ErrDirSync) {
		// Visible and verified; a crash may lose it, never tear it.
		s.log.Warn("object published but its directory could not be synced", "path", e.Path, "err", err)
	} else if err != nil {
		return err
	}
	s.mu.Lock()
	old, had := s.index[e.Path]
	if !had {
		old, had = s.pending[e.Path]
		delete(s.pending, e.Path)
	}
	s.index[e.Path] = e
	s.used += e.Size
	if had {
		s.used -= old.Size
	}
	s.gen++
	s.mu.Unlock()
	if had && old != e {
		s.dropFile(old)
	}
	return nil
}

func (s *Store) dropFile(e Entry) {
	if err := os.Remove(s.objectFile(e)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("remove object file", "path", e.Path, "err", err)
	}
}

// Open returns the object's file for reading, and its entry. Callers close
// the file. An object removed while open stays readable until closed. A
// file whose size is not the entry's (truncated or extended behind the
// store's back) is quarantined and reported as not found, so it is never
// announced with a length it does not have.
func (s *Store) Open(path string) (*os.File, Entry, error) {
	e, ok := s.Lookup(path)
	if !ok {
		return nil, Entry{}, ErrNotFound
	}
	f, err := os.Open(s.fileOf(e))
	if err != nil {
		return nil, Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	if fi.Size() != e.Size {
		f.Close()
		if !s.readOnly {
			s.quarantine(e, fi, sizeVerdict(fi.Size(), e.Size))
		}
		return nil, Entry{}, ErrNotFound
	}
	return f, e, nil
}

// Lookup returns the entry for path if the object is verified and served.
// Asking for an object that is pending verification moves it to the front
// of the verifier's queue.
func (s *Store) Lookup(path string) (Entry, bool) {
	e, _, ok := s.LookupGen(path)
	return e, ok
}

// LookupGen is Lookup also returning the generation (Usage's) read with
// it: one read lock where Lookup and Usage took two, for a server that
// asks both on every request (internal/edge's descriptor cache).
func (s *Store) LookupGen(path string) (Entry, uint64, bool) {
	s.mu.RLock()
	e, ok := s.index[path]
	gen := s.gen
	pending := false
	if !ok && len(s.pending) > 0 {
		_, pending = s.pending[path]
	}
	s.mu.RUnlock()
	if pending {
		select {
		case s.urgent <- path:
		default: // the verifier has plenty to take first already
		}
	}
	return e, gen, ok
}

// Holds reports whether the store has path with this hash, served or
// pending verification: what fill need not download again. A pending
// object that fails verification is quarantined, and then no longer held.
func (s *Store) Holds(path, sha256 string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.index[path]
	if !ok {
		e, ok = s.pending[path]
	}
	return ok && e.SHA256 == sha256
}

// Pending is how many objects wait for verification before they are served.
func (s *Store) Pending() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.pending)
}

func (s *Store) pendingList() []Entry { return s.sorted(true) }

// sorted lists the pending or the verified entries by path.
func (s *Store) sorted(pending bool) []Entry {
	s.mu.RLock()
	m := s.index
	if pending {
		m = s.pending
	}
	out := make([]Entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Remove deletes an object, served or pending.
func (s *Store) Remove(path string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	e, ok := s.index[path]
	if ok {
		delete(s.index, path)
		s.gen++
	} else if e, ok = s.pending[path]; ok {
		delete(s.pending, path)
	}
	if ok {
		s.used -= e.Size
	}
	s.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	s.dropFile(e)
	return nil
}

// List returns every verified entry sorted by path: what the store serves
// and reports as held. Objects pending verification are not listed.
func (s *Store) List() []Entry { return s.sorted(false) }

// Usage reports bytes used on disk (verified and pending objects),
// capacity (0 = unlimited) and the generation, which changes whenever the
// set of served objects changes.
func (s *Store) Usage() (used, capacity int64, gen uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.used, s.capacity, s.gen
}

// Problem is an object that failed verification.
type Problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Verify re-hashes every object, verified or pending, and returns those
// that no longer match, those that cannot be read, and any file under
// objects/ that is not named like an object. It does not change the
// store. The verdicts are the ones Open, Run and the scrubber act on
// (they share one check). A read-only store skips objects removed since
// it was opened.
func (s *Store) Verify(ctx context.Context) ([]Problem, error) {
	return s.VerifyProgress(ctx, nil)
}

// VerifyProgress is Verify calling progress(done, total) after each object.
func (s *Store) VerifyProgress(ctx context.Context, progress func(done, total int)) ([]Problem, error) {
	var problems []Problem
	s.mu.RLock()
	for _, p := range s.strays {
		problems = append(problems, Problem{Path: p, Reason: "unexpected file: not named objects/<sha[:2]>/<title>/<file>~<sha256>~<size>"})
	}
	s.mu.RUnlock()
	entries := append(s.List(), s.pendingList()...)
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	for i, e := range entries {
		v, err := checkObject(ctx, s.fileOf(e), e, nil, nil)
		if err != nil {
			return problems, err
		}
		switch {
		case v.bad == verdictMissing && s.readOnly:
		case v.bad != "":
			problems = append(problems, Problem{Path: e.Path, Reason: v.bad})
		case v.unread != "":
			problems = append(problems, Problem{Path: e.Path, Reason: "cannot check: " + v.unread})
		}
		if progress != nil {
			progress(i+1, len(entries))
		}
	}
	return problems, nil
}

// moveToQuarantine takes a bad object file out of objects/, keeping it
// under quarantine/ as evidence. It does not touch the index.
func (s *Store) moveToQuarantine(src string, e Entry, reason string) {
	title, _, _ := strings.Cut(e.Path, "/")
	dst := filepath.Join(s.quarantineDir(), title, filepath.Base(src)+"."+fmt.Sprint(time.Now().UnixNano()))
	err := os.MkdirAll(filepath.Dir(dst), 0o755)
	if err == nil {
		err = os.Rename(src, dst)
	}
	if err != nil {
		// Keeping a corrupt object servable is worse than losing the
		// evidence.
		s.log.Error("cannot quarantine object; removing it", "path", e.Path, "err", err)
		if err := os.Remove(src); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("cannot remove corrupt object", "path", e.Path, "err", err)
		}
		return
	}
	s.log.Warn("object failed verification; quarantined", "path", e.Path, "reason", reason, "file", dst)
}

// quarantine moves a bad object out of objects/ and forgets it, unless it
// changed since it was checked: removed, replaced, or a fresh copy
// published over the file that was read (checked). It reports whether it
// did.
func (s *Store) quarantine(e Entry, checked os.FileInfo, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, served := s.index, true
	if cur, ok := m[e.Path]; !ok || cur != e {
		m, served = s.pending, false
		if cur, ok := m[e.Path]; !ok || cur != e {
			return false // removed or replaced while being checked
		}
	}
	src := s.objectFile(e)
	if checked != nil {
		now, err := os.Stat(src)
		if err != nil || !os.SameFile(now, checked) {
			return false // a fresh copy was published over it meanwhile
		}
		s.moveToQuarantine(src, e, reason)
	} else {
		s.log.Warn("object failed verification; dropped from index", "path", e.Path, "reason", reason)
	}
	if served {
		s.gen++
	}
	delete(m, e.Path)
	s.used -= e.Size
	s.scrub.quarantined.Add(1)
	return true
}
