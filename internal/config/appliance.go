package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ApplianceDaemon is an appliance's config file (`ocdn appliance --config`).
type ApplianceDaemon struct {
	// ID is the appliance's id in the control plane's inventory.
	ID string `yaml:"id,omitempty"`
	// Listen is where content is served: one address or a list (an IPv4
	// and an IPv6 address).
	Listen AddrList `yaml:"listen,omitempty"`
	// OpsListen serves /metrics, /healthz and /v1/status to operators;
	// they are not on the content port (which answers /healthz only).
	// Empty: not served.
	OpsListen AddrList `yaml:"ops_listen,omitempty"`
	// ListenNetns serves content inside each of these network namespaces
	// as well (on its listen addresses, by default the appliance's), for
	// clients that reach the appliance over a path whose far end is a
	// namespace: the lab's packet-level links, its IPv6 network. Needs
	// root.
	ListenNetns []NetnsListen `yaml:"listen_netns,omitempty"`
	// ControlURLs are the control plane's replicas, tried in order with
	// failover.
	ControlURLs []string `yaml:"control_urls,omitempty"`
	// Standalone serves the store as it is, without a control plane: no
	// fill, no heartbeats, no BGP reports (benchmarks, a cold spare).
	Standalone bool `yaml:"standalone,omitempty"`
	// ControlCAFile is a PEM bundle that verifies an https control plane
	// and the https peers fill comes from (default: the system's roots).
	ControlCAFile string `yaml:"control_ca_file,omitempty"`
	// TokenFile holds the appliance's control-plane credential (ocdn
	// control --mint-token ID).
	TokenFile string `yaml:"token_file,omitempty"`
	// KeyFile is the URL-signing key set the appliance starts with; the
	// control plane's current set replaces it at the first heartbeat.
	KeyFile  string   `yaml:"key_file,omitempty"`
	Store    string   `yaml:"store,omitempty"`
	Capacity ByteSize `yaml:"capacity,omitempty"`
	// ThroughputMbps is what the appliance can serve; heartbeats report
	// load against it (0: CPU alone).
	ThroughputMbps    float64       `yaml:"throughput_mbps,omitempty"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval,omitempty"`
	// StaleLimit bounds serving without the control plane (default 24h).
	StaleLimit time.Duration `yaml:"stale_limit,omitempty"`
	// MaxQueuedReports bounds the heartbeat records kept while the
	// control plane is unreachable (default a day at 5 s).
	MaxQueuedReports int `yaml:"max_queued_reports,omitempty"`
	// ScrubRate is how fast the scrubber re-hashes stored objects, in
	// bytes per second (default store.DefaultScrubRate, 40MB), a tenth of
	// it while the machine's CPUs are more than half busy; 0 turns it off.
	ScrubRate *ByteSize `yaml:"scrub_rate,omitempty"`
	// DrainGrace: after SIGTERM, keep accepting connections this long
	// while reporting draining (default 10s); DrainTimeout: then let
	// in-flight transfers run this long (default 5m).
	DrainGrace   time.Duration `yaml:"drain_grace,omitempty"`
	DrainTimeout time.Duration `yaml:"drain_timeout,omitempty"`
	// AccessLog is a file (buffered, flushed every second), "off", or
	// empty for the daemon's log.
	AccessLog string `yaml:"access_log,omitempty"`
	// TLS serves HTTPS (HTTP/2 and HTTP/1.1); reloaded on SIGHUP.
	TLS  *TLSFiles     `yaml:"tls,omitempty"`
	Fill ApplianceFill `yaml:"fill,omitempty"`
	// BGP learns the client prefixes the appliance may serve from the
	// ISP's routers.
	BGP *BGP `yaml:"bgp,omitempty"`
	// CORS lets web pages of the listed origins (a player, a speed test,
	// a probe) fetch content and read its timing from a browser.
	CORS *CORS `yaml:"cors,omitempty"`
	// Transport samples TCP_INFO of served connections and sends the
	// records to the control plane (docs/netem.md "transport records").
	Transport ApplianceTransport `yaml:"transport,omitempty"`
}

// ApplianceTransport configures the appliance's transport records and
// its default congestion control.
type ApplianceTransport struct {
	// SampleRate is the fraction of content connections whose TCP_INFO
	// is sampled (0 to 1; default 0.1). Set off to sample none.
	SampleRate *float64 `yaml:"sample_rate,omitempty"`
	// Interval is the time between samples of a long connection
	// (default 5s); each connection also gets a final sample.
	Interval time.Duration `yaml:"interval,omitempty"`
	// CongestionControl is set on every content connection whose token
	// names none (empty: the kernel's default). A name the kernel lacks
	// is refused at start, naming the ones it offers.
	CongestionControl string `yaml:"congestion_control,omitempty"`
	// Dir spools records while the control plane is away (default
	// STORE/../transport-spool, beside the store); MaxBytes bounds it
	// (default 64MB): past it the oldest records are dropped and
	// counted.
	Dir      string   `yaml:"dir,omitempty"`
	MaxBytes ByteSize `yaml:"max_bytes,omitempty"`
}

