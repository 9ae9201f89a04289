// Package daemon assembles ocdn's daemons — the control plane, the
// appliance and the origin — from their config files. It is the one place
// each role is built: `ocdn control|appliance|origin`, the lab (in-process
// or as processes), the end-to-end tests and the bench scripts all call
// NewControl, NewAppliance and NewOrigin, so what the tests prove is what
// an operator runs.
//
// Each constructor reads the files the config names (catalog, keys,
// credentials, certificates), listens on every configured address before
// creating anything on disk (a daemon that cannot listen leaves no fresh
// store behind), builds the role, and adds the operator endpoints
// /metrics and /healthz. Run serves until its context ends and then
// drains; SIGHUP reloads TLS certificates without dropping connections.
//
// Hooks carry what no config file can set: a logger and registry, test
// clocks, fault injection, and listeners handed in by a caller that holds
// the socket (the lab's control-plane outage).
package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/serve"
)

// Hooks are a daemon's Go-only settings. The zero value is what `ocdn`
// uses, apart from Logger and Software.
type Hooks struct {
	Logger *slog.Logger
	// Registry collects the daemon's metrics (default: a new registry
	// with the Go and process collectors).
	Registry *prometheus.Registry
	// Listeners, when set, are served instead of listening on the config's
	// addresses; the caller keeps ownership of the sockets' lifetime.
	Listeners []net.Listener
	// ShutdownGrace bounds in-flight requests of the control plane and
	// origin at shutdown (default 10s); appliances use drain_timeout.
	ShutdownGrace time.Duration
	// Software is the version appliances report (default from the build).
	Software string
	// Now is the control plane's clock (default time.Now).
	Now func() time.Time
	// FillClock is the clock an appliance reads its fill window from
	// (default the wall clock; the lab compresses time).
	FillClock clock.Clock
	// CorruptFill is fault injection: fill requests other appliances send
	// this appliance for these files get wrong bytes.
	CorruptFill []string
}

func (h *Hooks) defaults() {
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	if h.Registry == nil {
		h.Registry = NewRegistry()
	}
}

// NewRegistry is a Prometheus registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// listenAll listens on every address, or takes the hooks' listeners; on
// error nothing stays open.
func listenAll(addrs config.AddrList, h Hooks) ([]net.Listener, error) {
	if len(h.Listeners) > 0 {
		return h.Listeners, nil
	}
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.AddrPort.String())
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen %s: %w", a.AddrPort, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// opsHandler adds /metrics and /healthz to a daemon's handler. health
// answers the daemon's state: ok false answers 503.
func opsHandler(h http.Handler, reg *prometheus.Registry, health func() (string, bool)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		msg, ok := health()
		if !ok {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(msg + "\n"))
	})
	return mux
}

// withoutOps hides /metrics and the operator endpoints (/v1/admin/…) of
// a daemon's handler: what its public addresses serve when ops_listen
// has them.
func withoutOps(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" || strings.HasPrefix(r.URL.Path, "/v1/admin/") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// certs holds a TLS certificate that SIGHUP reloads: connections already
// open keep the certificate they were made with, new handshakes get the
// new one.
type certs struct {
	files config.TLSFiles
	cur   atomic.Pointer[tls.Certificate]
	log   *slog.Logger
}

func loadCerts(field string, f *config.TLSFiles, log *slog.Logger) (*certs, error) {
	if f == nil {
		return nil, nil
	}
	c := &certs{files: *f, log: log}
	if err := c.reload(); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return c, nil
}

func (c *certs) reload() error {
	cert, err := tls.LoadX509KeyPair(c.files.CertFile, c.files.KeyFile)
	if err != nil {
		return fmt.Errorf("cert_file %s, key_file %s: %w", c.files.CertFile, c.files.KeyFile, err)
	}
	c.cur.Store(&cert)
	return nil
}

// config is the server-side TLS config (nil without certificates).
func (c *certs) config() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }}
}

// watchSIGHUP reloads every non-nil holder on SIGHUP until ctx ends; a
// failed reload keeps the old certificate and says why.
func watchSIGHUP(ctx context.Context, holders ...*certs) {
	var hs []*certs
	for _, h := range holders {
		if h != nil {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			for _, h := range hs {
				if err := h.reload(); err != nil {
					h.log.Error("TLS certificate reload failed; keeping the old one", "err", err)
					continue
				}
				h.log.Info("TLS certificate reloaded", "cert_file", h.files.CertFile)
			}
		}
	}
}

// servers serves h on every listener.
func servers(lns []net.Listener, h http.Handler, opts serve.Options) []*serve.Server {
	out := make([]*serve.Server, len(lns))
	for i, ln := range lns {
		out[i] = serve.New(ln, h, opts)
	}
	return out
}

func urls(srvs []*serve.Server) []string {
	out := make([]string, len(srvs))
	for i, s := range srvs {
		out[i] = s.URL()
	}
	return out
}

// runGroup runs fns until ctx ends and returns the first error; an error
// from one stops the others. Every fn has returned when it returns.
func runGroup(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for _, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// serveAll is a run function serving every server.
func serveAll(srvs []*serve.Server) func(context.Context) error {
	return func(ctx context.Context) error {
		fns := make([]func(context.Context) error, len(srvs))
		for i, s := range srvs {
			fns[i] = s.Run
		}
		return runGroup(ctx, fns...)
	}
}

// readSecretFile reads a one-line credential file.
func readSecretFile(field, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", field, path)
	}
	return s, nil
}
