package sim

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// IntervalRow is one step of the whole CDN (table intervals).
type IntervalRow struct {
	Time                 int64   `parquet:"time,timestamp(microsecond)"`
	Sessions             int64   `parquet:"sessions"`
	Decisions            int64   `parquet:"decisions"`
	Failovers            int64   `parquet:"failovers"`
	BytesEmbedded        int64   `parquet:"bytes_embedded"`
	BytesPrivate         int64   `parquet:"bytes_private"`
	BytesIXP             int64   `parquet:"bytes_ixp"`
	BytesFallback        int64   `parquet:"bytes_fallback"`
	BytesOrigin          int64   `parquet:"bytes_origin"`
	Offload              float64 `parquet:"offload"`
	MissLocal            int64   `parquet:"miss_local_bytes"`
	MissContent          int64   `parquet:"miss_content_bytes"`
	MissHealth           int64   `parquet:"miss_health_bytes"`
	MissOther            int64   `parquet:"miss_other_bytes"`
	FillPeer             int64   `parquet:"fill_peer_bytes"`
	FillTier             int64   `parquet:"fill_tier_bytes"`
	FillOrigin           int64   `parquet:"fill_origin_bytes"`
	OriginEgress         int64   `parquet:"origin_egress_bytes"`
	AppliancesDown       int32   `parquet:"appliances_down"`
	AppliancesOverloaded int32   `parquet:"appliances_overloaded"`
	UtilP50              float64 `parquet:"utilization_p50"`
	UtilP99              float64 `parquet:"utilization_p99"`
	UtilMax              float64 `parquet:"utilization_max"`
	DistanceMeanKm       float64 `parquet:"distance_mean_km"`
	DistanceP90Km        float64 `parquet:"distance_p90_km"`
	RTTMeanMs            float64 `parquet:"rtt_mean_ms"`
	PrefixesWithdrawn    int32   `parquet:"prefixes_withdrawn"`
}

// CountryRow is one step of one country's clients (table countries).
type CountryRow struct {
	Time          int64   `parquet:"time,timestamp(microsecond)"`
	Country       string  `parquet:"country,dict"`
	Sessions      int64   `parquet:"sessions"`
	BytesEmbedded int64   `parquet:"bytes_embedded"`
	BytesPrivate  int64   `parquet:"bytes_private"`
	BytesIXP      int64   `parquet:"bytes_ixp"`
	BytesFallback int64   `parquet:"bytes_fallback"`
	BytesOrigin   int64   `parquet:"bytes_origin"`
	Offload       float64 `parquet:"offload"`
}

// SiteRow is one step of one site (table sites), for sites that served
// or filled anything.
type SiteRow struct {
	Time        int64   `parquet:"time,timestamp(microsecond)"`
	Site        string  `parquet:"site,dict"`
	Kind        string  `parquet:"kind,dict"`
	Country     string  `parquet:"country,dict"`
	Metro       string  `parquet:"metro,dict"`
	BytesServed int64   `parquet:"bytes_served"`
	FillPeer    int64   `parquet:"fill_peer_bytes"`
	FillTier    int64   `parquet:"fill_tier_bytes"`
	FillOrigin  int64   `parquet:"fill_origin_bytes"`
	UtilMax     float64 `parquet:"utilization_max"`
	Serving     int32   `parquet:"appliances_serving"`
	Appliances  int32   `parquet:"appliances"`
}

// ISPRow is one origin AS's clients over a day (table isps).
type ISPRow struct {
	Date          int32   `parquet:"day,date"`
	ASN           uint32  `parquet:"asn"`
	Name          string  `parquet:"name"`
	Country       string  `parquet:"country,dict"`
	Sessions      int64   `parquet:"sessions"`
	BytesEmbedded int64   `parquet:"bytes_embedded"`
	BytesPrivate  int64   `parquet:"bytes_private"`
	BytesIXP      int64   `parquet:"bytes_ixp"`
	BytesFallback int64   `parquet:"bytes_fallback"`
	BytesOrigin   int64   `parquet:"bytes_origin"`
	Offload       float64 `parquet:"offload"`
}

