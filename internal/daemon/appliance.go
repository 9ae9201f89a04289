package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/ocdn/ocdn/internal/appliance"
	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/clientnet"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/edge"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/transport"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// Appliance is an appliance assembled from its config.
type Appliance struct {
	a     *appliance.Appliance
	certs *certs
	// access is the buffered access log file, flushed while Run runs and
	// closed when it returns (nil: no file).
	access *accessFile
}

// transportConfig is the appliance's transport records and default
// congestion control, or nil when neither is wanted (sample_rate 0 and
// no congestion_control: then nothing is installed on the serving path,
// and tokens' congestion controls are not applied either).
func transportConfig(cfg *config.ApplianceDaemon) *transport.Config {
	t := cfg.Transport
	if t.Rate() == 0 && t.CongestionControl == "" {
		return nil
	}
	out := &transport.Config{SampleRate: t.Rate(), Interval: t.Interval, CongestionControl: t.CongestionControl,
		Dir: t.Dir, MaxBytes: int64(t.MaxBytes)}
	if out.Interval == 0 {
		out.Interval = DefaultTransportInterval
	}
	if out.Dir == "" {
		out.Dir = filepath.Clean(cfg.Store) + "-transport-spool"
	}
	return out
}

// DefaultTransportInterval is transport.interval's default.
const DefaultTransportInterval = 5 * time.Second

type accessFile struct {
	f  *os.File
	bw *edge.BufferedWriter
}

// NewAppliance builds an appliance: it reads the key, credential and
// certificate files cfg names, listens on every listen address, then opens
// the store and, with a bgp section, starts the BGP speaker (sessions
// come up in Run). jsonLogs makes the access log JSON like the daemon log.
func NewAppliance(cfg *config.ApplianceDaemon, h Hooks, jsonLogs bool) (*Appliance, error) {
	h.defaults()
	log := h.Logger.With("component", "appliance-daemon", "appliance", cfg.ID)
	keys, err := urlsign.LoadKeySet(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("key_file: %w", err)
	}
	acfg := appliance.Config{
		ID: cfg.ID, StoreDir: cfg.Store, Capacity: int64(cfg.Capacity), Keys: keys,
		HeartbeatInterval: cfg.HeartbeatInterval, StaleLimit: cfg.StaleLimit, MaxQueuedReports: cfg.MaxQueuedReports,
		CapacityBitsPerSec: cfg.ThroughputMbps * 1e6,
		FillConcurrency:    cfg.Fill.Concurrency, FillRate: int64(cfg.Fill.Rate), FillStallTimeout: cfg.Fill.StallTimeout,
		FillInterval: cfg.Fill.Interval, FillOutOfCycleBudget: int64(cfg.Fill.OutOfCycleBudget), FillStrictWindow: cfg.Fill.StrictWindow,
		FillUrgentRate: int64(cfg.Fill.UrgentRate), FillRetireGrace: cfg.Fill.RetireGrace,
		FillClock: h.FillClock, CorruptFill: h.CorruptFill,
		DrainGrace: cfg.DrainGrace, DrainTimeout: cfg.DrainTimeout, Software: h.Software,
		Logger: h.Logger, Registry: h.Registry, CORS: cfg.CORS,
	}
	// Unset is the store's default rate; an explicit 0 turns it off.
	if cfg.ScrubRate != nil {
		acfg.ScrubRate = int64(*cfg.ScrubRate)
		if acfg.ScrubRate == 0 {
			acfg.ScrubRate = store.ScrubOff
		}
	}
	if acfg.DrainGrace == 0 {
		acfg.DrainGrace = 10 * time.Second
	}
	if acfg.DrainTimeout == 0 {
		acfg.DrainTimeout = 5 * time.Minute
	}
	if !cfg.Standalone {
		if acfg.Control, err = controlClient(cfg); err != nil {
			return nil, err
		}
	}
	acfg.Transport = transportConfig(cfg)
	if cfg.BGP != nil {
		if acfg.BGP, err = bgpConfig(cfg.BGP); err != nil {
			return nil, err
		}
		acfg.RouteHold = cfg.BGP.RouteHold
	}
	d := &Appliance{}
	if d.certs, err = loadCerts("tls", cfg.TLS, log); err != nil {
		return nil, err
	}
	acfg.TLS = d.certs.config()
	if cfg.ControlCAFile != "" {
		// The CDN's CA signs the control plane's certificate and the
		// peers' that fill comes from.
		if acfg.PeerRoots, err = clientnet.LoadCAs(cfg.ControlCAFile); err != nil {
			return nil, fmt.Errorf("control_ca_file: %w", err)
		}
	}
	lns, err := listenAll(cfg.Listen, h)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			closeAll(lns)
			d.access.close()
		}
	}()
	nsl, err := listenNetns(cfg.ListenNetns, cfg.Listen)
	if err != nil {
		return nil, err
	}
	lns = append(lns, nsl...)
	acfg.Listeners = lns
	if len(cfg.OpsListen) > 0 {
		ops, err := listenAll(cfg.OpsListen, Hooks{})
		if err != nil {
			return nil, fmt.Errorf("ops_listen: %w", err)
		}
		lns = append(lns, ops...) // closed on failure below
		acfg.OpsListeners = ops
	}
	switch cfg.AccessLog {
	case "":
	case "off":
		acfg.AccessLog = slog.New(slog.DiscardHandler)
	default:
		f, err := os.OpenFile(cfg.AccessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access_log: %w", err)
		}
		d.access = &accessFile{f: f, bw: edge.NewBufferedWriter(f, 0)}
		// Independent of the daemon's log level: an access log is all or
		// nothing.
		acfg.AccessLog = edge.NewAccessLogger(d.access.bw)
		if jsonLogs {
			acfg.AccessLog = slog.New(slog.NewJSONHandler(d.access.bw, nil))
		}
	}
	if d.a, err = appliance.New(acfg); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// controlClient reaches the control plane's replicas with the appliance's
