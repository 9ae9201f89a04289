package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/store/storetest"
)

func file(path string, data []byte) content.File {
	sum := sha256.Sum256(data)
	return content.File{Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Kind: content.KindVideo}
}

func open(t *testing.T, root string, capacity int64) *store.Store {
	t.Helper()
	s, err := store.Open(root, capacity, nil)
	if err != nil {
		t.Fatalf("Open(%s) = %v", root, err)
	}
	return s
}

func put(t *testing.T, s *store.Store, path string, data []byte) content.File {
	t.Helper()
	f := file(path, data)
	if err := s.Put(context.Background(), f, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put(%s) = %v", path, err)
	}
	return f
}

func read(t *testing.T, s *store.Store, path string) []byte {
	t.Helper()
	f, _, err := s.Open(path)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tree lists every regular file under dir, relative and slash-separated.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestPutRefusesWrongContentAndKeepsOldVersion(t *testing.T) {
	v1 := []byte("version one of the object, served before the refill")
	v2 := []byte("version two of the object: the catalog now says this")
	tests := []struct {
		name    string
		path    string
		want    content.File // what the writer is told to expect
		data    []byte       // what arrives
		wantErr error
	}{
		{"wrong hash, same size", "t1/v.mp4", file("t1/v.mp4", v2), bytes.Repeat([]byte("x"), len(v2)), store.ErrHashMismatch},
		{"short", "t1/v.mp4", file("t1/v.mp4", v2), v2[:len(v2)-1], store.ErrSizeMismatch},
		{"long", "t1/v.mp4", file("t1/v.mp4", v2), append(append([]byte{}, v2...), '!'), store.ErrSizeMismatch},
		{"empty", "t1/v.mp4", file("t1/v.mp4", v2), nil, store.ErrSizeMismatch},
		{"new path, wrong hash", "t1/new.mp4", file("t1/new.mp4", v2), bytes.Repeat([]byte("y"), len(v2)), store.ErrHashMismatch},
		{"new path, short", "t1/new.mp4", file("t1/new.mp4", v2), v2[:3], store.ErrSizeMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := open(t, root, 0)
			put(t, s, "t1/v.mp4", v1)
			beforeList, beforeTree := s.List(), tree(t, root)
			beforeUsed, _, beforeGen := s.Usage()

			err := s.Put(context.Background(), tc.want, bytes.NewReader(tc.data))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put(%s, %d bytes) = %v, want %v", tc.path, len(tc.data), err, tc.wantErr)
			}
			if diff := cmp.Diff(beforeList, s.List()); diff != "" {
				t.Errorf("List changed after refused Put (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeTree, tree(t, root)); diff != "" {
				t.Errorf("files on disk changed after refused Put (-before +after):\n%s", diff)
			}
			if used, _, gen := s.Usage(); used != beforeUsed || gen != beforeGen {
				t.Errorf("Usage() = %d, gen %d; want %d, gen %d", used, gen, beforeUsed, beforeGen)
			}
			if got := read(t, s, "t1/v.mp4"); !bytes.Equal(got, v1) {
				t.Errorf("old object reads %q, want %q", got, v1)
			}
			// The refused write leaves no trace for a restart to find.
			s2 := open(t, root, 0)
			if diff := cmp.Diff(beforeList, s2.List()); diff != "" {
				t.Errorf("List after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutReplacesAndIsIdempotent(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/v.mp4", []byte("old"))
	f := put(t, s, "t1/v.mp4", []byte("newer"))
	if got := read(t, s, "t1/v.mp4"); string(got) != "newer" {
		t.Errorf("after replace, object reads %q, want %q", got, "newer")
	}
	_, _, gen := s.Usage()
	// Same content again: nothing to do, nothing changes.
	if err := s.Put(context.Background(), f, strings.NewReader("ignored")); err != nil {
		t.Fatalf("Put(same hash) = %v", err)
	}
	used, _, gen2 := s.Usage()
	if used != 5 || gen2 != gen {
		t.Errorf("Usage() = %d, gen %d; want 5, gen %d", used, gen2, gen)
	}
	if diff := cmp.Diff([]string{f.SHA256[:2] + "/t1/v.mp4~" + f.SHA256 + "~5"}, tree(t, filepath.Join(root, "objects"))); diff != "" {
		t.Errorf("old version left on disk (-want +got):\n%s", diff)
	}
}

func TestReopenRebuildsIndex(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 1<<20)
	put(t, s, "t1/a.mp4", []byte("aaaa"))
	put(t, s, "t1/b.mp4", []byte("bbbbbbbb"))
	put(t, s, "t2/a.mp4", []byte("c"))
	put(t, s, "t2/gone.mp4", []byte("removed before the restart"))
	if err := s.Remove("t2/gone.mp4"); err != nil {
		t.Fatal(err)
	}
	want := s.List()
	wantUsed, _, _ := s.Usage()

	_, _, gen := s.Usage()
	s2 := open(t, root, 1<<20)
	// A reopened store is news to whoever tracked the old one's
	// generation (a control plane's held set), and never generation 0,
	// which a control plane assumes for an appliance it has not heard.
	if _, _, gen2 := s2.Usage(); gen2 == gen || gen2 == 0 {
		t.Errorf("generation after reopen = %d, want neither the old %d nor 0", gen2, gen)
	}
	if diff := cmp.Diff(want, s2.List()); diff != "" {
		t.Errorf("List after reopen (-before +after):\n%s", diff)
	}
	if used, capacity, _ := s2.Usage(); used != wantUsed || capacity != 1<<20 {
		t.Errorf("Usage() after reopen = %d of %d, want %d of %d", used, capacity, wantUsed, 1<<20)
	}
	if got := read(t, s2, "t1/b.mp4"); string(got) != "bbbbbbbb" {
		t.Errorf("t1/b.mp4 reads %q after reopen", got)
	}
}

func TestOpenRemovesPartialWrites(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/a.mp4", []byte("kept"))
	// A write in progress when the process died, and a stray leftover.
	w, err := s.NewWriter(file("t1/b.mp4", []byte("never finished")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("never")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp", "put-12345"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := len(puts(t, root)); n != 2 {
		t.Fatalf("tmp/ holds %d writes before reopen, want 2", n)
	}

	s2 := open(t, root, 0)
	if got := puts(t, root); len(got) != 0 {
		t.Errorf("tmp/ after reopen holds writes %q, want none", got)
	}
	if diff := cmp.Diff([]string{"t1/a.mp4"}, paths(s2.List())); diff != "" {
		t.Errorf("objects after reopen (-want +got):\n%s", diff)
	}
}

// puts lists the writes in progress under tmp/.
func puts(t *testing.T, root string) []string {
	var out []string
	for _, name := range tree(t, filepath.Join(root, "tmp")) {
		if strings.HasPrefix(name, "put-") {
			out = append(out, name)
		}
	}
	return out
}

func paths(es []store.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

func TestCapacity(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), 100)
	put(t, s, "t1/a", bytes.Repeat([]byte("a"), 60))
	big := bytes.Repeat([]byte("b"), 41)
	if err := s.Put(ctx, file("t1/b", big), bytes.NewReader(big)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Put(41 bytes with 40 free) = %v, want ErrFull", err)
	}
	// A write in progress holds its space, so a concurrent one cannot
	// overshoot the capacity.
	w, err := s.NewWriter(file("t1/c", bytes.Repeat([]byte("c"), 30)))
	if err != nil {
		t.Fatal(err)
	}
	small := bytes.Repeat([]byte("d"), 20)
	if err := s.Put(ctx, file("t1/d", small), bytes.NewReader(small)); !errors.Is(err, store.ErrFull) {
		t.Errorf("Put(20 bytes with 30 reserved of 40 free) = %v, want ErrFull", err)
	}
	w.Abort()
	put(t, s, "t1/d", small)
	if used, _, _ := s.Usage(); used != 80 {
		t.Errorf("used = %d, want 80", used)
	}
	if err := s.Remove("t1/a"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "t1/b", big)
	if used, _, _ := s.Usage(); used != 61 {
		t.Errorf("used = %d, want 61", used)
	}
}

func TestVerifyFindsCorruptionAndStrays(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/good.mp4", []byte("good content"))
	bad := put(t, s, "t1/bad.mp4", []byte("content about to rot"))
	flipByte(t, storetest.ObjectFile(root, bad), 3)
	if err := os.WriteFile(filepath.Join(root, "objects", "stray.txt"), []byte("?"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The store that was running when the byte flipped, and an
	// operator's read-only look, both find it (and change nothing); the
	// stray came after the running store listed its files.
	for _, ro := range []bool{false, true} {
		vs, want := s, []string{"bad.mp4"}
		if ro {
			want = []string{"stray.txt", "bad.mp4"}
			var err error
			if vs, err = store.OpenReadOnly(root, nil); err != nil {
				t.Fatal(err)
			}
		}
		problems, err := vs.Verify(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range problems {
			got = append(got, filepath.Base(p.Path))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Verify (read-only %v) = %+v; problem files (-want +got):\n%s", ro, problems, diff)
		}
	}
	if _, err := os.Stat(storetest.ObjectFile(root, bad)); err != nil {
		t.Errorf("Verify moved the corrupt object: %v", err)
	}
}

func flipByte(t *testing.T, name string, off int64) {
	t.Helper()
	if err := storetest.FlipBit(name, off); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReadOnlyChangesNothing(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/a.mp4", []byte("aaa"))
	w, err := s.NewWriter(file("t1/b.mp4", []byte("in progress")))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	before := tree(t, root)

	ro, err := store.OpenReadOnly(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"t1/a.mp4"}, paths(ro.List())); diff != "" {
		t.Errorf("read-only List (-want +got):\n%s", diff)
	}
	if err := ro.Put(context.Background(), file("t1/c.mp4", []byte("c")), strings.NewReader("c")); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("read-only Put = %v, want ErrReadOnly", err)
	}
	if err := ro.Remove("t1/a.mp4"); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("read-only Remove = %v, want ErrReadOnly", err)
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("OpenReadOnly changed files (-before +after):\n%s", diff)
	}
	if _, err := store.OpenReadOnly(filepath.Join(root, "no-such-store"), nil); err == nil {
		t.Error("OpenReadOnly(missing dir) = nil error, want an error")
	}
}

// TestPathSafety checks that no catalog path or hash, however hostile,
// makes the store create a file outside its root.
func TestPathSafety(t *testing.T) {
	data := []byte("payload")
	good := file("t/x", data).SHA256
	tests := []struct {
		path, sha string
	}{
		{"../x", good},
		{"t/../../x", good},
		{"t/..", good},
		{"../../../../etc/passwd", good},
		{"/etc/passwd", good},
		{"t/a/b", good},
		{"t/.hidden", good},
		{".t/x", good},
		{"t/-rf", good},
		{"t/x\x00y", good},
		{"t\x00/x", good},
		{"t/", good},
		{"/x", good},
		{"t", good},
		{"", good},
		{"t/a~" + good, good},
		{`t/..\..\x`, good},
		{"t/x y", good},
		{"t/x\n", good},
		{"t/" + strings.Repeat("a", 129), good},
		{"t/x", "../../../../../../../../../../../../../../../../../../../tmp/evil"},
		{"t/x", strings.ToUpper(good)},
		{"t/x", good[:63]},
		{"t/x", good + "0"},
		{"t/x", "/" + good[1:]},
	}
	for _, tc := range tests {
		t.Run(strings.ToValidUTF8(tc.path, "?"), func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "store")
			s := open(t, root, 0)
			before := tree(t, parent) // the store's own files (checkpoint.json, tmp/clock)
			f := content.File{Path: tc.path, Size: int64(len(data)), SHA256: tc.sha, Kind: content.KindOther}
			if err := s.Put(context.Background(), f, bytes.NewReader(data)); err == nil {
				t.Errorf("Put(path %q, sha %q) = nil, want an error", tc.path, tc.sha)
			}
			if diff := cmp.Diff(before, tree(t, parent)); diff != "" {
				t.Errorf("Put(path %q, sha %q) changed files (-before +after):\n%s", tc.path, tc.sha, diff)
			}
			if c := content.ValidatePath(tc.path); c == nil && tc.sha == good {
				t.Errorf("ValidatePath(%q) = nil, want an error", tc.path)
			}
		})
	}
}

// FuzzPutPaths: whatever the path, hash and bytes, the store creates files
// only inside its root, and an accepted object reads back exactly.
func FuzzPutPaths(f *testing.F) {
	f.Add("t0042/video_3000k.mp4", "", []byte("hello"))
	f.Add("../x", "", []byte("x"))
	f.Add("t/x", "../../../../../../../../../../../../../../../../../../../tmp/evil", []byte("x"))
	f.Add("t/..", "", []byte{})
	f.Fuzz(func(t *testing.T, path, sha string, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "store")
		s, err := store.Open(root, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		own := map[string]bool{}
		for _, name := range tree(t, parent) {
			own[name] = true // checkpoint.json, tmp/clock
		}
		if sha == "" {
			sha = file(path, data).SHA256
		}
		cf := content.File{Path: path, Size: int64(len(data)), SHA256: sha, Kind: content.KindOther}
		err = s.Put(context.Background(), cf, bytes.NewReader(data))
		for _, name := range tree(t, parent) {
			if !own[name] && !strings.HasPrefix(name, "store/objects/") {
				t.Fatalf("Put(%q, %q) created %s outside the object tree", path, sha, name)
			}
		}
		if err != nil {
			return
		}
		if content.ValidatePath(path) != nil {
			t.Fatalf("Put accepted invalid path %q", path)
		}
		if got := read(t, s, path); !bytes.Equal(got, data) {
			t.Fatalf("object %q reads %q, want %q", path, got, data)
		}
	})
}

// TestLookupGen: LookupGen answers as Lookup does, with the generation
// Usage reports, which moves when the served set changes.
func TestLookupGen(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	f := put(t, s, "t1/a.mp4", []byte("abc"))
	e, gen, ok := s.LookupGen(f.Path)
	if le, lok := s.Lookup(f.Path); !ok || !lok || e != le || e.SHA256 != f.SHA256 {
		t.Fatalf("LookupGen = %+v, %v; Lookup = %+v, %v", e, ok, le, lok)
	}
	if _, _, ugen := s.Usage(); gen != ugen {
		t.Errorf("LookupGen's generation %d, Usage's %d", gen, ugen)
	}
	put(t, s, "t1/b.mp4", []byte("de"))
	if _, gen2, _ := s.LookupGen(f.Path); gen2 == gen {
		t.Errorf("generation %d unchanged after another object was added", gen2)
	}
	if err := s.Remove(f.Path); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.LookupGen(f.Path); ok {
		t.Error("LookupGen finds a removed object")
	}
}
