// Package world provides the simulator's world: the client population of
// a real internet (every routed prefix with its origin AS, country, metro
// and subscribers), the CDN deployment in it (sites and appliances), and
// the explicit model that produced both. A world is a YAML file that
// names two tab-separated data files beside it (ASes and prefixes); every
// assumption the builder made is a field of the YAML file, so a researcher
// can read, change and rebuild it. docs/sim.md describes the fields.
package world

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // metros name IANA zones; do not depend on the host having them

	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/config"
)

// FormatVersion is the world format this code writes and reads.
const FormatVersion = 1

// World is a loaded world. The YAML fields are the model and the
// deployment; ASes and Prefixes come from the data files it names.
type World struct {
	Version int    `yaml:"version"`
	Name    string `yaml:"name"`
	// Sources records where the data came from (informational).
	Sources    map[string]string `yaml:"sources,omitempty"`
	Population Population        `yaml:"population"`
	Deployment Deployment        `yaml:"deployment"`
	Routing    Routing           `yaml:"routing"`
	Countries  []Country         `yaml:"countries"`
	Metros     []Metro           `yaml:"metros"`
	Sites      []Site            `yaml:"sites"`
	Appliances []Appliance       `yaml:"appliances"`
	// ASesFile and PrefixesFile are the data files, relative to the
	// world file (gzip optional).
	ASesFile     string `yaml:"ases"`
	PrefixesFile string `yaml:"prefixes"`

	ASes     []AS     `yaml:"-"`
	Prefixes []Prefix `yaml:"-"`

	countryIdx map[string]int
	metroIdx   map[string]int
	siteIdx    map[string]int
}

// Population is the client population model: subscribers per country
// from internet users and a subscriber share, spread over the country's
// access networks by routed address space.
type Population struct {
	// DefaultSubscriberShare is the share of a country's internet users
	// who subscribe, where the country sets none.
	DefaultSubscriberShare float64 `yaml:"default_subscriber_share"`
	// UsersPerAddress estimates internet users for countries missing
	// from countries[] (users = routed IPv4 addresses × this).
	UsersPerAddress float64 `yaml:"users_per_address"`
	// IPv6Share is the share of an AS's subscribers reached over IPv6
	// (when it announces IPv6 prefixes), spread evenly over them.
	IPv6Share float64 `yaml:"ipv6_share"`
	// V6OnlyASAddresses is the IPv4-equivalent size given to an AS that
	// announces only IPv6 prefixes.
	V6OnlyASAddresses float64 `yaml:"v6_only_as_addresses"`
	// NonAccessPatterns are substrings of AS names (case-insensitive)
	// marking networks with few subscribers behind them (clouds,
	// hosting, research, government); their address space counts
	// NonAccessWeight times.
	NonAccessPatterns []string `yaml:"non_access_patterns"`
	NonAccessWeight   float64  `yaml:"non_access_weight"`
	// Subscribers is the total the model gave (written by the builder).
	Subscribers float64 `yaml:"subscribers"`
}

// Deployment is how the generator placed the CDN in the world.
type Deployment struct {
	Seed     uint64           `yaml:"seed"`
	Embedded EmbeddedSpec     `yaml:"embedded"`
	IXP      IXPSpec          `yaml:"ixp"`
	Classes  []ApplianceClass `yaml:"appliance_classes"`
}

// EmbeddedSpec places embedded sites in the largest access networks of
// each country.
type EmbeddedSpec struct {
	// NetworksPerCountry is the most access networks per country that
	// get embedded sites; a network needs MinNetworkSubscribers and
	// MinNetworkShare of its country's subscribers.
	NetworksPerCountry    int     `yaml:"networks_per_country"`
	MinNetworkSubscribers float64 `yaml:"min_network_subscribers"`
	MinNetworkShare       float64 `yaml:"min_network_share"`
	// SubscribersPerSite sets how many sites a network gets (at least
	// one, at most MaxSitesPerNetwork), spread over its metros by
	// subscribers.
	SubscribersPerSite float64 `yaml:"subscribers_per_site"`
	MaxSitesPerNetwork int     `yaml:"max_sites_per_network"`
	// Appliances per site: subscribers / SubscribersPerAppliance,
	// clamped to [MinAppliances, MaxAppliances].
	SubscribersPerAppliance float64 `yaml:"subscribers_per_appliance"`
	MinAppliances           int     `yaml:"min_appliances"`
	MaxAppliances           int     `yaml:"max_appliances"`
}