// ApplianceRow is one appliance over a day (table appliances).
type ApplianceRow struct {
	Date            int32   `parquet:"day,date"`
	Appliance       string  `parquet:"appliance"`
	Site            string  `parquet:"site,dict"`
	Class           string  `parquet:"class,dict"`
	StorageBytes    int64   `parquet:"storage_bytes"`
	ThroughputGbps  float64 `parquet:"throughput_gbps"`
	BytesServed     int64   `parquet:"bytes_served"`
	FillBytes       int64   `parquet:"fill_bytes"`
	PeakUtil        float64 `parquet:"utilization_peak"`
	OverloadedSteps int32   `parquet:"overloaded_steps"`
	DownSteps       int32   `parquet:"down_steps"`
	FilesHeld       int32   `parquet:"files_held"`
	HeldBytes       int64   `parquet:"held_bytes"`
}

// results accumulates a run's tables and totals.
type results struct {
	intervals  []IntervalRow
	countries  []CountryRow
	sites      []SiteRow
	isps       []ISPRow
	appliances []ApplianceRow

	totals
	siteFill [][nFill]int64 // per site, this step
	fill     [nFill]int64
	prefill  [nFill]int64
	util     [201]int64 // appliance-steps by utilisation, 0.5% buckets up to 100%+

	prefillSeconds float64
	warmBytes      int64
	replans        int
	replanAdded    int64
	failures       int
	siteFailures   int
	routeChanges   int
	dayStart       time.Time
}

