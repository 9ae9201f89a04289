// Package cptest provides the one fake control plane the tests of its
// clients (players, probes, speed tests) share: several replicas, each a
// real HTTP server on loopback, over one shared state, as real replicas
// share PostgreSQL. It serves the client side of the API —
// GET /v1/titles/{title} from a catalog, GET /v1/steer from a test's
// routing function, POST /v1/reports through a real measure.Ingester (so
// duplicate handling is the real one), and whatever else a test mounts
// with Handle — and lets a test inject the faults failover must survive,
// per replica: answering an error status, handling a request but losing
// its answer, or dying.
package cptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/steer"
)

// Config shapes a Plane. The zero value serves two replicas with reports
// only.
type Config struct {
	// Replicas is how many replicas serve the plane (default 2).
	Replicas int
	// Catalog, when set, answers GET /v1/titles/{title} (404 for a title
	// it does not hold, as the real control plane does).
	Catalog *content.Catalog
	// Steer, when set, answers GET /v1/steer: the ranked choices for file
	// on the call-th steering request the plane answers (counted from 0
	// across every replica, since replicas share state). The answer is
	// cut to the request's n.
	Steer func(call int, file string) []steer.Choice
}

// Plane is a fake control plane of several replicas.
type Plane struct {
	cfg      Config
	mux      *http.ServeMux
	replicas []*Replica

	// Stored receives each report id the first time the ingester stores
	// it (buffered; a test waits on it instead of polling).
	Stored chan string

	mu         sync.Mutex
	steerCalls int
	uploads    map[string]int // report id → uploads that reached the ingester
	stored     map[string]int // report id → uploads the ingester stored anew
}

// New starts a plane; its servers and ingester stop when the test ends.
func New(t testing.TB, cfg Config) *Plane {
	t.Helper()
	if cfg.Replicas <= 0 {
		cfg.Replicas = 2
	}
	in, err := measure.Open(t.TempDir(), nil, measure.Options{})
	if err != nil {
		t.Fatalf("cptest: opening the report ingester: %v", err)
	}
	// Registered first so that it runs last, after the servers stopped.
	t.Cleanup(func() { in.Close() })
	p := &Plane{cfg: cfg, mux: http.NewServeMux(), Stored: make(chan string, 1024),
		uploads: map[string]int{}, stored: map[string]int{}}
	if cfg.Catalog != nil {
		p.mux.HandleFunc("GET /v1/titles/{title}", p.serveTitle)
	}
	if cfg.Steer != nil {
		p.mux.HandleFunc("GET /v1/steer", p.serveSteer)
	}
	p.mux.Handle("POST /v1/reports", p.countReports(in.Handler(measure.RateLimit{})))
	for i := range cfg.Replicas {
		r := &Replica{plane: p, index: i, hits: map[string]int{}}
		r.srv = httptest.NewServer(r)
		r.URL = r.srv.URL
		t.Cleanup(r.srv.Close)
		p.replicas = append(p.replicas, r)
	}
	return p
}

// URLs are the replicas' base URLs, in order: what a client is configured
// with.
func (p *Plane) URLs() []string {
	urls := make([]string, len(p.replicas))
	for i, r := range p.replicas {
		urls[i] = r.URL
	}
	return urls
}

// Replica returns the i-th replica.
func (p *Plane) Replica(i int) *Replica { return p.replicas[i] }

// Handle mounts h on every replica (for example probe.RecipeHandler at
// "GET /v1/recipe"). Call it before the clients start.
func (p *Plane) Handle(pattern string, h http.Handler) { p.mux.Handle(pattern, h) }

// Handler serves the plane's API without any replica's faults, for a
// test that runs it on a listener of its own (a collector at a fixed
// address, a server that comes back after being down).
func (p *Plane) Handler() http.Handler { return p.mux }

// SteerCalls is how many steering requests the plane answered.
func (p *Plane) SteerCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.steerCalls
}

// Reports returns, per report id, how many uploads reached the ingester
// (on any replica) and how many of them it stored anew; an id stored more
// than once is a duplicate in the measurement data.
func (p *Plane) Reports() (uploads, stored map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.uploads), maps.Clone(p.stored)
}

func (p *Plane) serveTitle(w http.ResponseWriter, r *http.Request) {
	files := p.cfg.Catalog.TitleFiles(r.PathValue("title"))
	if len(files) == 0 {
		http.Error(w, fmt.Sprintf("title %q: not in the catalog", r.PathValue("title")), http.StatusNotFound)
		return
	}
	writeJSON(w, files)
}

