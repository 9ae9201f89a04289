package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ocdn/ocdn/internal/content"
)

// ImportResult says what Import did.
type ImportResult struct {
	Imported []string  `json:"imported"` // newly stored, verified
	Present  []string  `json:"present"`  // already stored with the right hash
	Missing  []string  `json:"missing"`  // in the catalog, not under the source directory
	Refused  []Refusal `json:"refused"`  // found but not stored
	Bytes    int64     `json:"bytes"`    // bytes stored
}

// Refusal is a source file Import would not store, and why.
type Refusal struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Err    error  `json:"-"` // wraps ErrHashMismatch, ErrSizeMismatch, ErrFull, …
}

// ImportProgress is reported while Import runs.
type ImportProgress struct {
	Files, FilesTotal int   // catalog files looked at so far, and in all
	Bytes, BytesTotal int64 // bytes looked at so far (read or skipped), and in all
	Path              string
}

// ImportOption adjusts Import.
type ImportOption func(*importOptions)

type importOptions struct {
	progress func(ImportProgress)
}

// WithProgress has Import call f as files are read (from Import's own
// goroutine, at least once per file and about every 8 MiB within one).
func WithProgress(f func(ImportProgress)) ImportOption {
	return func(o *importOptions) { o.progress = f }
}

// Import pre-loads the store with every catalog file found at
// srcDir/title/file, the way appliances are shipped already filled. Each
// file is verified exactly like a fill: one whose size or SHA-256 differs
// from the catalog is refused and listed, and what the store already holds
// stays as it was. Files the catalog lists but srcDir lacks are listed as
// missing; that is not an error. The error is non-nil only when Import
// could not finish (ctx ended, the store is read-only).
func (s *Store) Import(ctx context.Context, catalog *content.Catalog, srcDir string, opts ...ImportOption) (ImportResult, error) {
	var o importOptions
	for _, opt := range opts {
		opt(&o)
	}
	var res ImportResult
	if s.readOnly {
		return res, ErrReadOnly
	}
	if info, err := os.Stat(srcDir); err != nil {
		return res, err
	} else if !info.IsDir() {
		return res, fmt.Errorf("%s is not a directory", srcDir)
	}
	prog := ImportProgress{FilesTotal: len(catalog.Files), BytesTotal: catalog.TotalBytes()}
	report := func() {
		if o.progress != nil {
			o.progress(prog)
		}
	}
	for _, f := range catalog.Files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		prog.Path = f.Path
		start := prog.Bytes
		err := s.importOne(ctx, f, srcDir, &prog, report)
		prog.Files++
		prog.Bytes = start + f.Size
		switch {
		case err == nil:
			res.Imported = append(res.Imported, f.Path)
			res.Bytes += f.Size
		case errors.Is(err, errPresent):
			res.Present = append(res.Present, f.Path)
		case errors.Is(err, fs.ErrNotExist):
			res.Missing = append(res.Missing, f.Path)
		case ctx.Err() != nil:
			return res, ctx.Err()
		default:
			res.Refused = append(res.Refused, Refusal{Path: f.Path, Reason: err.Error(), Err: err})
		}
		report()
	}
	return res, nil
}

var errPresent = errors.New("already stored")

func (s *Store) importOne(ctx context.Context, f content.File, srcDir string, prog *ImportProgress, report func()) error {
	if err := content.ValidatePath(f.Path); err != nil {
		return err // a validated catalog never gets here
	}
	src := filepath.Join(srcDir, filepath.FromSlash(f.Path))
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	// A wrong size is refused without reading the file.
	if info.Size() != f.Size {
		return fmt.Errorf("%s is %d bytes, the catalog says %d: %w", src, info.Size(), f.Size, ErrSizeMismatch)
	}
	w, err := s.NewWriter(f)
	if err != nil {
		return err
	}
	if w == nil {
		return errPresent
	}
	defer w.Abort()
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r := &progressReader{r: in, prog: prog, report: report}
	if _, err := copyCtx(ctx, w, r); err != nil {
		return err
	}
	return w.Commit()
}

type progressReader struct {
	r      io.Reader
	prog   *ImportProgress
	report func()
	since  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.prog.Bytes += int64(n)
	if p.since += int64(n); p.since >= 8<<20 {
		p.since = 0
		p.report()
	}
	return n, err
}
