package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/shardmetric"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Config wires a Handler.
type Config struct {
	Store *store.Store
	// Keys returns the current URL-signing keys; it is called per request
	// so keys can rotate underneath.
	Keys   func() *urlsign.KeySet
	Logger *slog.Logger
	// AccessLog gets one Info record per content request; nil means no
	// access log. It is on the hot path: give it a buffered writer.
	AccessLog *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
	// StallTimeout cuts off a client that accepts no more than copyChunk
	// body bytes in this long (default 60s, i.e. a floor of about
	// 17 KB/s). It replaces http.Server.WriteTimeout, which would also
	// cut off long transfers to healthy clients.
	StallTimeout time.Duration
	// TokenCacheSize bounds the cache of verified tokens (default 4096;
	// negative disables it).
	TokenCacheSize int
	// OpenFiles is how many idle object descriptors are kept open between
	// requests (default 1024; negative disables the cache).
	OpenFiles int
	// OnGrant, when set, is called for each request whose token
	// verified, before anything is written: the appliance's transport
	// records take the file and the experiment arm from it and set the
	// arm's congestion control on the connection. It is on the hot path.
	OnGrant func(r *http.Request, path string, g *urlsign.Grant)
}

// copyChunk is how many body bytes one write deadline covers.
const copyChunk = 1 << 20

// Handler serves content. It is safe for concurrent use.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	access *slog.Logger
	tokens *tokenCache
	files  *fileCache
	// fastAccess is set when AccessLog came from NewAccessLogger.
	fastAccess *accessHandler
	// fakeClock: Config.Now was given, so tokens are checked against it
	// rather than against the request's start.
	fakeClock bool

	bytesServed atomic.Int64
	requests    atomic.Int64

	mRequests *prometheus.CounterVec
	mByCode   map[int]prometheus.Counter // common codes, resolved once
	mBytes    prometheus.Counter
	mInflight *shardmetric.Gauge
	mLatency  *shardmetric.Histogram
}

// New returns a handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	fakeClock := cfg.Now != nil
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 60 * time.Second
	}
	if cfg.TokenCacheSize == 0 {
		cfg.TokenCacheSize = 4096
	}
	if cfg.OpenFiles == 0 {
		cfg.OpenFiles = 1024
	}
	h := &Handler{
		fakeClock: fakeClock,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "edge"),
		access:    cfg.AccessLog,
		tokens:    newTokenCache(cfg.TokenCacheSize),
		files:     newFileCache(cfg.Store, cfg.OpenFiles),
		mRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocdn_edge_requests_total", Help: "Content requests by HTTP status code.",
		}, []string{"code"}),
		mBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_edge_response_bytes_total", Help: "Content body bytes sent.",
		}),
		mInflight: shardmetric.NewGauge("ocdn_edge_inflight_requests", "Content requests being served."),
		mLatency: shardmetric.NewHistogram("ocdn_edge_request_duration_seconds", "Time to serve a content request.",
			prometheus.ExponentialBuckets(0.0005, 4, 10)),
	}
	if h.access != nil {
		if ah, ok := h.access.Handler().(*accessHandler); ok && ah.Enabled(context.Background(), slog.LevelInfo) {
			h.fastAccess = ah
		}
	}
	h.mByCode = map[int]prometheus.Counter{}
	for _, c := range []int{200, 206, 304, 403, 404, 405, 412, 416, 500} {
		h.mByCode[c] = h.mRequests.WithLabelValues(strconv.Itoa(c))
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(h.mRequests, h.mBytes, h.mInflight, h.mLatency)
	}
	return h
}

// BytesServed is the total of content body bytes sent.
func (h *Handler) BytesServed() int64 { return h.bytesServed.Load() }

// Requests is the number of content requests answered.
func (h *Handler) Requests() int64 { return h.requests.Load() }

// ServeHTTP serves GET and HEAD /c/{token}/{title}/{file}.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.Serve(w, r) }

// Served is what Serve did for one request, so that a caller that
// accounts for demand needs neither a ResponseWriter wrapper of its own
// nor to parse the URL and the client's address again.
type Served struct {
	// Path is the object path the URL names ("" when it names none);
	// it is a substring of the request's URL path.
	Path string
	// Client is the client's address (invalid when RemoteAddr is not
	// an address and port).
	Client netip.Addr
	Status int
	// Bytes is the body bytes sent, error texts included.
	Bytes int64
}

