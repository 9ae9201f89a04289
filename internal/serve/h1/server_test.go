package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// testServer is a Server serving on a loopback listener.
type testServer struct {
	*Server
	ln   net.Listener
	done chan error
}

func (s *testServer) Addr() net.Addr { return s.ln.Addr() }

// wait returns Serve's result once it has returned.
func (s *testServer) wait() error {
	err := <-s.done
	s.done <- err
	return err
}

// start serves h on a loopback port until the test ends.
func start(t *testing.T, h http.Handler, cfg Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{Server: New(h, cfg), ln: ln, done: make(chan error, 1)}
	go func() { s.done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		s.wait()
	})
	return s
}

// client is one raw keep-alive connection to a test server.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, s *testServer) *client {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (cl *client) send(raw string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, raw); err != nil {
		cl.t.Fatal(err)
	}
}

// read reads one final response (skipping 1xx) to a request with method.
func (cl *client) read(method string) (*http.Response, string) {
	cl.t.Helper()
	for {
		resp, err := http.ReadResponse(cl.br, &http.Request{Method: method})
		if err != nil {
			cl.t.Fatalf("reading response: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			cl.t.Fatalf("reading body: %v", err)
		}
		if resp.StatusCode >= 200 {
			return resp, string(b)
		}
	}
}

// closed reports whether the server closed the connection (EOF next).
func (cl *client) closed() bool {
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := cl.br.ReadByte()
	return err == io.EOF
}

// echo answers with the method, path, body and remote address.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s body=%q from=%s", r.Method, r.URL.Path, r.Proto, b, r.RemoteAddr)
})

func TestKeepAliveManyRequests(t *testing.T) {
	s := start(t, echo, Config{})
	cl := dial(t, s)
	for i := range 200 {
		cl.send(fmt.Sprintf("GET /r%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
		resp, body := cl.read("GET")
		want := fmt.Sprintf("GET /r%d HTTP/1.1 body=\"\" from=%s", i, cl.c.LocalAddr())
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, body, want)
		}
		if resp.ContentLength != int64(len(want)) || resp.Close {
			t.Fatalf("request %d: Content-Length %d close %v, want %d and keep-alive", i, resp.ContentLength, resp.Close, len(want))
		}
		if resp.Header.Get("Date") == "" {
			t.Fatalf("request %d: no Date header", i)
		}
	}
}

func TestPipelining(t *testing.T) {
	s := start(t, echo, Config{})
	cl := dial(t, s)
	var all strings.Builder
	for i := range 50 {
		fmt.Fprintf(&all, "GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		if i%10 == 3 { // a body between pipelined requests
			fmt.Fprintf(&all, "POST /b%d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", i)
		}
	}
	cl.send(all.String())
	for i := range 50 {
		_, body := cl.read("GET")
		if want := fmt.Sprintf("GET /p%d ", i); !strings.HasPrefix(body, want) {
			t.Fatalf("response %d = %q, want prefix %q", i, body, want)
		}
		if i%10 == 3 {
			_, body := cl.read("POST")
			if want := fmt.Sprintf("POST /b%d HTTP/1.1 body=\"hello\"", i); !strings.HasPrefix(body, want) {
				t.Fatalf("response to POST %d = %q, want prefix %q", i, body, want)
			}
		}
	}
}

func TestHEAD(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/known":
			w.Header().Set("Content-Length", "11")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello world")
		case "/unknown":
			io.WriteString(w, "hello world")
		case "/big": // would be chunked on GET
			w.Write(bytes.Repeat([]byte("x"), 10000))
		}
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	for _, tc := range []struct {
		path    string
		wantLen int64
	}{{"/known", 11}, {"/unknown", 11}, {"/big", -1}} {
		cl.send("HEAD " + tc.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := cl.read("HEAD")
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != tc.wantLen {
			t.Errorf("HEAD %s = %d, body %q, Content-Length %d; want 200, no body, %d", tc.path, resp.StatusCode, body, resp.ContentLength, tc.wantLen)
		}
		if resp.TransferEncoding != nil {
			t.Errorf("HEAD %s: Transfer-Encoding %v, want none", tc.path, resp.TransferEncoding)
		}
	}
	// The connection is still in step.
	cl.send("GET /known HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := cl.read("GET"); body != "hello world" {
		t.Errorf("GET after HEADs = %q, want hello world", body)
	}
}

