package world

import (
	"bufio"
	"cmp"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/rendezvous"
	"github.com/ocdn/ocdn/internal/rib"
)

// DefaultModel is the model `ocdn sim world build` starts from.
//
//go:embed model.yaml
var DefaultModel []byte

// DataTarget is the make target that installs the IP-to-AS and
// IP-to-country tables; errors about missing data name it.
const DataTarget = "make world-data"

// BuildInput names the data a world is built from.
type BuildInput struct {
	// Routes is the prefix list of the full table (optionally gzipped).
	Routes string
	// IPLocationDB is the directory holding the npm packages' folders
	// asn/ and asn-country/ (node_modules/@ip-location-db).
	IPLocationDB string
	// ZoneTab is the tz database's zone.tab (country, coordinates, zone).
	ZoneTab string
	// Model is the model YAML (nil: DefaultModel); ModelName names it in
	// errors.
	Model     []byte
	ModelName string
	// Progress, when set, is told what the builder is doing.
	Progress func(string)
}

// BuildStats says what the builder found.
type BuildStats struct {
	PrefixesRead, PrefixesMapped int
	NoAS, NoCountry, NoMetro     int
	ASes, AccessASes, Countries  int
	Subscribers                  float64
	EmbeddedSites, IXPSites      int
	Appliances                   int
}

