package control

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/steer"
)

// Handler returns the control plane's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/steer", s.handleSteer)
	mux.HandleFunc("POST /v1/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("POST /v1/heartbeats", s.handleHeartbeats)
	mux.HandleFunc("POST /v1/admin/drain", s.handleAdmin(false))
	mux.HandleFunc("POST /v1/admin/enable", s.handleAdmin(true))
	mux.HandleFunc("GET /v1/keys", s.handleKeys)
	mux.HandleFunc("POST /v1/admin/keys/rotate", s.handleRotate)
	mux.HandleFunc("GET /v1/manifest", s.handleManifest)
	mux.HandleFunc("GET /v1/titles/{title}", s.handleTitle)
	mux.HandleFunc("POST /v1/routes", s.handleRoutes)
	mux.HandleFunc("GET /v1/routes/lookup", s.handleLookup)
	mux.HandleFunc("GET /v1/routes/consistency", s.adminOnly("routes consistency", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Consistency()) }))
	mux.HandleFunc("GET /v1/appliances", s.adminOnly("appliances", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Appliances()) }))
	mux.HandleFunc("GET /v1/steering/measured", s.adminOnly("measured steering", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.MeasuredStatus()) }))
	s.mountMeasure(mux)
	s.mountFill(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (s *Server) handleSteer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.steerLatency.Observe(time.Since(start)) }()
	var q [5]string
	queryValues(r.URL.RawQuery, steerKeys[:], q[:])
	clientArg, explainArg, nArg, filesArg, familyArg := q[0], q[1], q[2], q[3], q[4]
	fail := func(code int, format string, args ...any) {
		s.metrics.steerBad.Inc()
		http.Error(w, fmt.Sprintf(format, args...), code)
	}
	admin := s.isAdmin(r)
	var client netip.Addr
	var err error
	if clientArg == "" {
		if client, err = remoteAddr(r); err != nil {
			fail(http.StatusBadRequest, "client address: %v", err)
			return
		}
	} else {
		if !admin {
			fail(http.StatusForbidden, "client=: needs an admin token")
			return
		}
		if client, err = netip.ParseAddr(clientArg); err != nil {
			fail(http.StatusBadRequest, "client=%q: not an IP address", clientArg)
			return
		}
	}
	explain := explainArg == "1"
	if explain && !admin {
		fail(http.StatusForbidden, "explain=1: needs an admin token")
		return
	}
	n := 5
	if nArg != "" {
		if n, err = strconv.Atoi(nArg); err != nil || n < 1 || n > 20 {
			fail(http.StatusBadRequest, "n=%q: want a number from 1 to 20", nArg)
			return
		}
	}
	if filesArg == "" {
		fail(http.StatusBadRequest, "files=: name at least one file as title/file")
		return
	}
	family, ok := steer.ParseFamily(familyArg)
	if !ok {
		fail(http.StatusBadRequest, "family=%q: want ipv4, ipv6 or both (default: the client's own)", familyArg)
		return
	}
	// The answer is written from recycled slices into a recycled buffer,
	// URLs straight into it: a decision allocates nothing.
	bufs := steerBufs.Get().(*steerBuf)
	defer bufs.release()
	files := bufs.files[:0]
	for p := range strings.SplitSeq(filesArg, ",") {
		if len(files) == maxSteerFiles {
			fail(http.StatusBadRequest, "files=: at most %d files per request", maxSteerFiles)
			return
		}
		if err := content.ValidatePath(p); err != nil {
			fail(http.StatusBadRequest, "files=: %v", err)
			return
		}
		idx, ok := s.cfg.Catalog.Index(p)
		if !ok {
			_, err := s.cfg.Catalog.Lookup(p)
			fail(http.StatusNotFound, "files=: %v", err)
			return
		}
		files = append(files, steerFile{path: p, index: idx})
	}
	bufs.files = files
	snap := s.snap.Load()
	if explain {
		res := api.SteerResponse{Client: client.String(), Files: make([]api.FileSteer, len(files))}
		for i, f := range files {
			var err error
			if res.Files[i], err = s.explain(snap, client, family, f.path, n); err != nil {
				s.steerFailed(w, err)
				return
			}
		}
		s.metrics.steerOK.Inc()
		writeJSON(w, res)
		return
	}
	ranked := bufs.ranked[:0]
	arm := s.tokenArm(client)
	for i := range files {
		f := &files[i]
		var err error
		if f.token, err = s.engine.ArmToken(f.path, arm); err != nil {
			s.steerFailed(w, err)
			return
		}
		start := len(ranked)
		ranked = s.engine.AppendRankedFamily(ranked, snap, client, family, f.path, n)
		f.ranked = ranked[start:len(ranked):len(ranked)]
	}
	bufs.ranked = ranked
	s.observeSteer(snap, client, files)
	s.metrics.steerOK.Inc()
	bufs.json, bufs.url = appendSteerJSON(bufs.json[:0], bufs.url, client, family == steer.FamilyBoth, files)
	w.Header()["Content-Type"] = jsonContentType
	w.Write(bufs.json)
}

// Explain is the steering decision for client and the catalog file path
// with the reasoning for every appliance considered: what GET /v1/steer
// answers an admin with client= and explain=1. n bounds the URLs (1-20).
func (s *Server) Explain(client netip.Addr, path string, n int) (api.FileSteer, error) {
	if err := content.ValidatePath(path); err != nil {
		return api.FileSteer{}, err
	}
	if _, err := s.cfg.Catalog.Lookup(path); err != nil {
		return api.FileSteer{}, err
	}
	if n < 1 || n > 20 {
		return api.FileSteer{}, fmt.Errorf("n=%d: want a number from 1 to 20", n)
	}
	return s.explain(s.snap.Load(), client, steer.FamilyClient, path, n)
}

