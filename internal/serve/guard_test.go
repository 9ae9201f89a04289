package serve

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/syncbuf"
)

// engine is one way a Server serves HTTP/1.1: the lean h1 server and
// net/http, each on plain TCP and over TLS (HTTP/1.1 chosen by ALPN).
type engine struct {
	name  string
	opts  func(Options) Options
	dial  func(t *testing.T, s *Server) net.Conn
	exact bool // MaxHeaderBytes is counted exactly
}

func engines(t *testing.T) []engine {
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsDial := func(t *testing.T, s *Server) net.Conn {
		c, err := tls.Dial("tcp", s.Addr().String(), trusting(cert, "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	plain := func(t *testing.T, s *Server) net.Conn {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return []engine{
		{"h1", func(o Options) Options { return o }, plain, true},
		{"net/http", func(o Options) Options { o.NetHTTP = true; return o }, plain, false},
		{"tls", func(o Options) Options { o.TLS = tlsConf; return o }, tlsDial, true},
		{"tls net/http", func(o Options) Options { o.TLS = tlsConf; o.NetHTTP = true; return o }, tlsDial, false},
	}
}

// readUntilClosed reads one response and then requires the server to
// close the connection; it fails the test if either takes 20s.
func readUntilClosed(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("after the response: %v, want the connection closed", err)
	}
	return resp, string(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSilentBody: a request that declares a body and never sends it
// holds its connection no longer than the body deadlines. A handler that
// does not read the body is answered at once (BodyReadTimeout is a
// minute here, the client waits 20s) with Connection: close; one that
// reads it gets a timeout error after BodyReadTimeout and the connection
// is closed.
func TestSilentBody(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			readErr := make(chan error, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/read" {
					_, err := io.ReadAll(r.Body)
					readErr <- err
					if err != nil {
						http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
						return
					}
				}
				io.WriteString(w, "ok")
			})

			s, _, _ := start(t, h, e.opts(Options{BodyReadTimeout: time.Minute}))
			c := e.dial(t, s)
			io.WriteString(c, "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
			if resp, body := readUntilClosed(t, c); resp.StatusCode != 200 || body != "ok" || !resp.Close {
				t.Errorf("handler ignoring the body: %d %q close=%v, want 200 ok with Connection: close", resp.StatusCode, body, resp.Close)
			}

			const per = 300 * time.Millisecond
			s, _, _ = start(t, h, e.opts(Options{BodyReadTimeout: per}))
			c = e.dial(t, s)
			begin := time.Now()
			io.WriteString(c, "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
			resp, _ := readUntilClosed(t, c)
			if d := time.Since(begin); d < per*3/4 {
				t.Errorf("answered after %v, before BodyReadTimeout %v", d, per)
			}
			if err := <-readErr; !isTimeout(err) {
				t.Errorf("handler's body read: %v, want a timeout", err)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want the handler's 400", resp.StatusCode)
			}
		})
	}
}

// TestSlowBody: a client that keeps sending body bytes, each within
// BodyReadTimeout, is cut off at ReadTimeout.
func TestSlowBody(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			readErr := make(chan error, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				readErr <- err
				w.WriteHeader(http.StatusRequestTimeout)
			})
			const whole = 500 * time.Millisecond
			s, _, _ := start(t, h, e.opts(Options{BodyReadTimeout: time.Minute, ReadTimeout: whole}))
			c := e.dial(t, s)
			begin := time.Now()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
			stop := make(chan struct{})
			dripped := make(chan struct{})
			go func() { // one byte every 20ms until the server gives up
				defer close(dripped)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
			readUntilClosed(t, c)
			close(stop)
			<-dripped
			if d := time.Since(begin); d < whole*3/4 {
				t.Errorf("closed after %v, before ReadTimeout %v", d, whole)
			}
			if err := <-readErr; !isTimeout(err) {
				t.Errorf("handler's body read: %v, want a timeout", err)
			}
		})
	}
}

// TestPanicLoggedAndCounted: a handler's panic closes its connection, is
// logged at error level with the panic value and the stack, and counted
// in ocdn_http_handler_panics_total, which two servers on one registry
// share; http.ErrAbortHandler is neither logged nor counted.
func TestPanicLoggedAndCounted(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom at " + r.URL.Path)
	})
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			reg := prometheus.NewRegistry()
			s1, _, _ := start(t, h, e.opts(Options{Logger: log, Registry: reg}))
			s2, _, _ := start(t, h, e.opts(Options{Logger: log, Registry: reg}))
			for _, s := range []*Server{s1, s2, s1} {
				for _, path := range []string{"/p", "/abort"} {
					c := e.dial(t, s)
					io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
					c.SetReadDeadline(time.Now().Add(20 * time.Second))
					if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
						t.Errorf("GET %s: %q, %v; want the connection closed without an answer", path, b, err)
					}
				}
			}
			mfs, err := reg.Gather()
			if err != nil || len(mfs) != 1 || mfs[0].GetName() != "ocdn_http_handler_panics_total" {
				t.Fatalf("registry holds %v (%v), want ocdn_http_handler_panics_total alone", mfs, err)
			}
			if got := mfs[0].GetMetric()[0].GetCounter().GetValue(); got != 3 {
				t.Errorf("ocdn_http_handler_panics_total = %v, want 3", got)
			}
			var found int
			for line := range strings.Lines(logs.String()) {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if !strings.Contains(rec["msg"].(string), "panic") {
					continue
				}
				found++
				stack, _ := rec["stack"].(string)
				if rec["level"] != "ERROR" || rec["panic"] != "boom at /p" || !strings.Contains(stack, "TestPanicLoggedAndCounted") {
					t.Errorf("panic logged as %v; want level ERROR, the panic value and a stack through the handler", rec)
				}
			}
			if found != 3 {
				t.Errorf("%d panics logged, want 3:\n%s", found, logs.String())
			}
		})
	}
}

// TestHandlerTakesReadDeadline: a handler that expects a long upload
// moves the read deadline past ReadTimeout with
// http.ResponseController, and the body deadlines leave it alone.
func TestHandlerTakesReadDeadline(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
					t.Errorf("SetReadDeadline: %v", err)
				}
				b, err := io.ReadAll(r.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				w.Header().Set("Connection", "close")
				w.Write(b)
			})
			const whole = 200 * time.Millisecond
			s, _, _ := start(t, h, e.opts(Options{BodyReadTimeout: whole, ReadTimeout: whole}))
			c := e.dial(t, s)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
			begin := time.Now()
			for _, b := range []string{"a", "b", "c"} { // spread over 3x ReadTimeout
				next := time.NewTimer(whole)
				<-next.C // pacing the client, not waiting for the server
				io.WriteString(c, b)
			}
			resp, body := readUntilClosed(t, c)
			if resp.StatusCode != 200 || body != "abc" {
				t.Errorf("upload over %v with ReadTimeout %v moved by the handler: %d %q, want 200 abc", time.Since(begin), whole, resp.StatusCode, body)
			}
		})
	}
}

// TestSilentBodyHTTP2: over HTTP/2 a stream whose body never comes gets
// BodyReadTimeout too.
func TestSilentBodyHTTP2(t *testing.T) {
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
		http.Error(w, "no body", http.StatusBadRequest)
	})
	s, _, _ := start(t, h, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, BodyReadTimeout: 300 * time.Millisecond})
	tr := &http.Transport{TLSClientConfig: trusting(cert), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 10
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("%s %d, want HTTP/2 and the handler's 400", resp.Proto, resp.StatusCode)
	}
	if err := <-readErr; !isTimeout(err) {
		t.Errorf("handler's body read: %v, want a timeout", err)
	}
}
