// Package h1 provides a lean HTTP/1.1 (and 1.0) server: the content path
// of an appliance, where a request is a GET for a byte range whose body
// goes out by sendfile(2), and where thousands of keep-alive connections
// sit idle between segments.
//
// It exists for memory and CPU. net/http keeps a 4 KiB read buffer, a
// 4 KiB write buffer and a deep goroutine stack on every idle keep-alive
// connection, about 19 KB; here an idle connection's goroutine waits for
// readability through the connection's syscall.RawConn holding no buffer
// (6–8 KB in make bench-edge): buffers come from a pool when a request's
// first bytes arrive and go back once its response is written and
// nothing pipelined is left. Socket reads, writes and sendfiles of
// page-cached data are raw system calls that keep their P (rawio.go).
// Over TLS (Config.TLS) crypto/tls's records are gathered into large
// writes (tlsconn.go) and connections that choose HTTP/2 are handed over
// (Config.H2).
//
// It is also strict where net/http is lenient, because a content server
// sits behind load balancers and caches whose idea of where a request
// ends must be ours: one parser (parse.go) makes every framing decision
// and refuses, and closes after, anything ambiguous — Content-Length with
// Transfer-Encoding, duplicate or malformed lengths, folded or bare-LF
// lines, bad chunk sizes. docs/http-conformance.md compares it with nginx
// case by case.
//
// Every phase of a connection has a deadline: ReadHeaderTimeout for a
// request's header, BodyReadTimeout for each wait for body bytes and
// ReadTimeout for the whole request (header and body) from its first
// byte, IdleTimeout between requests, WriteTimeout per response when set.
// A body the handler did not read is skipped only when it has already
// arrived; otherwise the answer says Connection: close and goes out at
// once, so a client that declares a body and never sends it holds
// nothing.
//
// The differences from net/http: a request's context ends with its
// connection (closed, a failed write, Close) rather than when ServeHTTP
// returns, and disconnects are noticed on write, not by a background
// read; the context carries LocalAddrContextKey but no ServerContextKey;
// no Hijack, trailers or h2c; a handler's panic is logged at error level
// with its stack, counted, and closes the connection.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config tunes a Server; zero values get the defaults named on each
// field.
type Config struct {
	// ReadHeaderTimeout bounds the time from a request's first byte (a
	// new connection's: from accept) to the end of its header; 10s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds each wait for request body bytes; 10s.
	BodyReadTimeout time.Duration
	// ReadTimeout bounds a whole request, header and body, from its
	// first byte; 60s. A handler that expects a long upload moves it
	// with http.ResponseController.SetReadDeadline.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long (between
	// 15/16 of it and all of it, to re-arm its timer less often); 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each response when set; default none, because
	// media transfers are long: handlers set per-chunk write deadlines.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request's header: the request line, the
	// field lines and the empty line that ends them, with their CRLFs.
	// A longer header is answered 431. 16 KiB.
	MaxHeaderBytes int
	// Logger gets bad requests at debug level and handler panics at
	// error level.
	Logger *slog.Logger
	// Panics, when set, counts handler panics.
	Panics Counter
	// TLS, when set, makes Serve serve HTTPS: it runs a TLS server on
	// each connection it accepts (tlsconn.go).
	TLS *tls.Config
	// H2, when set, takes over the TLS connections that chose "h2" by
	// ALPN; the server forgets them once handed over. Without it they
	// are closed.
	H2 func(*tls.Conn)
	// ConnContext, as http.Server.ConnContext, derives the context of
	// every request on a connection from the connection as accepted
	// (before TLS): per-connection state a handler needs (the appliance's
	// transport records) rides on it.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

// Counter is what the server needs of a metric counter
// (prometheus.Counter has it).
type Counter interface{ Inc() }

// WithDefaults fills in the zero fields.
func (c Config) WithDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.ReadHeaderTimeout, 10*time.Second)
	set(&c.BodyReadTimeout, 10*time.Second)
	set(&c.ReadTimeout, 60*time.Second)
	set(&c.IdleTimeout, 120*time.Second)
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server serves HTTP/1.x on the connections of a listener. Its methods
// match the *http.Server ones a daemon's lifecycle needs: Serve,
// Shutdown and Close.
type Server struct {
	h   http.Handler
	cfg Config
	log *slog.Logger

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

	inCache cacheVerdicts
}

// New makes a server for h.
func New(h http.Handler, cfg Config) *Server {
	cfg = cfg.WithDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{h: h, cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel,
		conns: map[*conn]struct{}{}, gone: make(chan struct{})}
}

