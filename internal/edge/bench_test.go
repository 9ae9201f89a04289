package edge

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/urlsign"
)

const benchSize = 32 << 20

func benchRanges(b *testing.B, rangeLen int64) {
	te := newTestEdge(b, map[string][]byte{testPath: pattern(benchSize)})
	u := te.url(testPath)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.SetBytes(rangeLen)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest("GET", u, nil)
		buf := make([]byte, 256<<10)
		for pb.Next() {
			off := rand.Int64N(benchSize - rangeLen)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+rangeLen-1))
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			if resp.StatusCode != 206 || n != rangeLen {
				b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
			}
		}
	})
}

// BenchmarkServeRange2MiB and 64KiB go through a real loopback
// connection (client cost included), as players do.
func BenchmarkServeRange2MiB(b *testing.B)  { benchRanges(b, 2<<20) }
func BenchmarkServeRange64KiB(b *testing.B) { benchRanges(b, 64<<10) }

// discardWriter is a ResponseWriter that throws the body away but keeps
// ReadFrom, so BenchmarkHandler measures the handler, not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header                 { return d.h }
func (d *discardWriter) WriteHeader(int)                     {}
func (d *discardWriter) Write(p []byte) (int, error)         { return len(p), nil }
func (d *discardWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// BenchmarkHandler64KiB is the in-process cost of one 64 KiB range:
// routing, token check, store open, headers, file read and metrics.
func BenchmarkHandler64KiB(b *testing.B) {
	te := newTestEdge(b, map[string][]byte{testPath: pattern(benchSize)})
	req := httptest.NewRequest("GET", strings.TrimPrefix(te.url(testPath), te.base), nil)
	req.RemoteAddr = "127.0.0.1:4321"
	req.Header.Set("Range", "bytes=1048576-1114111")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		te.h.ServeHTTP(w, req)
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	ks := urlsign.Generate()
	tok, _ := ks.Sign(urlsign.Grant{Scope: "t0001/", Expires: time.Now().Add(time.Hour), Client: netip.MustParsePrefix("127.0.0.0/8")})
	client := netip.MustParseAddr("127.0.0.1")
	now := time.Now()
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ks.Verify(tok, testPath, client, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := newTokenCache(4096)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.verify(ks, tok, testPath, client, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