func TestResponseFraming(t *testing.T) {
	big := strings.Repeat("0123456789", 1000)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/big":
			for i := 0; i < len(big); i += 1000 {
				io.WriteString(w, big[i:i+1000])
			}
		case "/flush":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
		case "/204":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNoContent)
			io.WriteString(w, "ignored")
		case "/304":
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Etag", `"x"`)
			w.WriteHeader(http.StatusNotModified)
		case "/short": // promises more than it sends
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		}
	})
	s := start(t, h, Config{})
	type result struct {
		Status      int
		Body        string
		Length      int64
		Chunked     bool
		ContentType string
		Close       bool
	}
	for _, tc := range []struct {
		path, proto string
		want        result
	}{
		{"/small", "HTTP/1.1", result{200, "<html><body>hi</body></html>", 28, false, "text/html; charset=utf-8", false}},
		{"/big", "HTTP/1.1", result{200, big, -1, true, "text/plain; charset=utf-8", false}},
		{"/flush", "HTTP/1.1", result{200, "ab", -1, true, "text/plain; charset=utf-8", false}},
		{"/big", "HTTP/1.0", result{200, big, -1, false, "text/plain; charset=utf-8", true}},
		{"/small", "HTTP/1.0", result{200, "<html><body>hi</body></html>", 28, false, "text/html; charset=utf-8", true}},
		{"/204", "HTTP/1.1", result{204, "", 0, false, "text/plain", false}},
		{"/304", "HTTP/1.1", result{304, "", 0, false, "", false}},
		{"/short", "HTTP/1.1", result{200, "abc", 10, false, "text/plain; charset=utf-8", false}},
	} {
		cl := dial(t, s)
		cl.send("GET " + tc.path + " " + tc.proto + "\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.proto, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		got := result{resp.StatusCode, string(b), resp.ContentLength, len(resp.TransferEncoding) > 0, resp.Header.Get("Content-Type"), resp.Close}
		if tc.path == "/short" {
			// The connection closes after the short body instead of
			// carrying the next answer as body.
			got.Close = !cl.closed()
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tc.proto, tc.path, diff)
		}
	}
}

func TestHTTP10KeepAlive(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	for i := range 3 {
		cl.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := cl.read("GET")
		if body != "ok" || resp.Header.Get("Connection") != "keep-alive" || resp.Proto != "HTTP/1.0" {
			t.Fatalf("request %d: %s %q Connection %q, want HTTP/1.0 ok keep-alive", i, resp.Proto, body, resp.Header.Get("Connection"))
		}
	}
	cl.send("GET / HTTP/1.0\r\n\r\n")
	if _, body := cl.read("GET"); body != "ok" || !cl.closed() {
		t.Errorf("HTTP/1.0 without keep-alive: body %q, connection kept; want ok and closed", body)
	}
	cl = dial(t, s)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := cl.read("GET"); !resp.Close || !cl.closed() {
		t.Errorf("Connection: close request: response Close=%v, want the connection closed", resp.Close)
	}
}