// Serve accepts connections on ln until Shutdown or Close, and then
// returns http.ErrServerClosed. Each connection's goroutine is owned by
// the server and ends when its connection closes.
func (s *Server) Serve(ln net.Listener) error {
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
		var cork *corkConn
		if s.cfg.TLS != nil {
			cork = &corkConn{Conn: rwc}
			rwc = tls.Server(cork, s.cfg.TLS)
		}
		if c := s.track(rwc, cork); c != nil {
			go c.serve()
		}
	}
}

// track registers a new connection, or closes it when the server is
// closing.
func (s *Server) track(rwc net.Conn, cork *corkConn) *conn {
	c := newConn(s, rwc, cork)
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

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.noteGoneLocked()
}

// noteGoneLocked closes gone once the server is closing with no
// connection left.
func (s *Server) noteGoneLocked() {
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
func (s *Server) beginClose() error {
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
func (s *Server) Shutdown(ctx context.Context) error {
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
func (s *Server) Close() error {
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

// bufSize is the size of both buffers. It also bounds a chunk-size line
// of a chunked request body.
const bufSize = 4 << 10

var bufPool = sync.Pool{New: func() any {
	return &buffers{br: bufio.NewReaderSize(nil, bufSize), bw: bufio.NewWriterSize(nil, bufSize)}
}}

// conn is one client connection. Its goroutine (serve) owns every field
// but state, which Shutdown and Close change too.
type conn struct {
	s      *Server
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
	wdl    time.Time // the write deadline last set
	// wdlByHandler: wdl came from a handler's SetWriteDeadline.
	wdlByHandler bool
	tls          *tls.ConnectionState // the handshake's, for Request.TLS; nil on TCP
	cork         *corkConn            // under rwc when it is a TLS server Serve made
	gone         bool                 // handed over to Config.H2
	// calls are the RawConn callbacks, bound at the first request; sf,
	// wr and awaitErr are the state of the one in progress (rawio.go).
	calls    *sockCalls
	sf       sendState
	wr       writeState
	awaitErr error
	// reqTmpl carries ctx into each request parsed (parseRequestFrom).
	reqTmpl *http.Request
	// reqEnd is when the current request must have been read (its first
	// byte plus ReadTimeout); zero until a body or a slow header needs it
	// (a header that came whole has just arrived: its time is now).
	reqEnd time.Time
}

// newConn is a connection to serve: rwc, the TLS server over cork when
// there is one, or the connection as accepted.
func newConn(s *Server, rwc net.Conn, cork *corkConn) *conn {
	c := &conn{s: s, rwc: rwc, remote: rwc.RemoteAddr().String(), cork: cork}
	if sc, ok := rwc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	switch tc := rwc.(type) {
	case *net.TCPConn:
		c.rf = tc
	case interface{ TCPConn() *net.TCPConn }:
		// A listener's wrapper around a TCP connection (one whose Close
		// does something first) keeps the sendfile path.
		c.rf = tc.TCPConn()
	}
	c.r = connReader{c: c, fd: -1}
	ctx := context.WithValue(s.ctx, http.LocalAddrContextKey, rwc.LocalAddr())
	if s.cfg.ConnContext != nil {
		accepted := rwc
		if cork != nil {
			accepted = cork.Conn
		}
		ctx = s.cfg.ConnContext(ctx, accepted)
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	return c
}

func (c *conn) serve() {
	defer c.close()
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.s.log.Error("http: panic serving; connection closed", "client", c.remote, "panic", v, "stack", string(debug.Stack()))
			if c.s.cfg.Panics != nil {
				c.s.cfg.Panics.Inc()
			}
		}
	}()
	cfg := &c.s.cfg
	// A new connection has ReadHeaderTimeout to send its first request.
	c.setReadDeadline(time.Now().Add(min(cfg.ReadHeaderTimeout, cfg.ReadTimeout)))
	if tc, ok := c.rwc.(*tls.Conn); ok && !c.handshake(tc) {
		return
	}
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
		c.reqEnd = time.Time{}
		req, err := c.readRequest(!first)
		if err != nil {
			c.replyError(err)
			return
		}
		if cfg.WriteTimeout > 0 {
			c.setWriteDeadline(time.Now().Add(cfg.WriteTimeout), true)
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

// setWriteDeadline sets the connection's write deadline. As with the
// read deadlines, moving one costs a timer update, so a deadline within
// 1/16 of the time left of the wanted one is kept (a handler that sets
// now+60s on every chunk of every request moves it every few seconds).
// server marks a deadline the server set (WriteTimeout) rather than a
// handler.
func (c *conn) setWriteDeadline(t time.Time, server bool) error {
	c.wdlByHandler = !server && !t.IsZero()
	if !t.IsZero() && !c.wdl.IsZero() {
		d := t.Sub(c.wdl)
		if d < 0 {
			d = -d
		}
		if d <= time.Until(t)/16 {
			return nil
		}
	}
	c.wdl = t
	return c.rwc.SetWriteDeadline(t)
}

// clearStaleWriteDeadline removes a write deadline an earlier handler set
// before a response whose handler set none is written.
func (c *conn) clearStaleWriteDeadline() {
	if c.wdlByHandler && c.s.cfg.WriteTimeout == 0 {
		c.setWriteDeadline(time.Time{}, true)
	}
}

// armIdle gives an idle connection IdleTimeout to send its next request.
// Moving a deadline costs a timer update, so one that is at most
// IdleTimeout/16 before the wanted time is kept: a busy keep-alive
// connection re-arms it every few seconds, not on every request, and an
// idle one is closed between 15/16 and all of IdleTimeout.
func (c *conn) armIdle() {
	idle := c.s.cfg.IdleTimeout
	want := time.Now().Add(idle)
	if d := want.Sub(c.rdl); c.rdl.IsZero() || d < 0 || d > idle/16 {
		c.setReadDeadline(want)
	}
}

// startRequestClock starts the whole-request deadline (ReadTimeout) of
// the request being read, once.
func (c *conn) startRequestClock(now time.Time) {
	if c.reqEnd.IsZero() {
		c.reqEnd = now.Add(c.s.cfg.ReadTimeout)
	}
}

// armBody gives the next wait for body bytes BodyReadTimeout, and no
// more than what is left of ReadTimeout. As with armIdle, a deadline
// that is close enough to the wanted one is kept.
func (c *conn) armBody() {
	now := time.Now()
	c.startRequestClock(now)
	d := c.s.cfg.BodyReadTimeout
	want := now.Add(d)
	if want.After(c.reqEnd) {
		want = c.reqEnd
	}
	if diff := want.Sub(c.rdl); c.rdl.IsZero() || diff < 0 || diff > d/16 {
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
	// The first call must read: RawRead clears the poller's readiness
	// before calling, so bytes that arrived earlier raise no wake-up.
	err := c.raw.Read(c.sockCalls().await)
	rerr := c.awaitErr
	c.awaitErr = nil
	if err != nil {
		return err
	}
	return rerr
}

// awaitRead runs inside the socket's RawConn.Read (await): it tries a
// non-blocking read into pooled buffers, and gives them back and returns
// false to wait when nothing is there.
func (c *conn) awaitRead(fd uintptr) bool {
	b := takeBuffers(c)
	c.r.fd = int(fd)
	_, c.awaitErr = b.br.Peek(1)
	c.r.fd = -1
	if c.awaitErr == errWouldBlock {
		putBuffers(b)
		return false
	}
	c.b = b
	return true
}

func takeBuffers(c *conn) *buffers {
	b := bufPool.Get().(*buffers)
	b.br.Reset(&c.r)
	switch tc, _ := c.rwc.(*tls.Conn); {
	case c.raw != nil:
		b.bw.Reset(rawWriter{c})
	case c.cork != nil && tc != nil:
		b.bw.Reset(tlsWriter{tc: tc, cork: c.cork})
	default:
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

// handshake completes a TLS handshake within the read deadline and hands
// an "h2" connection to Config.H2. It reports whether to serve HTTP/1.x.
func (c *conn) handshake(tc *tls.Conn) bool {
	tc.SetWriteDeadline(c.rdl)
	err := tc.HandshakeContext(c.ctx)
	tc.SetWriteDeadline(time.Time{})
	if err != nil {
		c.s.log.Debug("http: TLS handshake error", "client", c.remote, "err", err)
		return false
	}
	st := tc.ConnectionState()
	if st.NegotiatedProtocol == "h2" {
		if h2 := c.s.cfg.H2; h2 != nil && c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.gone = true
			tc.SetReadDeadline(time.Time{}) // HTTP/2 keeps its own
			h2(tc)
		}
		return false
	}
	c.tls = &st
	return true
}

func (c *conn) close() {
	c.state.Store(stateClosed)
	c.cancel()
	if c.gone {
		c.s.forget(c)
		return
	}
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
	if c.cork != nil {
		c.cork.flush()
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
// While body is set it gives each read the body deadlines; while nowait
// is set it only takes what has already arrived (errWouldBlock when
// nothing has).
type connReader struct {
	c      *conn
	fd     int
	body   bool
	nowait bool
}

func (r *connReader) Read(p []byte) (int, error) {
	switch {
	case r.fd >= 0:
		return rawRead(r.fd, p)
	case r.nowait:
		return r.readNoWait(p)
	case r.body && !r.c.res.readDeadlineSet:
		r.c.armBody()
	}
	return r.c.rwc.Read(p)
}

// readNoWait reads what has arrived without waiting for more.
func (r *connReader) readNoWait(p []byte) (n int, err error) {
	c := r.c
	if c.raw == nil {
		// No descriptor to try: a deadline in the past makes the read
		// return at once; the next phase sets its own deadline.
		c.setReadDeadline(time.Unix(1, 0))
		n, err = c.rwc.Read(p)
		if n == 0 && err != nil && isTimeout(err) {
			err = errWouldBlock
		}
		return n, err
	}
	rerr := c.raw.Read(func(fd uintptr) bool {
		n, err = rawRead(int(fd), p)
		return true
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statusError is a request the server answers itself.
type statusError struct {
	code int
	text string
}

func (e statusError) Error() string { return http.StatusText(e.code) + ": " + e.text }

var crlfcrlf = []byte("\r\n\r\n")

// readRequest reads and parses one request header. A header that is all
// in the buffer is parsed where it lies; one that is not gets
// ReadHeaderTimeout to arrive when rearm is set (a new connection's runs
// from accept) and is read line by line, refused at its first line that
// does not end in CRLF.
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
	max := c.s.cfg.MaxHeaderBytes
	var block string
	p, _ := br.Peek(br.Buffered())
	if i := bytes.Index(p, crlfcrlf); i >= 0 {
		if i+4 > max {
			return nil, errTooLarge
		}
		block = string(p[:i+2]) // every line with its CRLF
		br.Discard(i + 4)
	} else {
		now := time.Now()
		c.startRequestClock(now)
		if rearm {
			c.setReadDeadline(now.Add(min(c.s.cfg.ReadHeaderTimeout, c.s.cfg.ReadTimeout)))
		}
		var err error
		if block, err = readHeaderLines(br, max); err != nil {
			return nil, err
		}
	}
	if c.reqTmpl == nil {
		var err error
		if c.reqTmpl, err = newRequestTemplate(c.ctx); err != nil {
			return nil, err
		}
	}
	req, err := parseRequestFrom(c.reqTmpl, block)
	if err != nil {
		return nil, err
	}
	if req.ContentLength != 0 {
		c.startRequestClock(time.Now())
		req.Body = newRequestBody(c, req)
	}
	return req, nil
}

// readHeaderLines reads a header from br line by line, up to max bytes,
// and returns it without its final CRLF. A line that ends in a bare LF
// is refused at once rather than waited past.
func readHeaderLines(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	start := 0 // of the current line in buf
	for {
		p, err := br.ReadSlice('\n')
		if len(buf)+len(p) > max {
			return "", errTooLarge
		}
		buf = append(buf, p...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		if !bytes.HasSuffix(buf, []byte("\r\n")) {
			return "", badRequest("header line not ending in CRLF")
		}
		if len(buf)-start == 2 {
			return string(buf[:start]), nil
		}
		start = len(buf)
	}
}

// replyError answers a request that never reached the handler, as
// net/http does, and the connection is then closed.
func (c *conn) replyError(err error) {
	if c.b == nil || isCommonNetReadError(err) {
		return
	}
	const errorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
	c.clearStaleWriteDeadline()
	bw := c.b.bw
	var se statusError
	switch {
	case err == errTooLarge:
		const msg = "431 Request Header Fields Too Large"
		bw.WriteString("HTTP/1.1 " + msg + errorHeaders + msg)
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
	// The client may still be sending: unread bytes would turn the
	// close into a reset that can destroy the answer in flight.
	c.closeWriteAndWait()
}

func isCommonNetReadError(err error) bool {
	if err == io.EOF {
		return true
	}
	if isTimeout(err) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// serveRequest runs the handler for req and finishes its response. It
// reports whether the connection can carry another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	req.RemoteAddr = c.remote
	if c.tls != nil {
		st := *c.tls // a handler may change its request's copy
		req.TLS = &st
	}
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
	if body, ok := req.Body.(*requestBody); ok {
		w.body = body
		body.w = w
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
