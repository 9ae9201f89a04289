// Package atomicfile provides crash-safe file replacement: a reader, or
// the file system after a power cut, sees either the old file or the whole
// new one, never a torn mix. The bytes go to a temporary file, which is
// fsynced, renamed over the final name, and then the directory is fsynced
// so that the rename itself survives a crash. It is the one way ocdn
// writes a file that must survive a crash.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrDirSync means Commit renamed the file into place but could not make
// the rename durable: the new file is visible now and may be lost (never
// torn) in a crash. Callers that keep an index of what is on disk treat
// the file as written.
var ErrDirSync = errors.New("file renamed into place, but its directory could not be synced")

// File is a file being written that appears under its final name only
// when committed. It is not safe for concurrent use.
type File struct {
	f    *os.File
	done bool
}

// CreateTemp starts a temporary file in dir, named by pattern as for
// os.CreateTemp, with mode 0600. dir must be on the same file system as
// the name it will be committed to.
func CreateTemp(dir, pattern string) (*File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &File{f: f}, nil
}

// Write implements io.Writer.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Name is the temporary file's name.
func (f *File) Name() string { return f.f.Name() }

// Stat describes the temporary file.
func (f *File) Stat() (fs.FileInfo, error) { return f.f.Stat() }

// Commit makes the written bytes durable and visible as name. Any error
// but ErrDirSync leaves name as it was and removes the temporary file.
func (f *File) Commit(name string) error {
	if f.done {
		return errors.New("atomicfile: already committed or aborted")
	}
	f.done = true
	err := f.f.Sync()
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.f.Name(), name)
	}
	if err != nil {
		os.Remove(f.f.Name())
		return err
	}
	if err := SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrDirSync, err)
	}
	return nil
}

// Abort discards the temporary file. After Commit it does nothing, so it
// can be deferred.
func (f *File) Abort() {
	if !f.done {
		f.done = true
		f.f.Close()
		os.Remove(f.f.Name())
	}
}

// WriteFile replaces name with data, atomically and durably, with
// permissions perm. The temporary file lives beside name, as a hidden
// file that a crash may leave behind.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.f.Chmod(perm); err != nil {
		return err
	}
	return f.Commit(name)
}

// SyncDir fsyncs a directory, which makes the creation, rename or removal
// of the files in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
