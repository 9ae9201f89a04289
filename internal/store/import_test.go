package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
)

func TestImport(t *testing.T) {
	src := t.TempDir()
	write := func(path string, data []byte) {
		t.Helper()
		p := filepath.Join(src, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := bytes.Repeat([]byte("g"), 9<<20) // big enough for a mid-file progress report
	v2 := []byte("second version of the playlist")
	cat := &content.Catalog{Version: content.FormatVersion, Files: []content.File{
		file("t1/good.mp4", good),
		file("t1/present.mp4", []byte("already in the store")),
		file("t1/badhash.mp4", []byte("what the catalog promised")),
		file("t1/badsize.mp4", []byte("what the catalog promised")),
		file("t1/missing.mp4", []byte("not shipped")),
		file("t2/index.m3u8", v2), // the store holds v1; the source copy is corrupt
		file("t2/dir", []byte("a directory in the source")),
	}}
	if err := cat.Validate(); err != nil {
		t.Fatal(err)
	}
	write("t1/good.mp4", good)
	write("t1/present.mp4", []byte("already in the store"))
	write("t1/badhash.mp4", []byte("what the catalog PROMISED"))
	write("t1/badsize.mp4", []byte("what the catalog promised, and more"))
	write("t2/index.m3u8", bytes.Repeat([]byte("?"), len(v2)))
	write("t2/dir/x", []byte("x"))
	write("t3/not-in-catalog", []byte("ignored"))

	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/present.mp4", []byte("already in the store"))
	put(t, s, "t2/index.m3u8", []byte("first version"))

	var progress []store.ImportProgress
	res, err := s.Import(context.Background(), cat, src, store.WithProgress(func(p store.ImportProgress) { progress = append(progress, p) }))
	if err != nil {
		t.Fatalf("Import = %v", err)
	}
	want := store.ImportResult{
		Imported: []string{"t1/good.mp4"},
		Present:  []string{"t1/present.mp4"},
		Missing:  []string{"t1/missing.mp4"},
		Refused: []store.Refusal{
			{Path: "t1/badhash.mp4", Err: store.ErrHashMismatch},
			{Path: "t1/badsize.mp4", Err: store.ErrSizeMismatch},
			{Path: "t2/index.m3u8", Err: store.ErrHashMismatch},
			{Path: "t2/dir"},
		},
		Bytes: int64(len(good)),
	}
	opts := cmp.Options{
		cmpopts.IgnoreFields(store.Refusal{}, "Reason"),
		cmp.Comparer(func(a, b error) bool { return a == nil || b == nil || errors.Is(a, b) || errors.Is(b, a) }),
	}
	if diff := cmp.Diff(want, res, opts); diff != "" {
		t.Errorf("Import result (-want +got):\n%s", diff)
	}
	for _, r := range res.Refused {
		if r.Reason == "" {
			t.Errorf("refusal of %s gives no reason", r.Path)
		}
	}
	if got := read(t, s, "t2/index.m3u8"); string(got) != "first version" {
		t.Errorf("refused import changed the stored object: reads %q", got)
	}
	if got := read(t, s, "t1/good.mp4"); !bytes.Equal(got, good) {
		t.Error("imported object does not read back")
	}
	if diff := cmp.Diff([]string{"t1/good.mp4", "t1/present.mp4", "t2/index.m3u8"}, paths(s.List())); diff != "" {
		t.Errorf("objects after import (-want +got):\n%s", diff)
	}
	if len(progress) < len(cat.Files)+1 {
		t.Errorf("progress called %d times, want at least once per file and once inside the 9 MiB file", len(progress))
	}
	last := progress[len(progress)-1]
	if last.Files != last.FilesTotal || last.Bytes != last.BytesTotal || last.BytesTotal != cat.TotalBytes() {
		t.Errorf("last progress = %+v, want all %d files and %d bytes", last, len(cat.Files), cat.TotalBytes())
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Bytes < progress[i-1].Bytes {
			t.Errorf("progress went backwards: %+v then %+v", progress[i-1], progress[i])
		}
	}

	// Importing again changes nothing.
	res, err = s.Import(context.Background(), cat, src)
	if err != nil || len(res.Imported) != 0 || len(res.Present) != 2 {
		t.Errorf("second Import = %+v, %v; want nothing imported and 2 present", res, err)
	}
}

func TestImportNeedsSourceDir(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	cat := &content.Catalog{Version: content.FormatVersion}
	if _, err := s.Import(context.Background(), cat, filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("Import(missing dir) = nil error, want an error")
	}
}

func TestImportFull(t *testing.T) {
	src := t.TempDir()
	data := bytes.Repeat([]byte("z"), 100)
	os.MkdirAll(filepath.Join(src, "t1"), 0o755)
	os.WriteFile(filepath.Join(src, "t1", "z"), data, 0o644)
	cat := &content.Catalog{Version: content.FormatVersion, Files: []content.File{file("t1/z", data)}}
	cat.Validate()
	s := open(t, t.TempDir(), 50)
	res, err := s.Import(context.Background(), cat, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) != 1 || !errors.Is(res.Refused[0].Err, store.ErrFull) {
		t.Errorf("Import into a full store: refused = %+v, want t1/z with ErrFull", res.Refused)
	}
}
