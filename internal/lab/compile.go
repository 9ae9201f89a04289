package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/measure"
	"github.com/ocdn/ocdn/internal/pki"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// The lab is a compiler: Compile turns a scenario into the files an
// operator would deploy — a control-plane config, an origin config, one
// config per appliance, one GoBGP config per ISP router, and the catalog,
// keys and credentials they name — and the lab then runs the daemons from
// those very files (in-process or as processes). Everything the lab shows
// is therefore something `ocdn control --config` and `ocdn appliance
// --config` offer.

// File names inside a deployment directory.
const (
	controlFile    = "control.yaml"
	originFile     = "origin.yaml"
	catalogFile    = "catalog.json"
	keysFile       = "keys.json"
	publicKeysFile = "keys.public.json"
	secretFile     = "appliance.secret"
	adminFile      = "admin.token"
	viewerFile     = "viewer.token"
	operatorFile   = "operator.token"
	appliancesDir  = "appliances"
	routersDir     = "routers"
	tokensDir      = "tokens"
	storesDir      = "stores"
	measureDir     = "measure"
	pkiDir         = "pki"
	certsDir       = "certs"
)

// labDomain is the CDN domain the lab's appliances are named under; the
// control plane's DNS server answers for it.
const labDomain = "cdn.lab.example"

// opsPort is where each lab appliance serves /metrics and /v1/status, on
// its own address.
const opsPort = 9180

// Endpoints are the addresses the compiled daemons listen on that the
// scenario does not fix.
type Endpoints struct {
	Control netip.AddrPort
	Origin  netip.AddrPort
	// DNS, when set, is where the control plane's DNS server answers for
	// the appliances' names; the appliances then serve HTTPS with
	// certificates from the lab's CA, and clients reach them by name.
	// Unset: plain HTTP to addresses.
	DNS netip.AddrPort
	// Netns6 is the lab's IPv6 namespace (ipv6.go): appliances listen on
	// their address6, and the control plane on control6, inside it.
	// Empty: on the host, as a deployment would (--print-configs).
	Netns6 string
}

// DefaultEndpoints are what --print-configs writes.
var DefaultEndpoints = Endpoints{
	Control: netip.MustParseAddrPort("127.0.0.1:18000"),
	Origin:  netip.MustParseAddrPort("127.0.0.1:18001"),
	DNS:     netip.MustParseAddrPort("127.0.0.1:18053"),
}

// Deployment is a compiled scenario: every daemon's config and the files
// they name, with paths relative to the directory Write puts them in.
type Deployment struct {
	Control config.Control
	// Replicas are the control planes beyond the first when several share
	// a PostgreSQL store (Options.ControlReplicas): Control's config but
	// for listen and measure.dir, written as control-2.yaml and on.
	Replicas   []config.Control
	Origin     config.Origin
	Appliances []config.ApplianceDaemon // in the scenario's order
	Routers    []Router
	Catalog    *content.Catalog
	AdminToken string
	// CA is the lab's certificate authority when the appliances serve
	// HTTPS (pki/ca.pem, the bundle clients verify with); nil otherwise.
	CA *pki.CA
	// tokens are the appliances' credentials by id.
	tokens map[string]string
	files  map[string][]byte
}

// Router is one BGP router the lab plays: an ISP's, announcing the ISP's
// prefixes to its embedded and private sites' appliances, or the IXP's
// route server, announcing every ISP's prefixes to the IXP appliances.
type Router struct {
	Name    string
	ASN     uint32
	Address netip.Addr
	Peers   []netip.Addr
	PeerASN uint32
	Routes  []announcement
	// IPv6 says the router's sessions carry IPv6 unicast (its Routes are
	// the ISP's IPv6 prefixes); an ISP with both families has a router of
	// each, as appliances hold a session per family.
	IPv6 bool
}