// DefaultTransportSampleRate is the share of connections sampled when
// transport.sample_rate is not set.
const DefaultTransportSampleRate = 0.1

// Rate is the sample rate with its default.
func (t ApplianceTransport) Rate() float64 {
	if t.SampleRate == nil {
		return DefaultTransportSampleRate
	}
	return *t.SampleRate
}

func (t ApplianceTransport) validate() error {
	if r := t.Rate(); !(r >= 0 && r <= 1) {
		return Errf("transport.sample_rate", "%v is not a fraction between 0 and 1", r)
	}
	if t.Interval != 0 {
		if err := durationAtLeast("transport.interval", t.Interval, 100*time.Millisecond, time.Hour); err != nil {
			return err
		}
	}
	if t.MaxBytes < 0 {
		return Errf("transport.max_bytes", "must not be negative")
	}
	if t.CongestionControl != "" {
		return congestionName("transport.congestion_control", t.CongestionControl)
	}
	return nil
}

// congestionName checks the spelling of a congestion control name;
// whether the kernel offers it is checked where it runs (the appliance,
// at start).
func congestionName(field, name string) error {
	if name == "" || len(name) > 15 { // TCP_CA_NAME_MAX is 16 with the NUL
		return Errf(field, "%q: want a kernel congestion control name such as bbr or cubic", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Errf(field, "%q: want a kernel congestion control name such as bbr or cubic", name)
		}
	}
	return nil
}

// ApplianceFill tunes the appliance's fill agent. The window itself comes
// from the control plane (its site's time zone and the fill window).
type ApplianceFill struct {
	// Concurrency is how many files download at once (default 2).
	Concurrency int `yaml:"concurrency,omitempty"`
	// Rate caps fill downloads in bytes per second over all transfers,
	// e.g. 150MB (1.2 Gbit/s); 0 means no cap.
	Rate ByteSize `yaml:"rate,omitempty"`
	// StallTimeout gives up a source that sends nothing for this long and
	// escalates to the next (default 30s).
	StallTimeout time.Duration `yaml:"stall_timeout,omitempty"`
	// Interval is the time between fill passes (default 10s).
	Interval time.Duration `yaml:"interval,omitempty"`
	// OutOfCycleBudget is how many bytes of urgent files may be filled
	// outside the window per cycle (default 1GiB).
	OutOfCycleBudget ByteSize `yaml:"out_of_cycle_budget,omitempty"`
	// StrictWindow keeps even the first fill of an empty appliance
	// inside the window (default: an appliance that never held its
	// manifest fills at once).
	StrictWindow bool `yaml:"strict_window,omitempty"`
	// UrgentRate caps fill outside the window (urgent files, such as a
	// release due before the next window) in bytes per second (default
	// a quarter of rate; 0 with no rate means none).
	UrgentRate ByteSize `yaml:"urgent_rate,omitempty"`
	// RetireGrace is how long a file the manifest no longer lists stays
	// on disk after the control plane has acknowledged that the
	// appliance stopped reporting it (so stopped steering clients to it),
	// for clients that got its URL just before (default 1m).
	RetireGrace time.Duration `yaml:"retire_grace,omitempty"`
}

// BGP is the appliance's embedded BGP speaker: one session per ISP router
// and address family.
type BGP struct {
	LocalASN uint32 `yaml:"local_asn,omitempty"`
	// RouterID is an IPv4 address (default local_address when it is one).
	RouterID Addr `yaml:"router_id,omitempty"`
	// LocalAddress is the appliance's BGP address: sessions are sourced
	// from it and it listens there on ListenPort.
	LocalAddress Addr `yaml:"local_address,omitempty"`
	// ListenPort is where routers may connect (default 179).
	ListenPort uint16 `yaml:"listen_port,omitempty"`
	// AllowPrefixes exempts ranges from the import policy's bogon check
	// (labs and tests announce documentation or loopback prefixes).
	AllowPrefixes []Prefix `yaml:"allow_prefixes,omitempty"`
	// RouteHold keeps a lost session's routes this long, riding out
	// flaps (default 3 heartbeat intervals).
	RouteHold time.Duration `yaml:"route_hold,omitempty"`
	Neighbors []Neighbor    `yaml:"neighbors,omitempty"`
}

