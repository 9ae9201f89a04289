package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/store/storetest"
)

func truncate(t *testing.T, name string, size int64) {
	t.Helper()
	if err := os.Truncate(name, size); err != nil {
		t.Fatal(err)
	}
}

// problemPaths lists the paths of problems, sorted.
func problemPaths(ps []store.Problem) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Path)
	}
	sort.Strings(out)
	return out
}

// notServed fails the test unless the store neither lists, looks up nor
// opens path: a client asking for it gets a 404 and fails over.
func notServed(t *testing.T, s *store.Store, path string) {
	t.Helper()
	if e, ok := s.Lookup(path); ok {
		t.Errorf("Lookup(%s) = %+v, want not found", path, e)
	}
	if f, e, err := s.Open(path); !errors.Is(err, store.ErrNotFound) {
		if f != nil {
			f.Close()
		}
		t.Errorf("Open(%s) = %+v, %v; want ErrNotFound", path, e, err)
	}
	for _, e := range s.List() {
		if e.Path == path {
			t.Errorf("List() holds %s", path)
		}
	}
}

// served fails the test unless path is served with exactly want, under an
// entry (ETag and Content-Length) that matches want.
func served(t *testing.T, s *store.Store, path string, want []byte) {
	t.Helper()
	f, e, err := s.Open(path)
	if err != nil {
		t.Errorf("Open(%s) = %v, want it served", path, err)
		return
	}
	defer f.Close()
	if w := file(path, want); e.Size != w.Size || e.SHA256 != w.SHA256 {
		t.Errorf("Open(%s) entry = %+v, want size %d sha256 %s", path, e, w.Size, w.SHA256)
	}
	var got bytes.Buffer
	got.ReadFrom(f)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("Open(%s) reads %d bytes that differ from the %d stored", path, got.Len(), len(want))
	}
}

// TestCorruptedWhileDownIsNeverServed reproduces issue 19's bullet: an
// object truncated and another bit-flipped on disk while the store was
// closed, after every kind of stop. Neither is ever served with its old
// entry (ETag, length); both are quarantined at open, leave the held set,
// and a re-fill serves the right bytes again. What is re-hashed depends on
// the stop: nothing but the damaged objects after a clean one.
func TestCorruptedWhileDownIsNeverServed(t *testing.T) {
	a := bytes.Repeat([]byte("a"), 100<<10)
	b := bytes.Repeat([]byte("b"), 200<<10)
	c := bytes.Repeat([]byte("c"), 300<<10)
	late := []byte("written after the last checkpoint")
	tests := []struct {
		name string
		// stop ends the first run after a, b and c are stored; it may
		// store late.
		stop func(t *testing.T, s *store.Store, root string)
		// Open's report: objects trusted unread and re-hashed (good
		// ones; b and c are always quarantined).
		trusted, rehashed int
		clean, everything bool
	}{
		{"clean shutdown", func(t *testing.T, s *store.Store, _ string) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, 1, 0, true, false},
		{"crash after a checkpoint, one write since", func(t *testing.T, s *store.Store, _ string) {
			if err := store.Checkpoint(s); err != nil {
				t.Fatal(err)
			}
			put(t, s, "t2/late.mp4", late)
		}, 1, 1, false, false},
		{"crash with no checkpoint since the writes", func(*testing.T, *store.Store, string) {}, 0, 1, false, false},
		{"clean shutdown, checkpoint.json lost", func(t *testing.T, s *store.Store, root string) {
			s.Close()
			os.Remove(filepath.Join(root, "checkpoint.json"))
		}, 0, 1, false, true},
		{"clean shutdown, checkpoint.json damaged", func(t *testing.T, s *store.Store, root string) {
			s.Close()
			os.WriteFile(filepath.Join(root, "checkpoint.json"), []byte(`{"version":1,"clean":tr`), 0o644)
		}, 0, 1, false, true},
		{"clean shutdown, then the clock went back", func(t *testing.T, s *store.Store, root string) {
			s.Close()
			future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
			os.WriteFile(filepath.Join(root, "checkpoint.json"), []byte(`{"version":1,"clean":true,"checkpoint":"`+future+`"}`), 0o644)
		}, 0, 1, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			s := open(t, root, 0)
			put(t, s, "t1/a.mp4", a)
			fb := put(t, s, "t1/b.mp4", b)
			fc := put(t, s, "t1/c.mp4", c)
			tc.stop(t, s, root)
			_, hasLate := s.Lookup("t2/late.mp4")

			// While the store is down: truncate b (its length no longer
			// holds) and flip one bit of c (same length, wrong bytes).
			truncate(t, storetest.ObjectFile(root, fb), fb.Size/2)
			flipByte(t, storetest.ObjectFile(root, fc), 123_456)

			s2 := open(t, root, 0)
			rep := s2.Opened()
			for _, f := range []content.File{fb, fc} {
				notServed(t, s2, f.Path)
				if s2.Holds(f.Path, f.SHA256) {
					t.Errorf("Holds(%s) = true after quarantine, want false so fill fetches it again", f.Path)
				}
			}
			if diff := cmp.Diff([]string{fb.Path, fc.Path}, problemPaths(rep.Quarantined)); diff != "" {
				t.Errorf("Opened().Quarantined = %+v (-want +got paths):\n%s", rep.Quarantined, diff)
			}
			for _, p := range rep.Quarantined {
				if p.Path == fb.Path && p.Reason != "size 102400, want 204800" {
					t.Errorf("truncated object quarantined for %q, want its size", p.Reason)
				}
			}
			if got := tree(t, filepath.Join(root, "quarantine")); len(got) != 2 {
				t.Errorf("quarantine/ holds %q, want the two damaged files", got)
			}
			if rep.Trusted != tc.trusted || rep.Rehashed != tc.rehashed || rep.Pending != 0 || rep.Clean != tc.clean || (rep.Why != "") != tc.everything {
				t.Errorf("Opened() = %+v; want trusted %d, rehashed %d, nothing pending, clean %v, everything re-hashed %v",
					rep, tc.trusted, tc.rehashed, tc.clean, tc.everything)
			}
			served(t, s2, "t1/a.mp4", a)
			if hasLate {
				served(t, s2, "t2/late.mp4", late)
			}

			// Fill puts good copies back; they are served again.
			put(t, s2, fb.Path, b)
			put(t, s2, fc.Path, c)
			served(t, s2, fb.Path, b)
			served(t, s2, fc.Path, c)
			want := int64(len(a) + len(b) + len(c))
			if hasLate {
				want += int64(len(late))
			}
			if used, _, _ := s2.Usage(); used != want {
				t.Errorf("Usage() = %d bytes after the re-fill, want %d", used, want)
			}
		})
	}
}