// Serve is ServeHTTP reporting what it did.
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request) Served {
	start := time.Now()
	h.mInflight.Add(1)
	cw := &countingWriter{ResponseWriter: w, code: http.StatusOK}
	p, client := h.serve(cw, r, start)
	h.mInflight.Add(-1)
	h.requests.Add(1)
	h.bytesServed.Add(cw.n)
	h.mBytes.Add(float64(cw.n))
	if c, ok := h.mByCode[cw.code]; ok {
		c.Inc()
	} else {
		h.mRequests.WithLabelValues(strconv.Itoa(cw.code)).Inc()
	}
	d := time.Since(start)
	h.mLatency.Observe(d)
	if h.fastAccess != nil {
		h.fastAccess.access(start.Add(d), r, p, cw.code, cw.n, d)
	} else if h.access != nil && h.access.Enabled(r.Context(), slog.LevelInfo) {
		h.access.LogAttrs(r.Context(), slog.LevelInfo, "access",
			slog.String("client", r.RemoteAddr), slog.String("method", r.Method), slog.String("path", p),
			slog.String("range", r.Header.Get("Range")), slog.Int("status", cw.code), slog.Int64("bytes", cw.n),
			slog.Int64("duration_us", d.Microseconds()), slog.String("proto", r.Proto))
	}
	return Served{Path: p, Client: client, Status: cw.code, Bytes: cw.n}
}

var (
	hdrAllow        = []string{"GET, HEAD"}
	hdrAcceptRanges = []string{"bytes"}
	hdrCacheControl = []string{"private, max-age=86400"}
	hdrOctetStream  = []string{"application/octet-stream"}
	hdrTextPlain    = []string{"text/plain; charset=utf-8"}
	hdrNoSniff      = []string{"nosniff"}
)

// serve answers one request and returns the content path for the log
// and, when there is one, the client's address.
func (h *Handler) serve(w *countingWriter, r *http.Request, now time.Time) (string, netip.Addr) {
	rc := http.NewResponseController(w)
	if s := stallSetterOf(w.ResponseWriter); s != nil {
		// The server moves the deadline after each copyChunk bytes
		// itself, so copyRange hands it each range whole.
		s.SetWriteStallTimeout(copyChunk, h.cfg.StallTimeout)
		w.whole = true
	} else {
		// One deadline for headers and the first chunk; see copyRange.
		rc.SetWriteDeadline(now.Add(h.cfg.StallTimeout))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllow
		writeText(w, r, http.StatusMethodNotAllowed, "method not allowed")
		return "", netip.Addr{}
	}
	token, p, ok := splitContentPath(r.URL.Path)
	// A RawPath means the client percent-encoded something. Catalog paths
	// never need it, so an object path written with escapes (%2f, %2e,
	// %41, …) names nothing we serve.
	if !ok || (r.URL.RawPath != "" && !strings.HasSuffix(r.URL.RawPath, "/"+p)) {
		writeText(w, r, http.StatusNotFound, "not found")
		return "", netip.Addr{}
	}
	client := clientAddr(r)
	if h.fakeClock {
		// Otherwise the request's start is now enough for a token's
		// expiry, and saves reading the clock again.
		now = h.cfg.Now()
	}
	// The grant lives in w, which is on the heap anyway: OnGrant takes
	// its address, which would otherwise move it there on its own.
	var err error
	if w.grant, err = h.tokens.verify(h.cfg.Keys(), token, p, client, now); err != nil {
		writeText(w, r, http.StatusForbidden, "forbidden: "+err.Error())
		return p, client
	}
	if h.cfg.OnGrant != nil {
		h.cfg.OnGrant(r, p, &w.grant)
	}
	f, err := h.files.open(p)
	if errors.Is(err, store.ErrNotFound) {
		writeText(w, r, http.StatusNotFound, "not found")
		return p, client
	}
	if err != nil {
		h.log.Error("open object", "path", p, "err", err)
		writeText(w, r, http.StatusInternalServerError, "internal error")
		return p, client
	}
	h.files.release(f, h.serveObject(w, rc, r, f))
	return p, client
}