// IXPSpec places IXP sites in the biggest metros.
type IXPSpec struct {
	Metros                  int     `yaml:"metros"`
	SubscribersPerAppliance float64 `yaml:"subscribers_per_appliance"`
	MinAppliances           int     `yaml:"min_appliances"`
	MaxAppliances           int     `yaml:"max_appliances"`
}

// ApplianceClass is one kind of appliance hardware; the generator draws
// each appliance's class by Share.
type ApplianceClass struct {
	Name           string  `yaml:"name"`
	Share          float64 `yaml:"share"`
	Storage        Size    `yaml:"storage"`
	ThroughputGbps float64 `yaml:"throughput_gbps"`
}

// Routing is the model of which appliances hear a route to which prefix
// (the simulator builds its RIB from it).
type Routing struct {
	// EmbeddedBackupSites is how many other sites of the same network
	// hear each prefix besides its home site (with a higher MED).
	EmbeddedBackupSites int `yaml:"embedded_backup_sites"`
	// IXPSitesPerPrefix is how many of the nearest IXP sites hear each
	// prefix (through their route servers; AS path one longer).
	IXPSitesPerPrefix int `yaml:"ixp_sites_per_prefix"`
	// RouteServerASN is the route servers' AS, in the IXP routes' path.
	RouteServerASN uint32 `yaml:"route_server_asn"`
	// MEDPerKm raises a backup route's MED with distance.
	MEDPerKm float64 `yaml:"med_per_km"`
	// IXPGlobal makes IXP appliances serve clients they have no route to
	// (the control plane does this today; with thousands of IXP
	// appliances it would rank them all on every decision, so generated
	// worlds route IXP sites instead).
	IXPGlobal bool `yaml:"ixp_global"`
}

// Country is one country's population inputs and result.
type Country struct {
	Code string `yaml:"code"`
	// Users is the number of internet users (approximate public figures;
	// 0 = estimated from address space with UsersPerAddress).
	Users float64 `yaml:"users"`
	// SubscriberShare overrides Population.DefaultSubscriberShare (-1 =
	// not set).
	SubscriberShare *float64 `yaml:"subscriber_share,omitempty"`
	// Subscribers is what the model gave (written by the builder).
	Subscribers float64 `yaml:"subscribers"`
}

// Metro is a place clients and sites are in: its location is the clients'
// location for distances, its time zone drives their diurnal demand.
type Metro struct {
	ID       string  `yaml:"id"`
	Country  string  `yaml:"country"`
	Lat      float64 `yaml:"lat"`
	Lon      float64 `yaml:"lon"`
	TimeZone string  `yaml:"time_zone"`
	// Weight is the metro's share of its country's prefixes (population
	// in millions for the curated metros).
	Weight float64 `yaml:"weight"`

	Loc *time.Location `yaml:"-"`
}

// Site is a CDN site; embedded and private sites belong to a network (ASN).
type Site struct {
	ID    string          `yaml:"id"`
	Kind  config.SiteKind `yaml:"kind"`
	ASN   uint32          `yaml:"asn,omitempty"`
	Metro string          `yaml:"metro"`
}

// Appliance is one edge cache.
type Appliance struct {
	ID             string  `yaml:"id"`
	Site           string  `yaml:"site"`
	Class          string  `yaml:"class,omitempty"`
	Storage        Size    `yaml:"storage"`
	ThroughputGbps float64 `yaml:"throughput_gbps"`
}

// AS is an origin AS of the table.
type AS struct {
	ASN         uint32
	Country     string
	Access      bool
	Subscribers float64
	Name        string
}

// Prefix is one routed prefix and its clients.
type Prefix struct {
	Prefix      netip.Prefix
	ASN         uint32 // 0: no table knows the origin AS
	Metro       int32  // index into World.Metros
	Subscribers float32
}

// Limits beyond which a value is taken for a typo.
const (
	maxStorage        = 10 << 50 // 10 PiB per appliance
	maxThroughputGbps = 10_000
)