// Compile turns a validated scenario into a deployment.
func Compile(sc *Scenario, ep Endpoints) (*Deployment, error) {
	if sc.compiled.IsZero() {
		sc.compiled = time.Now().UTC().Truncate(time.Second)
	}
	cat, err := content.Synth(sc.Catalog)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	d := &Deployment{Catalog: cat, tokens: map[string]string{}, files: map[string][]byte{}}
	catJSON, err := cat.Marshal()
	if err != nil {
		return nil, err
	}
	// Ed25519: the control plane signs, appliances hold the public key.
	ks := urlsign.GenerateEd25519()
	keys, err := json.MarshalIndent(ks, "", "  ")
	if err != nil {
		return nil, err
	}
	pubKeys, err := json.MarshalIndent(ks.Public(), "", "  ")
	if err != nil {
		return nil, err
	}
	secret := auth.NewSecret()
	d.AdminToken = strings.TrimSpace(auth.NewSecret().Encode())
	d.files[catalogFile] = catJSON
	d.files[keysFile] = append(keys, '\n')
	d.files[publicKeysFile] = append(pubKeys, '\n')
	d.files[secretFile] = []byte(secret.Encode())
	d.files[adminFile] = []byte(d.AdminToken + "\n")
	// The web console's credentials (docs/console.md).
	d.files[operatorFile] = []byte(strings.TrimSpace(auth.NewSecret().Encode()) + "\n")
	d.files[viewerFile] = []byte(strings.TrimSpace(auth.NewSecret().Encode()) + "\n")

	d.Origin = config.Origin{Listen: addrList(ep.Origin), Catalog: catalogFile}
	esc := sc.Fill.EscalateAfter
	if esc <= 0 {
		esc = 10 * time.Second
	}
	pl := sc.Placement.withDefaults()
	d.Control = config.Control{
		Listen: addrList(ep.Control), Catalog: catalogFile, OriginURL: "http://" + ep.Origin.String(),
		KeyFile: keysFile, AdminTokenFile: adminFile, ApplianceSecretFile: secretFile,
		ViewerTokenFile: viewerFile, OperatorTokenFile: operatorFile,
		HeartbeatInterval: sc.HeartbeatInterval, Replicas: sc.Replicas, ActivePoll: true,
		Store: "control.db",
		Measure: &config.Measure{Dir: measureDir, Recipe: config.Recipe{Pulses: sc.Probes.Pulses, PulseSize: sc.Probes.RangeBytes,
			PulseDelay: 50 * time.Millisecond, PulseTimeout: 3 * time.Second, Interval: sc.Probes.Every, Types: sc.Probes.Types}},
		Steering: sc.steering(),
		// New appliances get clients once filled and a test download from
		// them matches the origin.
		TurnUp: config.TurnUp{FillShare: 1},
		Fill:   config.ControlFill{EscalateAfter: esc},
		Placement: config.Placement{ReplanInterval: pl.ReplanInterval, CheckInterval: pl.CheckInterval,
			HalfLife: pl.HalfLife, Hysteresis: pl.Hysteresis, RankingChange: pl.RankingChange, MaxChurn: pl.MaxChurn},
		Inventory: sc.Inventory,
	}
	if sc.hasIPv6() {
		listenIPv6(ep.Netns6, netip.AddrPortFrom(control6, ep.Control.Port()), &d.Control.Listen, &d.Control.ListenNetns)
		if slices.ContainsFunc(sc.Clients, func(c ClientGroup) bool { return c.IPv6Share > 0 }) {
			// Dual-stack clients probe dual-stack appliances over both
			// families (ocdn analyze's family comparison).
			d.Control.Measure.Recipe.Families = "both"
		}
	}
	d.Routers = compileRouters(sc)
	// The control plane serves the browser pages; pages of its origin may
	// fetch content and read its timing from every appliance.
	pages := &config.CORS{AllowedOrigins: []string{"http://" + ep.Control.String()}}
	for _, a := range sc.Appliances {
		token := secret.Mint(a.ID, time.Now().Add(365*24*time.Hour))
		d.tokens[a.ID] = token
		d.files[filepath.Join(tokensDir, a.ID+".token")] = []byte(token + "\n")
		ac := config.ApplianceDaemon{
			ID: a.ID, Listen: config.AddrList{a.Address}, OpsListen: addrList(netip.AddrPortFrom(a.Address.Addr(), opsPort)),
			ControlURLs: []string{"http://" + ep.Control.String()},
			TokenFile:   filepath.Join("..", tokensDir, a.ID+".token"), KeyFile: filepath.Join("..", publicKeysFile),
			Store: filepath.Join("..", storesDir, a.ID), Capacity: a.Capacity, HeartbeatInterval: sc.HeartbeatInterval,
			// The lab stops everything at once: in-flight transfers get a
			// second, not an operator's drain.
			DrainGrace: time.Millisecond, DrainTimeout: time.Second, AccessLog: "off",
			// A retired file stays a few seconds after it left steering:
			// sessions that already had its URL fail over, not wait.
			Fill: config.ApplianceFill{Concurrency: 4, Rate: sc.Fill.RateBytes, Interval: 300 * time.Millisecond, StrictWindow: true,
				RetireGrace: 5 * time.Second},
			BGP: d.applianceBGP(sc, a), CORS: pages,
			Transport: sc.transportSampling(a.Site),
		}
		if a.Address6.IsValid() {
			listenIPv6(ep.Netns6, a.Address6.AddrPort, &ac.Listen, &ac.ListenNetns)
		}
		d.Appliances = append(d.Appliances, ac)
	}
	if err := d.compileFeeds(sc); err != nil {
		return nil, err
	}
	if ep.DNS.IsValid() {
		if err := d.compileTLS(sc, ep.DNS); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// compileTLS names the appliances under labDomain, served by the control
// plane's DNS server at dns, and has them serve HTTPS with certificates
// from a CA made for the run, with the same code as `ocdn pki`: clients
// then reach them as they would a deployed CDN, by name over verified
// HTTPS. The control plane's own API stays plain HTTP on loopback.
func (d *Deployment) compileTLS(sc *Scenario, dns netip.AddrPort) error {
	now := time.Now()
	ca, err := pki.NewCA("ocdn lab CA", labDomain, pki.DefaultCAValidity, now)
	if err != nil {
		return err
	}
	d.CA = ca
	d.Control.DNS = &config.DNS{Domain: labDomain, Listen: addrList(dns)}
	if r := &d.Control.Measure.Recipe; len(r.Types) == 0 {
		// Names can be probed: resolution time and the resolver's view.
		r.Types = []string{measure.TypeTCPConnect, measure.TypeHTTPTTFB, measure.TypeThroughput, measure.TypeDNS}
	}
	d.Control.ApplianceCAFile = filepath.Join(pkiDir, pki.CACertFile)
	d.Control.Inventory.Appliances = slices.Clone(d.Control.Inventory.Appliances)
	for i := range d.Control.Inventory.Appliances {
		d.Control.Inventory.Appliances[i].TLS = true
	}
	d.files[filepath.Join(pkiDir, pki.CACertFile)] = ca.CertPEM()
	ids := make([]string, len(d.Appliances))
	for i, a := range d.Appliances {
		ids[i] = a.ID
	}
	reqs, err := pki.ApplianceRequests(&d.Control, ids)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		certPEM, keyPEM, err := ca.Issue(r, pki.DefaultLeafValidity, now)
		if err != nil {
			return err
		}
		a := &d.Appliances[slices.IndexFunc(d.Appliances, func(a config.ApplianceDaemon) bool { return a.ID == r.Name })]
		cert, key := filepath.Join(certsDir, a.ID+".pem"), filepath.Join(certsDir, a.ID+".key")
		d.files[cert], d.files[key] = certPEM, keyPEM
		a.TLS = &config.TLSFiles{CertFile: filepath.Join("..", cert), KeyFile: filepath.Join("..", key)}
		// Fill from peers is over HTTPS too.
		a.ControlCAFile = filepath.Join("..", pkiDir, pki.CACertFile)
	}
	return nil
}

func addrList(ap netip.AddrPort) config.AddrList {
	return config.AddrList{{AddrPort: ap, Raw: ap.String()}}
}

// compileRouters is a router per ISP with embedded or private sites, and a
// route server when there is an IXP site: one of each per address family
// the ISPs' prefixes have.
func compileRouters(sc *Scenario) []Router {
	peersOf := func(match func(config.Site) bool) []netip.Addr {
		var out []netip.Addr
		for _, a := range sc.Appliances {
			if s, _ := sc.SiteByID(a.Site); match(s) {
				out = append(out, a.Address.Addr())
			}
		}
		return out
	}
	var out []Router
	var all [2][]announcement // by family: IPv4, IPv6
	for i, isp := range sc.ISPs {
		peers := peersOf(func(s config.Site) bool { return s.ISP == isp.Name })
		for f, v6 := range []bool{false, true} {
			routes := ispAnnouncements(isp, v6)
			for _, r := range routes {
				all[f] = append(all[f], announcement{Prefix: r.Prefix, ASPath: []uint32{isp.ASN}})
			}
			if len(peers) == 0 || len(routes) == 0 {
				continue // an ISP without embedded sites has no router of ours
			}
			out = append(out, Router{Name: routerName(isp.Name, v6), ASN: isp.ASN, Address: routerAddr(i, v6), Peers: peers,
				PeerASN: applianceASN, Routes: routes, IPv6: v6})
		}
	}
	if peers := peersOf(func(s config.Site) bool { return s.Kind == config.SiteIXP }); len(peers) > 0 {
		for f, v6 := range []bool{false, true} {
			if len(all[f]) > 0 {
				out = append(out, Router{Name: routerName(routeServer, v6), ASN: routeServerASN, Address: routeServerAddr(v6), Peers: peers,
					PeerASN: applianceASN, Routes: all[f], IPv6: v6})
			}
		}
	}
	return out
}

// applianceBGP is an appliance's BGP section: a session per family with
// its ISP's router at an embedded or private site, with the route server
// at an IXP site; none at a fallback site, which serves anyone without
// routes.
func (d *Deployment) applianceBGP(sc *Scenario, a config.Appliance) *config.BGP {
	site, _ := sc.SiteByID(a.Site)
	var nbs []config.Neighbor
	for _, r := range d.Routers {
		var mine bool
		switch site.Kind {
		case config.SiteEmbedded, config.SitePrivate:
			mine = r.Name == routerName(site.ISP, r.IPv6)
		case config.SiteIXP:
			mine = r.Name == routerName(routeServer, r.IPv6)
		}
		if !mine {
			continue
		}
		// The appliance waits for its router, as the router connects
		// out; the IPv6 session runs over IPv4 like the other (the
		// routers are on the host's loopback).
		nb := config.Neighbor{Address: addr(r.Address), PeerASN: r.ASN, Passive: true, Family: "ipv4"}
		if r.IPv6 {
			nb.Family = "ipv6"
		}
		nbs = append(nbs, nb)
	}
	if len(nbs) == 0 {
		return nil
	}
	return &config.BGP{
		LocalASN: applianceASN, LocalAddress: addr(a.Address.Addr()), ListenPort: bgpPort,
		AllowPrefixes: []config.Prefix{{Prefix: loopback4, Raw: loopback4.String()}, {Prefix: lab6Range, Raw: lab6Range.String()}},
		Neighbors:     nbs,
	}
}

// speaksBGP says whether appliance id has a BGP section.
func (d *Deployment) speaksBGP(id string) bool {
	i := slices.IndexFunc(d.Appliances, func(a config.ApplianceDaemon) bool { return a.ID == id })
	return i >= 0 && d.Appliances[i].BGP != nil
}

func addr(a netip.Addr) config.Addr { return config.Addr{Addr: a, Raw: a.String()} }

// Write puts the deployment in dir: control.yaml, origin.yaml,
// appliances/ID.yaml, routers/NAME.toml (gobgpd) with NAME.routes (the
// gobgp commands that originate its prefixes), and the files they name.
func (d *Deployment) Write(dir string) error {
	out := map[string][]byte{}
	for name, b := range d.files {
		out[name] = b
	}
	var err error
	if out[controlFile], err = marshalYAML("ocdn control --config", &d.Control); err != nil {
		return err
	}
	for i := range d.Replicas {
		if out[replicaFile(i+1)], err = marshalYAML("ocdn control --config", &d.Replicas[i]); err != nil {
			return err
		}
	}
	if out[originFile], err = marshalYAML("ocdn origin --config", &d.Origin); err != nil {
		return err
	}
	for i := range d.Appliances {
		a := &d.Appliances[i]
		if out[filepath.Join(appliancesDir, a.ID+".yaml")], err = marshalYAML("ocdn appliance --config", a); err != nil {
			return err
		}
	}
	for _, r := range d.Routers {
		out[filepath.Join(routersDir, r.Name+".toml")] = r.gobgpConfig()
		out[filepath.Join(routersDir, r.Name+".routes")] = r.gobgpRoutes()
	}
	for name, b := range out {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".token") || strings.HasSuffix(name, ".key") || name == secretFile || name == keysFile {
			mode = 0o600
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			return err
		}
	}
	return nil
}