func newResults(sm *Sim) *results {
	return &results{siteFill: make([][nFill]int64, len(sm.st.sites)), dayStart: sm.sc.Start}
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func offload(src [nSrc]int64) float64 {
	var all int64
	for _, v := range src {
		all += v
	}
	if all == 0 {
		return 0
	}
	return float64(src[srcEmbedded]) / float64(all)
}

// step records one step: merges the shards' counters in order.
func (r *results) step(sm *Sim, t time.Time, shards []*shard, fill [nFill]int64) {
	var c stepCounters
	country := make([][nSrc]int64, len(sm.w.Countries))
	countrySessions := make([]int64, len(sm.w.Countries))
	siteBytes := make([]int64, len(sm.st.sites))
	for _, sh := range shards {
		x := &sh.c
		c.add(&x.totals)
		for i := range country {
			for j := range country[i] {
				country[i][j] += x.country[i][j]
			}
			countrySessions[i] += x.countrySessions[i]
		}
		for i, v := range x.siteBytes {
			siteBytes[i] += v
		}
	}
	r.add(&c.totals)
	for i := range fill {
		r.fill[i] += fill[i]
	}
	// Appliance utilisation this step.
	utils := make([]float64, 0, len(sm.st.apps))
	var down, over int32
	siteUtil := make([]float64, len(sm.st.sites))
	siteServing := make([]int32, len(sm.st.sites))
	for _, a := range sm.st.apps {
		if a.down > 0 {
			down++
			continue
		}
		if a.st.State == "overloaded" {
			over++
		}
		if a.st.Serving {
			siteServing[a.site]++
		}
		u := float64(a.active) / a.bps
		utils = append(utils, u)
		r.util[min(int(u*200), 200)]++
		siteUtil[a.site] = max(siteUtil[a.site], u)
	}
	slices.Sort(utils)
	served := int64(0)
	for i := 0; i < srcOrigin; i++ {
		served += c.src[i]
	}
	row := IntervalRow{Time: micros(t), Sessions: c.sessions, Decisions: c.decisions, Failovers: c.failovers,
		BytesEmbedded: c.src[srcEmbedded], BytesPrivate: c.src[srcPrivate], BytesIXP: c.src[srcIXP], BytesFallback: c.src[srcFallback], BytesOrigin: c.src[srcOrigin],
		Offload: offload(c.src), MissLocal: c.miss[missLocal], MissContent: c.miss[missContent], MissHealth: c.miss[missHealth], MissOther: c.miss[missOther],
		FillPeer: fill[fillPeer], FillTier: fill[fillTier], FillOrigin: fill[fillOrigin], OriginEgress: c.src[srcOrigin] + fill[fillOrigin],
		AppliancesDown: down, AppliancesOverloaded: over, UtilP50: quantileSorted(utils, 0.5), UtilP99: quantileSorted(utils, 0.99), UtilMax: quantileSorted(utils, 1),
		DistanceP90Km: histQuantile(c.dist[:], 0.9), PrefixesWithdrawn: int32(sm.rib.nWithdrawn)}
	if served > 0 {
		row.DistanceMeanKm, row.RTTMeanMs = c.distBytesKm/float64(served), c.rttBytesMs/float64(served)
	}
	r.intervals = append(r.intervals, row)
	for i, v := range country {
		if countrySessions[i] == 0 {
			continue
		}
		r.countries = append(r.countries, CountryRow{Time: micros(t), Country: sm.w.Countries[i].Code, Sessions: countrySessions[i],
			BytesEmbedded: v[srcEmbedded], BytesPrivate: v[srcPrivate], BytesIXP: v[srcIXP], BytesFallback: v[srcFallback], BytesOrigin: v[srcOrigin], Offload: offload(v)})
	}
	for i, s := range sm.st.sites {
		f := r.siteFill[i]
		if siteBytes[i] == 0 && f == [nFill]int64{} {
			continue
		}
		r.sites = append(r.sites, SiteRow{Time: micros(t), Site: s.id, Kind: string(s.kind), Country: sm.w.Countries[s.country].Code, Metro: sm.w.Metros[s.metro].ID,
			BytesServed: siteBytes[i], FillPeer: f[fillPeer], FillTier: f[fillTier], FillOrigin: f[fillOrigin], UtilMax: siteUtil[i], Serving: siteServing[i], Appliances: int32(len(s.apps))})
	}
	clear(r.siteFill)
}

// finishDay writes the day's ISP and appliance rows and starts a new day.
func (r *results) finishDay(sm *Sim, t time.Time) {
	day := int32(r.dayStart.Unix() / 86400)
	var asBytes = make([][nSrc]int64, len(sm.ases))
	var asSessions = make([]int64, len(sm.ases))
	for _, sh := range sm.shards {
		for i := range asBytes {
			for j := range asBytes[i] {
				asBytes[i][j] += sh.asBytes[i][j]
			}
			asSessions[i] += sh.asSessions[i]
		}
		clear(sh.asBytes)
		clear(sh.asSessions)
	}
	for i, a := range sm.ases {
		if asSessions[i] == 0 {
			continue
		}
		v := asBytes[i]
		r.isps = append(r.isps, ISPRow{Date: day, ASN: a.ASN, Name: a.Name, Country: a.Country, Sessions: asSessions[i],
			BytesEmbedded: v[srcEmbedded], BytesPrivate: v[srcPrivate], BytesIXP: v[srcIXP], BytesFallback: v[srcFallback], BytesOrigin: v[srcOrigin], Offload: offload(v)})
	}
	for _, a := range sm.st.apps {
		n := int32(0)
		for _, w := range a.holds {
			n += int32(popcount(w))
		}
		r.appliances = append(r.appliances, ApplianceRow{Date: day, Appliance: a.id, Site: sm.st.sites[a.site].id, Class: a.class, StorageBytes: a.storage,
			ThroughputGbps: a.bps / 1e9, BytesServed: a.dayBytes, FillBytes: a.dayFill, PeakUtil: a.dayPeak, OverloadedSteps: int32(a.dayOverSteps),
			DownSteps: int32(a.dayDownSt), FilesHeld: n, HeldBytes: a.held})
		a.dayBytes, a.dayFill, a.dayPeak, a.dayOverSteps, a.dayDownSt = 0, 0, 0, 0, 0
	}
	r.dayStart = t
}

func quantileSorted(x []float64, q float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return x[min(int(q*float64(len(x)-1)+0.5), len(x)-1)]
}

// histQuantile is the q-quantile of a bytes-weighted histogram (upper
// bucket edge).
func histQuantile(h []int64, q float64) float64 {
	var total int64
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return 0
	}
	target := int64(math.Ceil(q * float64(total)))
	var acc int64
	for b, v := range h {
		acc += v
		if acc >= target {
			return histValue(b)
		}
	}
	return histValue(len(h) - 1)
}

