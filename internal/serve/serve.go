// Package serve provides the lifecycle every ocdn daemon's HTTP server
// shares: listen on an exact address (plain HTTP, or TLS with HTTP/2),
// serve until the context ends, optionally keep accepting for a drain
// grace period so clients can be steered away, then stop taking new
// connections and let in-flight requests finish within a deadline before
// closing what is left; or Kill, as a crash would.
//
// HTTP/1.x is served by the lean, strict server of internal/serve/h1, on
// TCP and over TLS; connections that choose HTTP/2 by ALPN are handed to
// net/http. Options.NetHTTP serves everything with net/http instead. All
// apply the same Options, the same deadlines (header, each body read,
// whole request, idle) and log a handler's panic at error level with its
// stack, counted in ocdn_http_handler_panics_total. What net/http does
// differently on malformed requests is in docs/http-conformance.md.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/serve/h1"
)

// Options tune a server; zero values get safe defaults.
type Options struct {
	// DrainGrace is how long the server keeps accepting new connections
	// after the context ends (default 0: stop at once). It gives whoever
	// steers clients (the control plane, a load balancer) time to notice
	// the drain before connections start being refused.
	DrainGrace time.Duration
	// Grace is how long in-flight requests may run once the listener is
	// closed; what is left after it is cut off. Default 10s.
	Grace time.Duration
	// TLS, when set, serves HTTPS on the listener; HTTP/2 is offered by
	// ALPN unless TLS.NextProtos says otherwise.
	TLS *tls.Config
	// ReadHeaderTimeout cuts off a client that has not sent a whole
	// request header this long after its first byte (slowloris); 10s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout cuts off a client that sends no request body bytes
	// for this long while the handler waits for them; 10s.
	BodyReadTimeout time.Duration
	// ReadTimeout bounds reading a whole request, header and body; 60s.
	// A handler that takes long uploads moves it with
	// http.ResponseController.SetReadDeadline. (Under net/http it runs
	// from when the handler starts, the header being bounded by
	// ReadHeaderTimeout.)
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long; 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds a whole response; default none, because media
	// transfers are long: handlers set per-chunk write deadlines instead.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (request line, fields and
	// the empty line, with their CRLFs); a larger one is answered 431.
	// Default 16 KiB. net/http (TLS, NetHTTP) counts the bytes it reads
	// from the connection instead, which is close but not exact.
	MaxHeaderBytes int
	Logger         *slog.Logger
	// Registry, when set, gets the server's metrics. Several servers may
	// share one: they then share the metrics.
	Registry prometheus.Registerer
	// NetHTTP serves HTTP/1 with net/http instead of the lean h1 server:
	// ~19 KB per idle connection instead of 6–8, net/http's leniency (it
	// serves a request with both Content-Length and Transfer-Encoding
	// and keeps the connection), and more CPU: GET /v1/steer under make
	// bench-steer's load cost the control plane 35–40 µs of CPU per
	// request on net/http against 21–24 µs on h1, so every daemon,
	// the control plane included, uses h1.
	NetHTTP bool
	// ConnContext, as http.Server.ConnContext, derives every request's
	// context from its connection as the listener returned it, on every
	// engine: under TLS and HTTP/2 too, not the TLS connection over it.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
}

func (opts Options) withDefaults() Options {
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts
}

// h1Config is the h1 server's view of the options, with its defaults:
// the one place the default timeouts and limits are set.
func (opts Options) h1Config(panics h1.Counter) h1.Config {
	return h1.Config{
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		BodyReadTimeout:   opts.BodyReadTimeout,
		ReadTimeout:       opts.ReadTimeout,
		IdleTimeout:       opts.IdleTimeout,
		WriteTimeout:      opts.WriteTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		Logger:            opts.Logger,
		Panics:            panics,
		ConnContext:       opts.ConnContext,
	}.WithDefaults()
}

// Server is an HTTP server bound to a listener.
type Server struct {
	ln   net.Listener
	srv  httpServer
	opts Options
}

// httpServer is what Run needs of *http.Server and *h1.Server.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// netHTTPTLS serves HTTPS with net/http alone; ServeTLS adds "h2" to
// NextProtos and serves HTTP/2. Certificates come from TLSConfig
// (Certificates or GetCertificate).
type netHTTPTLS struct{ *http.Server }

