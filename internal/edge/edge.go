// Package edge provides an appliance's HTTP content serving: signed URLs at
// /c/{token}/{title}/{file}, byte ranges, strong ETags from the content
// hash, an access log and Prometheus metrics.
package edge

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Config wires a Handler.
type Config struct {
	Store *store.Store
	// Keys returns the current URL-signing keys; it is called per request
	// so keys can rotate underneath.
	Keys     func() *urlsign.KeySet
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time
}

// Handler serves content. It is safe for concurrent use.
type Handler struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	bytesServed atomic.Int64
	requests    atomic.Int64

	mRequests *prometheus.CounterVec
	mBytes    prometheus.Counter
	mInflight prometheus.Gauge
	mLatency  prometheus.Histogram
}

// New returns a handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{
		cfg: cfg,
		log: cfg.Logger.With("component", "edge"),
		mRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocdn_edge_requests_total", Help: "Content requests by HTTP status code.",
		}, []string{"code"}),
		mBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_edge_response_bytes_total", Help: "Content body bytes sent.",
		}),
		mInflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ocdn_edge_inflight_requests", Help: "Content requests being served.",
		}),
		mLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ocdn_edge_request_duration_seconds", Help: "Time to serve a content request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(h.mRequests, h.mBytes, h.mInflight, h.mLatency)
	}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /c/{token}/{title}/{file}", h.serveContent)
	return h
}

// BytesServed is the total of content body bytes sent.
func (h *Handler) BytesServed() int64 { return h.bytesServed.Load() }

// Requests is the number of content requests answered.
func (h *Handler) Requests() int64 { return h.requests.Load() }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) serveContent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.mInflight.Inc()
	cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		h.mInflight.Dec()
		h.requests.Add(1)
		h.bytesServed.Add(cw.n)
		h.mBytes.Add(float64(cw.n))
		h.mRequests.WithLabelValues(strconv.Itoa(cw.code)).Inc()
		h.mLatency.Observe(time.Since(start).Seconds())
		h.log.Info("access", "client", r.RemoteAddr, "method", r.Method, "path", r.PathValue("title")+"/"+r.PathValue("file"),
			"range", r.Header.Get("Range"), "status", cw.code, "bytes", cw.n, "duration_ms", time.Since(start).Milliseconds())
	}()
	p := r.PathValue("title") + "/" + r.PathValue("file")
	if content.ValidatePath(p) != nil {
		http.NotFound(cw, r)
		return
	}
	client := clientAddr(r)
	if err := h.cfg.Keys().Verify(r.PathValue("token"), p, client, h.cfg.Now()); err != nil {
		http.Error(cw, "forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	f, e, err := h.cfg.Store.Open(p)
	if errors.Is(err, store.ErrNotFound) {
		http.NotFound(cw, r)
		return
	}
	if err != nil {
		h.log.Error("open object", "path", p, "err", err)
		http.Error(cw, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	hd := cw.Header()
	hd.Set("ETag", `"`+e.SHA256+`"`)
	if ct := mime.TypeByExtension(path.Ext(p)); ct != "" {
		hd.Set("Content-Type", ct)
	} else {
		hd.Set("Content-Type", "application/octet-stream")
	}
	hd.Set("Cache-Control", "private, max-age=86400")
	http.ServeContent(cw, r, "", time.Time{}, f)
}

func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// countingWriter counts body bytes and keeps io.ReaderFrom visible so
// net/http can still use sendfile for plain-HTTP responses.
type countingWriter struct {
	http.ResponseWriter
	code        int
	n           int64
	wroteHeader bool
}

func (c *countingWriter) WriteHeader(code int) {
	if !c.wroteHeader {
		c.code, c.wroteHeader = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.wroteHeader = true
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	c.wroteHeader = true
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
