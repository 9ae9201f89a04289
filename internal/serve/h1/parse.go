package serve

import (
	"bytes"
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// parseSimple parses the common request, a body-less GET or HEAD-like
// request whose whole header is in buf, in about half the time of
// http.ReadRequest and with fewer allocations: one string holds the header
// block and every value is a slice of it. It gives up (ok false, nothing
// consumed) on anything it does not fully understand, and
// http.ReadRequest then parses the request as before: a body (Content-Length, Transfer-Encoding), a header line
// that is folded, ends in a bare LF or carries a byte a token or a field
// value may not hold, a target not in origin form ("/path?query"),
// duplicate Host headers, or a Pragma header (which ReadRequest rewrites).
// When it succeeds its request equals ReadRequest's (a fuzz test checks)
// and n is the header's length in buf.
func parseSimple(ctx context.Context, buf []byte) (req *http.Request, n int, ok bool) {
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false
	}
	block := string(buf[:end+2]) // every line with its CRLF
	n = end + 4

	line, rest := cutLine(block)
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || method == "" || !httpguts.ValidHeaderFieldName(method) || method == http.MethodConnect {
		return nil, 0, false
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, 0, false
	}
	// NewRequestWithContext gives the request its context without the
	// copy WithContext makes, and an empty URL and header map to fill.
	req, err := http.NewRequestWithContext(ctx, method, "", nil)
	if err != nil || !parseTarget(req.URL, target) {
		return nil, 0, false
	}
	req.RequestURI = target
	req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, minor
	req.Body = http.NoBody

	// Count the header lines first so their values share one slice.
	lines := strings.Count(rest, "\n")
	h := req.Header
	values := make([]string, lines)
	for i := 0; rest != ""; i++ {
		line, rest = cutLine(rest)
		name, value, found := strings.Cut(line, ":")
		if !found || name == "" || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, 0, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Content-Length", "Transfer-Encoding", "Trailer", "Pragma":
			return nil, 0, false
		}
		values[i] = strings.Trim(value, " \t") // as textproto trims
		if old, dup := h[key]; dup {
			if key == "Host" {
				return nil, 0, false
			}
			h[key] = append(old, values[i])
		} else {
			h[key] = values[i : i+1 : i+1]
		}
	}
	// ReadRequest moves the Host header to req.Host.
	if v := h["Host"]; len(v) > 0 {
		req.Host = v[0]
		delete(h, "Host")
	}
	conn := h["Connection"]
	req.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	return req, n, true
}

// parseTarget parses an origin-form request target ("/path?query") into
// u as url.ParseRequestURI does, doing the work itself when the path
// holds only bytes that need no unescaping and that URL.EscapedPath keeps
// as they are.
func parseTarget(u *url.URL, target string) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return parseRequestURI(u, target)
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c <= ' ' || c >= 0x7f {
			return parseRequestURI(u, target)
		}
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return true
}

func parseRequestURI(u *url.URL, target string) bool {
	v, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	*u = *v
	return true
}

// plainPathByte marks the bytes of a path that url.ParseRequestURI keeps
// as they are: unreserved characters and the sub-delimiters, '/', ':' and
// '@' that a path may hold unescaped.
var plainPathByte = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/:@$&+,;=") {
		t[c] = true
	}
	return t
}()

// cutLine splits off the first line, which must end in CRLF. A line
// ending in a bare LF comes back as "\r", which fails every check its
// caller makes, as does a CR inside a line.
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "\r", ""
	}
	return s[:i-1], s[i+1:]
}