// Summary is a run's figures (summary.json). Fields under Run depend on
// the machine; everything else is determined by world, scenario and seed.
type Summary struct {
	Scenario   string `json:"scenario"`
	Seed       uint64 `json:"seed"`
	World      string `json:"world"`
	Sites      int    `json:"sites"`
	Appliances int    `json:"appliances"`
	Prefixes   int    `json:"prefixes"`
	Steps      int    `json:"steps"`
	Start      string `json:"start"`
	Duration   string `json:"duration"`

	Sessions  int64 `json:"sessions"`
	Decisions int64 `json:"decisions"`
	Failovers int64 `json:"failovers"`
	// ClientBytes by source: embedded, private, ixp, fallback, origin.
	ClientBytes map[string]int64 `json:"client_bytes"`
	// Offload is the share of client bytes served by embedded sites;
	// CDNShare by any appliance.
	Offload  float64 `json:"offload"`
	CDNShare float64 `json:"cdn_share"`
	// Misses: client bytes by class (local, content, health, other).
	Misses           map[string]int64 `json:"miss_bytes"`
	ContentMissShare float64          `json:"content_miss_share"`
	HealthMissShare  float64          `json:"health_miss_share"`
	// Fill bytes by source (peer, tier, origin), during the run and
	// before it (prefill).
	FillBytes    map[string]int64 `json:"fill_bytes"`
	PrefillBytes map[string]int64 `json:"prefill_bytes"`
	// UniqueBytes is the size of the distinct files ever placed;
	// OriginPerUnique is fill from the origin (prefill included) over it.
	UniqueBytes       int64   `json:"unique_bytes"`
	OriginPerUnique   float64 `json:"origin_bytes_per_unique_byte"`
	OriginEgressBytes int64   `json:"origin_egress_bytes"`
	DistanceKm        Dist    `json:"distance_km"`
	RTTMs             Dist    `json:"rtt_ms"`
	Utilization       Dist    `json:"utilization"`
	ApplianceFailures int     `json:"appliance_failures"`
	SiteFailures      int     `json:"site_failures"`
	RouteChanges      int     `json:"route_changes"`
	ChurnUpdates      int     `json:"churn_updates"`
	Replans           int     `json:"replans"`
	ReplanAddedBytes  int64   `json:"replan_added_bytes"`
	Run               RunInfo `json:"run"`
}

// Dist is a distribution's summary.
type Dist struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
}

// RunInfo is how the run went on this machine.
type RunInfo struct {
	WallSeconds float64 `json:"wall_seconds"`
	// SetupSeconds is the part before the first step (RIB, demand
	// tables, first placement); SessionsPerSecond counts the steps only.
	SetupSeconds      float64 `json:"setup_seconds"`
	Workers           int     `json:"workers"`
	SessionsPerSecond float64 `json:"sessions_per_second"`
}

