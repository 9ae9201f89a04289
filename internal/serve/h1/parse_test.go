package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// Requests parseRequest takes; each must equal http.ReadRequest's.
var goodRequests = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /c/tok.en-_/t0001/video_3000k.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=0-65535\r\nUser-Agent: wrk\r\n\r\n",
	"HEAD /a/b?x=1&y=%41 HTTP/1.1\r\nhost:  x \r\naccept: */*\r\nAccept: a\r\n\r\n",
	"GET /q? HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"GET /%7Efile HTTP/1.1\r\nHost: x\r\nConnection: Close, te\r\nX-Empty:\r\n\r\n",
	"OPTIONS //two/slashes HTTP/1.1\r\nHost: x\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n",
	"POST /a HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
	"GET http://h/abs?q HTTP/1.1\r\nHost: y\r\n\r\n",
	"GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\nX: caf\xc3\xa9\r\n\r\n",
	"get / HTTP/1.1\r\nHost: x\r\n\r\n",
}

// Requests parseRequest refuses, with the status it answers.
var badRequests = []struct {
	raw    string
	status int
}{
	{"GET / HTTP/1.1\nHost: x\r\n\r\n", 400},                                                       // bare LF
	{"GET / HTTP/1.1\r\nHost: x\n\r\n", 400},                                                       // bare LF
	{"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400},                                          // CR inside
	{"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400},                                        // NUL
	{"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400},                                        // control byte
	{"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400},                                  // obs-fold
	{"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\tx\r\n\r\n", 400},                         // obs-fold
	{"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400},                                                    // bad name
	{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},                                                    // space before colon
	{"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400},                                          // no colon
	{"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400},                                              // empty name
	{"GET / HTTP/1.1\r\n\r\n", 400},                                                                // no Host
	{"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},                                          // two Hosts
	{"GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n", 400},                                          // two Hosts
	{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},                                                   // bad Host
	{"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                    // two spaces
	{"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},                                                    // trailing space
	{"GET /\tHTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                    // tab
	{"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                  // space in target
	{"GET / http/1.1\r\nHost: x\r\n\r\n", 400},                                                     // lower-case version
	{"GET / HTTP/1.1.1\r\nHost: x\r\n\r\n", 400},                                                   // malformed version
	{"GET /\r\n\r\n", 400},                                                                         // HTTP/0.9
	{"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},                                                     // other version
	{"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505},                                                     // other version
	{"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                     // method not a token
	{"GET x HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                     // target form
	{"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                     // asterisk with GET
	{"GET ftp://h/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                              // scheme
	{"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},                                                 // bad escape
	{"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 405},                                             // CONNECT
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},          // duplicate CL
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},          // differing CL
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400},                            // CL list
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400},                              // sign
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},                              // negative
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400},                            // hex
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n", 400},                             // space inside
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400},                                // empty
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},            // overflow
	{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400}, // CL+TE
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400}, // TE+CL
	{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},                                 // TE in 1.0
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},                // chunked not last
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},                         // no chunked
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400},
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501}, // a coding we lack
	{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
}

// headerBlock is what parseRequest is given for raw: the header without
// its final CRLF.
func headerBlock(raw string) (string, bool) {
	i := strings.Index(raw, "\r\n\r\n")
	if i < 0 {
		return "", false
	}
	return raw[:i+2], true
}

func TestParseRequest(t *testing.T) {
	for _, raw := range goodRequests {
		block, _ := headerBlock(raw)
		if _, err := parseRequest(context.Background(), block); err != nil {
			t.Errorf("parseRequest(%q) = %v, want a request", raw, err)
		}
		checkParseRequest(t, []byte(raw))
	}
	for _, tc := range badRequests {
		block, _ := headerBlock(tc.raw)
		_, err := parseRequest(context.Background(), block)
		var se statusError
		if !errors.As(err, &se) || se.code != tc.status {
			t.Errorf("parseRequest(%q) = %v, want status %d", tc.raw, err, tc.status)
		}
	}
}

// FuzzParseRequest checks that whatever parseRequest takes,
// http.ReadRequest takes too, with the same result.
func FuzzParseRequest(f *testing.F) {
	for _, raw := range goodRequests {
		f.Add([]byte(raw))
	}
	for _, tc := range badRequests {
		f.Add([]byte(tc.raw))
	}
	f.Fuzz(checkParseRequest)
}

type ctxKey struct{}

func checkParseRequest(t *testing.T, raw []byte) {
	block, ok := headerBlock(string(raw))
	if !ok {
		return
	}
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	got, err := parseRequest(ctx, block)
	if err != nil {
		return
	}
	want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("parseRequest took %q; http.ReadRequest: %v", raw, err)
	}
	if got.Context() != ctx {
		t.Errorf("parseRequest(%q) lost the context", raw)
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
	}
	see := func(r *http.Request, noBody bool) view {
		// Trailers are read and dropped, not announced.
		delete(r.Header, "Trailer")
		return view{r.Method, r.Proto, r.Host, r.RequestURI, r.ProtoMajor, r.ProtoMinor, *r.URL, r.Header,
			r.Close, r.ContentLength, r.TransferEncoding, noBody}
	}
	// The server gives a request its body after parseRequest.
	if g, w := see(got, got.ContentLength == 0), see(want, want.Body == http.NoBody); !reflect.DeepEqual(g, w) {
		t.Errorf("parseRequest(%q) =\n%+v\nhttp.ReadRequest:\n%+v", raw, g, w)
	}
}

// A request as wrk sends it in make bench-edge.
var benchRequest = []byte("GET /c/MX5rdHA0OGt5fjE3OTU3OTM2NTB-dDAwMDAvdmlkZW9fMzAwMGsubXA0fg.iCSmfMwZkeXEihrVT0habg/t0000/video_3000k.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=40239104-40304639\r\n\r\n")

func BenchmarkParseRequest(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		i := bytes.Index(benchRequest, crlfcrlf)
		if _, err := parseRequest(ctx, string(benchRequest[:i+2])); err != nil {
			b.Fatal(err)
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