func TestRequestBodies(t *testing.T) {
	// ignore answers without reading the body.
	ignore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			io.WriteString(w, "ignored")
			return
		}
		echo(w, r)
	})
	s := start(t, ignore, Config{})
	cl := dial(t, s)

	cl.send("POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
	if _, body := cl.read("POST"); !strings.Contains(body, `body="hello world"`) {
		t.Errorf("Content-Length body: %q", body)
	}
	cl.send("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	if _, body := cl.read("POST"); !strings.Contains(body, `body="hello world"`) {
		t.Errorf("chunked body: %q", body)
	}
	// Extensions and trailer fields are read and dropped; a chunk may be
	// split across the client's writes.
	cl.send("POST /chunked2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n00A\r\n01234")
	cl.send("56789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n")
	if resp, body := cl.read("POST"); !strings.Contains(body, `body="abc0123456789"`) || resp.Close {
		t.Errorf("chunked body with extensions and trailers: %q close=%v", body, resp.Close)
	}
	// A small unread body is skipped and the connection kept.
	cl.send("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("z", 1000))
	if resp, body := cl.read("POST"); body != "ignored" || resp.Close {
		t.Errorf("unread small body: %q close=%v, want ignored and keep-alive", body, resp.Close)
	}
	cl.send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := cl.read("GET"); !strings.HasPrefix(body, "GET /after") {
		t.Errorf("after a skipped body: %q", body)
	}
	// A large unread body closes the connection instead.
	cl.send(fmt.Sprintf("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20))
	go cl.c.Write(make([]byte, 1<<20)) // may fail once the server closes
	if resp, _ := cl.read("POST"); !resp.Close {
		t.Errorf("unread 1 MiB body: connection kept, want Connection: close")
	}
}

func TestExpectContinue(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		echo(w, r)
	})
	s := start(t, h, Config{})

	cl := dial(t, s)
	cl.send("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before sending the body: %v %v, want 100 Continue", resp, err)
	}
	cl.send("hello")
	if _, body := cl.read("PUT"); !strings.Contains(body, `body="hello"`) {
		t.Errorf("body after 100 Continue: %q", body)
	}

	// A handler that answers without reading gets no 100; the connection
	// is closed as the client may or may not send the body.
	cl = dial(t, s)
	cl.send("PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err = http.ReadResponse(cl.br, nil)
	if err != nil || resp.StatusCode != http.StatusForbidden || !resp.Close {
		t.Errorf("refused upload: %v %v, want 403 with Connection: close", resp, err)
	}

	cl = dial(t, s)
	cl.send("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: teapot\r\n\r\n")
	if resp, _ := cl.read("PUT"); resp.StatusCode != http.StatusExpectationFailed {
		t.Errorf("unknown expectation: %d, want 417", resp.StatusCode)
	}
}

// TestBadRequests: a malformed request, or one whose framing two parsers
// could read differently, is refused and the connection closed, so the
// request pipelined behind it (which a smuggler would have hidden in the
// body) never reaches the handler (RFC 9112 §6.1, §6.3).
// docs/http-conformance.md has the full table, compared with nginx.
func TestBadRequests(t *testing.T) {
	var mu sync.Mutex
	var smuggled bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		smuggled = smuggled || r.URL.Path == "/smuggled"
		mu.Unlock()
		echo(w, r) // a body it cannot read is answered 400
	})
	s := start(t, h, Config{})
	const next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name, raw string
		want      int
	}{
		{"CL then TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE then CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
		{"folded TE", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400},
		{"bare LF in a chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400},
		{"garbage", "HELLO\r\n\r\n", 400},
		{"no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n", 400},
		{"bad version", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", 400},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip\r\n\r\n", 400},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: zip, chunked\r\n\r\n", 501},
		{"header line folding", "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400},
	} {
		cl := dial(t, s)
		cl.send(tc.raw + next)
		resp, err := http.ReadResponse(cl.br, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != tc.want || !resp.Close || !cl.closed() {
			t.Errorf("%s: %d close=%v, want %d and the connection closed", tc.name, resp.StatusCode, resp.Close, tc.want)
		}
	}
	mu.Lock()
	if smuggled {
		t.Error("a request pipelined behind a refused one reached the handler")
	}
	mu.Unlock()
	// HTTP/1.0 needs no Host.
	cl := dial(t, s)
	cl.send("GET /old HTTP/1.0\r\n\r\n")
	if resp, _ := cl.read("GET"); resp.StatusCode != 200 {
		t.Errorf("HTTP/1.0 without Host: %d, want 200", resp.StatusCode)
	}
}

// TestSendfileExact: bodies copied from files through ReadFrom (the
// sendfile path: from the file's offset or a SectionReader's, in the page
// cache or not) and through Write are the exact bytes, and
// http.ResponseController deadlines reach the connection.
func TestSendfileExact(t *testing.T) {
	data := make([]byte, 3<<20+17)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	path := filepath.Join(t.TempDir(), "obj")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		off, _ := strconv.ParseInt(r.URL.Query().Get("off"), 10, 64)
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		f.Seek(off, io.SeekStart)
		if r.URL.Query().Has("nolength") {
			io.CopyN(w, f, n) // chunked: not sendfile
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.URL.Query().Has("sniff") {
			w.Header().Del("Content-Type")
		}
		w.WriteHeader(http.StatusOK)
		if r.URL.Query().Has("cold") {
			// Out of the page cache: sendfile goes the blocking way.
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
		if r.URL.Query().Has("section") {
			if n == 0 { // an empty section is sent too
				io.Copy(w, io.NewSectionReader(f, off, 0))
			}
			for n > 0 { // in chunks at their offsets, as internal/edge does
				chunk := min(n, 1<<20)
				m, err := io.Copy(w, io.NewSectionReader(f, off, chunk))
				if err != nil || m != chunk {
					t.Errorf("Copy of a section: %d, %v", m, err)
					return
				}
				n, off = n-m, off+m
			}
			return
		}
		for n > 0 { // in chunks from the file's offset
			m, err := io.CopyN(w, f, min(n, 1<<20))
			if err != nil {
				t.Errorf("CopyN: %v", err)
				return
			}
			n -= m
			rc.SetWriteDeadline(time.Now().Add(time.Minute))
		}
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	for _, q := range []struct{ off, n int64 }{{0, int64(len(data))}, {1, 1}, {65536, 65536}, {1 << 20, 2<<20 + 3}, {12345, 0}} {
		for _, mode := range []string{"", "&sniff", "&nolength", "&section", "&section&cold", "&cold"} {
			cl.send(fmt.Sprintf("GET /?off=%d&n=%d%s HTTP/1.1\r\nHost: x\r\n\r\n", q.off, q.n, mode))
			resp, body := cl.read("GET")
			want := data[q.off : q.off+q.n]
			if resp.StatusCode != 200 || sha256.Sum256([]byte(body)) != sha256.Sum256(want) {
				t.Errorf("off %d n %d%s: %d, %d bytes, not the file's %d", q.off, q.n, mode, resp.StatusCode, len(body), len(want))
			}
		}
	}
}

// TestContextCancelledOnKill: a handler waiting on r.Context() is
// released when the server is killed.
func TestContextCancelledOnKill(t *testing.T) {
	entered := make(chan struct{})
	released := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		released <- r.Context().Err()
		if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); !ok || addr.String() == "" {
			t.Errorf("no LocalAddrContextKey value in the request context")
		}
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	s.Close()
	select {
	case err := <-released:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("context error %v, want canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still waiting 10s after Kill")
	}
}

// TestShutdownClosesIdleFinishesActive: on shutdown an idle keep-alive
// connection is closed at once, an in-flight request finishes, and its
// response says Connection: close.
func TestShutdownClosesIdleFinishesActive(t *testing.T) {
	entered := make(chan struct{})
	proceed := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-proceed
		}
		io.WriteString(w, "done")
	})
	s := start(t, h, Config{})
	idle := dial(t, s)
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.read("GET")
	busy := dial(t, s)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("idle connection not closed on shutdown")
	}
	close(proceed)
	resp, body := busy.read("GET")
	if body != "done" || !resp.Close {
		t.Errorf("in-flight response %q close=%v, want done with Connection: close", body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if len(s.conns) != 0 {
		t.Errorf("%d connections left after Shutdown returned", len(s.conns))
	}
	if err := s.wait(); err != http.ErrServerClosed {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	s := start(t, echo, Config{IdleTimeout: 200 * time.Millisecond})
	cl := dial(t, s)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	cl.read("GET")
	begin := time.Now()
	if !cl.closed() {
		t.Fatal("idle connection not closed")
	}
	if d := time.Since(begin); d < 150*time.Millisecond {
		t.Errorf("idle connection closed after %v, before IdleTimeout", d)
	}
}

// BenchmarkRequest is the server's own cost of one keep-alive GET with a
// Range header (pipelined over an in-memory connection; the handler sets
// Content-Length and writes a short body), as internal/edge answers.
func BenchmarkRequest(b *testing.B) {
	const req = "GET /c/tok/t0001/video_3000k.mp4 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nRange: bytes=1048576-1114111\r\nUser-Agent: bench\r\n\r\n"
	body := []byte("0123456789")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Length"] = []string{"10"}
		hd["Content-Type"] = []string{"video/mp4"}
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	})
	s := New(h, Config{})
	const batch = 1000
	in := []byte(strings.Repeat(req, batch))
	b.ReportAllocs()
	for b.Loop() {
		pc := &pipeConn{in: bytes.NewReader(in)}
		c := newConn(s, pc, nil)
		s.conns[c] = struct{}{}
		c.serve()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/request")
}

// TestHeaderFieldsSanitized: a handler's CR or LF in a header value
// cannot start another field, and invalid field names are dropped, as
// with net/http.
func TestHeaderFieldsSanitized(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Value"] = []string{" a\r\nSet-Cookie: evil\n "}
		w.Header()["Bad Name"] = []string{"x"}
		io.WriteString(w, "ok")
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	cl.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := cl.read("GET")
	got := []string{resp.Header.Get("X-Value"), resp.Header.Get("Set-Cookie"), resp.Header.Get("Bad Name"), body}
	if diff := cmp.Diff([]string{"a  Set-Cookie: evil", "", "", "ok"}, got); diff != "" {
		t.Errorf("X-Value, Set-Cookie, Bad Name, body (-want +got):\n%s", diff)
	}
}

// pageCached tells a file's cached range from one dropped from the page
// cache, which decides whether sendfile may be a raw system call.
func TestPageCached(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if !pageCached(int(f.Fd()), 4097, 500000) {
		t.Error("a range just written is not cached")
	}
	if pageCached(int(f.Fd()), 1<<20-10, 100) {
		t.Error("a range past the end counts as cached")
	}
	f.Sync()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if pageCached(int(f.Fd()), 0, 1<<20) {
		t.Error("a range dropped from the page cache counts as cached")
	}
	f.ReadAt(make([]byte, 8192), 0)
	if !pageCached(int(f.Fd()), 100, 8000) || pageCached(int(f.Fd()), 0, 1<<20) {
		t.Error("after reading the first two pages: want those cached and the whole file not")
	}
}

// TestStaleWriteDeadlineCleared: a write deadline one handler set does
// not cut off the next response on the connection, whose handler sets
// none. (The first handler leaves an expired one behind.)
func TestStaleWriteDeadlineCleared(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
		if r.URL.Path == "/expire" {
			rc := http.NewResponseController(w)
			rc.Flush()
			rc.SetWriteDeadline(time.Now())
		}
	})
	s := start(t, h, Config{})
	cl := dial(t, s)
	for _, p := range []string{"/expire", "/plain", "/expire", "/plain"} {
		cl.send("GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := cl.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("GET %s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// TestCacheVerdicts: a block found cached is taken on trust for
// verdictUses sends of the file, through any of its descriptors, then
// asked about again; a block dropped from the page cache, or holding the
// end of its file, is asked about each time.
func TestCacheVerdicts(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 5 << 20 // blocks 0 and 1 whole, block 2 holds the end
	if _, err := f.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	var v cacheVerdicts
	if !v.cached(f, fd, 100, 64<<10) || !v.cached(f, fd, 2<<20-10, 20) {
		t.Fatal("ranges just written are not cached")
	}
	if !v.cached(f, fd, 4<<20+5, 1000) {
		t.Error("a cached range in the last, partial block is not cached")
	}
	f.Sync()
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	// Block 0's verdict stands for its remaining uses, then is renewed;
	// another descriptor of the same file shares it.
	g, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !v.cached(g, int(g.Fd()), 4096, 4096) {
		t.Error("a second descriptor of the file does not share block 0's verdict")
	}
	stale := 1
	for v.cached(f, fd, 4096, 4096) {
		if stale++; stale > verdictUses {
			t.Fatalf("block 0 still trusted after %d uses", stale)
		}
	}
	if stale == 0 {
		t.Error("the verdict on block 0 was not kept")
	}
	if v.cached(f, fd, 4<<20+5, 1000) {
		t.Error("the last block, dropped from the page cache, counts as cached")
	}
	var fresh cacheVerdicts
	if fresh.cached(f, fd, 2<<20, 64<<10) {
		t.Error("a block dropped from the page cache counts as cached")
	}
}

// BenchmarkWriteFields is the header of a 64 KiB range answer as
// internal/edge sets it, written out.
func BenchmarkWriteFields(b *testing.B) {
	h := http.Header{
		"Etag":             {`"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`},
		"Accept-Ranges":    {"bytes"},
		"Cache-Control":    {"private, max-age=86400"},
		"Content-Type":     {"video/mp4"},
		"Content-Length":   {"65536"},
		"Content-Range":    {"bytes 1048576-1114111/67108864"},
		"X-Ocdn-Appliance": {"a1"},
	}
	bw := bufio.NewWriterSize(io.Discard, 4<<10)
	b.ReportAllocs()
	for b.Loop() {
		writeFields(bw, h, nil)
		bw.Flush()
	}
}
