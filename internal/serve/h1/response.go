package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the Server's http.ResponseWriter, written to follow
// net/http's HTTP/1.x framing decisions (server.go, chunkWriter):
//
//   - A handler that set Content-Length and Content-Type on a request
//     without a body (a media GET) has its header written to the
//     connection's buffer at WriteHeader, so a body from a file goes out
//     as one header write and sendfile(2) (ReadFrom).
//   - Otherwise up to stageSize body bytes are held back: if the handler
//     finishes within them the response gets an exact Content-Length, and
//     the first of them sniff a missing Content-Type. Past them the body
//     is chunked (HTTP/1.1) or delimited by closing (HTTP/1.0).
//   - HEAD gets the header GET would, without a body; 1xx, 204 and 304
//     never have one.
//   - Connection: close when the client asked, when the server is
//     shutting down, when the body framing needs it, or when the
//     request body the handler left unread has not all arrived yet or is
//     too large to skip; HTTP/1.0 keep-alive when asked for and the
//     length is known.
//
// It implements http.Flusher (FlushError), io.ReaderFrom, and the
// SetReadDeadline/SetWriteDeadline methods http.ResponseController
// looks for, and SetWriteStallTimeout. Trailers and Hijack are not
// supported.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header
	body   *requestBody // nil when the request has none

	status        int
	contentLength int64 // -1: unknown
	written       int64 // body bytes accepted from the handler
	wroteHeader   bool  // a final status is chosen
	committed     bool  // the header is in the connection's buffer
	chunked       bool
	closeAfter    bool
	handlerDone   bool
	isHEAD        bool
	deadlineSet   bool // the handler moved the write deadline
	// stallEvery and stallTimeout are SetWriteStallTimeout's: after each
	// stallEvery body bytes (stallLeft counts down) the write deadline
	// moves to stallTimeout from then. Zero when not set.
	stallEvery   int64
	stallLeft    int64
	stallTimeout time.Duration
	// readDeadlineSet: the handler moved the read deadline, which the
	// body deadlines then leave alone.
	readDeadlineSet bool

	// expectContinue: the client waits for 100 Continue before sending
	// the body; continuePending: it is sent on the body's first read.
	expectContinue  bool
	continuePending bool
	stage           *[]byte // held-back body bytes; pooled
}

// stageSize is net/http's bufferBeforeChunkingSize.
const stageSize = 2048

var stagePool = sync.Pool{New: func() any { b := make([]byte, 0, stageSize); return &b }}

func (w *response) reset(c *conn, req *http.Request) {
	h := w.header // emptied after the last request
	if h == nil {
		h = make(http.Header, 8)
	}
	*w = response{c: c, req: req, header: h, contentLength: -1, isHEAD: req.Method == http.MethodHead}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.s.log.Debug("http: superfluous WriteHeader call", "code", code)
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.continuePending = false
	w.wroteHeader = true
	w.status = code
	if cl := get(w.header, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.s.log.Debug("http: invalid Content-Length", "value", cl)
			w.header.Del("Content-Length")
		}
	}
	// The media fast path: nothing left to decide from the body.
	if w.contentLength >= 0 && w.req.ContentLength == 0 && w.header["Content-Type"] != nil {
		w.commit(nil)
	}
}

// writeInformational sends a 1xx (103 Early Hints, or 100 Continue when
// the handler sends it itself) at once.
func (w *response) writeInformational(code int) {
	if code == http.StatusContinue {
		if !w.continuePending {
			return
		}
		w.continuePending = false
	}
	if !w.deadlineSet {
		w.c.clearStaleWriteDeadline()
	}
	bw := w.c.b.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code)
	writeFields(bw, w.header, excludedNoBody)
	bw.WriteString("\r\n")
	w.c.flush()
}

var (
	excludedNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}
	excluded304    = map[string]bool{"Content-Type": true, "Content-Length": true, "Transfer-Encoding": true}
)