// Validate checks the YAML part of a world.
func (w *World) Validate() error {
	if w.Version != FormatVersion {
		return Errf("version", "%d: this ocdn reads world version %d", w.Version, FormatVersion)
	}
	if err := w.Population.validate(); err != nil {
		return err
	}
	if err := w.Deployment.validate(); err != nil {
		return err
	}
	r := w.Routing
	if r.EmbeddedBackupSites < 0 || r.EmbeddedBackupSites > 8 {
		return Errf("routing.embedded_backup_sites", "%d is not between 0 and 8", r.EmbeddedBackupSites)
	}
	if r.IXPSitesPerPrefix < 0 || r.IXPSitesPerPrefix > 8 {
		return Errf("routing.ixp_sites_per_prefix", "%d is not between 0 and 8", r.IXPSitesPerPrefix)
	}
	if r.MEDPerKm < 0 || math.IsNaN(r.MEDPerKm) || r.MEDPerKm > 1000 {
		return Errf("routing.med_per_km", "%v is not between 0 and 1000", r.MEDPerKm)
	}
	w.countryIdx = make(map[string]int, len(w.Countries))
	for i, c := range w.Countries {
		f := fmt.Sprintf("countries[%d]", i)
		if len(c.Code) != 2 || strings.ToUpper(c.Code) != c.Code {
			return Errf(f+".code", "%q is not a two-letter country code such as DE", c.Code)
		}
		if _, dup := w.countryIdx[c.Code]; dup {
			return Errf(f+".code", "%q listed twice", c.Code)
		}
		w.countryIdx[c.Code] = i
		if !finiteIn(c.Users, 0, 2e9) {
			return Errf(f+".users", "%v is not between 0 and 2e9", c.Users)
		}
		if c.SubscriberShare != nil && !finiteIn(*c.SubscriberShare, 0, 1) {
			return Errf(f+".subscriber_share", "%v is not a share between 0 and 1", *c.SubscriberShare)
		}
		if !finiteIn(c.Subscribers, 0, 2e9) {
			return Errf(f+".subscribers", "%v is not between 0 and 2e9", c.Subscribers)
		}
	}
	w.metroIdx = make(map[string]int, len(w.Metros))
	for i := range w.Metros {
		m := &w.Metros[i]
		f := fmt.Sprintf("metros[%d]", i)
		if m.ID == "" || strings.ContainsAny(m.ID, " \t/") {
			return Errf(f+".id", "%q must be set and contain no space, tab or '/'", m.ID)
		}
		if _, dup := w.metroIdx[m.ID]; dup {
			return Errf(f+".id", "%q listed twice", m.ID)
		}
		w.metroIdx[m.ID] = i
		if _, ok := w.countryIdx[m.Country]; !ok {
			return Errf(f+".country", "%q is not one of the world's countries", m.Country)
		}
		if !finiteIn(m.Lat, -90, 90) {
			return Errf(f+".lat", "%v is not a latitude", m.Lat)
		}
		if !finiteIn(m.Lon, -180, 180) {
			return Errf(f+".lon", "%v is not a longitude", m.Lon)
		}
		loc, err := time.LoadLocation(m.TimeZone)
		if err != nil || m.TimeZone == "" {
			return Errf(f+".time_zone", "%q is not an IANA time zone such as Europe/Berlin", m.TimeZone)
		}
		m.Loc = loc
		if !finiteIn(m.Weight, 0, 1e6) {
			return Errf(f+".weight", "%v is not between 0 and 1e6", m.Weight)
		}
	}
	w.siteIdx = make(map[string]int, len(w.Sites))
	for i, s := range w.Sites {
		f := fmt.Sprintf("sites[%d]", i)
		if s.ID == "" || strings.ContainsAny(s.ID, " \t/") {
			return Errf(f+".id", "%q must be set and contain no space, tab or '/'", s.ID)
		}
		if _, dup := w.siteIdx[s.ID]; dup {
			return Errf(f+".id", "%q listed twice", s.ID)
		}
		w.siteIdx[s.ID] = i
		switch s.Kind {
		case config.SiteEmbedded, config.SitePrivate:
			if s.ASN == 0 {
				return Errf(f+".asn", "an %s site belongs to a network: set its ASN", s.Kind)
			}
		case config.SiteIXP, config.SiteFallback:
		default:
			return Errf(f+".kind", "%q is not one of embedded, private, ixp, fallback", s.Kind)
		}
		if _, ok := w.metroIdx[s.Metro]; !ok {
			return Errf(f+".metro", "%q is not one of the world's metros, so the site is in no country", s.Metro)
		}
	}
	ids := make(map[string]bool, len(w.Appliances))
	for i, a := range w.Appliances {
		f := fmt.Sprintf("appliances[%d]", i)
		if a.ID == "" || strings.ContainsAny(a.ID, " \t/") {
			return Errf(f+".id", "%q must be set and contain no space, tab or '/'", a.ID)
		}
		if ids[a.ID] {
			return Errf(f+".id", "%q listed twice", a.ID)
		}
		ids[a.ID] = true
		if _, ok := w.siteIdx[a.Site]; !ok {
			return Errf(f+".site", "unknown site %q", a.Site)
		}
		if a.Storage <= 0 || a.Storage > maxStorage {
			return Errf(f+".storage", "%d bytes is not a size between 1 byte and 10 PiB", a.Storage)
		}
		if !finiteIn(a.ThroughputGbps, 1e-6, maxThroughputGbps) {
			return Errf(f+".throughput_gbps", "%v is not between 0 and %d Gb/s", a.ThroughputGbps, maxThroughputGbps)
		}
	}
	return nil
}

