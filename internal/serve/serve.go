// Package serve provides the lifecycle every ocdn daemon's HTTP server
// shares: listen on an exact address (plain HTTP, or TLS with HTTP/2),
// serve until the context ends, optionally keep accepting for a drain grace
// period so clients can be steered away, then stop taking new connections
// and let in-flight requests finish within a deadline before closing what
// is left.
//
// TLS is served by net/http (with HTTP/2). Plain HTTP is served by a lean
// HTTP/1.1 server of our own (h1.go, response.go), built for appliances
// that hold many idle keep-alive connections: net/http keeps a 4 KiB read
// buffer, a 4 KiB write buffer and a deep goroutine stack on each, about
// 19 KB per connection, where ours keeps the goroutine parked in the
// poller with no buffer (6–8 KB in make bench-edge): buffers come from a
// pool when a request's first bytes arrive and go back once its response
// is written and nothing pipelined is left. The common body-less request
// is parsed in place and every other by http.ReadRequest; responses
// follow net/http's HTTP/1.x framing (see response). A body copied from
// an *os.File goes out by sendfile(2); socket I/O and sendfiles of
// page-cached data are raw system calls (rawio.go). The differences from
// net/http: a request's context ends with its connection (closed, a
// failed write, Kill) rather than when ServeHTTP returns, and disconnects
// are noticed on write, not by a background read; an empty Host header is
// refused like a missing one; the context carries LocalAddrContextKey but
// no ServerContextKey; no Hijack, trailers or h2c.
//
// Both apply the same Options: ReadHeaderTimeout from the first byte of a
// request (or from accept) to the end of its header, IdleTimeout between
// requests (the plain-HTTP server closes an idle connection between 15/16
// and all of it, to re-arm its timer less often), WriteTimeout per
// response if set, and MaxHeaderBytes (plus net/http's 4 KiB of slack)
// beyond which a request gets 431.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options tune a server; zero values get safe defaults.
type Options struct {
	// DrainGrace is how long the server keeps accepting new connections
	// after the context ends (default 0: stop at once). It gives whoever
	// steers clients (the control plane, a load balancer) time to notice
	// the drain before connections start being refused.
	DrainGrace time.Duration
	// Grace is how long in-flight requests may run once the listener is
	// closed; what is left after it is cut off.
	Grace time.Duration
	// TLS, when set, serves HTTPS on the listener; HTTP/2 is offered by
	// ALPN unless TLS.NextProtos says otherwise.
	TLS *tls.Config
	// ReadHeaderTimeout cuts off a client that has not sent a whole
	// request header in time (slowloris); default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long; 120s.
	IdleTimeout time.Duration
	// WriteTimeout bounds a whole response; default none, because media
	// transfers are long: handlers set per-chunk write deadlines instead.
	WriteTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; a larger request
	// is answered 431. Default 16 KiB.
	MaxHeaderBytes int
	Logger         *slog.Logger
}

func (opts Options) withDefaults() Options {
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = 16 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return opts
}

// Server is an HTTP server bound to a listener: net/http's for TLS, the
// lean h1Server for plain HTTP.
type Server struct {
	ln   net.Listener
	srv  httpServer
	opts Options
}

// httpServer is what Run needs of *http.Server and *h1Server.
type httpServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// tlsServer serves HTTPS; ServeTLS adds "h2" to NextProtos and serves
// HTTP/2. Certificates come from TLSConfig (Certificates or
// GetCertificate).
type tlsServer struct{ *http.Server }

func (t tlsServer) Serve(ln net.Listener) error { return t.ServeTLS(ln, "", "") }

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
	if opts.TLS == nil {
		return &Server{ln: ln, srv: newH1Server(h, opts), opts: opts}
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		WriteTimeout:      opts.WriteTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		TLSConfig:         opts.TLS.Clone(),
	}
	return &Server{ln: ln, srv: tlsServer{srv}, opts: opts}
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
