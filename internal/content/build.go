package content

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var bitrateInName = regexp.MustCompile(`(\d+)k(bps)?\b`)

// KindOf guesses a file's kind from its name the way packagers name files.
func KindOf(name string) Kind {
	lower := strings.ToLower(name)
	switch filepath.Ext(lower) {
	case ".m3u8", ".mpd":
		return KindPlaylist
	case ".vtt", ".srt", ".ttml", ".dfxp":
		return KindText
	case ".aac", ".m4a", ".mp3", ".opus", ".ac3", ".ec3":
		return KindAudio
	case ".mp4", ".m4v", ".ts", ".m4s", ".mkv", ".webm", ".cmfv":
		if strings.Contains(lower, "audio") {
			return KindAudio
		}
		return KindVideo
	}
	return KindOther
}

// Build makes a catalog of every regular file exactly two levels below dir
// (dir/title/file). Files at other depths are reported as skipped, since
// they cannot be named title/file.
func Build(dir string) (c *Catalog, skipped []string, err error) {
	c = &Catalog{Version: FormatVersion}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ValidatePath(rel) != nil {
			skipped = append(skipped, rel)
			return nil
		}
		sum, size, err := HashFile(p)
		if err != nil {
			return err
		}
		f := File{Path: rel, Size: size, SHA256: sum, Kind: KindOf(d.Name())}
		if m := bitrateInName.FindStringSubmatch(d.Name()); m != nil {
			f.BitrateKbps, _ = strconv.Atoi(m[1])
		}
		c.Files = append(c.Files, f)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("build catalog from %s: %w", dir, err)
	}
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	return c, skipped, nil
}

// HashFile returns the SHA-256 (hex) and size of a file.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
