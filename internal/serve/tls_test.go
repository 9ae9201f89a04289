package serve

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestTLSBodiesExact: over TLS, where h1 gathers crypto/tls's records
// into large writes, bodies are the exact bytes: copied from a file
// section, written in pieces with a length, or chunked; over HTTP/1.1
// keep-alive and over HTTP/2.
func TestTLSBodiesExact(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	path := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		off, _ := strconv.ParseInt(q.Get("off"), 10, 64)
		n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
		want := data[off : off+n]
		switch q.Get("mode") {
		case "file":
			f, err := os.Open(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			for n > 0 { // in 1 MiB sections, as internal/edge does
				chunk := min(n, 1<<20)
				if _, err := io.Copy(w, io.NewSectionReader(f, off, chunk)); err != nil {
					return
				}
				off, n = off+chunk, n-chunk
			}
		case "pieces":
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			for len(want) > 0 {
				k := min(len(want), 1000+len(want)%7777)
				w.Write(want[:k])
				want = want[k:]
			}
		case "chunked":
			w.Write(want)
		}
	})
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := start(t, h, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: trusting(cert), ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c := &http.Client{Transport: tr}
		for _, q := range []struct{ off, n int64 }{{0, int64(len(data))}, {1, 1}, {65536, 65536}, {1 << 20, 2<<20 + 3}, {12345, 0}, {5, 100000}} {
			for _, mode := range []string{"file", "pieces", "chunked"} {
				url := fmt.Sprintf("%s/?off=%d&n=%d&mode=%s", s.URL(), q.off, q.n, mode)
				resp, err := c.Get(url)
				if err != nil {
					t.Fatalf("h2=%v %s: %v", h2, url, err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := data[q.off : q.off+q.n]
				if err != nil || resp.StatusCode != 200 || sha256.Sum256(body) != sha256.Sum256(want) || (resp.ProtoMajor == 2) != h2 {
					t.Errorf("h2=%v off %d n %d %s: %s %d, %d bytes (%v), want %d exact bytes",
						h2, q.off, q.n, mode, resp.Proto, resp.StatusCode, len(body), err, len(want))
				}
				if mode == "chunked" && !h2 && q.n > 0 && bytes.Equal(body, want) && resp.ContentLength != -1 && q.n > 2048 {
					t.Errorf("off %d n %d: Content-Length %d, want chunked", q.off, q.n, resp.ContentLength)
				}
			}
		}
		tr.CloseIdleConnections()
	}
}

// trusting is a client config that verifies the server's self-signed
// certificate by trusting it alone: tests verify as clients do, never
// skipping verification.
func trusting(cert tls.Certificate, protos ...string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	return &tls.Config{RootCAs: pool, NextProtos: protos}
}
