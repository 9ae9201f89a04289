package h1

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
)

// Over TLS there is no sendfile: a body is read into a buffer, encrypted
// by crypto/tls in records of at most 16 KiB, and each record is written
// to the socket by a write(2) of its own. For a 2 MiB range that was 64
// reads and 128 writes, and on a machine where a system call costs a few
// microseconds that is a fifth of the appliance's CPU per request. So
// the TLS connection runs over a corkConn, which holds the records
// crypto/tls writes while the server is writing a response and sends
// them in one write(2) once tlsCorkLimit bytes are held or the server
// flushes; and the body is copied in 64 KiB reads (tlsCopySize). A
// response's header goes out in the same write as its body's first
// records.

// tlsCorkLimit is how many bytes of records a corkConn holds before it
// writes them.
const tlsCorkLimit = 64 << 10

// tlsCopySize is the read size when a body is copied from a file to a
// TLS connection: four full records per read. A connection holds it (and
// the cork's buffer) only while it copies.
const tlsCopySize = 64 << 10

// corkConn is the TCP connection under a server's tls.Conn. Writes made
// while hold is set are gathered; any other write (the handshake, alerts,
// HTTP/2 after a hand-over) goes out at once, after what is gathered.
type corkConn struct {
	net.Conn
	hold atomic.Bool

	mu  sync.Mutex // guards buf: tls.Conn.Close may write an alert from another goroutine
	buf *[]byte    // gathered records; from corkPool, nil when empty
}

// Accepted is the connection the listener returned under tc, a server's
// TLS connection that h1 made over its cork (as those it hands to
// Config.H2) or net/http made: for a ConnContext of net/http's, which is
// handed tc, to get what h1's own ConnContext is handed.
func Accepted(tc *tls.Conn) net.Conn {
	c := tc.NetConn()
	if cork, ok := c.(*corkConn); ok {
		return cork.Conn
	}
	return c
}

// A held buffer passes the limit by at most one record (16 KiB and its
// overhead).
var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, tlsCorkLimit+17<<10); return &b }}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hold.Load() {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = corkPool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	if len(*c.buf) >= tlsCorkLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush writes what is gathered.
func (c *corkConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*b)
	*b = (*b)[:0]
	corkPool.Put(b)
	return err
}

// tlsWriter is a TLS connection's bufio.Writer destination: what it
// writes is gathered by the connection's corkConn until conn.flush.
type tlsWriter struct {
	tc   *tls.Conn
	cork *corkConn
}

func (w tlsWriter) Write(p []byte) (int, error) {
	w.cork.hold.Store(true)
	n, err := w.tc.Write(p)
	w.cork.hold.Store(false)
	return n, err
}
