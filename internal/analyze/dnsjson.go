package analyze

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/ocdn/ocdn/internal/atomicfile"
)

// jnum is a number in dns.json: NaN (no value) is null.
type jnum float64

func (v jnum) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(v))
}

type jshare struct {
	K, N        int
	Est, Lo, Hi jnum
	OK          bool
}

type jresolverISP struct {
	ISP       string         `json:"isp"`
	Clients   int            `json:"clients"`
	Distance  map[string]int `json:"distance"`
	Distant   jshare         `json:"distant"`
	ECS       jshare         `json:"ecs"`
	Resolvers int            `json:"resolvers"`
}

type jdnsTime struct {
	Family   string `json:"family"`
	Distance string `json:"distance"`
	Q        jnum   `json:"quantile"`
	N        int    `json:"n"`
	MinN     int    `json:"min_n"`
	Est      jnum   `json:"dns_ms"`
	Lo       jnum   `json:"ci_lo"`
	Hi       jnum   `json:"ci_hi"`
	OK       bool   `json:"ok"`
	Note     string `json:"note,omitempty"`
}

type jfamily struct {
	ISP        string `json:"isp"`
	Metric     string `json:"metric"`
	N6         int    `json:"n_ipv6"`
	N4         int    `json:"n_ipv4"`
	Median6    jnum   `json:"median_ipv6"`
	Median4    jnum   `json:"median_ipv4"`
	Diff       jnum   `json:"diff"`
	DiffLo     jnum   `json:"diff_ci_lo"`
	DiffHi     jnum   `json:"diff_ci_hi"`
	DiffOK     bool   `json:"diff_ok"`
	Pairs      int    `json:"pairs"`
	PairedDiff jnum   `json:"paired_diff"`
	PairedLo   jnum   `json:"paired_ci_lo"`
	PairedHi   jnum   `json:"paired_ci_hi"`
	PairedOK   bool   `json:"paired_ok"`
	SignP      jnum   `json:"sign_p"`
	WilcoxonP  jnum   `json:"wilcoxon_p"`
	Note       string `json:"note,omitempty"`
}

// DNSJSON is the content of dns.json: the resolver and address-family
// sections, numbers without a value as null.
type DNSJSON struct {
	Level     float64        `json:"level"`
	DNSPulses int            `json:"dns_pulses"`
	Joined    int            `json:"joined"`
	Resolvers []jresolverISP `json:"resolvers"`
	DNSTimes  []jdnsTime     `json:"dns_times"`
	Families  []jfamily      `json:"families"`
}

func shareJSON(s Share) jshare {
	return jshare{K: s.K, N: s.N, Est: jnum(s.Est), Lo: jnum(s.Lo), Hi: jnum(s.Hi), OK: s.OK}
}

// NewDNSJSON converts the analyses for dns.json.
func NewDNSJSON(res *Results) DNSJSON {
	d := DNSJSON{Level: res.Config.Level, DNSPulses: res.Resolvers.DNSPulses, Joined: res.Resolvers.Joined,
		Resolvers: []jresolverISP{}, DNSTimes: []jdnsTime{}, Families: []jfamily{}}
	for _, r := range res.Resolvers.ISPs {
		d.Resolvers = append(d.Resolvers, jresolverISP{ISP: ispStr(r.ISP), Clients: r.Clients, Distance: r.Distance,
			Distant: shareJSON(r.Distant), ECS: shareJSON(r.ECS), Resolvers: r.Resolvers})
	}
	for _, t := range res.Resolvers.Times {
		jt := jdnsTime{Family: t.Family, Distance: t.Distance, Q: jnum(t.Q), N: t.N, MinN: t.MinN, Est: jnum(math.NaN()),
			Lo: jnum(math.NaN()), Hi: jnum(math.NaN()), OK: t.OK, Note: t.Note}
		if t.OK {
			jt.Est, jt.Lo, jt.Hi = jnum(t.Est), jnum(t.Lo), jnum(t.Hi)
		}
		d.DNSTimes = append(d.DNSTimes, jt)
	}
	for _, f := range res.Families {
		d.Families = append(d.Families, jfamily{ISP: ispStr(f.ISP), Metric: f.Metric.String(), N6: f.N6, N4: f.N4,
			Median6: jnum(f.Median6), Median4: jnum(f.Median4), Diff: jnum(f.Diff), DiffLo: jnum(f.DiffLo), DiffHi: jnum(f.DiffHi), DiffOK: f.DiffOK,
			Pairs: f.Pairs, PairedDiff: jnum(f.PairedDiff), PairedLo: jnum(f.PairedLo), PairedHi: jnum(f.PairedHi), PairedOK: f.PairedOK,
			SignP: jnum(f.SignP), WilcoxonP: jnum(f.WilcoxonP), Note: f.Note})
	}
	return d
}

// WriteDNSJSON writes dns.json to path.
func WriteDNSJSON(path string, res *Results) error {
	b, err := json.MarshalIndent(NewDNSJSON(res), "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