func (p Population) validate() error {
	switch {
	case !finiteIn(p.DefaultSubscriberShare, 0, 1):
		return Errf("population.default_subscriber_share", "%v is not a share between 0 and 1", p.DefaultSubscriberShare)
	case !finiteIn(p.UsersPerAddress, 0, 100):
		return Errf("population.users_per_address", "%v is not between 0 and 100", p.UsersPerAddress)
	case !finiteIn(p.IPv6Share, 0, 1):
		return Errf("population.ipv6_share", "%v is not a share between 0 and 1", p.IPv6Share)
	case !finiteIn(p.V6OnlyASAddresses, 0, 1<<32):
		return Errf("population.v6_only_as_addresses", "%v is not between 0 and 2^32", p.V6OnlyASAddresses)
	case !finiteIn(p.NonAccessWeight, 0, 1):
		return Errf("population.non_access_weight", "%v is not a share between 0 and 1", p.NonAccessWeight)
	case !finiteIn(p.Subscribers, 0, 1e10):
		return Errf("population.subscribers", "%v is not between 0 and 1e10", p.Subscribers)
	}
	for i, s := range p.NonAccessPatterns {
		if strings.TrimSpace(s) == "" {
			return Errf(fmt.Sprintf("population.non_access_patterns[%d]", i), "empty pattern")
		}
	}
	return nil
}

func (d Deployment) validate() error {
	e := d.Embedded
	switch {
	case e.NetworksPerCountry < 0 || e.NetworksPerCountry > 1000:
		return Errf("deployment.embedded.networks_per_country", "%d is not between 0 and 1000", e.NetworksPerCountry)
	case !finiteIn(e.MinNetworkSubscribers, 0, 1e10):
		return Errf("deployment.embedded.min_network_subscribers", "%v is negative or absurd", e.MinNetworkSubscribers)
	case !finiteIn(e.MinNetworkShare, 0, 1):
		return Errf("deployment.embedded.min_network_share", "%v is not a share between 0 and 1", e.MinNetworkShare)
	case !finiteIn(e.SubscribersPerSite, 1, 1e10):
		return Errf("deployment.embedded.subscribers_per_site", "%v is not between 1 and 1e10", e.SubscribersPerSite)
	case e.MaxSitesPerNetwork < 0 || e.MaxSitesPerNetwork > 100_000:
		return Errf("deployment.embedded.max_sites_per_network", "%d is not between 0 and 100000", e.MaxSitesPerNetwork)
	case !finiteIn(e.SubscribersPerAppliance, 1, 1e10):
		return Errf("deployment.embedded.subscribers_per_appliance", "%v is not between 1 and 1e10", e.SubscribersPerAppliance)
	case e.MinAppliances < 1 || e.MaxAppliances < e.MinAppliances || e.MaxAppliances > 1000:
		return Errf("deployment.embedded.min_appliances", "want 1 ≤ min_appliances ≤ max_appliances ≤ 1000, have %d and %d", e.MinAppliances, e.MaxAppliances)
	}
	x := d.IXP
	switch {
	case x.Metros < 0 || x.Metros > 100_000:
		return Errf("deployment.ixp.metros", "%d is not between 0 and 100000", x.Metros)
	case !finiteIn(x.SubscribersPerAppliance, 1, 1e10):
		return Errf("deployment.ixp.subscribers_per_appliance", "%v is not between 1 and 1e10", x.SubscribersPerAppliance)
	case x.MinAppliances < 1 || x.MaxAppliances < x.MinAppliances || x.MaxAppliances > 1000:
		return Errf("deployment.ixp.min_appliances", "want 1 ≤ min_appliances ≤ max_appliances ≤ 1000, have %d and %d", x.MinAppliances, x.MaxAppliances)
	}
	total := 0.0
	for i, c := range d.Classes {
		f := fmt.Sprintf("deployment.appliance_classes[%d]", i)
		switch {
		case c.Name == "":
			return Errf(f+".name", "must be set")
		case !finiteIn(c.Share, 0, 1):
			return Errf(f+".share", "%v is not a share between 0 and 1", c.Share)
		case c.Storage <= 0 || c.Storage > maxStorage:
			return Errf(f+".storage", "%d bytes is not a size between 1 byte and 10 PiB", c.Storage)
		case !finiteIn(c.ThroughputGbps, 1e-6, maxThroughputGbps):
			return Errf(f+".throughput_gbps", "%v is not between 0 and %d Gb/s", c.ThroughputGbps, maxThroughputGbps)
		}
		total += c.Share
	}
	if len(d.Classes) > 0 && math.Abs(total-1) > 1e-6 {
		return Errf("deployment.appliance_classes", "shares add up to %v, want 1", total)
	}
	return nil
}

