package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// testEdge is a handler over a real store behind a real loopback server.
type testEdge struct {
	t    testing.TB
	h    *Handler
	base string                         // the handler served by package serve, as appliances do
	keys *urlsign.KeySet                // signs test URLs
	cur  atomic.Pointer[urlsign.KeySet] // what the handler verifies with
	st   *store.Store
	reg  *prometheus.Registry
	dir  string
}

func newTestEdge(t testing.TB, files map[string][]byte) *testEdge {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		sum := sha256.Sum256(b)
		f := content.File{Path: p, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Kind: content.KindVideo}
		if err := st.Put(context.Background(), f, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	te := &testEdge{t: t, keys: urlsign.Generate(), st: st, reg: prometheus.NewRegistry(), dir: dir}
	te.cur.Store(te.keys)
	te.h = New(Config{Store: st, Keys: te.cur.Load, Registry: te.reg})
	te.base = serveHTTP(t, te.h)
	return te
}

// serveHTTP serves h on loopback through package serve, the server the
// appliance uses, until the test ends; it returns the base URL.
func serveHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	srv, err := serve.Listen("127.0.0.1:0", h, serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); srv.Kill(); <-done })
	return srv.URL()
}

// url is a signed URL for p on the test server.
func (te *testEdge) url(p string) string {
	tok, err := te.keys.Sign(urlsign.Grant{Scope: p, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		panic(err)
	}
	return te.base + "/c/" + tok + "/" + p
}

func (te *testEdge) do(method, u string, hdr ...string) (*http.Response, []byte) {
	te.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		te.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		te.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		te.t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, b
}

// pattern is deterministic test content in which every offset is visible.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// part is one part of a multipart/byteranges body.
type part struct {
	ContentRange string
	Body         []byte
}

// parseMultipart parses a multipart/byteranges response.
func parseMultipart(t *testing.T, resp *http.Response, body []byte) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type = %q, want multipart/byteranges", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		parts = append(parts, part{ContentRange: p.Header.Get("Content-Range"), Body: b})
	}
}

func trimBody(b []byte) string {
	s := string(b)
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.TrimSpace(s)
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