// Build makes a world from the full table, the IP-to-AS and IP-to-country
// tables and the model.
func Build(in BuildInput) (*World, BuildStats, error) {
	var st BuildStats
	say := func(format string, args ...any) {
		if in.Progress != nil {
			in.Progress(fmt.Sprintf(format, args...))
		}
	}
	model, name := in.Model, in.ModelName
	if model == nil {
		model, name = DefaultModel, "built-in model"
	}
	var w World
	if err := DecodeYAML(name, model, &w); err != nil {
		return nil, st, err
	}
	asnDir := filepath.Join(in.IPLocationDB, "asn")
	ccDir := filepath.Join(in.IPLocationDB, "asn-country")
	for _, d := range []struct{ dir, pkg string }{{asnDir, "@ip-location-db/asn"}, {ccDir, "@ip-location-db/asn-country"}} {
		if _, err := os.Stat(d.dir); err != nil {
			return nil, st, fmt.Errorf("npm package %s not found at %s: run `%s` to install it", d.pkg, d.dir, DataTarget)
		}
	}
	say("reading IP-to-AS and IP-to-country tables")
	names := map[uint32]string{}
	asn4, err := readRanges(filepath.Join(asnDir, "asn-ipv4.csv"), names)
	if err != nil {
		return nil, st, err
	}
	asn6, err := readRanges(filepath.Join(asnDir, "asn-ipv6.csv"), names)
	if err != nil {
		return nil, st, err
	}
	ccNames := map[uint32]string{}
	cc4, err := readRanges(filepath.Join(ccDir, "asn-country-ipv4.csv"), ccNames)
	if err != nil {
		return nil, st, err
	}
	cc6, err := readRanges(filepath.Join(ccDir, "asn-country-ipv6.csv"), ccNames)
	if err != nil {
		return nil, st, err
	}
	say("reading zone.tab")
	zones, err := readZoneTab(in.ZoneTab)
	if err != nil {
		return nil, st, err
	}
	say("reading the full table")
	f, err := os.Open(in.Routes)
	if err != nil {
		return nil, st, fmt.Errorf("full table: %w", err)
	}
	prefixes, err := rib.LoadPrefixList(f)
	f.Close()
	if err != nil {
		return nil, st, fmt.Errorf("%s: %w", in.Routes, err)
	}
	st.PrefixesRead = len(prefixes)

	// Countries: the model's, then every other one the data names and
	// zone.tab locates.
	countryOf := func(a netip.Addr) string {
		t := cc4
		if a.Is6() {
			t = cc6
		}
		if v, ok := t.find(a); ok {
			return ccNames[v]
		}
		return ""
	}
	asnOf := func(a netip.Addr) uint32 {
		t := asn4
		if a.Is6() {
			t = asn6
		}
		v, _ := t.find(a)
		return v
	}
	if err := w.Validate(); err != nil { // index the model's countries and metros
		return nil, st, err
	}
	type pinfo struct {
		p       netip.Prefix
		asn     uint32
		country int
		own     float64 // IPv4 addresses not covered by a more specific prefix
	}
	infos := make([]pinfo, 0, len(prefixes))
	hasMetro := map[string]bool{}
	for _, m := range w.Metros {
		hasMetro[m.Country] = true
	}
	for _, p := range prefixes {
		// A prefix no table maps to an AS stays in the world (the RIB
		// holds the full table) as AS 0, with no subscribers.
		asn := asnOf(p.Addr())
		if asn == 0 {
			st.NoAS++
		}
		cc := countryOf(p.Addr())
		if cc == "" {
			st.NoCountry++
			continue
		}
		ci, ok := w.countryIdx[cc]
		if !ok {
			if _, located := zones[cc]; !located && !hasMetro[cc] {
				st.NoMetro++
				continue
			}
			ci = len(w.Countries)
			w.Countries = append(w.Countries, Country{Code: cc})
			w.countryIdx[cc] = ci
		}
		infos = append(infos, pinfo{p: p, asn: asn, country: ci})
	}
	st.PrefixesMapped = len(infos)
	// Metros for countries without curated ones, from zone.tab.
	for _, c := range w.Countries {
		if hasMetro[c.Code] {
			continue
		}
		for _, z := range zones[c.Code] {
			id := strings.ToLower(c.Code) + "-" + strings.ToLower(strings.ReplaceAll(z.city, "_", "-"))
			if _, dup := w.metroIdx[id]; dup {
				continue
			}
			w.metroIdx[id] = len(w.Metros)
			w.Metros = append(w.Metros, Metro{ID: id, Country: c.Code, Lat: z.lat, Lon: z.lon, TimeZone: z.zone, Weight: 1})
		}
	}

	say("computing address space per prefix")
	ownAddresses(len(infos), func(i int) netip.Prefix { return infos[i].p }, func(i int, own float64) { infos[i].own = own })

	// Units: (AS, country). Eyeball weight from IPv4 space.
	type unit struct {
		asn     uint32
		country int
		own4    float64
		n6      int
		weight  float64
		subs    float64
		access  bool
	}
	units := map[uint64]*unit{}
	key := func(asn uint32, c int) uint64 { return uint64(asn)<<16 | uint64(c) }
	patterns := make([]string, len(w.Population.NonAccessPatterns))
	for i, s := range w.Population.NonAccessPatterns {
		patterns[i] = strings.ToLower(s)
	}
	isAccess := func(name string) bool {
		n := strings.ToLower(name)
		for _, s := range patterns {
			if strings.Contains(n, s) {
				return false
			}
		}
		return true
	}
	for _, pi := range infos {
		k := key(pi.asn, pi.country)
		u := units[k]
		if u == nil {
			u = &unit{asn: pi.asn, country: pi.country, access: isAccess(names[pi.asn])}
			units[k] = u
		}
		if pi.p.Addr().Is4() {
			u.own4 += pi.own
		} else {
			u.n6++
		}
	}
	countryAddr := make([]float64, len(w.Countries))
	countryWeight := make([]float64, len(w.Countries))
	for _, u := range units {
		u.weight = u.own4
		if u.own4 == 0 {
			u.weight = w.Population.V6OnlyASAddresses
		}
		if !u.access {
			u.weight *= w.Population.NonAccessWeight
		}
		if u.asn == 0 {
			u.weight = 0
		}
		countryAddr[u.country] += u.own4
		countryWeight[u.country] += u.weight
	}
	w.Population.Subscribers = 0
	for i := range w.Countries {
		c := &w.Countries[i]
		users := c.Users
		if users == 0 {
			users = countryAddr[i] * w.Population.UsersPerAddress
		}
		share := w.Population.DefaultSubscriberShare
		if c.SubscriberShare != nil {
			share = *c.SubscriberShare
		}
		c.Subscribers = math.Round(users * share)
		w.Population.Subscribers += c.Subscribers
	}
	st.Subscribers = w.Population.Subscribers
	for _, u := range units {
		if countryWeight[u.country] > 0 {
			u.subs = w.Countries[u.country].Subscribers * u.weight / countryWeight[u.country]
		}
	}

	// Prefixes with subscribers and metros.
	say("spreading subscribers over prefixes and metros")
	metrosOf := make([][]int, len(w.Countries))
	for i, m := range w.Metros {
		ci := w.countryIdx[m.Country]
		metrosOf[ci] = append(metrosOf[ci], i)
	}
	seed := w.Deployment.Seed
	w.Prefixes = make([]Prefix, 0, len(infos))
	for _, pi := range infos {
		u := units[key(pi.asn, pi.country)]
		var subs float64
		v6 := w.Population.IPv6Share
		if u.n6 == 0 {
			v6 = 0
		}
		switch {
		case pi.p.Addr().Is4() && u.own4 > 0:
			subs = u.subs * (1 - v6) * pi.own / u.own4
		case pi.p.Addr().Is6():
			if u.own4 == 0 {
				v6 = 1
			}
			subs = u.subs * v6 / float64(u.n6)
		}
		ms := metrosOf[pi.country]
		if len(ms) == 0 {
			st.NoMetro++
			continue
		}
		m := pickWeighted(ms, func(i int) float64 { return w.Metros[i].Weight }, prefixHash(pi.p, seed))
		w.Prefixes = append(w.Prefixes, Prefix{Prefix: pi.p, ASN: pi.asn, Metro: int32(m), Subscribers: float32(subs)})
	}

	// ASes: each AS's country is where most of its subscribers are.
	byAS := map[uint32][]*unit{}
	for _, u := range units {
		byAS[u.asn] = append(byAS[u.asn], u)
	}
	asns := slices.Sorted(func(yield func(uint32) bool) {
		for a := range byAS {
			if !yield(a) {
				return
			}
		}
	})
	for _, a := range asns {
		if a == 0 {
			continue
		}
		us := byAS[a]
		slices.SortFunc(us, func(x, y *unit) int {
			if c := cmp.Compare(y.subs, x.subs); c != 0 {
				return c
			}
			return cmp.Compare(w.Countries[x.country].Code, w.Countries[y.country].Code)
		})
		total := 0.0
		for _, u := range us {
			total += u.subs
		}
		w.ASes = append(w.ASes, AS{ASN: a, Country: w.Countries[us[0].country].Code, Access: us[0].access, Subscribers: math.Round(total), Name: names[a]})
		if us[0].access {
			st.AccessASes++
		}
	}
	st.ASes, st.Countries = len(w.ASes), len(w.Countries)
	slices.SortFunc(w.Countries, func(a, b Country) int { return cmp.Compare(a.Code, b.Code) })
	// Re-index countries after sorting; metros keep their order.
	if err := w.reindex(); err != nil {
		return nil, st, err
	}

	say("placing sites and appliances")
	generateDeployment(&w, &st)
	w.Sources = map[string]string{
		"routes":      filepath.Base(in.Routes),
		"asn":         "@ip-location-db/asn (RouteViews, DB-IP, NRO; CC BY 4.0)",
		"asn_country": "@ip-location-db/asn-country (NRO; CC BY 4.0)",
		"zones":       "tz database zone.tab (public domain)",
	}
	if err := w.Validate(); err != nil {
		return nil, st, fmt.Errorf("built world does not validate: %w", err)
	}
	return &w, st, nil
}