func finiteIn(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v <= hi }

// CountryIndex returns the index of a country code.
func (w *World) CountryIndex(code string) (int, bool) { i, ok := w.countryIdx[code]; return i, ok }

// MetroIndex returns the index of a metro id.
func (w *World) MetroIndex(id string) (int, bool) { i, ok := w.metroIdx[id]; return i, ok }

// SiteIndex returns the index of a site id.
func (w *World) SiteIndex(id string) (int, bool) { i, ok := w.siteIdx[id]; return i, ok }

// Load reads a world file and its data files. Every error names the file,
// the line and the field.
func Load(path string) (*World, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var w World
	if err := DecodeYAML(path, data, &w); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if w.ASesFile == "" || w.PrefixesFile == "" {
		return nil, &InputError{File: path, Field: "ases", Problem: "a world names its ases and prefixes files"}
	}
	if w.ASes, err = readASes(filepath.Join(dir, w.ASesFile), &w); err != nil {
		return nil, err
	}
	if w.Prefixes, err = readPrefixes(filepath.Join(dir, w.PrefixesFile), &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// Index builds the lookup maps of a world made in memory (Load does it
// through Validate).
func (w *World) Index() error { return w.Validate() }

// openData opens a data file, decompressing gzip.
func openData(path string) (io.Reader, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 256<<10)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, &InputError{File: path, Problem: err.Error()}
		}
		return zr, f.Close, nil
	}
	return br, f.Close, nil
}

// eachLine calls fn with the tab-separated fields of every line of the
// data file at path that is neither blank nor a # comment.
func eachLine(path string, fn func(line int, fields []string) error) error {
	r, closeFn, err := openData(path)
	if err != nil {
		return err
	}
	defer closeFn()
	return scanLines(path, r, fn)
}

func scanLines(name string, r io.Reader, fn func(line int, fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var fields []string
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		fields = splitTabs(fields[:0], text)
		if err := fn(line, fields); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &InputError{File: name, Problem: err.Error()}
	}
	return nil
}

