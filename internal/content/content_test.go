package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSynthReaderIsSeekableAndDeterministic(t *testing.T) {
	const size = 100_003
	whole := make([]byte, size)
	if _, err := io.ReadFull(SynthReader("t0001/video_1000k.mp4", size), whole); err != nil {
		t.Fatal(err)
	}
	again := make([]byte, size)
	io.ReadFull(SynthReader("t0001/video_1000k.mp4", size), again)
	if !bytes.Equal(whole, again) {
		t.Fatal("two reads of the same synthetic file differ")
	}
	other := make([]byte, 64)
	io.ReadFull(SynthReader("t0002/video_1000k.mp4", size), other)
	if bytes.Equal(whole[:64], other) {
		t.Fatal("different paths give the same bytes")
	}
	// Any range read at any offset equals the same slice of the whole.
	r := SynthReader("t0001/video_1000k.mp4", size)
	for _, tc := range []struct{ off, n int }{{0, 1}, {1, 15}, {15, 2}, {16, 16}, {17, 4096}, {99_990, 13}, {12_345, 50_000}} {
		buf := make([]byte, tc.n)
		n, err := r.ReadAt(buf, int64(tc.off))
		if n != tc.n || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", tc.n, tc.off, n, err)
		}
		if !bytes.Equal(buf, whole[tc.off:tc.off+tc.n]) {
			t.Errorf("ReadAt(%d bytes at %d) differs from a sequential read", tc.n, tc.off)
		}
	}
	if n, err := r.ReadAt(make([]byte, 10), size-4); n != 4 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v; want 4, EOF", n, err)
	}
}

func TestSynthCatalog(t *testing.T) {
	c, err := Synth(SynthSpec{Titles: 3, LadderKbps: []int{400, 2000}, Duration: 2 * time.Second, AudioKbps: 64})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 9 || len(c.Titles()) != 3 || len(c.TitleFiles("t0001")) != 3 {
		t.Fatalf("Synth made %d files in %d titles", len(c.Files), len(c.Titles()))
	}
	f, err := c.Lookup("t0002/video_2000k.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != 2000*1000/8*2 || f.Kind != KindVideo || f.BitrateKbps != 2000 {
		t.Errorf("Lookup = %+v", f)
	}
	h := sha256.New()
	io.Copy(h, SynthReader(f.Path, f.Size))
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		t.Errorf("catalog sha256 %s, bytes hash to %s", f.SHA256, got)
	}
	b, _ := c.Marshal()
	back, err := Parse(b)
	if err != nil || len(back.Files) != len(c.Files) || !back.Synthetic {
		t.Fatalf("round trip: %v", err)
	}
}

func TestCatalogValidationNamesTheField(t *testing.T) {
	good := `{"version":1,"files":[{"path":"t1/a.mp4","size":3,"sha256":"` + strings.Repeat("ab", 32) + `","kind":"video"}]}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	for _, tc := range []struct{ from, to, want string }{
		{`"t1/a.mp4"`, `"../etc/passwd"`, "files[0].path"},
		{`"t1/a.mp4"`, `"t1/.hidden"`, "files[0].path"},
		{`"t1/a.mp4"`, `"t1/a/b"`, "files[0].path"},
		{`"size":3`, `"size":-1`, "files[0].size"},
		{`"kind":"video"`, `"kind":"hologram"`, "files[0].kind"},
		{`"version":1`, `"version":9`, "version 9"},
		{strings.Repeat("ab", 32), "xyz", "files[0].sha256"},
		{`"kind"`, `"colour":1,"kind"`, "unknown field"},
	} {
		_, err := Parse([]byte(strings.Replace(good, tc.from, tc.to, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s→%s) = %v, want an error naming %q", tc.from, tc.to, err, tc.want)
		}
	}
}

func TestBuildFromDirectory(t *testing.T) {
	dir := t.TempDir()
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644)
	}
	write("clip/index.m3u8", "#EXTM3U\n")
	write("clip/video_3000k.mp4", "0123456789")
	write("clip/audio.m4a", "aa")
	write("toplevel.txt", "x")
	write("a/b/deep.mp4", "x")
	c, skipped, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]Kind{}
	for _, f := range c.Files {
		kinds[f.Path] = f.Kind
	}
	want := map[string]Kind{"clip/index.m3u8": KindPlaylist, "clip/video_3000k.mp4": KindVideo, "clip/audio.m4a": KindAudio}
	for p, k := range want {
		if kinds[p] != k {
			t.Errorf("Build: %s kind %q, want %q", p, kinds[p], k)
		}
	}
	if f, _ := c.Lookup("clip/video_3000k.mp4"); f.BitrateKbps != 3000 || f.Size != 10 {
		t.Errorf("Build: video entry %+v, want 3000 kbps, 10 bytes", f)
	}
	if len(skipped) != 2 {
		t.Errorf("Build skipped %v, want the top-level and the too-deep file", skipped)
	}
}

// TestValidSegmentMatchesRule pins the loop to the rule it replaces.
func TestValidSegmentMatchesRule(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	cases := []string{"", "a", ".a", "-a", "_a", "a.b", "a..b", "..", "a.", "A9_-.x", "a/b", "a b", "é", "a\x00", strings.Repeat("a", 128), strings.Repeat("a", 129)}
	for _, s := range cases {
		want := rule.MatchString(s) && !strings.Contains(s, "..")
		if got := validSegment(s); got != want {
			t.Errorf("validSegment(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzValidSegment(f *testing.F) {
	rule := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	for _, s := range []string{"t0042", "video_3000k.mp4", "..", "a..b", ".x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := rule.MatchString(s) && !strings.Contains(s, "..")
		if got := validSegment(s); got != want {
			t.Errorf("validSegment(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestValidPath checks whole paths against the rule, including the cases
// a request path can bring (empty segments, extra slashes, NUL, length).
func TestValidPath(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	for _, p := range []string{"t0001/video_3000k.mp4", "a/b", "_/_", "t/.x", "t/-x", ".t/x", "t/x..y", "t/x.y", "t/x/y",
		"t", "/x", "t/", "t//x", "t/x\x00", "t/x y", "t/é", "t/" + strings.Repeat("a", 128), "t/" + strings.Repeat("a", 129),
		"t/a-", "t/a_", "T9/Z0", "t/..", "t/.", "t/a..", "t/...", "t/a.-b", "t/\\x"} {
		want := rule.MatchString(p) && !strings.Contains(p, "..")
		if got := ValidPath(p); got != want {
			t.Errorf("ValidPath(%q) = %v, want %v", p, got, want)
		}
		if got := ValidatePath(p) == nil; got != want {
			t.Errorf("ValidatePath(%q) == nil is %v, want %v", p, got, want)
		}
	}
}
