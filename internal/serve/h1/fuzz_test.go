package h1

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pipeConn is a connection whose client side is a fixed byte string and
// whose answers are collected; it has no RawConn, so the server holds its
// buffers throughout.
type pipeConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (p *pipeConn) Read(b []byte) (int, error)       { return p.in.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error)      { return p.out.Write(b) }
func (p *pipeConn) Close() error                     { return nil }
func (p *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (p *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1234} }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// answer is what the fuzz handler sent for one request.
type answer struct {
	method string
	status int
	body   string
}

// FuzzConn feeds arbitrary client bytes to one connection and checks the
// server's output is, in order, exactly the responses the handler gave
// (1xx interim responses aside), then at most one error response that
// closes the connection: no request is answered twice or out of step,
// and nothing malformed reaches the handler.
func FuzzConn(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /cl/abc HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
		"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: teapot\r\n\r\nabc",
		"GET /big/5000 HTTP/1.0\r\n\r\n",
		"GET /cl/xyz HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 300) + "\r\n\r\n",
		"GET http://h/abs HTTP/1.1\r\nHost: y\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GARBAGE\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var answers []answer
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Host == "" && r.ProtoAtLeast(1, 1) {
				t.Errorf("HTTP/1.1 request without Host reached the handler: %+v", r)
			}
			a := answer{method: r.Method, status: 200}
			b, err := io.ReadAll(r.Body)
			switch p := r.URL.Path; {
			case err != nil:
				a.status, a.body = 400, "bad body"
			case strings.HasPrefix(p, "/cl/"):
				a.body = p[4:]
				w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
				w.Header().Set("Content-Type", "text/plain")
			case strings.HasPrefix(p, "/big/"):
				n, _ := strconv.Atoi(p[5:])
				a.body = strings.Repeat("b", min(n, 1<<16))
			default:
				a.body = r.Method + " " + p + " " + string(b)
			}
			w.WriteHeader(a.status)
			io.WriteString(w, a.body)
			if r.Method == http.MethodHead {
				a.body = ""
			}
			answers = append(answers, a)
		})
		s := New(h, Config{})
		pc := &pipeConn{in: bytes.NewReader(in)}
		c := newConn(s, pc, nil)
		s.conns[c] = struct{}{}
		c.serve()

		br := bufio.NewReader(&pc.out)
		for i, a := range answers {
			resp := readFinal(t, br, a.method)
			if resp == nil {
				t.Fatalf("answer %d (%+v) missing from output %q", i, a, pc.out.String())
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != a.status || string(b) != a.body {
				t.Fatalf("answer %d: %d %q (%v), handler sent %d %q", i, resp.StatusCode, b, err, a.status, a.body)
			}
		}
		if _, err := br.Peek(1); err == io.EOF {
			return
		}
		resp := readFinal(t, br, "GET")
		if resp == nil || resp.StatusCode < 400 || !resp.Close {
			t.Fatalf("after the handled requests: %v, want one error response that closes", resp)
		}
		io.ReadAll(resp.Body)
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("%d bytes after the closing error response: %q", len(rest), rest)
		}
	})
}

// readFinal reads responses until a final (non-1xx) one.
func readFinal(t *testing.T, br *bufio.Reader, method string) *http.Response {
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return nil
		}
		if resp.StatusCode >= 200 {
			return resp
		}
	}
}
