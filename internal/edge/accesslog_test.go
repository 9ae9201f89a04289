package edge

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/syncbuf"
)

// TestAccessLoggerMatchesSlog: the fast access log writes exactly what
// slog's TextHandler would, apart from the timestamp.
func TestAccessLoggerMatchesSlog(t *testing.T) {
	te := newTestEdge(t, map[string][]byte{testPath: pattern(1000)})
	var fast, slow syncbuf.Buffer
	hFast := New(Config{Store: te.st, Keys: te.cur.Load, AccessLog: NewAccessLogger(&fast).With("component", "access"), Registry: prometheus.NewRegistry()})
	hSlow := New(Config{Store: te.st, Keys: te.cur.Load, AccessLog: slog.New(slog.NewTextHandler(&slow, nil)).With("component", "access"), Registry: prometheus.NewRegistry()})
	if hFast.fastAccess == nil || hSlow.fastAccess != nil {
		t.Fatal("fast path not chosen as expected")
	}
	target := strings.TrimPrefix(te.url(testPath), te.base)
	reqs := []*http.Request{
		httptest.NewRequest("GET", target, nil),
		httptest.NewRequest("HEAD", target, nil),
		httptest.NewRequest("POST", target, nil),
		httptest.NewRequest("GET", "/c/x/../etc/passwd", nil),
		httptest.NewRequest("GET", "/c/bad.token/"+testPath, nil),
	}
	for i, rng := range []string{"bytes=0-9", `bytes="0-9"`, "bytes = 0-1", "bytes=0-1,\x7f", "bytes=\xff\xfe", "bytes=é", "a=b"} {
		r := httptest.NewRequest("GET", target, nil)
		r.Header.Set("Range", rng)
		r.RemoteAddr = fmt.Sprintf("192.0.2.%d:1234", i)
		reqs = append(reqs, r)
	}
	for _, r := range reqs {
		hFast.ServeHTTP(httptest.NewRecorder(), r)
		hSlow.ServeHTTP(httptest.NewRecorder(), r)
	}
	stamp := regexp.MustCompile(`^time=\S+ `)
	dur := regexp.MustCompile(` duration_us=\d+`)
	norm := func(s string) []string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		for i, l := range lines {
			lines[i] = dur.ReplaceAllString(stamp.ReplaceAllString(l, ""), "")
		}
		return lines
	}
	f, s := norm(fast.String()), norm(slow.String())
	if len(f) != len(reqs) || len(s) != len(reqs) {
		t.Fatalf("%d fast and %d slog lines for %d requests", len(f), len(s), len(reqs))
	}
	for i := range f {
		if f[i] != s[i] {
			t.Errorf("line %d:\nfast %s\nslog %s", i, f[i], s[i])
		}
	}
	if !stamp.MatchString(fast.String()) {
		t.Errorf("fast line has no time= prefix: %.80s", fast.String())
	}
}

// TestBufferedWriterKeepsLines: concurrent writers with a tiny buffer (a
// swap every few lines) lose, split and reorder nothing.
func TestBufferedWriterKeepsLines(t *testing.T) {
	var out syncbuf.Buffer
	bw := NewBufferedWriter(&out, 100)
	var wg sync.WaitGroup
	const writers, lines = 8, 500
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(bw, "w%d line %d %s\n", w, i, strings.Repeat("x", i%40))
			}
		}()
	}
	wg.Wait()
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, l := range got {
		var w, i int
		var x string
		if _, err := fmt.Sscanf(l, "w%d line %d %s", &w, &i, &x); err != nil && i%40 != 0 {
			t.Fatalf("mangled line %q", l)
		}
		if i != next[w] {
			t.Fatalf("writer %d: line %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
}

// TestAppendStamp: the cached-second timestamp is what formatting the
// whole time gives, across seconds, milliseconds and zones, including a
// zone change between two lines of the same second.
func TestAppendStamp(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z07:00"
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	base := time.Date(2026, 3, 8, 6, 59, 59, 0, time.UTC) // just before New York's DST change
	for _, d := range []time.Duration{0, time.Millisecond, 999 * time.Millisecond, time.Second + 7*time.Millisecond,
		time.Second + 70*time.Millisecond, 3601 * time.Second, -5 * time.Millisecond} {
		for _, loc := range []*time.Location{time.UTC, ny, time.FixedZone("", 5*3600+1800), time.UTC} {
			tm := base.Add(d).In(loc)
			if got, want := string(appendStamp([]byte("x"), tm)), "x"+tm.Format(layout); got != want {
				t.Errorf("appendStamp(%v) = %q, want %q", tm, got, want)
			}
		}
	}
}
