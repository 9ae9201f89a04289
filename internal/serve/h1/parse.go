package h1

import (
	"context"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// parseRequest parses a request header block: the request line and the
// field lines, each ending in CRLF, without the empty line that ends the
// header. It is the server's only request parser, so that every framing
// decision (RFC 9112 §6) is made here, in one place, and strictly: what a
// lenient parser would guess at is refused with 400 and the connection
// closed, because a guess that differs from a proxy's in front of us is
// how requests are smuggled.
//
// Refused (status in brackets; the connection is always closed after):
//   - a line that does not end in CRLF, or has a CR or NUL inside [400];
//   - a request line that is not exactly method SP target SP version, a
//     method that is not a token, a target with a control byte or space
//     [400]; a version other than HTTP/1.0 and HTTP/1.1 [505 when it looks
//     like one, else 400]; CONNECT [405]; a target in asterisk form with a
//     method other than OPTIONS, or in a form other than origin, absolute
//     (http or https) and asterisk [400];
//   - a field line folded onto the previous one (obs-fold), a name that is
//     not a token (including whitespace before the colon), a value with a
//     control byte [400];
//   - HTTP/1.1 without exactly one valid, non-empty Host [400]; two Host
//     fields in any version [400];
//   - Content-Length given twice (even with the same value), or not
//     1*DIGIT fitting an int64 [400];
//   - Transfer-Encoding in an HTTP/1.0 request, together with
//     Content-Length, without chunked as its last coding, or with chunked
//     twice [400]; with any coding other than chunked [501].
//
// A request it takes equals what http.ReadRequest makes of the same bytes
// (a fuzz test checks), except that trailers are read and dropped rather
// than exposed in Request.Trailer.
func parseRequest(ctx context.Context, block string) (*http.Request, error) {
	tmpl, err := newRequestTemplate(ctx)
	if err != nil {
		return nil, err
	}
	return parseRequestFrom(tmpl, block)
}

// newRequestTemplate is an empty request carrying ctx for
// parseRequestFrom. A connection makes one and parses all its requests
// from it.
func newRequestTemplate(ctx context.Context) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, "", nil)
}

// parsed is a request with its URL and the values of up to 4 header
// fields, allocated as one.
type parsed struct {
	req  http.Request
	url  url.URL
	vals [4]string
}