func bodyAllowedForStatus(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

// commit decides the framing and writes the header into the connection's
// buffer. p is the body the handler has written so far (for sniffing and,
// when the handler is done, Content-Length).
func (w *response) commit(p []byte) {
	w.committed = true
	if !w.deadlineSet {
		w.c.clearStaleWriteDeadline()
	}
	h := w.header
	req := w.req
	code := w.status
	bodyOK := bodyAllowedForStatus(code)
	te := get(h, "Transfer-Encoding")
	hasTE := te != ""
	var exclude map[string]bool
	drop := func(k string) {
		if _, ok := h[k]; !ok {
			return
		}
		if exclude == nil {
			exclude = map[string]bool{}
		}
		exclude[k] = true
	}
	var extraCL []byte
	var extraCT, extraConn string

	if w.handlerDone && !hasTE && bodyOK && h["Content-Length"] == nil && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		var buf [20]byte
		extraCL = strconv.AppendInt(buf[:0], int64(len(p)), 10)
	}
	hasCL := w.contentLength != -1

	// Keep-alive: HTTP/1.1 unless the client said close; HTTP/1.0 only
	// when it asked and the length is known.
	connHdr := get(h, "Connection")
	if wantsHTTP10KeepAlive(req) && !w.c.s.closing.Load() && (w.isHEAD || hasCL || !bodyOK) {
		if _, set := h["Connection"]; !set {
			extraConn = "keep-alive"
		}
	} else if !req.ProtoAtLeast(1, 1) || req.Close {
		w.closeAfter = true
	}
	if hasToken(connHdr, "close") || w.c.s.closing.Load() {
		w.closeAfter = true
	}
	if w.expectContinue && !w.body.sawEOF {
		// The client may or may not send the rest of a body we did not
		// read: the connection is out of step.
		w.closeAfter = true
	}
	if req.ContentLength != 0 && !w.closeAfter && w.body != nil && !w.body.drain() {
		w.closeAfter = true
	}

	if bodyOK {
		_, haveType := h["Content-Type"]
		if !haveType && !hasTE && get(h, "Content-Encoding") == "" && len(p) > 0 {
			extraCT = http.DetectContentType(p)
		}
	} else {
		ex := excludedNoBody
		if code == http.StatusNotModified {
			ex = excluded304
		}
		for k := range ex {
			drop(k)
		}
	}
	if hasCL && hasTE && te != "identity" {
		drop("Content-Length")
		hasCL = false
		w.contentLength = -1
	}
	switch {
	case w.isHEAD || !bodyOK:
		drop("Transfer-Encoding")
	case hasCL:
		drop("Transfer-Encoding")
	case req.ProtoAtLeast(1, 1):
		if te == "identity" {
			w.closeAfter = true
		} else {
			w.chunked = true
		}
		drop("Transfer-Encoding")
	default:
		w.closeAfter = true
		drop("Transfer-Encoding")
	}
	if w.chunked {
		drop("Content-Length")
	}
	if w.closeAfter && !hasToken(connHdr, "close") && !(code == http.StatusSwitchingProtocols) {
		drop("Connection")
		if req.ProtoAtLeast(1, 1) {
			extraConn = "close"
		}
	}

	bw := w.c.b.bw
	writeStatusLine(bw, req.ProtoAtLeast(1, 1), code)
	writeFields(bw, h, exclude)
	if extraCT != "" {
		bw.WriteString("Content-Type: ")
		bw.WriteString(extraCT)
		bw.WriteString("\r\n")
	}
	if extraConn != "" {
		bw.WriteString("Connection: ")
		bw.WriteString(extraConn)
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(httpDate())
		bw.WriteString("\r\n")
	}
	if extraCL != nil {
		bw.WriteString("Content-Length: ")
		bw.Write(extraCL)
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// get is http.Header.Get for a key already in canonical form, without
// canonicalizing it again.
func get(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// writeFields writes h but the keys in exclude as Header.WriteSubset
// does (invalid field names dropped, CR and LF in values turned to
// spaces, values trimmed), but in map order: sorting the fields cost
// about 1% of a 64 KiB range request.
func writeFields(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	for k, vv := range h {
		if exclude[k] || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			// Two IndexByte scans (vectorized) rather than ContainsAny,
			// which builds a byte set on every call: 0.8% of a 64 KiB
			// range request's CPU over its seven header values.
			if strings.IndexByte(v, '\r') >= 0 || strings.IndexByte(v, '\n') >= 0 {
				v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(textproto.TrimString(v))
			bw.WriteString("\r\n")
		}
	}
}

func wantsHTTP10KeepAlive(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor == 0 && hasToken(get(r.Header, "Connection"), "keep-alive")
}

// hasToken reports whether the comma-separated list v has token t.
func hasToken(v, t string) bool {
	for v != "" {
		var f string
		f, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(f), t) {
			return true
		}
	}
	return false
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.WriteString(statusLineCode(code))
	if text := http.StatusText(code); text != "" {
		bw.WriteString(" ")
		bw.WriteString(text)
	} else {
		bw.WriteString(" status code ")
		bw.WriteString(strconv.Itoa(code))
	}
	bw.WriteString("\r\n")
}

// statusLineCode is strconv.Itoa without an allocation for the codes
// media serving answers with.
func statusLineCode(code int) string {
	switch code {
	case 200:
		return "200"
	case 206:
		return "206"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// dateCache holds the Date header value of the current second.
type dateCache struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[dateCache]

func httpDate() []byte {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &dateCache{sec: now.Unix(), b: now.UTC().AppendFormat(make([]byte, 0, 29), http.TimeFormat)}
	lastDate.Store(d)
	return d.b
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.continuePending = false
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if w.stage == nil {
			w.stage = stagePool.Get().(*[]byte)
		}
		if len(*w.stage)+len(p) <= stageSize {
			*w.stage = append(*w.stage, p...)
			return len(p), nil
		}
		if len(*w.stage) == 0 {
			w.commit(p)
		} else {
			w.commitStaged()
		}
	}
	return w.writeBody(p)
}

// commitStaged commits with the held-back bytes and writes them.
func (w *response) commitStaged() {
	var p []byte
	if w.stage != nil {
		p = *w.stage
	}
	w.commit(p)
	if len(p) > 0 {
		w.writeBody(p)
	}
	if w.stage != nil {
		*w.stage = (*w.stage)[:0]
		stagePool.Put(w.stage)
		w.stage = nil
	}
}

func (w *response) writeBody(p []byte) (int, error) {
	if w.isHEAD {
		return len(p), nil
	}
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	bw := w.c.b.bw
	if w.chunked {
		var buf [16]byte
		bw.Write(strconv.AppendInt(buf[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.sent(int64(n))
	if w.chunked && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.c.writeFailed(err)
	}
	return n, err
}

// ReadFrom sends a body from src. Once the header is out, a file (or a
// LimitedReader over one) that fits the Content-Length goes to the
// connection's ReadFrom, which is sendfile(2) on TCP.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	var n int64
	if !w.committed {
		// Like net/http, the first bytes go through Write so that a
		// missing Content-Type can be sniffed.
		var buf [512]byte
		m, err := io.ReadFull(src, buf[:])
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return int64(m), werr
			}
		}
		n += int64(m)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		w.commitStaged()
	}
	if f, ok := w.sendfileSource(src); ok {
		// The header goes out by a write of its own. Sending it with
		// MSG_MORE, so that it rode in the body's first segment, saved a
		// segment per request but cost 5-10 µs more kernel CPU per 64 KiB
		// range (measured alternately under make bench-edge's load).
		if err := w.c.flush(); err != nil {
			return n, err
		}
		m, handled, err := w.c.sendFileFrom(f)
		if !handled && w.stallEvery == 0 {
			// The connection's own ReadFrom would not move a stall
			// deadline (SetWriteStallTimeout): with one, copy below.
			m, err = w.c.rf.ReadFrom(f)
			handled = true
		}
		if handled {
			n += m
			w.written += m
			if err != nil {
				w.c.writeFailed(err)
			}
			return n, err
		}
	}
	pool := &copyPool
	if w.c.cork != nil {
		pool = &tlsCopyPool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	m, err := io.CopyBuffer(writerOnly{w}, readerOnly{src}, *bp)
	return n + m, err
}

var (
	copyPool    = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	tlsCopyPool = sync.Pool{New: func() any { b := make([]byte, tlsCopySize); return &b }}
)

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// sendfileSource returns src when it can go to sendfile without passing
// the Content-Length: a file, or a LimitedReader or SectionReader over
// one.
func (w *response) sendfileSource(src io.Reader) (io.Reader, bool) {
	if w.c.rf == nil || w.chunked || w.isHEAD || !bodyAllowedForStatus(w.status) || w.c.werr != nil {
		return nil, false
	}
	var limit int64 = -1
	var f any = src
	switch r := src.(type) {
	case *io.LimitedReader:
		limit, f = r.N, r.R
	case *io.SectionReader:
		var size int64
		f, _, size = r.Outer()
		pos, _ := r.Seek(0, io.SeekCurrent)
		limit = max(size-pos, 0)
	}
	if _, ok := f.(*os.File); !ok {
		return nil, false
	}
	if w.contentLength == -1 {
		return src, true
	}
	left := w.contentLength - w.written
	if limit < 0 || limit > left {
		return nil, false // let Write report ErrContentLength
	}
	return src, true
}

// FlushError sends what is buffered, the header first.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commitStaged()
	}
	return w.c.flush()
}

func (w *response) Flush() { w.FlushError() }

func (w *response) SetWriteDeadline(t time.Time) error {
	w.deadlineSet = true
	return w.c.setWriteDeadline(t, false)
}

// SetWriteStallTimeout makes the write deadline follow the body for the
// rest of the response: it is set to d from now at once, and again each
// time another every bytes of the body have gone out. A client that takes
// fewer than every bytes in d is cut off; one that keeps taking them is
// not, however long the body. It gives a handler the per-chunk deadlines
// of a loop that moves the deadline between chunks, without cutting a
// file range into chunks: a whole range goes to one ReadFrom, one
// sendfile(2) loop.
func (w *response) SetWriteStallTimeout(every int64, d time.Duration) error {
	w.deadlineSet = true
	w.stallEvery, w.stallLeft, w.stallTimeout = every, every, d
	return w.c.setWriteDeadline(time.Now().Add(d), false)
}

// sent counts n body bytes gone out against SetWriteStallTimeout's
// allowance and moves the deadline when it is used up. It may run inside
// the socket's RawConn.Write callback (sendFile): moving a deadline takes
// no lock that the callback holds.
func (w *response) sent(n int64) {
	if w.stallEvery <= 0 {
		return
	}
	if w.stallLeft -= n; w.stallLeft <= 0 {
		w.stallLeft = w.stallEvery
		w.c.setWriteDeadline(time.Now().Add(w.stallTimeout), false)
	}
}

func (w *response) SetReadDeadline(t time.Time) error {
	w.readDeadlineSet = true
	return w.c.setReadDeadline(t)
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commitStaged()
	}
	if w.chunked && !w.isHEAD && w.c.werr == nil {
		w.c.b.bw.WriteString("0\r\n\r\n")
	}
	w.c.flush()
	if !w.isHEAD && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.written != w.contentLength {
		w.closeAfter = true // the client would read the next answer as body
	}
	if w.body != nil && !w.closeAfter && !w.body.sawEOF {
		// The handler read part of the body after the header went out.
		if !w.body.drain() {
			w.closeAfter = true
		}
	}
	// A deadline the handler set stays until the next response that
	// sets none is written (clearStaleWriteDeadline): clearing it here
	// would cost a timer update on every request of a handler that sets
	// one each time.
}

func (c *conn) flush() error {
	if c.werr != nil {
		return c.werr
	}
	err := c.b.bw.Flush()
	if err == nil && c.cork != nil {
		err = c.cork.flush()
	}
	if err != nil {
		c.writeFailed(err)
		return err
	}
	return nil
}

// writeFailed records a broken connection: the request's context is
// cancelled, as the client has gone or stalled.
func (c *conn) writeFailed(err error) {
	if c.werr == nil {
		c.werr = err
		c.cancel()
	}
}