// reindex rebuilds the lookup maps (after the builder reordered lists).
func (w *World) reindex() error {
	w.countryIdx = map[string]int{}
	for i, c := range w.Countries {
		w.countryIdx[c.Code] = i
	}
	w.metroIdx = map[string]int{}
	for i, m := range w.Metros {
		w.metroIdx[m.ID] = i
	}
	return nil
}

// prefixHash is a deterministic, well-spread hash of a prefix.
func prefixHash(p netip.Prefix, seed uint64) uint64 {
	b := p.Addr().As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[i+8])
	}
	return rendezvous.Mix(rendezvous.Mix(hi^seed) ^ lo ^ uint64(p.Bits())<<56)
}

// pickWeighted picks one of items by weight with the uniform hash h.
func pickWeighted(items []int, weight func(int) float64, h uint64) int {
	total := 0.0
	for _, i := range items {
		total += weight(i)
	}
	if total <= 0 {
		return items[h%uint64(len(items))]
	}
	x := float64(h>>11) / (1 << 53) * total
	for _, i := range items {
		if x -= weight(i); x < 0 {
			return i
		}
	}
	return items[len(items)-1]
}

// ownAddresses computes, for IPv4 prefixes, the addresses a prefix covers
// that no more specific prefix of the list does (population follows the
// addresses whose longest match is the prefix). IPv6 prefixes get 0.
func ownAddresses(n int, prefix func(int) netip.Prefix, set func(int, float64)) {
	order := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if prefix(i).Addr().Is4() {
			order = append(order, i)
		} else {
			set(i, 0)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		pa, pb := prefix(a), prefix(b)
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(pa.Bits(), pb.Bits())
	})
	own := make(map[int]float64, len(order))
	var stack []int
	for _, i := range order {
		p := prefix(i)
		for len(stack) > 0 && !prefix(stack[len(stack)-1]).Contains(p.Addr()) {
			stack = stack[:len(stack)-1]
		}
		size := math.Exp2(float64(32 - p.Bits()))
		own[i] += size
		if len(stack) > 0 {
			own[stack[len(stack)-1]] -= size
		}
		stack = append(stack, i)
	}
	for i, v := range own {
		set(i, max(v, 0))
	}
}

// rangeTable maps address ranges to values (ASNs, or country ids in a
// names map).
type rangeTable struct {
	starts, ends []netip.Addr
	vals         []uint32
}

func (t *rangeTable) find(a netip.Addr) (uint32, bool) {
	i, found := slices.BinarySearchFunc(t.starts, a, func(s, x netip.Addr) int { return s.Compare(x) })
	if !found {
		i--
	}
	if i < 0 || t.ends[i].Less(a) {
		return 0, false
	}
	return t.vals[i], true
}