// parseRequestFrom is parseRequest for a request whose context is
// tmpl's (newRequestTemplate). A request is made by copying tmpl, the
// one way besides NewRequestWithContext to give a Request a context,
// which costs one allocation for the request, its URL and its header
// values, where NewRequestWithContext made three and parsed an empty URL.
func parseRequestFrom(tmpl *http.Request, block string) (*http.Request, error) {
	line, rest, ok := cutLine(block)
	if !ok {
		return nil, badRequest("request line not ending in CRLF")
	}
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 {
		return nil, badRequest("malformed request line")
	}
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, badRequest("invalid method")
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		if len(proto) == 8 && strings.HasPrefix(proto, "HTTP/") && isDigit(proto[5]) && proto[6] == '.' && isDigit(proto[7]) {
			return nil, statusError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
		}
		return nil, badRequest("malformed HTTP version")
	}
	if method == http.MethodConnect {
		return nil, statusError{http.StatusMethodNotAllowed, "CONNECT is not served"}
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return nil, badRequest("invalid byte in request target")
		}
	}
	p := &parsed{req: *tmpl}
	req := &p.req
	req.Method, req.URL = method, &p.url
	absolute := false
	switch {
	case target == "":
		return nil, badRequest("empty request target")
	case target[0] == '/':
		if !parseTarget(req.URL, target) {
			return nil, badRequest("malformed request target")
		}
	case target == "*":
		if method != http.MethodOptions {
			return nil, badRequest("asterisk-form target with a method other than OPTIONS")
		}
		*req.URL = url.URL{Path: "*"}
	default:
		if !parseRequestURI(req.URL, target) || req.URL.Host == "" ||
			!strings.EqualFold(req.URL.Scheme, "http") && !strings.EqualFold(req.URL.Scheme, "https") {
			return nil, badRequest("malformed request target")
		}
		absolute = true
	}
	req.RequestURI = target
	req.Proto, req.ProtoMajor, req.ProtoMinor = proto, 1, minor

	// Count the field lines first so that their values share one slice.
	n := strings.Count(rest, "\n")
	h := make(http.Header, n)
	req.Header = h
	values := p.vals[:]
	if n > len(values) {
		values = make([]string, n)
	}
	var hosts, lengths int
	var te []string
	for i := 0; rest != ""; i++ {
		if line, rest, ok = cutLine(rest); !ok {
			return nil, badRequest("header line not ending in CRLF")
		}
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			return nil, badRequest("folded header line")
		}
		name, value, found := strings.Cut(line, ":")
		if !found || !httpguts.ValidHeaderFieldName(name) {
			return nil, badRequest("malformed header line")
		}
		value = strings.Trim(value, " \t") // as textproto trims
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, badRequest("invalid header value")
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Host":
			hosts++
		case "Content-Length":
			lengths++
		case "Transfer-Encoding":
			te = append(te, value)
		}
		values[i] = value
		if old, dup := h[key]; dup {
			h[key] = append(old, value)
		} else {
			h[key] = values[i : i+1 : i+1]
		}
	}

	switch {
	case hosts > 1:
		return nil, badRequest("more than one Host header")
	case hosts == 0 && minor == 1:
		return nil, badRequest("missing required Host header")
	}
	if hosts == 1 {
		host := h["Host"][0]
		if !httpguts.ValidHostHeader(host) {
			return nil, badRequest("malformed Host header")
		}
		delete(h, "Host")
		req.Host = host
	}
	if absolute {
		// RFC 9112 §3.2.2: the target's authority overrides Host.
		req.Host = req.URL.Host
		if !httpguts.ValidHostHeader(req.Host) {
			return nil, badRequest("malformed host in request target")
		}
	}
	if req.Host == "" && minor == 1 {
		// An empty Host is refused like a missing one.
		return nil, badRequest("missing required Host header")
	}

	req.Body = http.NoBody
	switch {
	case te != nil:
		if err := checkTransferEncoding(te, minor, lengths); err != nil {
			return nil, err
		}
		delete(h, "Transfer-Encoding")
		req.TransferEncoding = []string{"chunked"}
		req.ContentLength = -1
	case lengths > 1:
		return nil, badRequest("more than one Content-Length header")
	case lengths == 1:
		n, ok := parseContentLength(h["Content-Length"][0])
		if !ok {
			return nil, badRequest("invalid Content-Length")
		}
		req.ContentLength = n
	}

	// As http.ReadRequest: Pragma: no-cache stands for Cache-Control.
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	conn := h["Connection"]
	req.Close = httpguts.HeaderValuesContainsToken(conn, "close") ||
		minor == 0 && !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	return req, nil
}

// checkTransferEncoding takes only "chunked", alone (RFC 9112 §6.1, §6.3,
// §7).
func checkTransferEncoding(te []string, minor, lengths int) error {
	if minor == 0 {
		return badRequest("Transfer-Encoding in an HTTP/1.0 request")
	}
	if lengths > 0 {
		return badRequest("both Content-Length and Transfer-Encoding")
	}
	var codings []string
	for _, v := range te {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.Trim(f, " \t"); f != "" {
				codings = append(codings, f)
			}
		}
	}
	n := len(codings)
	if n == 0 || !strings.EqualFold(codings[n-1], "chunked") {
		return badRequest("chunked is not the final transfer coding")
	}
	for _, c := range codings[:n-1] {
		if strings.EqualFold(c, "chunked") {
			return badRequest("chunked applied more than once")
		}
	}
	if n > 1 {
		return statusError{http.StatusNotImplemented, "unsupported transfer encoding"}
	}
	return nil
}

// parseContentLength takes 1*DIGIT that fits an int64: no sign, no
// spaces inside, no list.
func parseContentLength(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func badRequest(text string) statusError { return statusError{http.StatusBadRequest, text} }

// parseTarget parses an origin-form request target ("/path?query") into
// u as url.ParseRequestURI does, doing the work itself when the path
// holds only bytes that need no unescaping and that URL.EscapedPath keeps
// as they are.
func parseTarget(u *url.URL, target string) bool {
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

// cutLine splits off the first line, which must end in CRLF and hold no
// other CR and no NUL (ValidHeaderFieldValue catches the rest).
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' {
		return "", "", false
	}
	line = s[:i-1]
	if strings.IndexByte(line, '\r') >= 0 || strings.IndexByte(line, 0) >= 0 {
		return "", "", false
	}
	return line, s[i+1:], true
}
