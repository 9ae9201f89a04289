package measure

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/syncbuf"
)

func TestHandler(t *testing.T) {
	now := time.Now().UTC()
	in, err := Open(t.TempDir(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv := httptest.NewServer(in.Handler(RateLimit{PerSecond: 0.001, Burst: 8}))
	defer srv.Close()

	post := func(body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/reports", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mustJSON := func(r *Report) []byte {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := mustJSON(testReport("0123456789abcdef", 20, now))
	bad := testReport("0123456789abcdeg", 5, now)
	bad.Pulses[3].TTFBMs = -2
	future := testReport("0123456789abcdeh", 5, now.Add(time.Hour))
	huge := append([]byte(`{"id":"`), bytes.Repeat([]byte("a"), MaxBodyBytes)...)

	tests := []struct {
		name     string
		body     []byte
		code     int
		contains string
	}{
		{"accepted", good, 200, `{"accepted":true,"duplicate":false,"pulses":20}`},
		{"duplicate", good, 200, `{"accepted":true,"duplicate":true,"pulses":0}`},
		{"unknown field", []byte(`{"id":"0123456789abcdef","bogus":1}`), 400, `unknown field "bogus"`},
		{"malformed", []byte(`{"id":`), 400, "malformed report JSON"},
		{"trailing", append(append([]byte{}, good...), []byte(`{}`)...), 400, "data after the report object"},
		{"invalid", mustJSON(bad), 400, "pulses[3].ttfb_ms: -2 is negative"},
		{"future", mustJSON(future), 400, "client_time: "},
		{"too large", huge, 413, "report body over"},
		{"rate limited", good, 429, "too many reports"},
	}
	// The burst of 8 admits the first 8 cases; the 9th is refused.
	for _, tc := range tests {
		code, body := post(tc.body)
		if code != tc.code || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: POST = %d %q, want %d containing %q", tc.name, code, body, tc.code, tc.contains)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/reports")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/reports = %d, want 405", resp.StatusCode)
	}
}

// TestRefusalsLogged: why reports are refused reaches the log, one line
// a minute per status, with how many went unlogged in between.
func TestRefusalsLogged(t *testing.T) {
	var logs syncbuf.Buffer
	var mu sync.Mutex
	now := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	in, err := Open(t.TempDir(), nil, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	srv := httptest.NewServer(in.Handler(RateLimit{PerSecond: 1000, Burst: 1000}))
	defer srv.Close()
	post := func(ttfb float64) {
		t.Helper()
		bad := testReport("0123456789abcdef", 5, clock())
		bad.Pulses[3].TTFBMs = ttfb
		b, _ := json.Marshal(bad)
		resp, err := http.Post(srv.URL+"/v1/reports", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST of an invalid report = %d, want 400", resp.StatusCode)
		}
	}
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if strings.Contains(l, "report refused") {
				out = append(out, l)
			}
		}
		return out
	}
	post(-2)
	post(-3)
	post(-4)
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "pulses[3].ttfb_ms: -2 is negative") || !strings.Contains(l[0], "status=400") {
		t.Fatalf("after three refusals within a minute the log has %q, want one line with the first's reason", l)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	post(-5)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "-5 is negative") || !strings.Contains(l[1], "refused_since_last_line=2") {
		t.Fatalf("a minute later the log has %q, want a second line counting the 2 unlogged", l)
	}
}

func TestLimiterEviction(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(RateLimit{PerSecond: 1, Burst: 1, MaxClients: 8}, func() time.Time { return now })
	a := testClient
	if !l.allow(a) || l.allow(a) {
		t.Fatal("burst of 1 not enforced")
	}
	for i := range 100 {
		b := a.As4()
		b[0], b[2] = 10, byte(i)
		l.allow(netipFrom4(b))
	}
	if len(l.m) > 8 {
		t.Errorf("limiter holds %d buckets, want at most 8", len(l.m))
	}
	now = now.Add(time.Second)
	if !l.allow(a) {
		t.Error("bucket did not refill after 1 s")
	}
}