// credential, verifying an https control plane against control_ca_file.
func controlClient(cfg *config.ApplianceDaemon) (*cpclient.Client, error) {
	token, err := readSecretFile("token_file", cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.ControlCAFile != "" {
		pool, err := clientnet.LoadCAs(cfg.ControlCAFile)
		if err != nil {
			return nil, fmt.Errorf("control_ca_file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// A replica that accepts but never answers must not hold a heartbeat
	// past its interval: the next replica gets it.
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	c, err := cpclient.New(cfg.ControlURLs, hc, token)
	if err != nil {
		return nil, fmt.Errorf("control_urls: %w", err)
	}
	return c, nil
}

// bgpConfig turns the bgp section into the speaker's config.
func bgpConfig(b *config.BGP) (*bgp.Config, error) {
	rid := b.RouterID.Addr
	if !rid.IsValid() {
		rid = b.LocalAddress.Addr
	}
	port := b.ListenPort
	if port == 0 {
		port = bgp.DefaultPort
	}
	out := &bgp.Config{LocalASN: b.LocalASN, RouterID: rid, ListenAddr: netip.AddrPortFrom(b.LocalAddress.Addr, port)}
	for _, p := range b.AllowPrefixes {
		out.AllowPrefixes = append(out.AllowPrefixes, p.Prefix)
	}
	for i, n := range b.Neighbors {
		nc := bgp.NeighborConfig{Address: n.Address.Addr, Port: n.Port, PeerASN: n.PeerASN, Passive: n.Passive,
			MaxPrefixes: n.MaxPrefixes, Family: bgp.Family(n.NeighborFamily()), HoldTime: n.HoldTime}
		if n.MD5PasswordFile != "" {
			pw, err := readSecretFile(fmt.Sprintf("bgp.neighbors[%d].md5_password_file", i), n.MD5PasswordFile)
			if err != nil {
				return nil, err
			}
			nc.MD5Password = pw
		}
		out.Neighbors = append(out.Neighbors, nc)
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	return out, nil
}

// Appliance is the appliance itself (for the lab's report and tests).
func (d *Appliance) Appliance() *appliance.Appliance { return d.a }

// URLs are the base URLs content is served on.
func (d *Appliance) URLs() []string { return d.a.URLs() }

// OpsURLs are the base URLs of the operator endpoints (none without
// ops_listen).
func (d *Appliance) OpsURLs() []string { return d.a.OpsURLs() }

// Run serves, fills and reports until ctx ends, then drains (see
// appliance.Appliance.Run).
func (d *Appliance) Run(ctx context.Context) error {
	defer d.access.close()
	return runGroup(ctx, d.a.Run,
		func(ctx context.Context) error { watchSIGHUP(ctx, d.certs); return nil },
		func(ctx context.Context) error {
			if d.access != nil {
				d.access.bw.FlushEvery(ctx, time.Second)
			}
			return nil
		})
}

func (a *accessFile) close() {
	if a == nil {
		return
	}
	a.bw.Flush()
	a.f.Close()
}