// Paths of the written configs.
func controlPath(dir string) string        { return filepath.Join(dir, controlFile) }
func replicaPath(dir string, i int) string { return filepath.Join(dir, replicaFile(i)) }
func originPath(dir string) string         { return filepath.Join(dir, originFile) }
func appliancePath(dir, id string) string  { return filepath.Join(dir, appliancesDir, id+".yaml") }
func routerPath(dir, name string) string   { return filepath.Join(dir, routersDir, name+".toml") }

// replicaFile is control-plane replica i's config: control.yaml for the
// first, control-2.yaml for the second, and so on.
func replicaFile(i int) string {
	if i == 0 {
		return controlFile
	}
	return fmt.Sprintf("control-%d.yaml", i+1)
}

func marshalYAML(header string, v any) ([]byte, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Written by ocdn lab for `"+header+" FILE`; see docs/formats.md.\n"), b...), nil
}

// gobgpConfig is the router's gobgpd configuration (TOML): it listens
// nowhere and connects out to its appliances, which wait for it.
func (r Router) gobgpConfig() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: the lab's BGP router (GoBGP), as gobgpd would run it: gobgpd -f %s.toml\n", r.Name, r.Name)
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = %q\n  port = -1\n\n", r.ASN, r.Address)
	for _, p := range r.Peers {
		fmt.Fprintf(&b, "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", p, r.PeerASN)
		fmt.Fprintf(&b, "  [neighbors.transport.config]\n    local-address = %q\n    remote-port = %d\n", r.Address, bgpPort)
		fmt.Fprintf(&b, "  [neighbors.timers.config]\n    connect-retry = 1\n")
		fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n\n", r.family()+"-unicast")
	}
	return []byte(b.String())
}

// family is the router's address family as gobgp names it.
func (r Router) family() string {
	if r.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// gobgpRoutes are the gobgp commands that originate the router's prefixes.
func (r Router) gobgpRoutes() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# The prefixes %s originates, as gobgp commands against its gobgpd.\n", r.Name)
	for _, a := range r.Routes {
		nh := labNextHop
		if r.IPv6 {
			nh = labNextHop6
		}
		fmt.Fprintf(&b, "gobgp global rib add -a %s %s nexthop %s origin igp med %d", r.family(), a.Prefix, nh, a.MED)
		if len(a.ASPath) > 0 {
			path := make([]string, len(a.ASPath))
			for i, as := range a.ASPath {
				path[i] = fmt.Sprint(as)
			}
			fmt.Fprintf(&b, " aspath %s", strings.Join(path, ","))
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
