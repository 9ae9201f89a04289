// Package edge provides an appliance's HTTP content serving: signed URLs at
// /c/{token}/{title}/{file}, RFC 9110 byte ranges, conditional requests on
// a strong ETag from the content hash, an access log and Prometheus
// metrics. The serving path is our own rather than http.ServeContent so
// that every decision below is ours, documented, and checked against nginx
// (nginx_test.go).
//
// # Ranges (RFC 9110 §14)
//
//   - Single ranges, suffix ranges (bytes=-N) and open-ended ranges
//     (bytes=N-) answer 206 with Content-Range. A last-byte-pos past the
//     end, even one too large for int64, is clamped to the last byte, as
//     the RFC says (nginx answers 416 when it overflows int64).
//   - No satisfiable range: 416 with Content-Range: bytes */size.
//   - Unsatisfiable specs among satisfiable ones are dropped; if one range
//     is left it is sent as a single part.
//   - Several ranges: multipart/byteranges in the order asked, not
//     coalesced, with an exact Content-Length.
//   - Ignored (200 with the whole object): a malformed header (unknown
//     unit, bad syntax, first > last; nginx answers 416 to some), more than
//     MaxRanges (32) specs, or ranges adding up to more than the object.
//     The last two are range-amplification patterns; ignoring them means no
//     response is ever larger than the object plus bounded part headers.
//   - A zero-length object is always served whole (no Content-Range can
//     name an empty range).
//   - HEAD answers exactly as GET would, headers and Content-Length
//     included, without a body (so HEAD with Range is 206, like nginx).
//
// # Validators and conditionals (RFC 9110 §13)
//
// The only validator is the strong ETag "<sha256 of the content>", the
// same on every appliance holding the object. There is no Last-Modified:
// the file time is when this appliance filled it and differs between
// the appliances a client fails over between. Hence If-Modified-Since and
// If-Unmodified-Since are ignored and an If-Range date never matches (200
// whole). If-Match (strong) → 412, If-None-Match (weak) → 304, If-Range
// with an entity-tag → strong comparison; evaluated in the RFC's order.
//
// # Hardening
//
// Only GET and HEAD (405 with Allow otherwise). Object paths must be
// exactly title/file with catalog-safe segments and no percent-encoding
// in them, or the answer is 404 before any store lookup; the store is only
// ever asked for index entries, never for a path on disk. Bad tokens are
// 403. Each 1 MiB of body gets a fresh write deadline (StallTimeout), so
// stalled readers are cut off but slow ones are not (internal/serve/h1
// moves it itself as the body goes out, SetWriteStallTimeout; under
// net/http the handler moves it between 1 MiB chunks through
// http.ResponseController);
// header, body and idle timeouts and the 431 header limit are in package
// serve (internal/serve/h1).
//
// # Speed
//
// A range's body goes out as one io.SectionReader of the *os.File at its
// offset (in 1 MiB chunks under net/http, see Hardening). The appliance
// runs under our own HTTP/1.1 server (internal/serve/h1), whose
// ResponseWriter has already written the header into its buffer when
// Content-Length and Content-Type are set (always, here), so on plain
// HTTP the range reaches its ReadFrom and becomes one header write and
// one sendfile(2) at the range's offset, as nginx sends it, with no
// lseek(2) (sent in 1 MiB chunks, a 2 MiB range took two sendfiles and
// two trips down the writer chain); an idle keep-alive connection there
// holds no buffers, so 10,000 of them cost about 6 KB each.
// Over TLS the range is read in 64 KiB pieces and crypto/tls's records
// are written 64 KiB at a time; HTTP/2 goes to net/http. Verified token
// grants are cached (HMAC once per token) and object descriptors are
// kept open between requests (fileCache), both invalidated safely; see
// tokens.go and files.go.
package edge
