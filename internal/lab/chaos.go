package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	bgpapi "github.com/osrg/gobgp/v4/api"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/probe"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// The levers of the chaos soak (internal/soak): the lab runs the daemons
// as it always does, and hands Options.Chaos these levers to crash and
// restart them, flap their BGP sessions and reach their stores. Every
// lever acts on the real thing: a SIGKILL to the daemon's process, a
// GoBGP session disabled on the ISP's router, a file of the appliance's
// store on disk.

// SessionEnd is a playback session that ended (Options.OnSession).
type SessionEnd struct {
	ISP    string
	Client netip.Addr
	Title  string
	// Err is why it failed; nil when it completed.
	Err error
	// Interrupted: the run's end cut it short (not a failure).
	Interrupted bool
	At          time.Time
}

// Chaos is handed to Options.Chaos while the lab streams.
type Chaos struct {
	l      *Lab
	runCtx context.Context
}

// ApplianceInfo describes one appliance for fault injection.
type ApplianceInfo struct {
	ID, Site string
	// Address is its content port; Store its store directory.
	Address netip.AddrPort
	Store   string
}

// Appliances lists the appliances in the scenario's order.
func (c *Chaos) Appliances() []ApplianceInfo {
	out := make([]ApplianceInfo, len(c.l.appliances))
	for i, la := range c.l.appliances {
		out[i] = ApplianceInfo{ID: la.cfg.ID, Site: la.cfg.Site, Address: la.cfg.Address.AddrPort, Store: StoreDir(c.l.work, la.cfg.ID)}
	}
	return out
}

// StoreDir is where appliance id of a run in work keeps its store (so that
// a caller can put a file system of its own there before the run): the
// compiled config names it relative to the config files in work/etc.
func StoreDir(work, id string) string { return filepath.Join(work, "etc", storesDir, id) }

// Sites that may serve isp's clients: its own embedded and private
// sites (which learn only its routes) and every IXP and fallback site.
func (c *Chaos) Sites(isp string) []string {
	var out []string
	for _, s := range c.l.sc.Sites {
		switch s.Kind {
		case config.SiteEmbedded, config.SitePrivate:
			if s.ISP == isp {
				out = append(out, s.ID)
			}
		default:
			out = append(out, s.ID)
		}
	}
	return out
}

// ISPs are the scenario's ISPs.
func (c *Chaos) ISPs() []config.ISP { return c.l.sc.ISPs }

// ClientAddr is the source address of isp's i-th client.
func (c *Chaos) ClientAddr(isp config.ISP, i int) netip.Addr { return clientAddr(isp, i) }

// Catalog is what the origin serves.
func (c *Chaos) Catalog() *content.Catalog { return c.l.catalog }

