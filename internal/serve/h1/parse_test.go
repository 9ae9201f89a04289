package serve

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"reflect"
	"testing"
)

// Requests parseSimple must take, and ones it must leave to
// http.ReadRequest.
var (
	simpleRequests = []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /c/tok.en-_/t0001/video_3000k.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=0-65535\r\nUser-Agent: wrk\r\n\r\n",
		"HEAD /a/b?x=1&y=%41 HTTP/1.1\r\nhost:  x \r\naccept: */*\r\nAccept: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET /q? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /%7Efile HTTP/1.1\r\nHost: x\r\nConnection: Close, te\r\nX-Empty:\r\n\r\n",
		"OPTIONS //two/slashes HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	fallbackRequests = []string{
		"GET / HTTP/1.1\r\nHost: x\r\n",                                    // incomplete
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",         // a body
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", // a body
		"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",                     // two Hosts
		"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",            // rewritten
		"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",                     // obs-fold
		"GET / HTTP/1.1\nHost: x\r\n\r\n",                                  // bare LF
		"GET / HTTP/1.1\r\nHo st: x\r\n\r\n",                               // bad name
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",                               // space before colon
		"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",                              // control byte
		"GET http://h/abs HTTP/1.1\r\nHost: x\r\n\r\n",                     // absolute form
		"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
		"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", // bad escape: ReadRequest's error
		"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
	}
)

func TestParseSimple(t *testing.T) {
	for _, raw := range simpleRequests {
		if _, _, ok := parseSimple(context.Background(), []byte(raw)); !ok {
			t.Errorf("parseSimple(%q) fell back", raw)
		}
		checkParseSimple(t, []byte(raw))
	}
	for _, raw := range fallbackRequests {
		if _, _, ok := parseSimple(context.Background(), []byte(raw)); ok {
			t.Errorf("parseSimple(%q) took it, want http.ReadRequest to", raw)
		}
	}
}

// FuzzParseSimple checks that whatever parseSimple takes, http.ReadRequest
// takes too, with the same result and length.
func FuzzParseSimple(f *testing.F) {
	for _, raw := range append(simpleRequests, fallbackRequests...) {
		f.Add([]byte(raw))
	}
	f.Fuzz(checkParseSimple)
}

type ctxKey struct{}

func checkParseSimple(t *testing.T, raw []byte) {
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	got, n, ok := parseSimple(ctx, raw)
	if !ok {
		return
	}
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	want, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("parseSimple took %q; http.ReadRequest: %v", raw, err)
	}
	if consumed := len(raw) - src.Len() - br.Buffered(); n != consumed {
		t.Errorf("parseSimple(%q) took %d bytes, http.ReadRequest %d", raw, n, consumed)
	}
	if got.Context() != ctx {
		t.Errorf("parseSimple(%q) lost the context", raw)
	}
	type view struct {
		Method, Proto, Host, RequestURI string
		ProtoMajor, ProtoMinor          int
		URL                             any
		Header                          http.Header
		Close                           bool
		ContentLength                   int64
		TransferEncoding                []string
		NoBody                          bool
		Trailer                         http.Header
	}
	see := func(r *http.Request) view {
		return view{r.Method, r.Proto, r.Host, r.RequestURI, r.ProtoMajor, r.ProtoMinor, *r.URL, r.Header,
			r.Close, r.ContentLength, r.TransferEncoding, r.Body == http.NoBody, r.Trailer}
	}
	if g, w := see(got), see(want); !reflect.DeepEqual(g, w) {
		t.Errorf("parseSimple(%q) =\n%+v\nhttp.ReadRequest:\n%+v", raw, g, w)
	}
}

// A request as wrk sends it in make bench-edge.
var benchRequest = []byte("GET /c/MX5rdHA0OGt5fjE3OTU3OTM2NTB-dDAwMDAvdmlkZW9fMzAwMGsubXA0fg.iCSmfMwZkeXEihrVT0habg/t0000/video_3000k.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=40239104-40304639\r\n\r\n")

func BenchmarkParseSimple(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := parseSimple(ctx, benchRequest); !ok {
			b.Fatal("fell back")
		}
	}
}

func BenchmarkReadRequest(b *testing.B) {
	r := bytes.NewReader(benchRequest)
	br := bufio.NewReader(r)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(benchRequest)
		br.Reset(r)
		req, err := http.ReadRequest(br)
		if err != nil {
			b.Fatal(err)
		}
		req.WithContext(context.Background())
	}
}
