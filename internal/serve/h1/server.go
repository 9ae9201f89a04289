package serve

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Server serves HTTP/1.1 and 1.0 on plain TCP. It exists for memory:
// net/http keeps a 4 KiB bufio.Reader and a 4 KiB bufio.Writer on every
// idle keep-alive connection, and the goroutine parked in its read has a
// deep stack. Here an idle connection's goroutine waits for readability
// through the connection's syscall.RawConn holding no buffer at all; the
// buffers come from a pool when a request arrives and go back when its
// response is out and nothing pipelined is left. A plain body-less request
// whose header is all in the buffer is parsed where it lies (parse.go);
// every other by http.ReadRequest. Responses are written by response
// (response.go).
//
// Its methods match the *http.Server ones serve.Server uses: Serve,
// Shutdown and Close.
type h1Server struct {
	h    http.Handler
	opts Options
	log  *slog.Logger

	// ctx is every request context's root; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// closing is set once Shutdown or Close began: no more keep-alive,
	// and a connection that goes idle closes.
	closing atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	conns map[*conn]struct{}
	// gone is closed when closing is set and the last connection ended.
	gone chan struct{}
}

func newH1Server(h http.Handler, opts Options) *h1Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &h1Server{h: h, opts: opts, log: opts.Logger, ctx: ctx, cancel: cancel,
		conns: map[*conn]struct{}{}, gone: make(chan struct{})}
}

// Serve accepts connections on ln until Shutdown or Close, and then
// returns http.ErrServerClosed. Each connection's goroutine is owned by
// the server and ends when its connection closes.
func (s *h1Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	if s.closing.Load() {
		ln.Close()
		return http.ErrServerClosed
	}
	var delay time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Debug("http: accept error; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if c := s.track(rwc); c != nil {
			go c.serve()
		}
	}
}

// track registers a new connection, or closes it when the server is
// closing.
func (s *h1Server) track(rwc net.Conn) *conn {
	c := newConn(s, rwc)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		c.cancel()
		rwc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	return c
}

func (s *h1Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.noteGoneLocked()
}

// noteGoneLocked closes gone once the server is closing with no
// connection left.
func (s *h1Server) noteGoneLocked() {
	if len(s.conns) > 0 || !s.closing.Load() {
		return
	}
	select {
	case <-s.gone:
	default:
		close(s.gone)
	}
}

// beginClose stops accepting and reports the listener's Close error.
func (s *h1Server) beginClose() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	s.noteGoneLocked()
	return err
}

// Shutdown closes the listener and every idle connection, lets the ones
// in the middle of a request finish it (their response says Connection:
// close), and returns once none is left, or with ctx's error when ctx
// ends first.
func (s *h1Server) Shutdown(ctx context.Context) error {
	err := s.beginClose()
	s.mu.Lock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.rwc.Close()
		}
	}
	s.mu.Unlock()
	select {
	case <-s.gone:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listener and every connection at once and cancels
// every request's context.
func (s *h1Server) Close() error {
	err := s.beginClose()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.rwc.Close()
	}
	s.mu.Unlock()
	return err
}

// Connection states. A connection is idle from when it is accepted or
// has answered a request until the first byte of its next request; only
// idle connections are closed by Shutdown.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// buffers are what a connection holds only while it has a request.
type buffers struct {
	br *bufio.Reader
	bw *bufio.Writer
}

var bufPool = sync.Pool{New: func() any {
	return &buffers{br: bufio.NewReaderSize(nil, 4<<10), bw: bufio.NewWriterSize(nil, 4<<10)}
}}

// conn is one client connection. Its goroutine (serve) owns every field
// but state, which Shutdown and Close change too.
type conn struct {
	s      *h1Server
	rwc    net.Conn
	raw    syscall.RawConn // nil when rwc has none: buffers stay while idle
	rf     io.ReaderFrom   // rwc's sendfile path (*net.TCPConn), or nil
	remote string
	ctx    context.Context // cancelled when the connection closes
	cancel context.CancelFunc
	state  atomic.Int32
	r      connReader
	b      *buffers  // nil while idle
	werr   error     // first error writing to rwc
	res    response  // the current request's; reused
	rdl    time.Time // the read deadline last set
}

func newConn(s *h1Server, rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, remote: rwc.RemoteAddr().String()}
	if sc, ok := rwc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	if tc, ok := rwc.(*net.TCPConn); ok {
		c.rf = tc
	}
	c.r = connReader{c: c, fd: -1, limit: math.MaxInt64}
	c.ctx, c.cancel = context.WithCancel(context.WithValue(s.ctx, http.LocalAddrContextKey, rwc.LocalAddr()))
	return c
}