// ContentURL is a URL of path on appliance id, signed with the control
// plane's keys as steering would sign it.
func (c *Chaos) ContentURL(id, path string) (string, error) {
	i := slices.IndexFunc(c.l.appliances, func(la *labAppliance) bool { return la.cfg.ID == id })
	if i < 0 {
		return "", fmt.Errorf("unknown appliance %q", id)
	}
	ks, err := urlsign.LoadKeySet(filepath.Join(c.l.etc, keysFile))
	if err != nil {
		return "", err
	}
	title, _, _ := strings.Cut(path, "/")
	tok, err := ks.Sign(urlsign.Grant{Scope: title + "/", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		return "", err
	}
	scheme := "http://"
	if c.l.roots != nil {
		scheme = "https://"
	}
	return scheme + c.l.appliances[i].cfg.Address.AddrPort.String() + "/c/" + tok + "/" + path, nil
}

// TLSConfig verifies the appliances' certificates (the lab's CA) for
// clients of ContentURL; nil when they serve plain HTTP.
func (c *Chaos) TLSConfig() *tls.Config {
	if c.l.roots == nil {
		return nil
	}
	return &tls.Config{RootCAs: c.l.roots, MinVersion: tls.VersionTLS12}
}

// KillAppliance SIGKILLs appliance id's process.
func (c *Chaos) KillAppliance(id string) error {
	la := c.appliance(id)
	if la == nil {
		return fmt.Errorf("unknown appliance %q", id)
	}
	la.handle().Kill()
	return nil
}

// RestartAppliance starts appliance id again from its config and returns
// once it answers /healthz.
func (c *Chaos) RestartAppliance(id string) error {
	la := c.appliance(id)
	if la == nil {
		return fmt.Errorf("unknown appliance %q", id)
	}
	h, err := c.l.run.appliance(c.runCtx, id, appliancePath(c.l.etc, id), la.hooks)
	if err != nil {
		return err
	}
	la.mu.Lock()
	la.h = h
	la.mu.Unlock()
	return nil
}

func (c *Chaos) appliance(id string) *labAppliance {
	for _, la := range c.l.appliances {
		if la.cfg.ID == id {
			return la
		}
	}
	return nil
}

// ControlReplicas is how many control planes run.
func (c *Chaos) ControlReplicas() int {
	c.l.replicasMu.Lock()
	defer c.l.replicasMu.Unlock()
	return len(c.l.replicas)
}

// ControlURL is replica i's base URL.
func (c *Chaos) ControlURL(i int) string {
	if i == 0 {
		return baseURL(c.l.dep.Control.Listen)
	}
	return baseURL(c.l.dep.Replicas[i-1].Listen)
}

// KillControl SIGKILLs control-plane replica i.
func (c *Chaos) KillControl(i int) {
	c.l.replicasMu.Lock()
	h := c.l.replicas[i]
	c.l.replicasMu.Unlock()
	h.Kill()
}

// RestartControl starts replica i again from its config and returns once
// it answers /healthz.
func (c *Chaos) RestartControl(i int) error {
	h, err := c.l.run.control(c.runCtx, replicaName(i), replicaPath(c.l.etc, i), c.l.hooks())
	if err != nil {
		return err
	}
	c.l.replicasMu.Lock()
	c.l.replicas[i] = h
	c.l.replicasMu.Unlock()
	return nil
}

// Processes are the daemons' current process ids by name ("origin",
// "control", "control-2", "appliance-ID"), for reading /proc.
func (c *Chaos) Processes() map[string]int {
	out := map[string]int{}
	pid := func(h any) int {
		if p, ok := h.(interface{ PID() int }); ok {
			return p.PID()
		}
		return 0
	}
	out["origin"] = pid(c.l.origin)
	c.l.replicasMu.Lock()
	for i, h := range c.l.replicas {
		out[replicaName(i)] = pid(h)
	}
	c.l.replicasMu.Unlock()
	for _, la := range c.l.appliances {
		out["appliance-"+la.cfg.ID] = pid(la.handle())
	}
	return out
}

// BGPSession is one session between a lab router and an appliance.
type BGPSession struct {
	Router    string
	Appliance string
	Peer      netip.Addr
}

// BGPSessions lists every router–appliance session.
func (c *Chaos) BGPSessions() []BGPSession {
	var out []BGPSession
	for _, rc := range c.l.dep.Routers {
		for _, p := range rc.Peers {
			for _, la := range c.l.appliances {
				if la.cfg.Address.Addr() == p {
					out = append(out, BGPSession{Router: rc.Name, Appliance: la.cfg.ID, Peer: p})
				}
			}
		}
	}
	return out
}

// SetBGPSession takes a session down (the router disables its neighbor:
// a NOTIFICATION, the appliance loses the routes) or brings it back.
func (c *Chaos) SetBGPSession(ctx context.Context, s BGPSession, up bool) error {
	r := c.l.routers[s.Router]
	if r == nil {
		return fmt.Errorf("unknown router %q", s.Router)
	}
	if up {
		return r.srv.EnablePeer(ctx, &bgpapi.EnablePeerRequest{Address: s.Peer.String()})
	}
	return r.srv.DisablePeer(ctx, &bgpapi.DisablePeerRequest{Address: s.Peer.String(), Communication: "chaos soak"})
}

// ApplianceStates is what the control plane says of each appliance
// (asked of each replica in turn).
func (c *Chaos) ApplianceStates(ctx context.Context) ([]api.ApplianceStatus, error) {
	return c.l.view.appliances(ctx)
}

// Manifest is the files the control plane has placed on appliance id,
// asked for with the appliance's credential.
func (c *Chaos) Manifest(ctx context.Context, id string) ([]content.File, error) {
	m, err := c.l.view.manifest(ctx, id)
	return m.Files, err
}

// ReplicaApplianceStates is what control-plane replica i alone says of
// each appliance.
func (c *Chaos) ReplicaApplianceStates(ctx context.Context, i int) ([]api.ApplianceStatus, error) {
	return c.l.view.appliancesAt(ctx, i)
}

// ApplianceRuntime is what appliance id says of itself on its ops port.
func (c *Chaos) ApplianceRuntime(ctx context.Context, id string) (api.ApplianceRuntime, error) {
	la := c.appliance(id)
	if la == nil {
		return api.ApplianceRuntime{}, fmt.Errorf("unknown appliance %q", id)
	}
	return la.handle().Status(ctx)
}

// LogDir is where the daemons' logs are.
func (c *Chaos) LogDir() string { return filepath.Join(c.l.work, "logs") }

func replicaName(i int) string {
	if i == 0 {
		return "control"
	}
	return fmt.Sprintf("control-%d", i+1)
}

// compileReplicas adds the control-plane replicas of Options.ControlReplicas:
// all on one PostgreSQL store, each its own port and measurement directory
// (measure/replica-N, which the measurement readers take as one store),
// and every appliance told of all of them.
func (l *Lab) compileReplicas() error {
	n := l.opts.ControlReplicas
	if n <= 1 {
		return nil
	}
	if l.opts.ControlStore == "" {
		return errors.New("lab: ControlReplicas needs ControlStore, a PostgreSQL DSN the replicas share")
	}
	base := &l.dep.Control
	base.Store = l.opts.ControlStore
	base.SyncInterval = 100 * time.Millisecond
	root := base.Measure.Dir
	urls := []string{"http://" + base.Listen[0].AddrPort.String()}
	withDir := func(c config.Control, i int) config.Control {
		m := *c.Measure
		m.Dir = filepath.Join(root, fmt.Sprintf("replica-%d", i+1))
		c.Measure = &m
		return c
	}
	for i := 1; i < n; i++ {
		ap, err := freePort(netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			return err
		}
		rc := withDir(*base, i)
		rc.Listen = addrList(ap)
		if len(base.ListenNetns) > 0 { // on IPv6 too, on its own port
			rc.ListenNetns = nil
			listenIPv6(l.v6, netip.AddrPortFrom(control6, ap.Port()), &rc.Listen, &rc.ListenNetns)
		}
		if base.DNS != nil {
			// Each replica its own name server, as ns1 and ns2 would be.
			dns := *base.DNS
			dp, err := freePort(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				return err
			}
			dns.Listen = addrList(dp)
			rc.DNS = &dns
		}
		l.dep.Replicas = append(l.dep.Replicas, rc)
		urls = append(urls, "http://"+ap.String())
	}
	*base = withDir(*base, 0)
	for i := range l.dep.Appliances {
		l.dep.Appliances[i].ControlURLs = urls
	}
	return nil
}

// moveAppliances is the scenario with every appliance's third address
// octet moved by octet.
func (s *Scenario) moveAppliances(octet int) *Scenario {
	out := *s
	out.Inventory.Appliances = slices.Clone(s.Appliances)
	for i := range out.Appliances {
		a := &out.Appliances[i]
		b := a.Address.Addr().As4()
		b[2] += byte(octet)
		a.Address.AddrPort = netip.AddrPortFrom(netip.AddrFrom4(b), a.Address.Port())
		a.Address.Raw = a.Address.AddrPort.String()
	}
	return &out
}

// UnsentReports lists the ids of the probe reports still in the clients'
// spools of a run in work: not yet acknowledged by the control plane, or
// rejected by it. Every other report spooled was acknowledged.
func UnsentReports(work string) (map[string]bool, error) {
	out := map[string]bool{}
	dirs, err := filepath.Glob(filepath.Join(work, "spool", "*"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		for _, sub := range []string{d, filepath.Join(d, probe.RejectedDir)} {
			ents, err := os.ReadDir(sub)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			for _, e := range ents {
				if id, ok := strings.CutSuffix(e.Name(), ".json"); ok {
					out[id] = true
				}
			}
		}
	}
	return out, nil
}