func (s *Server) explain(snap *steer.Snapshot, client netip.Addr, family steer.Family, path string, n int) (api.FileSteer, error) {
	fs := api.FileSteer{Path: path}
	var err error
	fs.URLs, fs.Explanation, err = s.engine.SteerFamily(snap, client, family, path, n, true)
	return fs, err
}

// maxSteerFiles bounds the files of one steering request.
const maxSteerFiles = 100

// jsonContentType is the Content-Type of JSON answers, set without
// canonicalizing the key on every request.
var jsonContentType = []string{"application/json"}

// steerKeys are the query parameters of GET /v1/steer.
var steerKeys = [...]string{"client", "explain", "n", "files", "family"}

func (s *Server) steerFailed(w http.ResponseWriter, err error) {
	s.log.Error("steer", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// steerBufs recycles the slices and buffers of the steering hot path.
var steerBufs = sync.Pool{New: func() any { return &steerBuf{json: make([]byte, 0, 2048)} }}

type steerBuf struct {
	files  []steerFile
	ranked []steer.Ranked
	json   []byte
	url    []byte // one URL at a time, on its way into json
}

// steerFile is one file of a steering answer: its ranked appliances and
// the token their URLs share.
type steerFile struct {
	path   string
	index  int // in the catalog
	token  string
	ranked []steer.Ranked
}

// release drops the answer's pointers for the collector and recycles the
// buffers.
func (b *steerBuf) release() {
	clear(b.files[:cap(b.files)]) // a failed request may have used more
	clear(b.ranked[:cap(b.ranked)])
	b.files, b.ranked = b.files[:0], b.ranked[:0]
	steerBufs.Put(b)
}

// appendSteerJSON writes a steering answer without explanations exactly
// as encoding/json writes the api.SteerResponse of the same decisions (a
// test checks), without reflection and without building the URLs as
// strings: each goes through url, which it returns for reuse. The answer
// is on every playback's critical path. With both (family=both) each
// choice also carries its URL of each family the appliance has.
func appendSteerJSON(b, url []byte, client netip.Addr, both bool, files []steerFile) ([]byte, []byte) {
	b = append(b, `{"client":`...)
	if client.Zone() == "" {
		// Digits, hex, '.' and ':' need no escaping.
		b = append(b, '"')
		b = client.AppendTo(b)
		b = append(b, '"')
	} else {
		b = appendJSONString(b, client.String())
	}
	b = append(b, `,"files":[`...)
	for i, f := range files {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"path":`...)
		b = appendJSONString(b, f.path)
		b = append(b, `,"urls":`...)
		if len(f.ranked) == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for j, r := range f.ranked {
				if j > 0 {
					b = append(b, ',')
				}
				url = steer.AppendURL(url[:0], r.Base, f.token, f.path)
				b = append(b, `{"url":`...)
				b = appendJSONString(b, url)
				if both {
					if base := r.Appliance.Base(steer.FamilyIPv4); base != "" {
						url = steer.AppendURL(url[:0], base, f.token, f.path)
						b = append(b, `,"url_ipv4":`...)
						b = appendJSONString(b, url)
					}
					if base := r.Appliance.Base(steer.FamilyIPv6); base != "" {
						url = steer.AppendURL(url[:0], base, f.token, f.path)
						b = append(b, `,"url_ipv6":`...)
						b = appendJSONString(b, url)
					}
				}
				b = append(b, `,"appliance":`...)
				b = appendJSONString(b, r.Appliance.ID)
				b = append(b, `,"site":`...)
				b = appendJSONString(b, r.Appliance.Site)
				b = append(b, `,"reason":`...)
				b = appendJSONString(b, r.Reason)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...), url
}

// jsonSafe marks the ASCII bytes encoding/json copies into a string
// unchanged (it escapes control characters, quote and backslash, and <, >
// and & for HTML safety). Bytes from 0x80 up are false: they need UTF-8
// checks.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// jsonSafeWord reports whether all eight bytes of s are jsonSafe, testing
// them as one word: a byte is unsafe when it is below 0x20, from 0x80 up,
// or one of " \\ < > & (each test is exact for "any byte of the word").
func jsonSafeWord[S string | []byte](s S) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	unsafe := w&hi | (w-0x20*lo)&^w&hi |
		zeroByte(w^'"'*lo) | zeroByte(w^'\\'*lo) | zeroByte(w^'<'*lo) | zeroByte(w^'>'*lo) | zeroByte(w^'&'*lo)
	return unsafe == 0
}

// zeroByte is non-zero when a byte of x is zero.
func zeroByte(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	return (x - lo) &^ x & hi
}

// appendJSONString quotes s as encoding/json does.
func appendJSONString[S string | []byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && jsonSafeWord(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most UTFMax bytes: the conversion of a []byte stays on the stack.
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// adminOnly serves h to operators (the admin token) only: it reveals the
// inventory, routes or fill plans.
func (s *Server) adminOnly(what string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.isAdmin(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ocdn"`)
			http.Error(w, what+": needs the admin token", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) isAdmin(r *http.Request) bool {
	if s.cfg.AdminToken == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.AdminToken)) == 1
}

func remoteAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

func (s *Server) handleTitle(w http.ResponseWriter, r *http.Request) {
	files := s.cfg.Catalog.TitleFiles(r.PathValue("title"))
	if len(files) == 0 {
		http.Error(w, fmt.Sprintf("title %q: not in the catalog", r.PathValue("title")), http.StatusNotFound)
		return
	}
	writeJSON(w, files)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The client went away; nothing to tell it.
		return
	}
}