func (c *conn) serve() {
	defer c.close()
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.log.Debug("http: panic serving", "client", c.remote, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	o := &c.s.opts
	// A new connection has ReadHeaderTimeout to send its first request.
	c.setReadDeadline(time.Now().Add(o.ReadHeaderTimeout))
	for first := true; ; first = false {
		if !first {
			c.state.Store(stateIdle)
			if c.s.closing.Load() {
				return
			}
			c.armIdle()
		}
		if c.b == nil || c.b.br.Buffered() == 0 {
			if err := c.await(); err != nil {
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // Shutdown closed it while idle
		}
		req, err := c.readRequest(!first)
		if err != nil {
			c.replyError(err)
			return
		}
		if req.Body != http.NoBody {
			// The handler reads the body without the header's deadline;
			// without a body nothing is read until the idle deadline.
			c.setReadDeadline(time.Time{})
		}
		if o.WriteTimeout > 0 {
			c.rwc.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
		}
		if !c.serveRequest(req) {
			return
		}
		if c.b.br.Buffered() == 0 && c.raw != nil {
			c.release()
		}
	}
}

// setReadDeadline sets the connection's read deadline and remembers it.
func (c *conn) setReadDeadline(t time.Time) error {
	c.rdl = t
	return c.rwc.SetReadDeadline(t)
}

// armIdle gives an idle connection IdleTimeout to send its next request.
// Moving a deadline costs a timer update, so one that is at most
// IdleTimeout/16 before the wanted time is kept: a busy keep-alive
// connection re-arms it every few seconds, not on every request, and an
// idle one is closed between 15/16 and all of IdleTimeout.
func (c *conn) armIdle() {
	idle := c.s.opts.IdleTimeout
	want := time.Now().Add(idle)
	if d := want.Sub(c.rdl); c.rdl.IsZero() || d < 0 || d > idle/16 {
		c.setReadDeadline(want)
	}
}

// await waits until a request's first bytes can be read. With a raw
// connection it waits holding no buffer: the callback tries a
// non-blocking read into pooled buffers and gives them back if nothing
// is there, so the poller parks the goroutine bufferless.
func (c *conn) await() error {
	if c.b == nil && c.raw == nil {
		c.b = takeBuffers(c)
	}
	if c.b != nil {
		_, err := c.b.br.Peek(1)
		return err
	}
	var rerr error
	// The first call must read: RawRead clears the poller's readiness
	// before calling, so bytes that arrived earlier raise no wake-up.
	err := c.raw.Read(func(fd uintptr) bool {
		b := takeBuffers(c)
		c.r.fd = int(fd)
		_, rerr = b.br.Peek(1)
		c.r.fd = -1
		if rerr == errWouldBlock {
			putBuffers(b)
			return false
		}
		c.b = b
		return true
	})
	if err != nil {
		return err
	}
	return rerr
}

func takeBuffers(c *conn) *buffers {
	b := bufPool.Get().(*buffers)
	b.br.Reset(&c.r)
	if c.raw != nil {
		b.bw.Reset(rawWriter{c})
	} else {
		b.bw.Reset(c.rwc)
	}
	return b
}

func putBuffers(b *buffers) {
	b.br.Reset(nil)
	b.bw.Reset(nil)
	bufPool.Put(b)
}

// release gives the buffers back; the writer has been flushed.
func (c *conn) release() {
	if c.b != nil {
		putBuffers(c.b)
		c.b = nil
	}
}

func (c *conn) close() {
	c.state.Store(stateClosed)
	c.cancel()
	c.rwc.Close()
	c.release()
	c.res = response{}
	c.s.forget(c)
}

// closeWriteAndWait sends FIN and reads what the client still sends for
// a moment before closing, so that the answer is not lost to a reset
// caused by unread request bytes.
func (c *conn) closeWriteAndWait() {
	if c.b != nil {
		c.b.bw.Flush()
	}
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	var buf [512]byte
	for range 512 { // at most 256 KiB
		if _, err := c.rwc.Read(buf[:]); err != nil {
			break
		}
	}
}

var (
	errWouldBlock = errors.New("read would block")
	errTooLarge   = errors.New("request header too large")
)

// connReader is the pooled bufio.Reader's source. While fd ≥ 0 (inside
// await's RawConn callback) it reads the descriptor without blocking.
// limit bounds the bytes read for one request header.
type connReader struct {
	c     *conn
	fd    int
	limit int64
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.limit <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	var n int
	var err error
	if r.fd >= 0 {
		n, err = rawRead(r.fd, p)
	} else {
		n, err = r.c.rwc.Read(p)
	}
	r.limit -= int64(n)
	return n, err
}

// statusError is a request the server answers itself.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return http.StatusText(e.code) + ": " + e.text }

// readRequest reads one request header with the header bytes bounded.
// A header that is not all in the buffer gets ReadHeaderTimeout to
// arrive when rearm is set (a new connection's runs from accept).
func (c *conn) readRequest(rearm bool) (*http.Request, error) {
	br := c.b.br
	// RFC 9112 §2.2: ignore empty lines before the request line.
	if p, _ := br.Peek(min(br.Buffered(), 4)); len(p) > 0 {
		n := 0
		for n < len(p) && (p[n] == '\r' || p[n] == '\n') {
			n++
		}
		br.Discard(n)
	}
	// The common request is parsed where it lies in the buffer; the rest
	// by http.ReadRequest.
	p, _ := br.Peek(br.Buffered())
	if req, n, ok := parseSimple(c.ctx, p); ok {
		br.Discard(n)
		return c.checkRequest(req)
	}
	if rearm {
		c.setReadDeadline(time.Now().Add(c.s.opts.ReadHeaderTimeout))
	}
	c.r.limit = int64(c.s.opts.MaxHeaderBytes) + 4096 // net/http's slack
	req, err := http.ReadRequest(br)
	hit := c.r.limit <= 0
	c.r.limit = math.MaxInt64
	if err != nil {
		if hit {
			return nil, errTooLarge
		}
		return nil, err
	}
	return c.checkRequest(req)
}

// checkRequest applies the server's rules that http.ReadRequest leaves
// to servers.
func (c *conn) checkRequest(req *http.Request) (*http.Request, error) {
	if req.ProtoMajor != 1 {
		return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	// http.ReadRequest moved the Host header (or an absolute-form
	// target's authority) to req.Host. An empty Host header is taken as
	// a missing one.
	if req.Host == "" && req.ProtoAtLeast(1, 1) && req.Method != http.MethodConnect {
		return nil, statusError{http.StatusBadRequest, "missing required Host header"}
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return nil, statusError{http.StatusBadRequest, "malformed Host header"}
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, statusError{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, statusError{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return req, nil
}

// replyError answers a request that never reached the handler, as
// net/http does, and the connection is then closed.
func (c *conn) replyError(err error) {
	if c.b == nil || isCommonNetReadError(err) {
		return
	}
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	bw := c.b.bw
	var se statusError
	switch {
	case err == errTooLarge:
		const msg = "431 Request Header Fields Too Large"
		bw.WriteString("HTTP/1.1 " + msg + errorHeaders + msg)
		c.closeWriteAndWait()
		return
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
		// RFC 9112 §6.1: 501; the encoding is not echoed back.
		bw.WriteString("HTTP/1.1 501 Not Implemented" + errorHeaders + "Unsupported transfer encoding")
	case errors.As(err, &se):
		msg := http.StatusText(se.code) + ": " + se.text
		bw.WriteString("HTTP/1.1 ")
		bw.WriteString(statusLineCode(se.code))
		bw.WriteString(" " + msg + errorHeaders)
		bw.WriteString(statusLineCode(se.code) + " " + msg)
	default:
		const msg = "400 Bad Request"
		bw.WriteString("HTTP/1.1 " + msg + errorHeaders + msg)
	}
	c.s.log.Debug("http: bad request", "client", c.remote, "err", err)
	bw.Flush()
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection can carry another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	// The request's context is the connection's: it ends when the
	// connection does (closed, a write to the client failed, the server
	// killed), not when ServeHTTP returns, which saves a context per
	// request.
	if req.Context() != c.ctx {
		req = req.WithContext(c.ctx)
	}
	req.RemoteAddr = c.remote
	w := &c.res
	w.reset(c, req)

	if expect := get(req.Header, "Expect"); expect != "" {
		if !strings.EqualFold(expect, "100-continue") {
			// RFC 9110 §10.1.1: 417 for an expectation we cannot meet.
			w.header.Set("Connection", "close")
			w.WriteHeader(http.StatusExpectationFailed)
			w.finish()
			return false
		}
	}
	if req.Body != http.NoBody && req.Body != nil {
		w.body = &requestBody{rc: req.Body, w: w}
		req.Body = w.body
		if req.ProtoAtLeast(1, 1) && get(req.Header, "Expect") != "" {
			w.expectContinue, w.continuePending = true, true
		}
	}
	// A handler's panic is recovered in serve, which closes the connection.
	c.s.h.ServeHTTP(w, req)
	w.finish()
	keep = !w.closeAfter && c.werr == nil
	if !keep && w.body != nil && !w.body.sawEOF && !w.expectContinue {
		// The client may still be sending a body we will not read.
		c.closeWriteAndWait()
	}
	// Keep nothing of the request while idle but the emptied header map,
	// which the next request reuses.
	h := w.header
	clear(h)
	*w = response{header: h}
	return keep
}
