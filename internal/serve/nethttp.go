package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/serve/h1"
)

// newNetHTTP is net/http's server with h1's deadlines and panic handling
// as far as net/http allows them (see guard).
func newNetHTTP(h http.Handler, cfg h1.Config) *http.Server {
	// net/http reads MaxHeaderBytes plus 4 KiB of slack before it
	// answers 431; take the slack off so the documented bound holds
	// where it can.
	maxHeader := max(cfg.MaxHeaderBytes-4096, 1)
	return &http.Server{
		Handler:           &guard{h: h, cfg: cfg},
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		MaxHeaderBytes:    maxHeader,
		ConnContext:       acceptedConnContext(cfg.ConnContext),
		// Handler panics are logged by guard; what is left here is
		// TLS handshake noise and the like.
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
}

// acceptedConnContext hands f the connection the listener returned, as
// Options.ConnContext promises and h1 does: net/http hands its
// ConnContext the *tls.Conn it serves, made by itself or, for an HTTP/2
// connection h1 handed over, by h1.
func acceptedConnContext(f func(context.Context, net.Conn) context.Context) func(context.Context, net.Conn) context.Context {
	if f == nil {
		return nil
	}
	return func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*tls.Conn); ok {
			c = h1.Accepted(tc)
		}
		return f(ctx, c)
	}
}

// guard wraps a handler served by net/http:
//
//   - A panic is logged at error level with its stack and counted, then
//     re-raised as http.ErrAbortHandler so that net/http closes the
//     connection (or resets the HTTP/2 stream) without logging it again.
//   - A request body gets BodyReadTimeout for each read and ReadTimeout
//     for all of it, through http.ResponseController. http.Server's own
//     ReadTimeout is not used: it would also fire on net/http's
//     background read once the body is done and cancel the context of a
//     long response.
type guard struct {
	h   http.Handler
	cfg h1.Config
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				g.cfg.Logger.Error("http: panic serving; connection closed", "client", r.RemoteAddr,
					"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if g.cfg.Panics != nil {
					g.cfg.Panics.Inc()
				}
			}
			panic(http.ErrAbortHandler)
		}
	}()
	if r.Body != nil && r.Body != http.NoBody {
		now := time.Now()
		b := &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w),
			per: g.cfg.BodyReadTimeout, end: now.Add(g.cfg.ReadTimeout), h1: r.ProtoMajor == 1}
		b.arm(now)
		r.Body = b
		defer b.done()
		w = &bodyWriter{ResponseWriter: w, b: b}
	}
	g.h.ServeHTTP(w, r)
}

// bodyWriter lets a handler take the read deadline over with
// http.ResponseController.SetReadDeadline (for a long upload): the body
// deadlines then stop. It keeps the writer's Flush and ReadFrom.
type bodyWriter struct {
	http.ResponseWriter
	b *deadlineBody
}

func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *bodyWriter) SetReadDeadline(t time.Time) error {
	w.b.disabled = true
	return w.b.rc.SetReadDeadline(t)
}

func (w *bodyWriter) Flush() { w.b.rc.Flush() }

func (w *bodyWriter) ReadFrom(src io.Reader) (int64, error) {
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

// deadlineBody sets the connection's (or stream's) read deadline before
// each read of a request body.
type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	per      time.Duration
	end      time.Time // the whole request's deadline
	set      time.Time // the deadline last set
	eof      bool
	h1       bool
	disabled bool // the connection takes no deadlines, or the handler set its own
}

func (b *deadlineBody) arm(now time.Time) {
	if b.disabled {
		return
	}
	want := now.Add(b.per)
	if want.After(b.end) {
		want = b.end
	}
	// Keep a deadline close enough to the wanted one: each move costs a
	// timer update.
	if d := want.Sub(b.set); b.set.IsZero() || d < 0 || d > b.per/16 {
		if err := b.rc.SetReadDeadline(want); errors.Is(err, http.ErrNotSupported) {
			b.disabled = true
			return
		}
		b.set = want
	}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.eof {
		b.arm(time.Now())
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.eof {
		b.eof = true
		if !b.disabled {
			// net/http starts its background read at the body's end;
			// a deadline left in place would fail it and cancel the
			// request's context.
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// done runs when the handler returns. Over HTTP/1 net/http then skips
// the body the handler left before it answers; a deadline of now makes
// it skip only what has arrived, as h1 does, rather than hold the answer
// for a client that never sends the rest. (An HTTP/2 stream needs no
// such thing: its unread body is reset.)
func (b *deadlineBody) done() {
	if !b.eof && b.h1 && !b.disabled {
		b.rc.SetReadDeadline(time.Now())
	}
}

// panicCounter makes ocdn_http_handler_panics_total, registered with reg
// when set; when reg already has it (another server of the same daemon),
// that one is shared.
func panicCounter(reg prometheus.Registerer, log *slog.Logger) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ocdn_http_handler_panics_total",
		Help: "HTTP handler panics recovered by the server; each is logged at error level with its stack.",
	})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(prometheus.Counter); ok {
				return existing
			}
		}
		log.Warn("http: panic counter not registered", "err", err)
	}
	return c
}
