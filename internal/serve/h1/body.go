package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// maxPostHandlerReadBytes is how much unread request body is skipped to
// keep a connection; more closes it (net/http's figure).
const maxPostHandlerReadBytes = 256 << 10

// maxChunkOverhead bounds what a chunked body may carry besides data
// (chunk-size lines, extensions, trailers) beyond 16 bytes per chunk and
// twice its data, so that a client cannot make the server read much for
// little (as net/http bounds it).
const maxChunkOverhead = 16 << 10

var (
	errBodyFraming = errors.New("malformed chunked request body")
	errChunkLine   = errors.New("chunk-size line too long")
)

// requestBody is a request's body as the handler reads it, from the
// connection's buffer: Content-Length bytes, or the chunked coding
// decoded, its trailer fields read and dropped. It sends 100 Continue on
// the first read when the client waits for one, and each read that has
// to wait for the client gets the body deadlines (connReader). Its Close
// reads nothing: the server skips what the handler left, if it has
// already arrived (drain).
type requestBody struct {
	c       *conn
	w       *response // set by serveRequest
	chunked bool
	// left is what remains of the body (Content-Length) or of the
	// current chunk; crlf is set when a chunk's data is done and its CRLF
	// is still to read.
	left   int64
	crlf   bool
	excess int64
	sawEOF bool
	err    error // sticky: a framing or read error puts us out of step
	closed bool
}

func newRequestBody(c *conn, req *http.Request) *requestBody {
	return &requestBody{c: c, chunked: req.ContentLength < 0, left: max(req.ContentLength, 0)}
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if w := b.w; w != nil && w.continuePending && !w.wroteHeader {
		w.continuePending = false
		w.c.b.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		w.c.flush()
	}
	return b.read(p)
}

// read reads the body with the connection's body deadlines.
func (b *requestBody) read(p []byte) (n int, err error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	r := &b.c.r
	r.body = true
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readLength(p)
	}
	r.body = false
	switch {
	case err == io.EOF:
		b.sawEOF = true
	case err != nil:
		b.err = err
	}
	return n, err
}

func (b *requestBody) readLength(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if b.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// readChunked decodes RFC 9112 §7.1: chunk-size [chunk-ext] CRLF, data,
// CRLF; last-chunk, trailer fields, CRLF. It returns what one chunk has
// ready rather than wait for the next chunk's line.
func (b *requestBody) readChunked(p []byte) (n int, err error) {
	br := b.c.b.br
	for n < len(p) {
		if b.crlf {
			if n > 0 && br.Buffered() < 2 {
				return n, nil
			}
			var end [2]byte
			if _, err := io.ReadFull(br, end[:]); err != nil {
				return n, unexpected(err)
			}
			if end != [2]byte{'\r', '\n'} {
				return n, errBodyFraming
			}
			b.crlf = false
		}
		if b.left == 0 {
			if n > 0 && !lineBuffered(br) {
				return n, nil
			}
			size, err := b.chunkSize(br)
			if err != nil {
				return n, err
			}
			if size == 0 {
				return n, b.readTrailer(br)
			}
			b.left = size
		}
		m, err := br.Read(p[n:min(int64(len(p)), int64(n)+b.left)])
		n += m
		b.left -= int64(m)
		if b.left == 0 {
			b.crlf = true
		}
		if err != nil {
			return n, unexpected(err)
		}
	}
	return n, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func lineBuffered(br *bufio.Reader) bool {
	p, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(p, '\n') >= 0
}

// chunkSize reads a chunk-size line: 1*HEXDIG that fits an int64, then
// optional whitespace and extensions, which are ignored but must hold
// no control byte.
func (b *requestBody) chunkSize(br *bufio.Reader) (int64, error) {
	line, err := readCRLFLine(br)
	if err != nil {
		return 0, err
	}
	var size int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i == 15 {
			return 0, errBodyFraming // more than 60 bits
		}
		size = size<<4 | int64(d)
	}
	if i == 0 {
		return 0, errBodyFraming
	}
	ext := bytes.TrimLeft(line[i:], " \t")
	if len(ext) > 0 && (ext[0] != ';' || !httpguts.ValidHeaderFieldValue(string(ext))) {
		return 0, errBodyFraming
	}
	b.excess += int64(len(line)) + 4 - 16 - 2*size
	b.excess = max(b.excess, 0)
	if b.excess > maxChunkOverhead {
		return 0, errBodyFraming
	}
	return size, nil
}

// readTrailer reads the trailer section after the last chunk, up to the
// final CRLF, and drops it; it returns io.EOF when the body is done.
func (b *requestBody) readTrailer(br *bufio.Reader) error {
	for {
		line, err := readCRLFLine(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return io.EOF
		}
		b.excess += int64(len(line)) + 2
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !httpguts.ValidHeaderFieldName(string(name)) ||
			!httpguts.ValidHeaderFieldValue(string(value)) || b.excess > maxChunkOverhead {
			return errBodyFraming
		}
	}
}

// readCRLFLine reads one line of at most bufSize bytes that ends in CRLF
// and holds no other CR, and returns it without the CRLF.
func readCRLFLine(br *bufio.Reader) ([]byte, error) {
	p, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errChunkLine
	case err != nil:
		return nil, unexpected(err)
	case len(p) < 2 || p[len(p)-2] != '\r' || bytes.IndexByte(p[:len(p)-2], '\r') >= 0:
		return nil, errBodyFraming
	}
	return p[:len(p)-2], nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (b *requestBody) Close() error {
	b.closed = true
	return nil
}

// drain skips what is left of the body, up to maxPostHandlerReadBytes,
// taking only bytes that have already arrived: the answer is not held
// back for a client that is slow to send, or never will. It reports
// whether the connection is still in step with the client.
func (b *requestBody) drain() bool {
	if b.sawEOF {
		return true
	}
	if b.err != nil {
		return false
	}
	r := &b.c.r
	r.nowait = true
	defer func() { r.nowait = false }()
	var buf [4096]byte
	for total := 0; total <= maxPostHandlerReadBytes; {
		n, err := b.read(buf[:])
		total += n
		switch {
		case err == io.EOF:
			return true
		case err != nil:
			return false
		}
	}
	return false // even more is left
}
