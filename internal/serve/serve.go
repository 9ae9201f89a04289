// Package serve provides the lifecycle every ocdn daemon's HTTP server
// shares: listen on an exact address, serve until the context ends, then
// stop taking new connections and let in-flight requests finish within a
// grace period before closing what is left.
package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options tune a server; zero values get safe defaults.
type Options struct {
	// Grace is how long in-flight requests may run after the context ends.
	Grace             time.Duration
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	WriteTimeout      time.Duration
	MaxHeaderBytes    int
	Logger            *slog.Logger
}

// Server is an http.Server bound to a listener.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	opts Options
}

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
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		WriteTimeout:      opts.WriteTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return &Server{ln: ln, srv: srv, opts: opts}
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is http://addr.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully. It returns nil
// after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
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
