package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// BufferedWriter batches access-log lines so that a request costs a memory
// copy rather than a write(2). Lines reach the file within the flush
// interval, or as soon as the buffer (1 MiB by default) is full. The file write happens
// outside the lock that appenders take, so serving never waits on the
// disk unless a whole second buffer fills during one write. Safe for
// concurrent use; lines are never interleaved or reordered.
type BufferedWriter struct {
	w    io.Writer
	size int

	mu    sync.Mutex // guards buf and spare
	buf   []byte
	spare []byte
	wmu   sync.Mutex // serializes writes to w, taken while holding mu
}

// NewBufferedWriter buffers up to size bytes (default 1 MiB) for w.
//
// The default is sized for the Go runtime rather than the disk: a write
// to a file is a blocking system call, and one that finds every P idle
// a moment before wakes the runtime's monitor thread, which then polls
// every 20 us for a millisecond. At 64 KiB a loaded appliance (3 MB/s of
// log lines) wrote ~46 times a second and its monitor woke 1,000 times a
// second for 28 ms of CPU (its thread's schedstat under make bench-edge's
// 64 KiB load: 1.8 us of a request's ~35); at 1 MiB it woke 400 times
// for 14 ms (0.8 us a request). The one-second flush bounds what a crash
// loses either way.
func NewBufferedWriter(w io.Writer, size int) *BufferedWriter {
	if size <= 0 {
		size = 1 << 20
	}
	return &BufferedWriter{w: w, size: size, buf: make([]byte, 0, size+1024)}
}

// Write implements io.Writer. A slog handler writes one whole record per
// call, so lines are never split.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf = append(b.buf, p...)
	if len(b.buf) < b.size {
		b.mu.Unlock()
		return len(p), nil
	}
	if err := b.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() error {
	b.mu.Lock()
	if len(b.buf) == 0 {
		b.mu.Unlock()
		return nil
	}
	return b.flushLocked()
}

// flushLocked swaps the buffer out, releases mu and writes it.
func (b *BufferedWriter) flushLocked() error {
	full := b.buf
	b.buf = b.spare[:0]
	b.spare = nil
	b.wmu.Lock() // before releasing mu: buffers are written in swap order
	b.mu.Unlock()
	_, err := b.w.Write(full)
	b.wmu.Unlock()
	b.mu.Lock()
	if b.spare == nil {
		b.spare = full[:0]
	}
	b.mu.Unlock()
	return err
}

// FlushEvery flushes every d until ctx ends, then once more. The caller
// owns it as a goroutine and waits for it before closing the file.
func (b *BufferedWriter) FlushEvery(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-t.C:
			b.Flush()
		}
	}
}

// NewAccessLogger returns a logger for Config.AccessLog that writes the
// same logfmt lines as slog.NewTextHandler(w, nil), but formats the
// per-request record directly: through slog's generic machinery the
// access log cost a sixth of the appliance's throughput on 64 KiB ranges.
// Other records (and attributes added with With) go through slog.
func NewAccessLogger(w io.Writer) *slog.Logger {
	return slog.New(&accessHandler{w: w, text: slog.NewTextHandler(w, nil)})
}

type accessHandler struct {
	w      io.Writer
	text   slog.Handler
	prefix []byte // attributes from WithAttrs, already formatted
}

func (a *accessHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return a.text.Enabled(ctx, l)
}

func (a *accessHandler) Handle(ctx context.Context, r slog.Record) error {
	return a.text.Handle(ctx, r)
}

func (a *accessHandler) WithAttrs(as []slog.Attr) slog.Handler {
	p := append([]byte(nil), a.prefix...)
	for _, at := range as {
		p = appendKV(p, at.Key, at.Value.String())
	}
	return &accessHandler{w: a.w, text: a.text.WithAttrs(as), prefix: p}
}

func (a *accessHandler) WithGroup(name string) slog.Handler {
	return a.text.WithGroup(name) // groups are not used on the fast path
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// access writes one access record, the fast way.
func (a *accessHandler) access(now time.Time, r *http.Request, p string, status int, n int64, d time.Duration) {
	bp := linePool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, "time="...)
	b = appendStamp(b, now)
	b = append(b, " level=INFO msg=access"...)
	b = append(b, a.prefix...)
	b = appendKV(b, "client", r.RemoteAddr)
	b = appendKV(b, "method", r.Method)
	b = appendKV(b, "path", p)
	b = appendKV(b, "range", headerValue(r.Header, "Range"))
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, " duration_us="...)
	b = strconv.AppendInt(b, d.Microseconds(), 10)
	b = appendKV(b, "proto", r.Proto)
	b = append(b, '\n')
	a.w.Write(b)
	*bp = b
	linePool.Put(bp)
}

// stampSecond is the access log's timestamp of one second, formatted:
// what comes before the milliseconds and the zone after them.
type stampSecond struct {
	unix         int64
	loc          *time.Location
	before, zone []byte
}

var lastStamp atomic.Pointer[stampSecond]

// appendStamp appends t as slog's TextHandler writes a record's time
// (2006-01-02T15:04:05.000Z07:00). Only the milliseconds are formatted
// per line: formatting the whole time, calendar and zone, was about 2%
// of the appliance's CPU on 64 KiB ranges. A second's zone offset is one
// value, so the cached parts are exact for every line of that second.
func appendStamp(b []byte, t time.Time) []byte {
	s := lastStamp.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		s = &stampSecond{unix: t.Unix(), loc: t.Location(),
			before: t.AppendFormat(nil, "2006-01-02T15:04:05."), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(s)
	}
	ms := t.Nanosecond() / 1e6
	b = append(b, s.before...)
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	return append(b, s.zone...)
}

// appendKV appends " key=value", quoting value as slog's TextHandler does.
func appendKV(b []byte, k, v string) []byte {
	b = append(b, ' ')
	b = append(b, k...)
	b = append(b, '=')
	if needsQuoting(v) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// needsQuoting mirrors log/slog: empty, or any space, '"', '=', or
// non-printable character (including invalid UTF-8).
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '"' || c == '=' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
