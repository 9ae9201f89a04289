package appliance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const corsPage = "http://127.0.0.1:18000"

// standaloneWith is a standalone appliance serving one 1 MiB file, with
// the cors section given (nil: none); it returns the appliance, a signed
// URL of the file and the file's bytes.
func standaloneWith(t testing.TB, c *config.CORS) (*Appliance, string, []byte) {
	t.Helper()
	const p = "t0001/video_3000k.mp4"
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20/16)
	sum := sha256.Sum256(data)
	dir := t.TempDir()
	st, err := store.Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), content.File{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Kind: content.KindVideo},
		bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	keys := urlsign.Generate()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{ID: "a1", Listeners: []net.Listener{ln}, StoreDir: dir, Keys: keys, CORS: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tok, _ := keys.Sign(urlsign.Grant{Scope: "t0001/", Expires: time.Now().Add(time.Hour)})
	return a, a.URL() + "/c/" + tok + "/" + p, data
}

func send(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestContentCORS is what a page at another origin sees: ranged GETs
// readable with the appliance's id and timing, preflights answered
// without the store, refused for methods and headers not served; other
// origins get the bytes but no CORS header (a browser then refuses them
// to the page).
func TestContentCORS(t *testing.T) {
	a, u, data := standaloneWith(t, &config.CORS{AllowedOrigins: []string{corsPage}})

	resp, body := send(t, "GET", u, map[string]string{"Origin": corsPage, "Range": "bytes=16-31"})
	if resp.StatusCode != 206 || !bytes.Equal(body, data[16:32]) {
		t.Fatalf("ranged GET from the page = %d %q", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin": corsPage, "Timing-Allow-Origin": corsPage, "X-Ocdn-Appliance": "a1", "Vary": "Origin",
		"Access-Control-Expose-Headers": "Content-Range, Content-Length, ETag, Accept-Ranges, X-Ocdn-Appliance",
		"Content-Range":                 "bytes 16-31/1048576",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	resp, body = send(t, "GET", u, map[string]string{"Origin": "http://evil.example", "Range": "bytes=0-3"})
	if resp.StatusCode != 206 || string(body) != "0123" {
		t.Errorf("GET from another origin = %d %q, want the bytes (CORS is not access control)", resp.StatusCode, body)
	}
	for _, k := range []string{"Access-Control-Allow-Origin", "Timing-Allow-Origin", "X-Ocdn-Appliance", "Access-Control-Expose-Headers"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("GET from another origin: %s = %q, want none", k, v)
		}
	}

	// Preflights never reach edge: not even for an object the store does
	// not hold under a token that is not valid.
	before := a.Requests()
	bogus := a.URL() + "/c/not-a-token/t9999/none.mp4"
	resp, _ = send(t, "OPTIONS", bogus, map[string]string{"Origin": corsPage, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != corsPage || resp.Header.Get("Access-Control-Allow-Headers") != "range" {
		t.Errorf("preflight = %d %v, want 204 allowing the page and range", resp.StatusCode, resp.Header)
	}
	for _, tc := range []map[string]string{
		{"Origin": corsPage, "Access-Control-Request-Method": "PUT"},
		{"Origin": corsPage, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range, authorization"},
		{"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
	} {
		resp, body := send(t, "OPTIONS", u, tc)
		if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(string(body), "refused") {
			t.Errorf("preflight %v = %d %v %q, want 403 without CORS headers", tc, resp.StatusCode, resp.Header, body)
		}
	}
	if n := a.Requests() - before; n != 0 {
		t.Errorf("preflights reached edge %d times, want 0", n)
	}
}

// TestNoCORSSectionKeepsTheOldAnswers: without a cors section nothing
// changes: no CORS header, and a preflight is edge's 405.
func TestNoCORSSectionKeepsTheOldAnswers(t *testing.T) {
	_, u, _ := standaloneWith(t, nil)
	resp, _ := send(t, "GET", u, map[string]string{"Origin": corsPage, "Range": "bytes=0-3"})
	if resp.StatusCode != 206 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("X-Ocdn-Appliance") != "" {
		t.Errorf("GET = %d %v, want 206 without CORS headers", resp.StatusCode, resp.Header)
	}
	resp, _ = send(t, "OPTIONS", u, map[string]string{"Origin": corsPage, "Access-Control-Request-Method": "GET"})
	if resp.StatusCode != 405 {
		t.Errorf("preflight without a cors section = %d, want 405", resp.StatusCode)
	}
}

// benchContent is one 64 KiB range through the appliance's root handler
// (CORS, edge, demand accounting), without a network.
func benchContent(b *testing.B, c *config.CORS, origin string) {
	a, u, _ := standaloneWith(b, c)
	req := httptest.NewRequest("GET", strings.TrimPrefix(u, a.URL()), nil)
	req.RemoteAddr = "127.0.0.1:4321"
	req.Header.Set("Range", "bytes=65536-131071")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	w := &nullWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		a.root.ServeHTTP(w, req)
	}
}

// BenchmarkContent64KiB compares a range without any cors section
// (NoCORS), with one but no Origin header (every non-browser client),
// and a browser's request from an allowed origin.
func BenchmarkContent64KiB(b *testing.B) {
	c := &config.CORS{AllowedOrigins: []string{corsPage}}
	b.Run("NoCORS", func(b *testing.B) { benchContent(b, nil, "") })
	b.Run("CORSNoOrigin", func(b *testing.B) { benchContent(b, c, "") })
	b.Run("CORSAllowedOrigin", func(b *testing.B) { benchContent(b, c, corsPage) })
}

// nullWriter keeps headers and discards the body, keeping ReadFrom so
// edge's copy path is the one a connection takes.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header                 { return w.h }
func (w *nullWriter) WriteHeader(int)                     {}
func (w *nullWriter) Write(p []byte) (int, error)         { return len(p), nil }
func (w *nullWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }
