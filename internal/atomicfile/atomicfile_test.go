package atomicfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/atomicfile"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "state.json")
	for _, data := range []string{"first", "second, longer than the first", ""} {
		if err := atomicfile.WriteFile(name, []byte(data), 0o640); err != nil {
			t.Fatalf("WriteFile(%q) = %v", data, err)
		}
		got, err := os.ReadFile(name)
		if err != nil || string(got) != data {
			t.Fatalf("after WriteFile(%q) the file reads %q, %v", data, got, err)
		}
		if diff := cmp.Diff([]string{"state.json"}, names(t, dir)); diff != "" {
			t.Errorf("directory after WriteFile (-want +got):\n%s", diff)
		}
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
}

func TestAbortAndFailedCommitKeepTheOldFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "obj")
	if err := atomicfile.WriteFile(name, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := atomicfile.CreateTemp(dir, "put-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a new"))
	f.Abort()
	f.Abort() // twice is harmless
	if got, _ := os.ReadFile(name); string(got) != "old" {
		t.Errorf("after Abort the file reads %q, want %q", got, "old")
	}
	if diff := cmp.Diff([]string{"obj"}, names(t, dir)); diff != "" {
		t.Errorf("Abort left files (-want +got):\n%s", diff)
	}

	// A commit whose rename cannot happen (the target is a non-empty
	// directory) leaves nothing behind either.
	blocker := filepath.Join(dir, "blocker")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err = atomicfile.CreateTemp(dir, "put-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if err := f.Commit(blocker); err == nil || errors.Is(err, atomicfile.ErrDirSync) {
		t.Errorf("Commit over a directory = %v, want a rename error", err)
	}
	if diff := cmp.Diff([]string{"blocker", "obj"}, names(t, dir)); diff != "" {
		t.Errorf("failed Commit left files (-want +got):\n%s", diff)
	}
	if err := f.Commit(name); err == nil {
		t.Error("second Commit = nil, want an error")
	}
}

func TestCommitPublishesIntoAnotherDirectory(t *testing.T) {
	root := t.TempDir()
	tmp, final := filepath.Join(root, "tmp"), filepath.Join(root, "objects")
	for _, d := range []string{tmp, final} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := atomicfile.CreateTemp(tmp, "put-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	f.Write([]byte("object bytes"))
	if fi, err := f.Stat(); err != nil || fi.Size() != 12 {
		t.Fatalf("Stat before commit = %v, %v; want 12 bytes", fi, err)
	}
	if err := f.Commit(filepath.Join(final, "o")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(final, "o")); string(got) != "object bytes" {
		t.Errorf("committed file reads %q", got)
	}
	if got := names(t, tmp); len(got) != 0 {
		t.Errorf("tmp/ after Commit = %q, want empty", got)
	}
}