func (p *Plane) serveSteer(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("n"))
	p.mu.Lock()
	call := p.steerCalls
	p.steerCalls++
	p.mu.Unlock()
	resp := api.SteerResponse{Files: []api.FileSteer{}}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		resp.Client = ap.Addr().Unmap().String()
	}
	for _, file := range strings.Split(q.Get("files"), ",") {
		choices := p.cfg.Steer(call, file)
		if n > 0 && len(choices) > n {
			choices = choices[:n]
		}
		resp.Files = append(resp.Files, api.FileSteer{Path: file, URLs: choices})
	}
	writeJSON(w, resp)
}

// countReports notes the id of every upload and what the ingester made of
// it, from its real answer.
func (p *Plane) countReports(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var head struct{ ID string }
		json.Unmarshal(body, &head) // an undecodable body is the ingester's to refuse
		r.Body = io.NopCloser(bytes.NewReader(body))
		cw := &captureWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r)
		var ack measure.AcceptResponse
		stored := cw.status() == http.StatusOK && json.Unmarshal(cw.body.Bytes(), &ack) == nil && ack.Accepted && !ack.Duplicate
		p.mu.Lock()
		if head.ID != "" {
			p.uploads[head.ID]++
		}
		if stored {
			p.stored[head.ID]++
		}
		p.mu.Unlock()
		if stored {
			select {
			case p.Stored <- head.ID:
			default:
			}
		}
	})
}

// captureWriter passes a response through and keeps a copy.
type captureWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

func (c *captureWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Drop, given to Replica.Fail, makes the replica handle a request (its
// effect happens: a report is stored) and then cut the connection
// without answering, as a process killed between the two would.
const Drop = -1

// Replica is one server of the plane.
type Replica struct {
	// URL is the replica's base URL, http://127.0.0.1:port.
	URL   string
	plane *Plane
	index int
	srv   *httptest.Server

	mu         sync.Mutex
	hits       map[string]int
	failN      int // requests left to fail; < 0 is every one
	failStatus int
	killAfter  int // requests left before dying; 0 is never
	dead       bool
}

// Hits is how many requests for path (such as "/v1/steer") the replica
// received, failed ones included; requests that reached it dead are not
// counted, since a dead process sees nothing.
func (r *Replica) Hits(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// Fail makes the replica answer its next n requests (n < 0: every one
// from now on, n = 0: none) with status (such as 503) without handling
// them, or, with Drop, handle them and cut the connection instead of
// answering.
func (r *Replica) Fail(n, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.failStatus = n, status
}

// Kill makes the replica die now: its listener closes, so new connections
// are refused, and a request arriving on a connection opened before has
// it closed unanswered. A request being handled completes. Kill does not
// block and may be called from a handler, including one of this replica.
func (r *Replica) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killLocked()
}

// KillAfter makes the replica die once it has answered n more requests
// (the n-th answer is still delivered).
func (r *Replica) KillAfter(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killAfter = n
}

func (r *Replica) killLocked() {
	if !r.dead {
		r.dead = true
		r.srv.Listener.Close()
	}
}

func (r *Replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if r.dead {
		r.mu.Unlock()
		cut(w)
		return
	}
	r.hits[req.URL.Path]++
	status := 0
	if r.failN != 0 {
		status = r.failStatus
		if r.failN > 0 {
			r.failN--
		}
	}
	r.mu.Unlock()
	switch {
	case status == Drop:
		r.plane.mux.ServeHTTP(httptest.NewRecorder(), req)
		cut(w)
	case status > 0:
		http.Error(w, "cptest: injected failure of replica "+strconv.Itoa(r.index), status)
	default:
		r.plane.mux.ServeHTTP(w, req)
	}
	r.mu.Lock()
	if r.killAfter > 0 {
		r.killAfter--
		if r.killAfter == 0 {
			r.killLocked()
		}
	}
	r.mu.Unlock()
}

// Dials counts the connections a client opens, per address, so that a
// test can tell whether a client went back to a dead replica. Dial fits
// http.Transport.DialContext and the clients' Dial hooks.
type Dials struct {
	mu sync.Mutex
	n  map[string]int
}

// Dial opens a TCP connection to addr and counts it, refused or not.
func (d *Dials) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[addr]++
	d.mu.Unlock()
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// To is how many connections were opened to the server at baseURL
// (http://host:port).
func (d *Dials) To(baseURL string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[strings.TrimPrefix(baseURL, "http://")]
}

// Client is an HTTP client whose connections are counted.
func (d *Dials) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: d.Dial}}
}

// cut closes the request's connection without an answer.
func cut(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	c.Close()
}
