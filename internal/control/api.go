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

// maxBody bounds request bodies; the largest legitimate one is a
// heartbeat listing every file an appliance holds.
const maxBody = 8 << 20

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
	mux.HandleFunc("GET /v1/routes/consistency", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Consistency()) })
	mux.HandleFunc("GET /v1/appliances", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Appliances()) })
	s.mountMeasure(mux)
	s.mountFill(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

func (s *Server) handleSteer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.steerLatency.Observe(time.Since(start).Seconds()) }()
	q := r.URL.Query()
	fail := func(code int, format string, args ...any) {
		s.metrics.steerBad.Inc()
		http.Error(w, fmt.Sprintf(format, args...), code)
	}
	client, err := remoteAddr(r)
	if err != nil {
		fail(http.StatusBadRequest, "client address: %v", err)
		return
	}
	admin := s.isAdmin(r)
	if c := q.Get("client"); c != "" {
		if !admin {
			fail(http.StatusForbidden, "client=: needs an admin token")
			return
		}
		if client, err = netip.ParseAddr(c); err != nil {
			fail(http.StatusBadRequest, "client=%q: not an IP address", c)
			return
		}
	}
	explain := q.Get("explain") == "1"
	if explain && !admin {
		fail(http.StatusForbidden, "explain=1: needs an admin token")
		return
	}
	n := 5
	if v := q.Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 20 {
			fail(http.StatusBadRequest, "n=%q: want a number from 1 to 20", v)
			return
		}
	}
	raw := q.Get("files")
	if raw == "" {
		fail(http.StatusBadRequest, "files=: name at least one file as title/file")
		return
	}
	paths := strings.Split(raw, ",")
	if len(paths) > 100 {
		fail(http.StatusBadRequest, "files=: at most 100 files per request")
		return
	}
	for _, p := range paths {
		if err := content.ValidatePath(p); err != nil {
			fail(http.StatusBadRequest, "files=: %v", err)
			return
		}
		if _, err := s.cfg.Catalog.Lookup(p); err != nil {
			fail(http.StatusNotFound, "files=: %v", err)
			return
		}
	}
	snap := s.snap.Load()
	resp := api.SteerResponse{Client: client.String(), Files: make([]api.FileSteer, len(paths))}
	if explain {
		for i, p := range paths {
			choices, why, err := s.engine.Steer(snap, client, p, n, true)
			if err != nil {
				s.steerFailed(w, err)
				return
			}
			resp.Files[i] = api.FileSteer{Path: p, URLs: choices, Explanation: why}
		}
		s.metrics.steerOK.Inc()
		writeJSON(w, resp)
		return
	}
	// The hot path: every file's choices go into one recycled slice and
	// the answer into a recycled buffer, so a decision allocates only its
	// URLs.
	bufs := steerBufs.Get().(*steerBuf)
	defer steerBufs.Put(bufs)
	choices := bufs.choices[:0]
	for i, p := range paths {
		start := len(choices)
		var err error
		if choices, err = s.engine.AppendSteer(choices, snap, client, p, n); err != nil {
			s.steerFailed(w, err)
			return
		}
		var urls []steer.Choice
		if len(choices) > start {
			urls = choices[start:len(choices):len(choices)]
		}
		resp.Files[i] = api.FileSteer{Path: p, URLs: urls}
	}
	s.metrics.steerOK.Inc()
	b := appendSteerJSON(bufs.json[:0], &resp)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
	clear(choices) // drop the URLs for the collector
	bufs.choices, bufs.json = choices[:0], b[:0]
}

func (s *Server) steerFailed(w http.ResponseWriter, err error) {
	s.log.Error("steer", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// steerBufs recycles the choices and response buffer of the steering hot
// path.
var steerBufs = sync.Pool{New: func() any { return &steerBuf{json: make([]byte, 0, 2048)} }}

type steerBuf struct {
	choices []steer.Choice
	json    []byte
}

// appendSteerJSON encodes a steering answer without explanations exactly
// as encoding/json would (a test checks), without reflection: the answer
// is on every playback's critical path.
func appendSteerJSON(b []byte, r *api.SteerResponse) []byte {
	b = append(b, `{"client":`...)
	b = appendJSONString(b, r.Client)
	b = append(b, `,"files":[`...)
	for i, f := range r.Files {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"path":`...)
		b = appendJSONString(b, f.Path)
		b = append(b, `,"urls":`...)
		if f.URLs == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for j, c := range f.URLs {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"url":`...)
				b = appendJSONString(b, c.URL)
				b = append(b, `,"appliance":`...)
				b = appendJSONString(b, c.Appliance)
				b = append(b, `,"site":`...)
				b = appendJSONString(b, c.Site)
				b = append(b, `,"reason":`...)
				b = appendJSONString(b, c.Reason)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

// appendJSONString quotes s as encoding/json does (including its escaping
// of <, > and & for HTML safety).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