// TestPendingIsNotServedUntilVerified: after a crash, objects written
// since the checkpoint that Open does not re-hash itself wait for Run.
// Until verified they are not served and not listed as held, yet fill
// counts them as held (no second download); a client asking for one
// moves it first in line.
func TestPendingIsNotServedUntilVerified(t *testing.T) {
	defer store.SetOpenVerifyBytes(0)()
	root := t.TempDir()
	s := open(t, root, 0)
	var files []content.File
	data := map[string][]byte{}
	for _, p := range []string{"t1/a", "t1/b", "t1/c", "t1/d"} {
		data[p] = bytes.Repeat([]byte(p), 10<<10)
		files = append(files, put(t, s, p, data[p]))
	}
	usedBefore, _, _ := s.Usage()
	flipByte(t, storetest.ObjectFile(root, files[2]), 7) // t1/c rots; then the crash

	s2 := open(t, root, 0)
	if got := s2.Pending(); got != 4 {
		t.Fatalf("Pending() = %d after a crash, want all 4 objects", got)
	}
	for _, f := range files {
		notServed(t, s2, f.Path)
		if !s2.Holds(f.Path, f.SHA256) {
			t.Errorf("Holds(%s) = false while pending, want true (fill must not download it again)", f.Path)
		}
	}
	if used, _, _ := s2.Usage(); used != usedBefore {
		t.Errorf("Usage() = %d bytes, want the %d on disk", used, usedBefore)
	}
	_, _, gen := s2.Usage()

	bad, err := s2.VerifyPending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"t1/c"}, problemPaths(bad)); diff != "" {
		t.Errorf("VerifyPending quarantined (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(bad[0].Reason, "sha256 ") {
		t.Errorf("t1/c quarantined for %q, want a hash mismatch", bad[0].Reason)
	}
	for _, p := range []string{"t1/a", "t1/b", "t1/d"} {
		served(t, s2, p, data[p])
	}
	notServed(t, s2, "t1/c")
	if s2.Holds("t1/c", files[2].SHA256) {
		t.Error("Holds(t1/c) = true after it failed verification")
	}
	if _, _, gen2 := s2.Usage(); gen2 == gen || s2.Pending() != 0 {
		t.Errorf("after VerifyPending: generation %d (was %d), %d pending; want a new generation and none", gen2, gen, s2.Pending())
	}
	if diff := cmp.Diff(paths(s2.List()), []string{"t1/a", "t1/b", "t1/d"}); diff != "" {
		t.Errorf("List() after verification (-got +want):\n%s", diff)
	}
}

// TestRunVerifiesCheckpointsAndShutsDownClean runs the background work
// in a synctest bubble: Run verifies what Open left pending, records a
// checkpoint, and on return a clean shutdown, after which a reopen trusts
// every object and re-hashes none.
func TestRunVerifiesCheckpointsAndShutsDownClean(t *testing.T) {
	defer store.SetOpenVerifyBytes(0)()
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		s := open(t, root, 0)
		want := map[string][]byte{}
		for _, p := range []string{"t1/a", "t1/b", "t2/a"} {
			want[p] = bytes.Repeat([]byte(p+" "), 5000)
			put(t, s, p, want[p])
		}
		// A crash: the next store finds all three changed since the
		// checkpoint Open took.
		s2 := open(t, root, 0)
		if s2.Pending() != 3 {
			t.Fatalf("Pending() = %d, want 3", s2.Pending())
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s2.Run(ctx, store.ScrubOff, nil) }()
		synctest.Wait() // Run has verified and is waiting for the next checkpoint
		if s2.Pending() != 0 {
			t.Errorf("Pending() = %d after Run's first round, want 0", s2.Pending())
		}
		for p, b := range want {
			served(t, s2, p, b)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
		ck, err := os.ReadFile(filepath.Join(root, "checkpoint.json"))
		if err != nil || !bytes.Contains(ck, []byte(`"clean":true`)) {
			t.Errorf("checkpoint.json after Run = %s, %v; want a clean shutdown", ck, err)
		}
		rep := open(t, root, 0).Opened()
		if rep.Trusted != 3 || rep.Rehashed != 0 || rep.Pending != 0 || !rep.Clean {
			t.Errorf("Opened() after a clean shutdown = %+v, want 3 trusted, none re-hashed", rep)
		}
	})
}

