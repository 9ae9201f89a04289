package content

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSynthMediaTitles(t *testing.T) {
	spec := SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second, MediaTitles: 2}
	c, err := Synth(spec)
	if err != nil {
		t.Fatal(err)
	}
	media := 0
	for _, f := range c.Files {
		if !IsMediaTitle(f.Title()) {
			continue
		}
		media++
		// SynthReader gives the bytes the catalog describes, from any
		// offset, as the origin serves them.
		r := SynthReader(f.Path, f.Size)
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, f.Size)); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			t.Errorf("%s: bytes hash to %s, catalog says %s", f.Path, got, f.SHA256)
		}
		tail := make([]byte, 8)
		if n, err := r.ReadAt(tail, f.Size-4); n != 4 || err != io.EOF {
			t.Errorf("%s: ReadAt 4 bytes before the end = %d, %v; want 4, EOF", f.Path, n, err)
		}
		switch {
		case strings.HasSuffix(f.Path, ".m3u8") && f.Kind != KindPlaylist,
			strings.HasSuffix(f.Path, ".mp4") && (f.Kind != KindVideo || f.BitrateKbps <= 0):
			t.Errorf("%+v: wrong kind or bitrate", f)
		}
	}
	if media != 2*7 {
		t.Errorf("%d media files, want 7 per title (master, 3 playlists, 3 renditions)", media)
	}
	if c.Files[0].Title() != "t0000" {
		t.Errorf("first file is %s: media titles must come after the synthetic ones (the probe file is the first title's)", c.Files[0].Path)
	}
	// A media title's path with another size is a keystream file as before.
	if r := SynthReader("hls0000/index.m3u8", 10); r.media != nil {
		t.Error("SynthReader used media bytes for a size the title does not have")
	}
}

func TestIsMediaTitle(t *testing.T) {
	for in, want := range map[string]bool{"hls0000": true, "hls9999": true, "hls000": false, "hls00000": false, "hlsabcd": false, "t0000": false, "": false} {
		if got := IsMediaTitle(in); got != want {
			t.Errorf("IsMediaTitle(%q) = %v, want %v", in, got, want)
		}
	}
	if err := (SynthSpec{Titles: 1, LadderKbps: []int{1}, Duration: time.Second, MediaTitles: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "media_titles") {
		t.Errorf("Validate(media_titles: -1) = %v, want an error naming media_titles", err)
	}
}
