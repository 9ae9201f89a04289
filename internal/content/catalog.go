// Package content provides what the CDN delivers: file paths of the form
// title/file, the catalog that gives each file's size, SHA-256, kind and
// bitrate, deterministic synthetic content for labs and benchmarks, and
// catalogs built from real files on disk.
package content

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// FormatVersion is the catalog format this code writes and the newest it reads.
const FormatVersion = 1

// Kind says what a file is used for by a player.
type Kind string

// File kinds.
const (
	KindVideo    Kind = "video"
	KindAudio    Kind = "audio"
	KindPlaylist Kind = "playlist"
	KindText     Kind = "text"
	KindOther    Kind = "other"
)

var validKinds = map[Kind]bool{KindVideo: true, KindAudio: true, KindPlaylist: true, KindText: true, KindOther: true}

// File is one catalog entry.
type File struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Kind        Kind   `json:"kind"`
	BitrateKbps int    `json:"bitrate_kbps,omitempty"`
}

// Title is the part of the path before the slash.
func (f File) Title() string { t, _, _ := strings.Cut(f.Path, "/"); return t }

// Catalog lists every file the CDN may serve. Synthetic catalogs describe
// files whose bytes are derived from the path (see Synth); the others
// describe real files under a directory.
type Catalog struct {
	Version   int    `json:"version"`
	Synthetic bool   `json:"synthetic"`
	Files     []File `json:"files"`

	byPath map[string]int
}

// ErrUnknownFile is returned when a path is not in the catalog.
var ErrUnknownFile = errors.New("file not in catalog")

// validSegment says whether s has the allowed shape of a title or file
// name, ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$ without "..": it keeps every
// catalog path safe as a relative file-system path and in URLs. A loop,
// not a regexp, since every steering request and fill checks its paths.
func validSegment(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.':
			if i+1 < len(s) && s[i+1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ValidPath reports whether p is "title/file" with safe segments. It does
// not allocate: every content request checks its path with it.
func ValidPath(p string) bool {
	title, file, ok := strings.Cut(p, "/")
	return ok && validSegment(title) && validSegment(file)
}

// ValidatePath checks that p is "title/file" with safe segments and says
// what is wrong when it is not.
func ValidatePath(p string) error {
	if ValidPath(p) {
		return nil
	}
	title, file, ok := strings.Cut(p, "/")
	if !ok || strings.Contains(file, "/") {
		return fmt.Errorf("path %q: want title/file", p)
	}
	bad := title
	if validSegment(title) {
		bad = file
	}
	return fmt.Errorf("path %q: segment %q must be 1-128 of [A-Za-z0-9._-], not starting with '.' or '-', without '..'", p, bad)
}

// Validate checks every entry and builds the path index.
func (c *Catalog) Validate() error {
	if c.Version < 1 || c.Version > FormatVersion {
		return fmt.Errorf("version %d: this ocdn reads catalog versions 1 to %d", c.Version, FormatVersion)
	}
	c.byPath = make(map[string]int, len(c.Files))
	for i, f := range c.Files {
		where := fmt.Sprintf("files[%d]", i)
		if err := ValidatePath(f.Path); err != nil {
			return fmt.Errorf("%s.path: %w", where, err)
		}
		if _, dup := c.byPath[f.Path]; dup {
			return fmt.Errorf("%s.path: %q listed twice", where, f.Path)
		}
		if f.Size < 0 || f.Size > 1<<40 {
			return fmt.Errorf("%s.size: %d is not between 0 and 1 TiB", where, f.Size)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("%s.sha256: %q is not 64 hex digits", where, f.SHA256)
		}
		if !validKinds[f.Kind] {
			return fmt.Errorf("%s.kind: %q is not one of video, audio, playlist, text, other", where, f.Kind)
		}
		if f.BitrateKbps < 0 {
			return fmt.Errorf("%s.bitrate_kbps: %d is negative", where, f.BitrateKbps)
		}
		c.byPath[f.Path] = i
	}
	return nil
}

// Lookup returns the entry for path.
func (c *Catalog) Lookup(path string) (File, error) {
	i, ok := c.byPath[path]
	if !ok {
		return File{}, fmt.Errorf("%q: %w", path, ErrUnknownFile)
	}
	return c.Files[i], nil
}

// Index is path's position in Files, for callers that keep per-file
// state in slices rather than maps (the control plane's demand counters,
// updated on every steering answer).
func (c *Catalog) Index(path string) (int, bool) {
	i, ok := c.byPath[path]
	return i, ok
}

// Titles returns the title names in sorted order.
func (c *Catalog) Titles() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range c.Files {
		if t := f.Title(); !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// TitleFiles returns the files of one title in catalog order.
func (c *Catalog) TitleFiles(title string) []File {
	var out []File
	for _, f := range c.Files {
		if f.Title() == title {
			out = append(out, f)
		}
	}
	return out
}

// TotalBytes is the sum of all file sizes.
func (c *Catalog) TotalBytes() int64 {
	var n int64
	for _, f := range c.Files {
		n += f.Size
	}
	return n
}

// Parse decodes and validates a catalog.
func Parse(data []byte) (*Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode catalog: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Load reads and validates a catalog file; errors name the file.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal encodes the catalog as indented JSON.
func (c *Catalog) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Save writes the catalog atomically.
func (c *Catalog) Save(path string) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