// TestOpenSizeCheckQuarantines: an object truncated behind a running
// store's back is caught when next opened, not announced with its old
// length.
func TestOpenSizeCheckQuarantines(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	f := put(t, s, "t1/v.mp4", bytes.Repeat([]byte("v"), 4096))
	truncate(t, storetest.ObjectFile(root, f), 100)
	// The index still lists it until something opens it; the open is what
	// would announce the length, and it refuses.
	if _, _, err := s.Open(f.Path); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Open(truncated) = %v, want ErrNotFound", err)
	}
	notServed(t, s, f.Path)
	if got := tree(t, filepath.Join(root, "quarantine")); len(got) != 1 {
		t.Errorf("quarantine/ holds %q, want the truncated file", got)
	}
	if st := s.ScrubStats(); st.Quarantined != 1 {
		t.Errorf("ScrubStats().Quarantined = %d, want 1", st.Quarantined)
	}
}

// TestLegacyNamesAreMigrated: objects named before sizes joined names
// are re-hashed, renamed and served; a read-only look verifies them in
// place.
func TestLegacyNamesAreMigrated(t *testing.T) {
	root := t.TempDir()
	open(t, root, 0).Close()
	good, rotten := []byte("an object from an older ocdn"), []byte("another object from an older ocdn")
	fg, fr := file("t1/old.mp4", good), file("t1/rotten.mp4", rotten)
	legacy := func(f content.File) string {
		title, name, _ := strings.Cut(f.Path, "/")
		return filepath.Join(root, "objects", f.SHA256[:2], title, name+"~"+f.SHA256)
	}
	for f, b := range map[content.File][]byte{fg: good, fr: append([]byte("X"), rotten[1:]...)} {
		os.MkdirAll(filepath.Dir(legacy(f)), 0o755)
		if err := os.WriteFile(legacy(f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ro, err := store.OpenReadOnly(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := ro.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{fr.Path}, problemPaths(problems)); diff != "" {
		t.Errorf("read-only Verify of legacy names (-want +got):\n%s", diff)
	}

	s := open(t, root, 0)
	served(t, s, fg.Path, good)
	notServed(t, s, fr.Path)
	if _, err := os.Stat(storetest.ObjectFile(root, fg)); err != nil {
		t.Errorf("legacy object not renamed to the current layout: %v", err)
	}
	if _, err := os.Stat(legacy(fg)); !os.IsNotExist(err) {
		t.Errorf("legacy name still present: %v", err)
	}
}

// TestSymlinkNamedLikeAnObjectIsNotServed: a symlink could point the edge
// at any file on the machine; it is a stray, never an object.
func TestSymlinkNamedLikeAnObjectIsNotServed(t *testing.T) {
	root := t.TempDir()
	open(t, root, 0).Close()
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("not content"), 0o600)
	f := file("t1/x.mp4", []byte("not content"))
	name := storetest.ObjectFile(root, f)
	os.MkdirAll(filepath.Dir(name), 0o755)
	if err := os.Symlink(secret, name); err != nil {
		t.Fatal(err)
	}
	s := open(t, root, 0)
	notServed(t, s, f.Path)
	problems, _ := s.Verify(context.Background())
	if len(problems) != 1 || !strings.HasPrefix(problems[0].Reason, "unexpected file") {
		t.Errorf("Verify = %+v, want the symlink reported as an unexpected file", problems)
	}
}

// TestTwoVersionsKeepsTheNewer: a crash between publishing a new version
// and removing the old leaves both; the one written last wins.
func TestTwoVersionsKeepsTheNewer(t *testing.T) {
	root := t.TempDir()
	s := open(t, root, 0)
	put(t, s, "t1/v.mp4", []byte("version one"))
	s.Close()
	v2 := []byte("version two, written later")
	f2 := file("t1/v.mp4", v2)
	os.MkdirAll(filepath.Dir(storetest.ObjectFile(root, f2)), 0o755)
	if err := os.WriteFile(storetest.ObjectFile(root, f2), v2, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, root, 0)
	served(t, s2, "t1/v.mp4", v2)
	if got := tree(t, filepath.Join(root, "objects")); len(got) != 1 {
		t.Errorf("objects/ = %q, want only the newer version", got)
	}
}
