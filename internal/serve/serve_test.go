package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// start runs a server; wait returns Run's result once it has returned.
func start(t *testing.T, h http.Handler, opts Options) (s *Server, cancel context.CancelFunc, wait func() error) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var runErr error
	go func() { runErr = s.Run(ctx); close(finished) }()
	t.Cleanup(func() {
		cancel()
		s.Kill()
		<-finished
	})
	return s, cancel, func() error { <-finished; return runErr }
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello %s", r.Proto)
})

func TestHTTP2OverTLS(t *testing.T) {
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := start(t, hello, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL() = %s, want https://…", s.URL())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	for _, tc := range []struct {
		name  string
		h2    bool
		major int
	}{{"h2", true, 2}, {"http/1.1", false, 1}} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: tc.h2}
		if !tc.h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		c := &http.Client{Transport: tr}
		for range 3 { // keep-alive: the same connection serves several
			resp, err := c.Get(s.URL() + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != tc.major {
				t.Errorf("%s client: ProtoMajor %d (%s), want %d", tc.name, resp.ProtoMajor, b, tc.major)
			}
		}
		tr.CloseIdleConnections()
	}
}

// TestSlowHeaders: a client that trickles its request header is cut off
// at ReadHeaderTimeout (slowloris), on its first request and on a later
// one of a keep-alive connection.
func TestSlowHeaders(t *testing.T) {
	for _, before := range []string{"", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		s, _, _ := start(t, hello, Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute})
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if before != "" {
			io.WriteString(c, before)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
		begin := time.Now()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		// Keep trickling one header byte at a time; the server must close
		// the connection anyway.
		closed := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, br)
			closed <- err
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case <-closed:
				if d := time.Since(begin); d < 250*time.Millisecond {
					t.Errorf("after %q: connection closed after %v, before the header timeout", before, d)
				}
				break wait
			case <-tick.C:
				c.Write([]byte("X"))
			case <-deadline:
				t.Fatalf("after %q: slow-header client still connected after 10s; ReadHeaderTimeout is 300ms", before)
			}
		}
	}
}

// TestHeaderTooLarge: MaxHeaderBytes bounds the whole header, as
// documented: exactly at the limit is served, one byte more is 431 (the
// lean server counts exactly; net/http counts bytes read and is only
// checked far past the limit).
func TestHeaderTooLarge(t *testing.T) {
	const limit = 8 << 10
	header := func(size int) string {
		const head = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
		return head + strings.Repeat("a", size-len(head)-4) + "\r\n\r\n"
	}
	for _, e := range engines(t) {
		s, _, _ := start(t, hello, e.opts(Options{MaxHeaderBytes: limit}))
		cases := []struct {
			size, want int
		}{{limit + 64<<10, 431}}
		if e.exact {
			cases = append(cases, struct{ size, want int }{limit, 200}, struct{ size, want int }{limit + 1, 431})
		}
		for _, tc := range cases {
			c := e.dial(t, s)
			if len(header(tc.size)) != tc.size {
				t.Fatalf("header of %d bytes is %d", tc.size, len(header(tc.size)))
			}
			go io.WriteString(c, header(tc.size)) // the server may answer before reading it all
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s: header of %d bytes: %v", e.name, tc.size, err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("%s: header of %d bytes (limit %d): status %d, want %d", e.name, tc.size, limit, resp.StatusCode, tc.want)
			}
			c.Close()
		}
	}
}

// TestDrain: after the context ends the server keeps accepting for
// DrainGrace, then refuses new connections, and an in-flight transfer to a
// slow reader still completes.
func TestDrain(t *testing.T) {
	const size = 4 << 20
	started := make(chan struct{})
	h := http.NewServeMux()
	h.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		close(started)
		buf := make([]byte, 64<<10)
		for range size / len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	h.Handle("/", hello)
	const grace = 400 * time.Millisecond
	s, cancel, wait := start(t, h, Options{DrainGrace: grace, Grace: 30 * time.Second})
	addr := s.Addr().String()

	resp, err := http.Get("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	drainStart := time.Now()

	// During the grace period a new connection is still served.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	r2, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("new connection during drain grace: %v", err)
	}
	r2.Body.Close()
	if time.Since(drainStart) > grace {
		t.Skip("machine too slow to observe the grace period")
	}

	// The slow reader keeps reading; meanwhile wait until the listener is
	// closed and connections are refused.
	got := make(chan int64, 1)
	go func() {
		var n int64
		buf := make([]byte, 32<<10)
		for {
			m, err := resp.Body.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
			time.Sleep(2 * time.Millisecond) // a slow client, not a wait
		}
		got <- n
	}()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial after grace: %v, want connection refused", err)
			}
			if d := time.Since(drainStart); d < grace {
				t.Errorf("refused after %v, before the %v grace", d, grace)
			}
			break
		}
		conn.Close()
		if time.Since(drainStart) > 10*time.Second {
			t.Fatal("still accepting 10s after drain began")
		}
		time.Sleep(20 * time.Millisecond) // polling the listener state
	}
	select {
	case n := <-got:
		if n != size {
			t.Errorf("in-flight transfer got %d of %d bytes", n, size)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("in-flight transfer did not finish")
	}
	resp.Body.Close()
	if err := wait(); err != nil {
		t.Errorf("Run = %v, want nil after a clean drain", err)
	}
}