func splitTabs(dst []string, s string) []string {
	for {
		i := strings.IndexByte(s, '\t')
		if i < 0 {
			return append(dst, s)
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
}

func readASes(path string, w *World) ([]AS, error) {
	var out []AS
	seen := map[uint32]bool{}
	err := eachLine(path, func(line int, f []string) error {
		bad := func(field, format string, args ...any) error {
			return &InputError{File: path, Line: line, Field: field, Problem: fmt.Sprintf(format, args...)}
		}
		if len(f) != 5 {
			return bad("", "%d tab-separated fields, want 5 (asn country access subscribers name)", len(f))
		}
		asn, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || asn == 0 {
			return bad("asn", "%q is not an AS number", f[0])
		}
		if seen[uint32(asn)] {
			return bad("asn", "AS%d listed twice", asn)
		}
		seen[uint32(asn)] = true
		if _, ok := w.countryIdx[f[1]]; !ok {
			return bad("country", "%q is not one of the world's countries", f[1])
		}
		if f[2] != "0" && f[2] != "1" {
			return bad("access", "%q is not 0 or 1", f[2])
		}
		subs, err := strconv.ParseFloat(f[3], 64)
		if err != nil || !finiteIn(subs, 0, 2e9) {
			return bad("subscribers", "%q is not a number between 0 and 2e9", f[3])
		}
		out = append(out, AS{ASN: uint32(asn), Country: f[1], Access: f[2] == "1", Subscribers: subs, Name: f[4]})
		return nil
	})
	return out, err
}

func readPrefixes(path string, w *World) ([]Prefix, error) {
	r, closeFn, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return parsePrefixes(path, r, w)
}

// parsePrefixes reads a prefixes file: prefix, asn, metro, subscribers.
func parsePrefixes(path string, r io.Reader, w *World) ([]Prefix, error) {
	asns := make(map[uint32]bool, len(w.ASes))
	for _, a := range w.ASes {
		asns[a.ASN] = true
	}
	out := make([]Prefix, 0, 1024)
	err := scanLines(path, r, func(line int, f []string) error {
		bad := func(field, format string, args ...any) error {
			return &InputError{File: path, Line: line, Field: field, Problem: fmt.Sprintf(format, args...)}
		}
		if len(f) != 4 {
			return bad("", "%d tab-separated fields, want 4 (prefix asn metro subscribers)", len(f))
		}
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return bad("prefix", "%q does not parse as a prefix", f[0])
		}
		if p.Masked() != p {
			return bad("prefix", "%s has host bits set (want %s)", p, p.Masked())
		}
		asn, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || (asn != 0 && !asns[uint32(asn)]) {
			return bad("asn", "%q is not an AS of the ases file (0 for an unknown origin)", f[1])
		}
		m, ok := w.metroIdx[f[2]]
		if !ok {
			return bad("metro", "%q is not one of the world's metros", f[2])
		}
		subs, err := strconv.ParseFloat(f[3], 64)
		if err != nil || !finiteIn(subs, 0, 1e9) {
			return bad("subscribers", "%q is not a number between 0 and 1e9", f[3])
		}
		out = append(out, Prefix{Prefix: p, ASN: uint32(asn), Metro: int32(m), Subscribers: float32(subs)})
		return nil
	})
	return out, err
}

// Write writes the world as path (YAML) and its data files beside it
// (gzipped), named after path.
func (w *World) Write(path string) error {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	w.ASesFile, w.PrefixesFile = base+".ases.tsv.gz", base+".prefixes.tsv.gz"
	dir := filepath.Dir(path)
	if err := writeGz(filepath.Join(dir, w.ASesFile), func(b *bufio.Writer) {
		b.WriteString("# asn\tcountry\taccess\tsubscribers\tname\n")
		for _, a := range w.ASes {
			access := "0"
			if a.Access {
				access = "1"
			}
			name := strings.NewReplacer("\t", " ", "\n", " ").Replace(a.Name)
			fmt.Fprintf(b, "%d\t%s\t%s\t%.0f\t%s\n", a.ASN, a.Country, access, a.Subscribers, name)
		}
	}); err != nil {
		return err
	}
	if err := writeGz(filepath.Join(dir, w.PrefixesFile), func(b *bufio.Writer) {
		b.WriteString("# prefix\tasn\tmetro\tsubscribers\n")
		for _, p := range w.Prefixes {
			fmt.Fprintf(b, "%s\t%d\t%s\t%s\n", p.Prefix, p.ASN, w.Metros[p.Metro].ID, strconv.FormatFloat(float64(p.Subscribers), 'f', -1, 32))
		}
	}); err != nil {
		return err
	}
	data, err := yaml.Marshal(w)
	if err != nil {
		return err
	}
	head := "# An ocdn simulator world (docs/sim.md). Every assumption of the population\n# model, the deployment generator and the routing model is a field below.\n"
	return writeFileAtomic(path, append([]byte(head), data...))
}

func writeGz(path string, fill func(*bufio.Writer)) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	b := bufio.NewWriterSize(zw, 1<<20)
	fill(b)
	if err := b.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
