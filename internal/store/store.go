// Package store provides an appliance's on-disk object store. Objects are
// addressed by their catalog path (title/file) and kept in a sharded layout
// that no request can escape. A write goes to a temporary file, is fsynced,
// checked against the catalog SHA-256 and only then renamed into place, so
// a crash at any moment never leaves a partial or wrong object visible.
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

// Entry describes one stored object.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Store is safe for concurrent use.
type Store struct {
	root     string
	capacity int64
	log      *slog.Logger

	// readOnly stores (OpenReadOnly) never change anything on disk, so an
	// operator can inspect the store of a running appliance.
	readOnly bool

	mu       sync.RWMutex
	index    map[string]Entry
	used     int64
	reserved int64    // bytes promised to writers in progress
	gen      uint64   // bumped on every change, so reporters can send only news
	strays   []string // files in objects/ that are not named like objects

	scrub scrubCounters
}

// Open opens (creating if needed) the store under root. Leftover temporary
// files from a crash are removed; objects are indexed from their names.
// capacity ≤ 0 means unlimited.
func Open(root string, capacity int64, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{root: root, capacity: capacity, log: logger.With("component", "store"), index: map[string]Entry{}}
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
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens an existing store for inspection (List, Lookup, Open,
// Verify) without touching anything on disk: partial writes stay, nothing
// is created or removed. It is safe to use on the store of a running
// appliance; objects that appliance removes meanwhile are simply skipped.
func OpenReadOnly(root string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{root: root, readOnly: true, log: logger.With("component", "store"), index: map[string]Entry{}}
	if info, err := os.Stat(s.objectsDir()); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("%s is not an ocdn store (no objects/ directory)", root)
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root is the directory the store lives in.
func (s *Store) Root() string { return s.root }

func (s *Store) objectsDir() string    { return filepath.Join(s.root, "objects") }
func (s *Store) tmpDir() string        { return filepath.Join(s.root, "tmp") }
func (s *Store) quarantineDir() string { return filepath.Join(s.root, "quarantine") }

// objectFile is where an object lives: objects/<first two hex digits of its
// hash>/<title>/<file>~<sha256>. Keeping the hash in the name lets the
// index be rebuilt from a directory listing and makes verification need no
// catalog.
func (s *Store) objectFile(e Entry) string {
	title, file, _ := strings.Cut(e.Path, "/")
	return filepath.Join(s.objectsDir(), e.SHA256[:2], title, file+"~"+e.SHA256)
}

func (s *Store) scan() error {
	return filepath.WalkDir(s.objectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		e, ok := s.parseName(p)
		if !ok {
			s.log.Warn("ignoring unexpected file in store", "file", p)
			s.strays = append(s.strays, p)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e.Size = info.Size()
		if old, dup := s.index[e.Path]; dup {
			// Two versions of one path: a crash between publishing the new
			// one and removing the old. Both are verified content; keep
			// one so the index stays a function of the path.
			s.log.Warn("two versions of one object; keeping one", "path", e.Path)
			if !s.readOnly {
				s.dropFile(old)
			}
			s.used -= old.Size
		}
		s.index[e.Path] = e
		s.used += e.Size
		return nil
	})
}

func (s *Store) parseName(p string) (Entry, bool) {
	rel, err := filepath.Rel(s.objectsDir(), p)
	if err != nil {
		return Entry{}, false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 {
		return Entry{}, false
	}
	file, sum, ok := strings.Cut(parts[2], "~")
	if !ok || len(sum) != 64 || parts[0] != sum[:2] {
		return Entry{}, false
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return Entry{}, false
	}
	path := parts[1] + "/" + file
	if content.ValidatePath(path) != nil {
		return Entry{}, false
	}
	return Entry{Path: path, SHA256: sum}, true
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
	tmp  *os.File
	hash interface {
		io.Writer
		Sum([]byte) []byte
	}
	n    int64
	done bool
}

// NewWriter starts writing f. It returns (nil, nil) when the object is
// already stored with the same hash.
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
	tmp, err := os.CreateTemp(s.tmpDir(), "put-*")
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

func isLowerHex64(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
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
	defer os.Remove(w.tmp.Name())
	defer w.tmp.Close()
	if w.n != w.f.Size {
		return fmt.Errorf("%s: got %d of %d bytes: %w", w.f.Path, w.n, w.f.Size, ErrSizeMismatch)
	}
	if got := hex.EncodeToString(w.hash.Sum(nil)); got != w.f.SHA256 {
		return fmt.Errorf("%s: sha256 %s, want %s: %w", w.f.Path, got, w.f.SHA256, ErrHashMismatch)
	}
	if err := w.tmp.Sync(); err != nil {
		return err
	}
	return w.s.publish(w.tmp.Name(), Entry{Path: w.f.Path, Size: w.n, SHA256: w.f.SHA256})
}

// Abort discards an unfinished write.
func (w *Writer) Abort() {
	if !w.done {
		w.done = true
		w.tmp.Close()
		os.Remove(w.tmp.Name())
		w.s.release(w.f.Size)
	}
}

func (s *Store) publish(tmpName string, e Entry) error {
	final := s.objectFile(e)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmpName, final); err != nil {
		return err
	}
	syncDir(filepath.Dir(final))
	s.mu.Lock()
	old, had := s.index[e.Path]
	s.index[e.Path] = e
	s.used += e.Size
	if had {
		s.used -= old.Size
	}
	s.gen++
	s.mu.Unlock()
	if had && old.SHA256 != e.SHA256 {
		s.dropFile(old)
	}
	return nil
}

// syncDir makes a rename durable; failure only weakens durability, not
// correctness, so it is not an error.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

func (s *Store) dropFile(e Entry) {
	if err := os.Remove(s.objectFile(e)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("remove object file", "path", e.Path, "err", err)
	}
}

// Open returns the object's file for reading, and its entry. Callers close
// the file. An object removed while open stays readable until closed.
func (s *Store) Open(path string) (*os.File, Entry, error) {
	s.mu.RLock()
	e, ok := s.index[path]
	s.mu.RUnlock()
	if !ok {
		return nil, Entry{}, ErrNotFound
	}
	f, err := os.Open(s.objectFile(e))
	if err != nil {
		return nil, Entry{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, e, nil
}

// Lookup returns the entry for path.
func (s *Store) Lookup(path string) (Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.index[path]
	return e, ok
}

// Remove deletes an object.
func (s *Store) Remove(path string) error {
	if s.readOnly {
		return ErrReadOnly
	}
	s.mu.Lock()
	e, ok := s.index[path]
	if ok {
		delete(s.index, path)
		s.used -= e.Size
		s.gen++
	}
	s.mu.Unlock()
	if !ok {
		return ErrNotFound
	}
	s.dropFile(e)
	return nil
}

// List returns every entry sorted by path.
func (s *Store) List() []Entry {
	s.mu.RLock()
	out := make([]Entry, 0, len(s.index))
	for _, e := range s.index {
		out = append(out, e)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Usage reports bytes used, capacity (0 = unlimited) and the generation,
// which changes whenever the set of objects changes.
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

// Verify re-hashes every object and returns those that no longer match,
// and any file under objects/ that is not named like an object. It does not
// change the store; the scrubber (Scrub) is what quarantines bad objects.
// A read-only store skips objects removed since it was opened.
func (s *Store) Verify(ctx context.Context) ([]Problem, error) {
	return s.VerifyProgress(ctx, nil)
}

// VerifyProgress is Verify calling progress(done, total) after each object.
func (s *Store) VerifyProgress(ctx context.Context, progress func(done, total int)) ([]Problem, error) {
	var problems []Problem
	s.mu.RLock()
	for _, p := range s.strays {
		problems = append(problems, Problem{Path: p, Reason: "unexpected file: not named objects/<sha[:2]>/<title>/<file>~<sha256>"})
	}
	s.mu.RUnlock()
	entries := s.List()
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return problems, err
		}
		err := s.check(e)
		if err != nil && !(s.readOnly && errors.Is(err, fs.ErrNotExist)) {
			problems = append(problems, Problem{Path: e.Path, Reason: err.Error()})
		}
		if progress != nil {
			progress(i+1, len(entries))
		}
	}
	return problems, nil
}

func (s *Store) check(e Entry) error {
	sum, n, err := content.HashFile(s.objectFile(e))
	switch {
	case err != nil:
		return err
	case n != e.Size:
		return fmt.Errorf("size %d, want %d", n, e.Size)
	case sum != e.SHA256:
		return fmt.Errorf("sha256 %s, want %s", sum, e.SHA256)
	}
	return nil
}
