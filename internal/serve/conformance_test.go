package serve

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/nginxtest"
)

// framingCase is one request, sent with a pipelined GET /second behind it
// in the same write. want is what the lean server must do; nginx, when
// set, is what nginx does instead, and why says why we differ.
type framingCase struct {
	name, raw string
	want      string
	nginx     string
	why       string
}

// The outcome of a case is the status of every response read until the
// server closed the connection; "open" at the end if it neither answered
// nor closed within 10s. The pipelined request asks Connection: close, so
// a server that keeps the connection after the first request answers it
// and then closes: "200 200" means the pipelined request was served, a
// single status that the connection was closed after the first answer.
const pipelined = "GET /second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

var framingCases = []framingCase{
	// Well-formed: both requests are served.
	{name: "plain GET", raw: "GET /first HTTP/1.1\r\nHost: t\r\n\r\n", want: "200 200"},
	{name: "leading CRLF", raw: "\r\nGET /first HTTP/1.1\r\nHost: t\r\n\r\n", want: "200 200"},
	{name: "Content-Length body", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", want: "200 200"},
	{name: "Content-Length with OWS", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length:  5 \r\n\r\nhello", want: "200 200"},
	{name: "chunked body", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: "200 200"},
	{name: "chunked, TE upper case", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: "200 200"},
	{name: "chunked, TE after tab", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", want: "200 200",
		nginx: "501", why: "a tab before a field value is optional whitespace (RFC 9110 §5.5); nginx takes it as part of an unknown coding"},
	{name: "chunk extension", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0;c\r\n\r\n", want: "200 200"},
	{name: "chunk size with leading zeros, upper-case hex", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n000A\r\n0123456789\r\n0\r\n\r\n", want: "200 200"},
	{name: "chunked trailer", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", want: "200 200"},
	{name: "absolute-form target", raw: "GET http://t/first HTTP/1.1\r\nHost: t\r\n\r\n", want: "200 200"},
	{name: "HTTP/1.0 keep-alive", raw: "GET /first HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", want: "200 200"},
	{name: "HTTP/1.0 without Host", raw: "GET /first HTTP/1.0\r\n\r\n", want: "200"},

	// Content-Length and Transfer-Encoding together (RFC 9112 §6.1: the
	// server MUST close after answering; both refuse it).
	{name: "CL then TE", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: "400"},
	{name: "TE then CL", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", want: "400"},
	{name: "CL.TE smuggling", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", want: "400"},
	{name: "TE.CL smuggling", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", want: "400"},
	{name: "CL: 0 with TE", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: "400"},

	// Transfer-Encoding values (RFC 9112 §6.1, §6.3, §7).
	{name: "TE in HTTP/1.0", raw: "GET /first HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: "400"},
	{name: "TE chunked twice", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: "400"},
	{name: "TE chunked not last", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", want: "400",
		nginx: "501", why: "RFC 9112 §6.3: when chunked is not the final coding of a request the server MUST answer 400 and close"},
	{name: "TE identity", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n", want: "400",
		nginx: "501", why: "as above: no final chunked, so the length cannot be determined (RFC 9112 §6.3)"},
	{name: "TE xchunked", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", want: "400",
		nginx: "501", why: "as above"},
	{name: "TE gzip, chunked", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", want: "501"},
	{name: "TE empty", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \r\n\r\n", want: "400",
		nginx: "501", why: "no final chunked: the length cannot be determined (RFC 9112 §6.3)"},
	{name: "TE with space before colon", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", want: "400"},
	{name: "TE folded", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", want: "400"},

	// Content-Length values (RFC 9110 §8.6, RFC 9112 §6.3).
	{name: "duplicate CL, same value", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", want: "400"},
	{name: "duplicate CL, different values", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", want: "400"},
	{name: "CL list", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello", want: "400"},
	{name: "CL with sign", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello", want: "400"},
	{name: "CL negative", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", want: "400"},
	{name: "CL hex", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nhello", want: "400"},
	{name: "CL space inside", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 1 0\r\n\r\n", want: "400"},
	{name: "CL empty", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", want: "400"},
	{name: "CL overflow", raw: "GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", want: "400"},

	// Chunked framing (RFC 9112 §7.1).
	{name: "chunk size not hex", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk size negative", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk size 0x", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk size with leading space", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk size overflow", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff5\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk size line with bare LF", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", want: "400",
		nginx: "200 200", why: "RFC 9112 erratum 7633: a bare LF is not a chunk line terminator; a proxy in front may read the chunks differently"},
	{name: "chunk data longer than its size", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", want: "400"},
	{name: "chunk without CRLF after data", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n", want: "400"},
	{name: "last chunk without final CRLF, then a request", raw: "GET /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", want: "400",
		nginx: "200 open", why: "the pipelined request's lines are read as trailer fields: nginx takes them and then waits, so the pipelined request silently vanishes; we refuse a request line as a trailer field"},

	// Field syntax (RFC 9112 §5).
	{name: "obs-fold", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", want: "400"},
	{name: "space before colon", raw: "GET /first HTTP/1.1\r\nHost : t\r\n\r\n", want: "400"},
	{name: "space in field name", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n", want: "400"},
	{name: "line without colon", raw: "GET /first HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n", want: "400",
		nginx: "200 200", why: "nginx drops a line it cannot parse as a field (ignore_invalid_headers); to us it is a framing error"},
	{name: "bare LF line ends", raw: "GET /first HTTP/1.1\nHost: t\n\n", want: "400",
		nginx: "200 200", why: "RFC 9112 §2.2 lets a recipient accept a bare LF; we refuse it so that no proxy in front can split the header differently"},
	{name: "bare CR in a value", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", want: "400"},
	{name: "NUL in a value", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", want: "400"},
	{name: "control byte in a value", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n", want: "400",
		nginx: "200 200", why: "RFC 9110 §5.5 field values hold no control bytes but HTAB"},
	{name: "header too large", raw: "GET /first HTTP/1.1\r\nHost: t\r\nX-A: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", want: "431",
		nginx: "400", why: "RFC 6585 names 431 for this; nginx answers 400 (\"Request Header Or Cookie Too Large\")"},

	// Host (RFC 9112 §3.2).
	{name: "no Host", raw: "GET /first HTTP/1.1\r\n\r\n", want: "400"},
	{name: "two Hosts", raw: "GET /first HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n", want: "400"},
	{name: "empty Host", raw: "GET /first HTTP/1.1\r\nHost:\r\n\r\n", want: "400"},
	{name: "Host with a space", raw: "GET /first HTTP/1.1\r\nHost: a b\r\n\r\n", want: "400"},

	// Request line (RFC 9112 §3).
	{name: "two spaces after the method", raw: "GET  /first HTTP/1.1\r\nHost: t\r\n\r\n", want: "400",
		nginx: "200 200", why: "RFC 9112 §3 allows a lenient parser to accept whitespace runs; we take the grammar as written"},
	{name: "trailing space after the version", raw: "GET /first HTTP/1.1 \r\nHost: t\r\n\r\n", want: "400",
		nginx: "200 200", why: "as above"},
	{name: "tab as separator", raw: "GET\t/first HTTP/1.1\r\nHost: t\r\n\r\n", want: "400"},
	{name: "lower-case method", raw: "get /first HTTP/1.1\r\nHost: t\r\n\r\n", want: "405 200",
		nginx: "400", why: "methods are case-sensitive tokens (RFC 9110 §9.1): \"get\" is a valid, unknown method, which the handler answers 405"},
	{name: "lower-case version", raw: "GET /first http/1.1\r\nHost: t\r\n\r\n", want: "400"},
	{name: "HTTP/1.2", raw: "GET /first HTTP/1.2\r\nHost: t\r\n\r\n", want: "505",
		nginx: "200 200", why: "RFC 9110 §2.5 lets a server take a higher minor version as 1.1; we answer only the versions we implement"},
	{name: "HTTP/2.0 over HTTP/1 framing", raw: "GET /first HTTP/2.0\r\nHost: t\r\n\r\n", want: "505"},
	{name: "HTTP/0.9 request", raw: "GET /first\r\n\r\n", want: "400",
		nginx: "first", why: "nginx answers HTTP/0.9 with the bare file; we do not speak HTTP/0.9"},
	{name: "target without a slash", raw: "GET first HTTP/1.1\r\nHost: t\r\n\r\n", want: "400"},
	{name: "target with a control byte", raw: "GET /fi\x01rst HTTP/1.1\r\nHost: t\r\n\r\n", want: "400"},
	{name: "absolute-form with another scheme", raw: "GET ftp://t/first HTTP/1.1\r\nHost: t\r\n\r\n", want: "400",
		nginx: "200 200", why: "nginx ignores the scheme; only http and https name resources here"},
	{name: "asterisk-form GET", raw: "GET * HTTP/1.1\r\nHost: t\r\n\r\n", want: "400"},
	{name: "CONNECT", raw: "CONNECT t:443 HTTP/1.1\r\nHost: t\r\n\r\n", want: "405",
		nginx: "400", why: "405 says the method is known and not served here"},
}

// conformanceRoot is the document root nginx serves: /first and /second
// hold their names, as the lean server's handler answers.
func conformanceRoot(t *testing.T) string {
	root := t.TempDir()
	for _, name := range []string{"first", "second"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// staticLike answers as nginx's static module does: it reads the body
// (nginx discards it, and answers 400 to one it cannot decode), then
// GET and HEAD get the path's name, other methods 405.
var staticLike = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		code := http.StatusBadRequest
		if isTimeout(err) {
			code = http.StatusRequestTimeout
		}
		http.Error(w, err.Error(), code)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, strings.TrimPrefix(r.URL.Path, "/"))
})

// outcome sends raw with the pipelined request behind it and reports what
// came back (see pipelined).
func outcome(t *testing.T, dial func() (net.Conn, error), raw string) string {
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.WriteString(c, raw+pipelined) // the server may answer before reading it all
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var got []string
	for {
		if p, err := br.Peek(5); err != nil {
			if isTimeout(err) {
				got = append(got, "open")
			}
			break
		} else if string(p) != "HTTP/" {
			// An HTTP/0.9 answer: the bare body.
			b, _ := io.ReadAll(br)
			got = append(got, string(b))
			break
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			got = append(got, "unreadable")
			break
		}
		b, err := io.ReadAll(resp.Body)
		s := fmt.Sprint(resp.StatusCode)
		if err != nil {
			s += "(body: " + err.Error() + ")"
		}
		if resp.StatusCode == 200 && len(got) > 0 && string(b) != "second" {
			s += "(not the pipelined request: " + string(b) + ")"
		}
		got = append(got, s)
	}
	return strings.Join(got, " ")
}

// TestFramingAgainstNginx sends the smuggling and framing cases of RFC
// 9112 to the lean server, to nginx and to net/http, and compares what
// each does with the request and with the one pipelined behind it. The
// lean server must do what the case says; so must nginx unless the case
// names how and why it differs (docs/http-conformance.md lists those).
// Over TLS the lean server must do the same as over TCP. net/http's
// outcomes are logged, not asserted: it serves HTTP/1 only when a daemon
// asks for it (Options.NetHTTP).
func TestFramingAgainstNginx(t *testing.T) {
	root := conformanceRoot(t)
	ng := nginxtest.Start(t, root, "client_body_timeout 2s; client_header_timeout 2s;")
	lean, _, _ := start(t, staticLike, Options{BodyReadTimeout: 2 * time.Second, ReadHeaderTimeout: 2 * time.Second})
	std, _, _ := start(t, staticLike, Options{NetHTTP: true, BodyReadTimeout: 2 * time.Second, ReadHeaderTimeout: 2 * time.Second})
	cert, err := SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	overTLS, _, _ := start(t, staticLike, Options{TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		BodyReadTimeout: 2 * time.Second, ReadHeaderTimeout: 2 * time.Second})
	tcp := func(addr string) func() (net.Conn, error) {
		return func() (net.Conn, error) { return net.Dial("tcp", addr) }
	}
	dialTLS := func() (net.Conn, error) {
		return tls.Dial("tcp", overTLS.Addr().String(), trusting(cert, "http/1.1"))
	}
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-48s | %-10s | %-10s | %s\n", "case", "ocdn", "nginx", "net/http")
	for _, tc := range framingCases {
		got := outcome(t, tcp(lean.Addr().String()), tc.raw)
		gotNginx := outcome(t, tcp(ng.Addr), tc.raw)
		gotStd := outcome(t, tcp(std.Addr().String()), tc.raw)
		fmt.Fprintf(&table, "%-48s | %-10s | %-10s | %s\n", tc.name, got, gotNginx, gotStd)
		if got != tc.want {
			t.Errorf("%s: ocdn %q, want %q", tc.name, got, tc.want)
		}
		if got := outcome(t, dialTLS, tc.raw); got != tc.want {
			t.Errorf("%s: ocdn over TLS %q, want %q", tc.name, got, tc.want)
		}
		wantNginx := tc.want
		if tc.nginx != "" {
			wantNginx = tc.nginx
		}
		if gotNginx != wantNginx {
			t.Errorf("%s: nginx %q, want %q (ocdn: %q)", tc.name, gotNginx, wantNginx, tc.want)
		}
	}
	t.Log(table.String())
}