func (t netHTTPTLS) Serve(ln net.Listener) error { return t.ServeTLS(ln, "", "") }

// splitTLS serves HTTPS with h1 for HTTP/1.x and net/http for the
// connections that choose HTTP/2 by ALPN, which h1 hands over through a
// listener of its own, so that HTTP/1 framing is the same strict one as
// on plain HTTP.
type splitTLS struct {
	h1  *h1.Server
	std *http.Server
	h2  *handoff
}

func (s *splitTLS) Serve(ln net.Listener) error {
	stdDone := make(chan error, 1)
	go func() { stdDone <- s.std.Serve(s.h2) }()
	err := s.h1.Serve(ln) // h1 runs the TLS server on each connection
	s.h2.Close()
	if serr := <-stdDone; !errors.Is(serr, http.ErrServerClosed) && !errors.Is(serr, net.ErrClosed) && err == nil {
		err = serr
	}
	return err
}

func (s *splitTLS) Shutdown(ctx context.Context) error {
	s.h2.Close() // no more hand-overs: h1 closes new h2 connections
	stdErr := make(chan error, 1)
	go func() { stdErr <- s.std.Shutdown(ctx) }()
	err := s.h1.Shutdown(ctx)
	return errors.Join(err, <-stdErr)
}

func (s *splitTLS) Close() error {
	s.h2.Close()
	return errors.Join(s.h1.Close(), s.std.Close())
}

// handoff is the listener net/http accepts HTTP/2 connections from.
type handoff struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// give passes c to net/http's Accept, or closes it once the listener is
// closed.
func (l *handoff) give(c *tls.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoff) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoff) Addr() net.Addr { return l.addr }

// Listen binds addr (host:port; port 0 picks one) and prepares to serve h.
func Listen(addr string, h http.Handler, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return New(ln, h, opts), nil
}

// New prepares to serve h on ln.
func New(ln net.Listener, h http.Handler, opts Options) *Server {
	opts = opts.withDefaults()
	cfg := opts.h1Config(panicCounter(opts.Registry, opts.Logger))
	if opts.TLS == nil && !opts.NetHTTP {
		return &Server{ln: ln, srv: h1.New(h, cfg), opts: opts}
	}
	srv := newNetHTTP(h, cfg)
	switch {
	case opts.TLS == nil:
		return &Server{ln: ln, srv: srv, opts: opts}
	case opts.NetHTTP:
		srv.TLSConfig = opts.TLS.Clone()
		return &Server{ln: ln, srv: netHTTPTLS{srv}, opts: opts}
	}
	tc := opts.TLS.Clone()
	if tc.NextProtos == nil {
		tc.NextProtos = []string{"h2", "http/1.1"}
	}
	srv.TLSConfig = tc // with "h2" in NextProtos, Serve sets up HTTP/2
	h2 := newHandoff(ln.Addr())
	cfg.TLS, cfg.H2 = tc, h2.give
	return &Server{ln: ln, srv: &splitTLS{h1: h1.New(h, cfg), std: srv, h2: h2}, opts: opts}
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is http://addr, or https://addr when serving TLS.
func (s *Server) URL() string {
	if s.opts.TLS != nil {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Run serves until ctx ends, keeps accepting for DrainGrace, then shuts
// down gracefully. It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if s.opts.DrainGrace > 0 {
		s.opts.Logger.Info("draining: still accepting connections during the grace period", "drain_grace", s.opts.DrainGrace)
		t := time.NewTimer(s.opts.DrainGrace)
		select {
		case err := <-errc:
			t.Stop()
			return err
		case <-t.C:
		}
	}
	s.opts.Logger.Info("draining: listener closed; waiting for in-flight requests", "grace", s.opts.Grace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Grace)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.opts.Logger.Warn("grace period over; closing remaining connections", "grace", s.opts.Grace)
		err = s.srv.Close()
	}
	<-errc // Serve has returned ErrServerClosed
	return err
}

// Kill closes the listener and every connection at once, as a crash would.
func (s *Server) Kill() error { return s.srv.Close() }