// Neighbor is one BGP session with an ISP router.
type Neighbor struct {
	Address Addr `yaml:"address,omitempty"`
	// Port is the router's BGP port (default 179).
	Port    uint16 `yaml:"port,omitempty"`
	PeerASN uint32 `yaml:"peer_asn,omitempty"`
	// Family is ipv4 or ipv6 (default: the neighbor address's family).
	Family string `yaml:"family,omitempty"`
	// MD5PasswordFile holds the TCP-MD5 (RFC 2385) password.
	MD5PasswordFile string `yaml:"md5_password_file,omitempty"`
	// Passive waits for the router to connect.
	Passive bool `yaml:"passive,omitempty"`
	// HoldTime is proposed in OPEN (default 90s; 0s or at least 3s).
	HoldTime time.Duration `yaml:"hold_time,omitempty"`
	// MaxPrefixes shuts the session down when the router sends more
	// accepted prefixes (default 1,000,000).
	MaxPrefixes int `yaml:"max_prefixes,omitempty"`
}

// NeighborFamily is the family a neighbor session carries.
func (n Neighbor) NeighborFamily() string {
	if n.Family != "" {
		return n.Family
	}
	if n.Address.Is6() {
		return "ipv6"
	}
	return "ipv4"
}

// Validate implements Validator.
func (c *ApplianceDaemon) Validate() error {
	if (c.ID == "" && !c.Standalone) || strings.ContainsAny(c.ID, "/ ") {
		return Errf("id", "%q must be the appliance's id in the control plane's inventory (no '/' or space)", c.ID)
	}
	if err := c.Listen.validate("listen", false); err != nil {
		return err
	}
	if len(c.OpsListen) > 0 {
		if err := c.OpsListen.validate("ops_listen", true); err != nil {
			return err
		}
	}
	switch {
	case c.Standalone && (len(c.ControlURLs) > 0 || c.BGP != nil):
		return Errf("standalone", "a standalone appliance has no control_urls and no bgp section")
	case !c.Standalone && len(c.ControlURLs) == 0:
		return Errf("control_urls", "must list the control plane's URLs, such as [http://10.0.0.10:8080]")
	}
	for i, u := range c.ControlURLs {
		if err := httpURL(fmt.Sprintf("control_urls[%d]", i), u); err != nil {
			return err
		}
	}
	if c.Store == "" {
		return Errf("store", "must name the store directory")
	}
	if c.KeyFile == "" {
		return Errf("key_file", "must name the URL-signing key file")
	}
	if err := validateNetns("listen_netns", c.ListenNetns); err != nil {
		return err
	}
	if err := c.CORS.validate("cors"); err != nil {
		return err
	}
	if c.Capacity < 0 {
		return Errf("capacity", "must not be negative")
	}
	if c.ThroughputMbps < 0 || c.ThroughputMbps > 1e7 {
		return Errf("throughput_mbps", "%g is not between 0 and 10,000,000", c.ThroughputMbps)
	}
	if (c.ScrubRate != nil && *c.ScrubRate < 0) || c.Fill.Rate < 0 || c.Fill.OutOfCycleBudget < 0 {
		return Errf("scrub_rate/fill.rate/fill.out_of_cycle_budget", "must not be negative")
	}
	if u := c.Fill.UrgentRate; u < 0 || (c.Fill.Rate > 0 && u > c.Fill.Rate) {
		return Errf("fill.urgent_rate", "%d bytes/s is not between 0 and fill.rate (%d): fill outside the window is capped lower than inside it", u, c.Fill.Rate)
	}
	if c.MaxQueuedReports < 0 {
		return Errf("max_queued_reports", "must not be negative")
	}
	if c.Fill.Concurrency < 0 || c.Fill.Concurrency > 256 {
		return Errf("fill.concurrency", "%d is not between 1 and 256", c.Fill.Concurrency)
	}
	for _, d := range []struct {
		field  string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"heartbeat_interval", c.HeartbeatInterval, MinHeartbeatInterval, time.Hour},
		{"stale_limit", c.StaleLimit, time.Second, 30 * 24 * time.Hour},
		{"drain_grace", c.DrainGrace, time.Millisecond, time.Hour},
		{"drain_timeout", c.DrainTimeout, time.Millisecond, 24 * time.Hour},
		{"fill.stall_timeout", c.Fill.StallTimeout, 100 * time.Millisecond, time.Hour},
		{"fill.interval", c.Fill.Interval, 10 * time.Millisecond, time.Hour},
		{"fill.retire_grace", c.Fill.RetireGrace, time.Millisecond, 24 * time.Hour},
	} {
		if err := durationAtLeast(d.field, d.v, d.lo, d.hi); err != nil {
			return err
		}
	}
	if err := c.TLS.validate("tls"); err != nil {
		return err
	}
	if err := c.Transport.validate(); err != nil {
		return err
	}
	return c.BGP.validate()
}