// splitContentPath splits the decoded URL path /c/{token}/{title}/{file}.
// Anything else, including encoded slashes, dot segments and NULs (which
// decode into the path and then fail content.ValidatePath), is not found.
// The store is only ever asked for validated catalog paths, which it
// looks up in its index, so no request reaches the file system by name.
func splitContentPath(p string) (token, objPath string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/c/")
	if !ok {
		return "", "", false
	}
	token, objPath, ok = strings.Cut(rest, "/")
	if !ok || token == "" || !content.ValidPath(objPath) {
		return "", "", false
	}
	return token, objPath, true
}

// serveObject applies RFC 9110 conditionals and ranges to one object. It
// reports false when reading f went wrong, so f is not reused.
func (h *Handler) serveObject(w *countingWriter, rc *http.ResponseController, r *http.Request, of openFile) (fileOK bool) {
	f, e := of.File, of.e
	// The ETag and Content-Type values come with the descriptor, made
	// once per object (fileCache); a header map never appends to a
	// value slice it is given, whose capacity is its length anyway.
	etag := of.meta.etag[0]
	hd := w.Header()
	hd["Etag"] = of.meta.etag
	hd["Accept-Ranges"] = hdrAcceptRanges
	hd["Cache-Control"] = hdrCacheControl
	ct := of.meta.ctype

	// RFC 9110 §13.2.2 order: If-Match, (If-Unmodified-Since: no date),
	// If-None-Match, (If-Modified-Since: no date), If-Range.
	if im := headerValue(r.Header, "If-Match"); im != "" && !etagList(im, etag, false) {
		writeText(w, r, http.StatusPreconditionFailed, "precondition failed")
		return true
	}
	if inm := headerValue(r.Header, "If-None-Match"); inm != "" && etagList(inm, etag, true) {
		w.WriteHeader(http.StatusNotModified)
		return true
	}

	size := e.Size
	var ranges []Range
	if rh := headerValue(r.Header, "Range"); rh != "" && size > 0 && ifRangeMatches(headerValue(r.Header, "If-Range"), etag) {
		var err error
		ranges, err = parseRange(rh, size, w.ranges[:0])
		switch {
		case errors.Is(err, ErrUnsatisfiableRange):
			hd["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
			writeText(w, r, http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
			return true
		case err != nil: // malformed or excessive: ignore the header
			ranges = nil
		}
	}
	body := r.Method != http.MethodHead

	switch len(ranges) {
	case 0:
		hd["Content-Type"] = ct
		hd["Content-Length"] = w.val(0, strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		if body {
			_, fileOK = h.copyRange(w, rc, f, 0, size)
			return fileOK
		}
	case 1:
		rg := ranges[0]
		hd["Content-Type"] = ct
		// Content-Length and Content-Range are cut from one string: one
		// allocation for both.
		cl, cr := lengthAndRange(rg, size)
		hd["Content-Length"] = w.val(0, cl)
		hd["Content-Range"] = w.val(1, cr)
		w.WriteHeader(http.StatusPartialContent)
		if body {
			_, fileOK = h.copyRange(w, rc, f, rg.Start, rg.Length())
			return fileOK
		}
	default:
		boundary := newBoundary()
		heads := make([]string, len(ranges))
		n := int64(len("\r\n--" + boundary + "--\r\n"))
		for i, rg := range ranges {
			sep := "\r\n--"
			if i == 0 {
				sep = "--"
			}
			heads[i] = sep + boundary + "\r\nContent-Type: " + ct[0] + "\r\nContent-Range: " + contentRange(rg, size) + "\r\n\r\n"
			n += int64(len(heads[i])) + rg.Length()
		}
		hd["Content-Type"] = []string{"multipart/byteranges; boundary=" + boundary}
		hd["Content-Length"] = []string{strconv.FormatInt(n, 10)}
		w.WriteHeader(http.StatusPartialContent)
		if !body {
			return true
		}
		for i, rg := range ranges {
			if _, err := io.WriteString(w, heads[i]); err != nil {
				return true
			}
			if sent, fileOK := h.copyRange(w, rc, f, rg.Start, rg.Length()); !sent {
				return fileOK
			}
		}
		io.WriteString(w, "\r\n--"+boundary+"--\r\n")
	}
	return true
}

// copyRange writes n bytes of f from off. The countingWriter's ReadFrom
// passes a SectionReader over the *os.File on to the server's
// ResponseWriter, which sends it with sendfile(2) on plain HTTP. Each
// copyChunk bytes get a fresh write deadline, so a stalled client is cut
// off while a slow but moving one is not: the server moves it when it
// can (w.whole, SetWriteStallTimeout) and the range goes out in one
// ReadFrom; otherwise the range goes in chunks with the deadline moved
// between them. sent reports that all n bytes went out; fileOK is false
// only when the file itself misbehaved.
func (h *Handler) copyRange(w *countingWriter, rc *http.ResponseController, f *os.File, off, n int64) (sent, fileOK bool) {
	first := true
	for n > 0 {
		if !first && !w.whole {
			rc.SetWriteDeadline(time.Now().Add(h.cfg.StallTimeout))
		}
		first = false
		chunk := min(n, copyChunk)
		if w.whole {
			chunk = n
		}
		// The chunk at its offset, so sendfile needs no lseek(2).
		w.sr = *io.NewSectionReader(f, off, chunk)
		m, err := w.ReadFrom(&w.sr)
		if err == nil && m < chunk {
			err = io.EOF
		}
		n -= m
		off += m
		if err != nil {
			// The client went away or stalled: nothing to tell it. A short
			// file (EOF) would be store corruption; the connection is
			// closed by net/http because Content-Length was not met.
			if errors.Is(err, io.EOF) {
				h.log.Error("object shorter than its index entry", "file", f.Name())
				return false, false
			}
			return false, true
		}
	}
	return true, true
}

// lengthAndRange returns the Content-Length and Content-Range values of
// a single-range answer, sharing one backing string.
func lengthAndRange(r Range, size int64) (length, contentRange string) {
	var buf [80]byte
	b := strconv.AppendInt(buf[:0], r.Length(), 10)
	n := len(b)
	s := string(appendContentRange(b, r, size))
	return s[:n], s[n:]
}

func contentRange(r Range, size int64) string {
	var buf [64]byte
	return string(appendContentRange(buf[:0], r, size))
}

// appendContentRange appends the Content-Range value "bytes S-E/size".
func appendContentRange(b []byte, r Range, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.End, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

func newBoundary() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeText writes a short plain-text answer with an exact Content-Length.
func writeText(w http.ResponseWriter, r *http.Request, code int, msg string) {
	hd := w.Header()
	hd["Content-Type"] = hdrTextPlain
	hd["X-Content-Type-Options"] = hdrNoSniff
	hd["Content-Length"] = []string{strconv.Itoa(len(msg) + 1)}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		io.WriteString(w, msg+"\n")
	}
}

// headerValue is Header.Get for a key in canonical form, as every
// server here stores them: Get checks and canonicalizes the key again
// on each call, five times per range request.
func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// countingWriter counts body bytes and keeps io.ReaderFrom visible so
// the server can still use sendfile for plain-HTTP responses.
type countingWriter struct {
	http.ResponseWriter
	code        int
	n           int64
	wroteHeader bool
	sr          io.SectionReader // copyRange's, kept here to save an allocation
	whole       bool             // the server moves the stall deadline (SetWriteStallTimeout)
	// The rest is serve's scratch space, here because the countingWriter
	// is on the heap anyway: each on its own would be an allocation per
	// request.
	grant  urlsign.Grant
	vals   [2]string // backing of header values set per request
	ranges [1]Range  // parseRange's, for the usual single range
}

// val returns v as a header value backed by w.vals[i].
func (c *countingWriter) val(i int, v string) []string {
	c.vals[i] = v
	return c.vals[i : i+1 : i+1]
}

// stallSetter is a ResponseWriter that moves the write deadline itself as
// the body goes out (internal/serve/h1's): see copyRange.
type stallSetter interface {
	SetWriteStallTimeout(every int64, d time.Duration) error
}

// stallSetterOf finds a stallSetter under w's wrappers (Unwrap, as
// http.ResponseController looks for its methods), or nil.
func stallSetterOf(w http.ResponseWriter) stallSetter {
	for {
		switch t := w.(type) {
		case stallSetter:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
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

// Close releases the descriptors the handler keeps open between requests.
// Requests served afterwards still work; they just open their files again.
func (h *Handler) Close() { h.files.Close() }