func (r *results) summary(sm *Sim, wall, loop time.Duration) *Summary {
	s := &Summary{Scenario: sm.sc.Name, Seed: sm.sc.Seed, World: sm.w.Name, Sites: len(sm.st.sites), Appliances: len(sm.st.apps), Prefixes: len(sm.w.Prefixes),
		Steps: sm.steps, Start: sm.sc.Start.Format(time.RFC3339), Duration: sm.sc.Duration.String(),
		Sessions: r.sessions, Decisions: r.decisions, Failovers: r.failovers,
		ClientBytes: map[string]int64{}, Misses: map[string]int64{}, FillBytes: map[string]int64{}, PrefillBytes: map[string]int64{},
		ApplianceFailures: r.failures, SiteFailures: r.siteFailures, RouteChanges: r.routeChanges, ChurnUpdates: sm.churnUpdates,
		Replans: r.replans, ReplanAddedBytes: r.replanAdded}
	var all, missAll int64
	for i, v := range r.src {
		s.ClientBytes[srcNames[i]] = v
		all += v
	}
	s.Offload = offload(r.src)
	if all > 0 {
		s.CDNShare = float64(all-r.src[srcOrigin]) / float64(all)
	}
	for i, v := range r.miss {
		s.Misses[missNames[i]] = v
		missAll += v
	}
	if missAll > 0 {
		s.ContentMissShare = float64(r.miss[missContent]) / float64(missAll)
		s.HealthMissShare = float64(r.miss[missHealth]) / float64(missAll)
	}
	for i := range r.fill {
		s.FillBytes[fillNames[i]] = r.fill[i]
		s.PrefillBytes[fillNames[i]] = r.prefill[i]
	}
	s.UniqueBytes = sm.placedBytes()
	if s.UniqueBytes > 0 {
		s.OriginPerUnique = float64(r.fill[fillOrigin]+r.prefill[fillOrigin]) / float64(s.UniqueBytes)
	}
	s.OriginEgressBytes = r.src[srcOrigin] + r.fill[fillOrigin]
	served := all - r.src[srcOrigin]
	if served > 0 {
		s.DistanceKm = Dist{Mean: r.distBytesKm / float64(served), P50: histQuantile(r.dist[:], 0.5), P90: histQuantile(r.dist[:], 0.9), P99: histQuantile(r.dist[:], 0.99)}
		s.RTTMs = Dist{Mean: r.rttBytesMs / float64(served), P50: histQuantile(r.rtt[:], 0.5), P90: histQuantile(r.rtt[:], 0.9), P99: histQuantile(r.rtt[:], 0.99)}
	}
	var n, sum float64
	for b, v := range r.util {
		n += float64(v)
		sum += float64(v) * (float64(b) + 0.5) / 200
	}
	if n > 0 {
		uq := func(q float64) float64 {
			var acc float64
			for b, v := range r.util {
				acc += float64(v)
				if acc >= q*n {
					return float64(b+1) / 200
				}
			}
			return 1
		}
		s.Utilization = Dist{Mean: sum / n, P50: uq(0.5), P90: uq(0.9), P99: uq(0.99)}
	}
	s.Run = RunInfo{WallSeconds: wall.Seconds(), SetupSeconds: (wall - loop).Seconds(), Workers: sm.opt.Workers}
	if loop > 0 {
		s.Run.SessionsPerSecond = float64(r.sessions) / loop.Seconds()
	}
	return s
}

// write writes the tables (hive-partitioned by date), summary.json and
// report.html under dir.
func (r *results) write(sm *Sim, dir string, s *Summary) error {
	if err := writeTable(dir, "intervals", r.intervals, func(x IntervalRow) string { return dateOfMicros(x.Time) }); err != nil {
		return err
	}
	if err := writeTable(dir, "countries", r.countries, func(x CountryRow) string { return dateOfMicros(x.Time) }); err != nil {
		return err
	}
	if err := writeTable(dir, "sites", r.sites, func(x SiteRow) string { return dateOfMicros(x.Time) }); err != nil {
		return err
	}
	slices.SortStableFunc(r.isps, func(a, b ISPRow) int { return cmp.Compare(a.Date, b.Date) })
	if err := writeTable(dir, "isps", r.isps, func(x ISPRow) string { return dateOfDays(x.Date) }); err != nil {
		return err
	}
	if err := writeTable(dir, "appliances", r.appliances, func(x ApplianceRow) string { return dateOfDays(x.Date) }); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.html"), []byte(r.html(sm, s)), 0o644)
}

func dateOfMicros(us int64) string { return time.UnixMicro(us).UTC().Format("2006-01-02") }
func dateOfDays(d int32) string    { return time.Unix(int64(d)*86400, 0).UTC().Format("2006-01-02") }

// writeTable writes rows to dir/name/date=D/part-0.parquet, one file per
// date, in row order.
func writeTable[T any](dir, name string, rows []T, date func(T) string) error {
	for i := 0; i < len(rows); {
		d := date(rows[i])
		j := i
		for j < len(rows) && date(rows[j]) == d {
			j++
		}
		pdir := filepath.Join(dir, name, "date="+d)
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(pdir, "part-0.parquet")
		f, err := os.Create(path + ".tmp")
		if err != nil {
			return err
		}
		w := parquet.NewGenericWriter[T](f, parquet.Compression(&zstd.Codec{}))
		if _, err := w.Write(rows[i:j]); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := w.Close(); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
		i = j
	}
	return nil
}