func (b *BGP) validate() error {
	if b == nil {
		return nil
	}
	switch b.LocalASN {
	case 0:
		return Errf("bgp.local_asn", "must be set (the CDN's AS number)")
	case 23456:
		return Errf("bgp.local_asn", "23456 is AS_TRANS (RFC 6793), not a real ASN")
	}
	if !b.LocalAddress.IsValid() {
		return Errf("bgp.local_address", "%q is not an IP address", b.LocalAddress.Raw)
	}
	if b.RouterID.Raw != "" && (!b.RouterID.Is4() || b.RouterID.IsUnspecified()) {
		return Errf("bgp.router_id", "%q is not an IPv4 address other than 0.0.0.0", b.RouterID.Raw)
	}
	if b.RouterID.Raw == "" && !b.LocalAddress.Is4() {
		return Errf("bgp.router_id", "must be set to an IPv4 address when local_address is IPv6")
	}
	if err := durationAtLeast("bgp.route_hold", b.RouteHold, time.Millisecond, 24*time.Hour); err != nil {
		return err
	}
	for i, p := range b.AllowPrefixes {
		f := fmt.Sprintf("bgp.allow_prefixes[%d]", i)
		if !p.IsValid() {
			return Errf(f, "%q is not a prefix such as 198.51.100.0/24", p.Raw)
		}
		if p.Prefix != p.Masked() {
			return Errf(f, "%s has host bits set; did you mean %s?", p.Prefix, p.Masked())
		}
	}
	if len(b.Neighbors) == 0 {
		return Errf("bgp.neighbors", "at least one neighbor (the ISP's router) is needed")
	}
	seen := map[netip.Addr]int{}
	for i, n := range b.Neighbors {
		f := fmt.Sprintf("bgp.neighbors[%d]", i)
		switch {
		case !n.Address.IsValid():
			return Errf(f+".address", "%q is not an IP address", n.Address.Raw)
		case n.Address.IsUnspecified() || n.Address.IsMulticast():
			return Errf(f+".address", "%s is not a unicast address", n.Address.Addr)
		case n.Address.Zone() != "":
			return Errf(f+".address", "zoned (link-local) addresses are not supported")
		}
		if j, dup := seen[n.Address.Addr]; dup {
			return Errf(f+".address", "%s is also bgp.neighbors[%d]", n.Address.Addr, j)
		}
		seen[n.Address.Addr] = i
		switch n.PeerASN {
		case 0:
			return Errf(f+".peer_asn", "must be set (the router's AS number)")
		case 23456:
			return Errf(f+".peer_asn", "23456 is AS_TRANS (RFC 6793), not a real ASN")
		}
		switch n.Family {
		case "", "ipv4", "ipv6":
		default:
			return Errf(f+".family", "%q is not ipv4 or ipv6", n.Family)
		}
		if n.MaxPrefixes < 0 {
			return Errf(f+".max_prefixes", "must not be negative")
		}
		if n.HoldTime < 0 || (n.HoldTime > 0 && n.HoldTime < 3*time.Second) || n.HoldTime > 65535*time.Second || n.HoldTime%time.Second != 0 {
			return Errf(f+".hold_time", "%s is not whole seconds from 3s to 65535s (RFC 4271)", n.HoldTime)
		}
	}
	return nil
}

func (c *ApplianceDaemon) resolvePaths(dir string) {
	for _, p := range []*string{&c.ControlCAFile, &c.TokenFile, &c.KeyFile, &c.Store, &c.Transport.Dir} {
		resolve(dir, p)
	}
	if c.AccessLog != "off" {
		resolve(dir, &c.AccessLog)
	}
	if c.TLS != nil {
		resolve(dir, &c.TLS.CertFile)
		resolve(dir, &c.TLS.KeyFile)
	}
	if c.BGP != nil {
		for i := range c.BGP.Neighbors {
			resolve(dir, &c.BGP.Neighbors[i].MD5PasswordFile)
		}
	}
}

// Origin is the origin's config file (`ocdn origin --config`).
type Origin struct {
	Listen  AddrList `yaml:"listen,omitempty"`
	Catalog string   `yaml:"catalog,omitempty"`
	// Dir holds the catalog's files as DIR/title/file; a synthetic
	// catalog needs none.
	Dir string    `yaml:"dir,omitempty"`
	TLS *TLSFiles `yaml:"tls,omitempty"`
}

// Validate implements Validator.
func (c *Origin) Validate() error {
	if err := c.Listen.validate("listen", true); err != nil {
		return err
	}
	if c.Catalog == "" {
		return Errf("catalog", "must name a catalog file")
	}
	return c.TLS.validate("tls")
}

func (c *Origin) resolvePaths(dir string) {
	resolve(dir, &c.Catalog)
	resolve(dir, &c.Dir)
	if c.TLS != nil {
		resolve(dir, &c.TLS.CertFile)
		resolve(dir, &c.TLS.KeyFile)
	}
}
