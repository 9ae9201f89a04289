package store

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ocdn/ocdn/internal/content"
)

// The on-disk layout, under the store's root:
//
//	objects/<sha[:2]>/<title>/<file>~<sha256>~<size>   verified objects
//	tmp/put-*                                          writes in progress (removed at open)
//	tmp/clock                                          probe for the file system's clock
//	quarantine/<title>/<file>~<sha256>~<size>.<ns>     objects that failed verification
//	checkpoint.json                                    the checkpoint (see checkpoint.go)
//
// The name carries everything the index needs, so the index is rebuilt
// from a directory listing, verification needs no catalog, and the size in
// the name is checked against the file's size at every open. Catalog paths
// cannot contain '~', so the name splits unambiguously.

func (s *Store) objectsDir() string     { return filepath.Join(s.root, "objects") }
func (s *Store) tmpDir() string         { return filepath.Join(s.root, "tmp") }
func (s *Store) quarantineDir() string  { return filepath.Join(s.root, "quarantine") }
func (s *Store) checkpointFile() string { return filepath.Join(s.root, "checkpoint.json") }

// objectName is an object's file name relative to objects/, slash-separated.
func objectName(e Entry) string {
	title, file, _ := strings.Cut(e.Path, "/")
	return e.SHA256[:2] + "/" + title + "/" + file + "~" + e.SHA256 + "~" + strconv.FormatInt(e.Size, 10)
}

// legacyName is how objects were named before the size joined the name.
func legacyName(e Entry) string {
	title, file, _ := strings.Cut(e.Path, "/")
	return e.SHA256[:2] + "/" + title + "/" + file + "~" + e.SHA256
}

// objectFile is where an object lives.
func (s *Store) objectFile(e Entry) string { return ObjectFile(s.root, e) }

// ObjectFile is where the object e lives in the store under root, for
// tools and tests that look at the disk itself.
func ObjectFile(root string, e Entry) string {
	return filepath.Join(root, "objects", filepath.FromSlash(objectName(e)))
}

// fileOf is the file an indexed object is read from: its objectFile, or in
// a read-only store the legacy name it still has.
func (s *Store) fileOf(e Entry) string {
	if f, ok := s.legacy[e.Path]; ok {
		return f
	}
	return s.objectFile(e)
}

// parseObjectName reads a name relative to objects/ (slash-separated).
// legacy names (no size) give an entry with size 0 and legacy true. The
// names it accepts are exactly those objectName and legacyName produce, so
// no two files can claim to be the same object by spelling it differently.
func parseObjectName(rel string) (e Entry, legacy, ok bool) {
	parts := strings.Split(rel, "/")
	if len(parts) != 3 {
		return Entry{}, false, false
	}
	file, rest, found := strings.Cut(parts[2], "~")
	if !found {
		return Entry{}, false, false
	}
	sum, size, sized := strings.Cut(rest, "~")
	if !isLowerHex64(sum) || parts[0] != sum[:2] {
		return Entry{}, false, false
	}
	path := parts[1] + "/" + file
	if !content.ValidPath(path) {
		return Entry{}, false, false
	}
	e = Entry{Path: path, SHA256: sum}
	if !sized {
		return e, true, true
	}
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != size {
		return Entry{}, false, false
	}
	e.Size = n
	return e, false, true
}

// sizeVerdict is the one wording of a size mismatch, so that every check
// (open, scan, verify, scrub) reports it alike.
func sizeVerdict(got, want int64) string {
	return fmt.Sprintf("size %d, want %d", got, want)
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
