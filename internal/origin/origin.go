// Package origin provides the origin server: the source of truth every
// appliance fills from, serving the catalog's files with byte ranges at
// /o/{title}/{file}, from a directory tree or from synthetic content.
package origin

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/content"
)

// Config wires an origin.
type Config struct {
	Catalog *content.Catalog
	// Dir holds the real files as Dir/title/file. It must be empty for a
	// synthetic catalog and set for any other.
	Dir      string
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Origin is an http.Handler.
type Origin struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	served atomic.Int64
	mBytes prometheus.Counter
}

// New checks the config and returns an origin.
func New(cfg Config) (*Origin, error) {
	if cfg.Catalog == nil {
		return nil, errors.New("origin: a catalog is required")
	}
	if !cfg.Catalog.Synthetic && cfg.Dir == "" {
		return nil, errors.New("origin: the catalog is not synthetic, so --dir must name the directory holding its files")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Origin{cfg: cfg, log: cfg.Logger.With("component", "origin"), mux: http.NewServeMux(),
		mBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_origin_response_bytes_total", Help: "Body bytes sent by the origin."})}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(o.mBytes)
	}
	o.mux.HandleFunc("GET /o/{title}/{file}", o.serveFile)
	o.mux.HandleFunc("GET /v1/catalog", func(w http.ResponseWriter, r *http.Request) {
		b, err := cfg.Catalog.Marshal()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
	return o, nil
}

// BytesServed is the total body bytes sent.
func (o *Origin) BytesServed() int64 { return o.served.Load() }

func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) { o.mux.ServeHTTP(w, r) }

func (o *Origin) serveFile(w http.ResponseWriter, r *http.Request) {
	f, err := o.cfg.Catalog.Lookup(r.PathValue("title") + "/" + r.PathValue("file"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	body, err := o.open(f)
	if err != nil {
		o.log.Error("open origin file", "path", f.Path, "err", err)
		http.Error(w, "origin file unavailable", http.StatusServiceUnavailable)
		return
	}
	if c, ok := body.(io.Closer); ok {
		defer c.Close()
	}
	w.Header().Set("ETag", `"`+f.SHA256+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	cw := &counter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, body)
	o.served.Add(cw.n)
	o.mBytes.Add(float64(cw.n))
}

func (o *Origin) open(f content.File) (io.ReadSeeker, error) {
	if o.cfg.Catalog.Synthetic {
		return content.SynthReader(f.Path, f.Size), nil
	}
	// f.Path passed content.ValidatePath when the catalog loaded, so it
	// cannot climb out of Dir.
	fh, err := os.Open(filepath.Join(o.cfg.Dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return nil, err
	}
	if st, err := fh.Stat(); err != nil || st.Size() != f.Size {
		fh.Close()
		return nil, fmt.Errorf("%s: size on disk differs from the catalog", f.Path)
	}
	return fh, nil
}

type counter struct {
	http.ResponseWriter
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