// readRanges reads an ip-location-db CSV: start,end,ASN,name or
// start,end,CC. For country files values are ids into names, which maps
// them back to the code.
func readRanges(path string, names map[uint32]string) (*rangeTable, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing: run `%s` to install the npm data packages", path, DataTarget)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	t := &rangeTable{}
	codes := map[string]uint32{}
	for k, v := range names {
		codes[v] = k
	}
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &InputError{File: path, Line: line, Problem: err.Error()}
		}
		if len(rec) < 3 {
			return nil, &InputError{File: path, Line: line, Problem: fmt.Sprintf("%d fields, want at least 3", len(rec))}
		}
		lo, err1 := netip.ParseAddr(rec[0])
		hi, err2 := netip.ParseAddr(rec[1])
		if err1 != nil || err2 != nil || hi.Less(lo) {
			return nil, &InputError{File: path, Line: line, Field: "range", Problem: fmt.Sprintf("%q–%q is not an address range", rec[0], rec[1])}
		}
		var v uint32
		if len(rec) >= 4 { // start,end,asn,name
			n, err := strconv.ParseUint(rec[2], 10, 32)
			if err != nil {
				return nil, &InputError{File: path, Line: line, Field: "asn", Problem: fmt.Sprintf("%q is not an AS number", rec[2])}
			}
			v = uint32(n)
			if _, ok := names[v]; !ok {
				names[v] = rec[3]
			}
		} else { // start,end,country
			code := strings.ToUpper(strings.TrimSpace(rec[2]))
			id, ok := codes[code]
			if !ok {
				id = uint32(len(codes) + 1)
				codes[code] = id
				names[id] = code
			}
			v = id
		}
		if n := len(t.starts); n > 0 && !t.starts[n-1].Less(lo) {
			return nil, &InputError{File: path, Line: line, Field: "range", Problem: "ranges are not in ascending order"}
		}
		t.starts, t.ends, t.vals = append(t.starts, lo), append(t.ends, hi), append(t.vals, v)
	}
	return t, nil
}

type zone struct {
	city     string
	zone     string
	lat, lon float64
}

// readZoneTab reads the tz database's zone.tab: country code, ISO 6709
// coordinates, zone name.
func readZoneTab(path string) (map[string][]zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("zone.tab (Debian package tzdata): %w", err)
	}
	defer f.Close()
	out := map[string][]zone{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		if t == "" || t[0] == '#' {
			continue
		}
		fs := strings.Split(t, "\t")
		if len(fs) < 3 {
			return nil, &InputError{File: path, Line: line, Problem: "want country, coordinates and zone"}
		}
		lat, lon, ok := parseISO6709(fs[1])
		if !ok {
			return nil, &InputError{File: path, Line: line, Field: "coordinates", Problem: fmt.Sprintf("%q is not ±DDMM±DDDMM", fs[1])}
		}
		city := fs[2][strings.LastIndexByte(fs[2], '/')+1:]
		out[fs[0]] = append(out[fs[0]], zone{city: city, zone: fs[2], lat: lat, lon: lon})
	}
	return out, sc.Err()
}

// parseISO6709 reads ±DDMM[SS]±DDDMM[SS].
func parseISO6709(s string) (lat, lon float64, ok bool) {
	i := strings.IndexAny(s[1:], "+-") + 1
	if i <= 0 {
		return 0, 0, false
	}
	conv := func(p string, degDigits int) (float64, bool) {
		if len(p) < 1+degDigits+2 {
			return 0, false
		}
		sign := 1.0
		if p[0] == '-' {
			sign = -1
		}
		d, err1 := strconv.Atoi(p[1 : 1+degDigits])
		m, err2 := strconv.Atoi(p[1+degDigits : 3+degDigits])
		sec := 0
		var err3 error
		if len(p) >= 5+degDigits {
			sec, err3 = strconv.Atoi(p[3+degDigits : 5+degDigits])
		}
		if err1 != nil || err2 != nil || err3 != nil {
			return 0, false
		}
		return sign * (float64(d) + float64(m)/60 + float64(sec)/3600), true
	}
	lat, ok1 := conv(s[:i], 2)
	lon, ok2 := conv(s[i:], 3)
	return lat, lon, ok1 && ok2
}

// DistanceKm is the great-circle distance between two points.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const r = 6371.0
	la1, la2 := lat1*math.Pi/180, lat2*math.Pi/180
	dla := la2 - la1
	dlo := (lon2 - lon1) * math.Pi / 180
	h := math.Sin(dla/2)*math.Sin(dla/2) + math.Cos(la1)*math.Cos(la2)*math.Sin(dlo/2)*math.Sin(dlo/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}

// Location is a metro's location in the config type steering uses.
func (m Metro) Location() config.Location { return config.Location{Lat: m.Lat, Lon: m.Lon} }
