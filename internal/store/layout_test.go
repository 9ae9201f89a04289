package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ocdn/ocdn/internal/content"
)

const sum = "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"

func TestParseObjectName(t *testing.T) {
	tests := []struct {
		rel        string
		want       Entry
		legacy, ok bool
	}{
		{"23/t1/v.mp4~" + sum + "~7", Entry{Path: "t1/v.mp4", Size: 7, SHA256: sum}, false, true},
		{"23/t1/v.mp4~" + sum + "~0", Entry{Path: "t1/v.mp4", Size: 0, SHA256: sum}, false, true},
		{"23/t1/v.mp4~" + sum, Entry{Path: "t1/v.mp4", SHA256: sum}, true, true},
		{"23/t1/v.mp4~" + sum + "~07", Entry{}, false, false},  // not canonical: two names for one object
		{"23/t1/v.mp4~" + sum + "~+7", Entry{}, false, false},  // sign
		{"23/t1/v.mp4~" + sum + "~-1", Entry{}, false, false},  // negative
		{"23/t1/v.mp4~" + sum + "~", Entry{}, false, false},    // empty size
		{"23/t1/v.mp4~" + sum + "~7~7", Entry{}, false, false}, // extra field
		{"23/t1/v.mp4~" + sum + "~9223372036854775808", Entry{}, false, false},
		{"24/t1/v.mp4~" + sum + "~7", Entry{}, false, false}, // wrong shard
		{"23/t1/v.mp4~" + strings.ToUpper(sum) + "~7", Entry{}, false, false},
		{"23/t1/v.mp4~" + sum[:63] + "~7", Entry{}, false, false},
		{"23/t1/..~" + sum + "~7", Entry{}, false, false},
		{"23/t1/v.mp4", Entry{}, false, false},
		{"23/v.mp4~" + sum + "~7", Entry{}, false, false},
		{"23/a/b/v.mp4~" + sum + "~7", Entry{}, false, false},
	}
	for _, tc := range tests {
		e, legacy, ok := parseObjectName(tc.rel)
		if e != tc.want || legacy != tc.legacy || ok != tc.ok {
			t.Errorf("parseObjectName(%q) = %+v, %v, %v; want %+v, %v, %v", tc.rel, e, legacy, ok, tc.want, tc.legacy, tc.ok)
		}
	}
}

// FuzzParseObjectName: the parser of names found on disk never panics,
// and accepts only the exact names the store writes, so an index rebuilt
// from a listing names each object's file and nothing else.
func FuzzParseObjectName(f *testing.F) {
	f.Add("23/t1/v.mp4~" + sum + "~7")
	f.Add("23/t1/v.mp4~" + sum)
	f.Add("23/t1/v.mp4~" + sum + "~007")
	f.Add("../../etc/passwd")
	f.Add("23/t1/~~")
	f.Fuzz(func(t *testing.T, rel string) {
		e, legacy, ok := parseObjectName(rel)
		if !ok {
			return
		}
		name := objectName(e)
		if legacy {
			name = legacyName(e)
		}
		if name != rel {
			t.Fatalf("parseObjectName(%q) = %+v (legacy %v), which is named %q", rel, e, legacy, name)
		}
		if e.Size < 0 || !isLowerHex64(e.SHA256) {
			t.Fatalf("parseObjectName(%q) = %+v", rel, e)
		}
	})
}

func TestParseCheckpoint(t *testing.T) {
	at := time.Date(2026, 3, 1, 3, 0, 0, 123456789, time.UTC)
	good := checkpointState{Version: 1, Clean: true, Checkpoint: at}
	got, err := parseCheckpoint(good.marshal())
	if err != nil || !got.Checkpoint.Equal(at) || !got.Clean {
		t.Errorf("parseCheckpoint(marshal(%+v)) = %+v, %v", good, got, err)
	}
	for _, bad := range []string{
		``,
		`{`,
		`{"version":2,"clean":true,"checkpoint":"2026-03-01T03:00:00Z"}`,
		`{"version":1,"clean":true,"checkpoint":"yesterday"}`,
		`{"version":1,"clean":true,"checkpoint":"2026-03-01T03:00:00Z","extra":1}`,
		`{"version":1,"clean":true,"checkpoint":"2026-03-01T03:00:00Z"} {}`,
		`[]`,
		`{"version":1}` + strings.Repeat(" ", maxCheckpointBytes),
	} {
		if c, err := parseCheckpoint([]byte(bad)); err == nil {
			t.Errorf("parseCheckpoint(%.60q) = %+v, want an error", bad, c)
		}
	}
}

// FuzzParseCheckpoint: whatever checkpoint.json holds, parsing never
// panics, and what it accepts survives a write and a read unchanged.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(`{"version":1,"clean":true,"checkpoint":"2026-03-01T03:00:00.123456789Z"}`))
	f.Add([]byte(`{"version":1,"clean":false,"checkpoint":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"checkpoint":"2026-03-01T03:00:00+09:00"}` + "\n"))
	f.Add([]byte(`{"version":1,"checkpoint":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCheckpoint(b)
		if err != nil {
			return
		}
		again, err := parseCheckpoint(c.marshal())
		if err != nil {
			t.Fatalf("parseCheckpoint(%q) = %+v, whose own encoding %q does not parse: %v", b, c, c.marshal(), err)
		}
		if again.Version != c.Version || again.Clean != c.Clean || !again.Checkpoint.Equal(c.Checkpoint) {
			t.Fatalf("round trip of %+v gave %+v", c, again)
		}
	})
}

// TestAskedForFirst: a pending object a client asks for is verified
// before the ones ahead of it in line.
func TestAskedForFirst(t *testing.T) {
	defer func(old int64) { openVerifyBytes = old }(openVerifyBytes)
	openVerifyBytes = 0
	root := t.TempDir()
	s, err := Open(root, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"t/a", "t/b", "t/c", "t/z"} {
		f := testFile(p)
		if err := s.Put(context.Background(), f, strings.NewReader(p)); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(root, 0, nil) // a crash: all four pending
	if err != nil {
		t.Fatal(err)
	}
	s2.Lookup("t/z")
	s2.Lookup("t/c")
	s2.Lookup("t/z") // asked twice, verified once
	todo, tried := s2.pendingList(), map[string]bool{}
	var order []string
	for {
		e, ok := s2.nextPending(&todo, tried)
		if !ok {
			break
		}
		tried[e.Path] = true
		order = append(order, e.Path)
	}
	if diff := cmp.Diff([]string{"t/z", "t/c", "t/a", "t/b"}, order); diff != "" {
		t.Errorf("verification order (-want +got):\n%s", diff)
	}
}

// testFile is a catalog entry whose content is its own path.
func testFile(p string) content.File {
	h := sha256.Sum256([]byte(p))
	return content.File{Path: p, Size: int64(len(p)), SHA256: hex.EncodeToString(h[:]), Kind: content.KindOther}
}
