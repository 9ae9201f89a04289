package rib

import (
	"maps"
	"net/netip"
	"slices"
)

// Report is the route-consistency report served to operators: within a
// site every appliance should hear the same prefixes (they share content
// and clients fail over between them), and every prefix should be
// reachable from more than one site so a site outage has somewhere to go.
type Report struct {
	Sites    []SiteReport `json:"sites"`
	NoBackup []NoBackup   `json:"no_backup"`
	// Unassigned lists appliances that have routes but belong to no site;
	// their routes count towards no site.
	Unassigned []string `json:"unassigned_appliances,omitempty"`
}

// SiteReport lists the prefixes some but not all of a site's appliances hear.
type SiteReport struct {
	Site       string          `json:"site"`
	Appliances []string        `json:"appliances"`
	Partial    []PartialPrefix `json:"partial"`
}

// PartialPrefix is a prefix missing from some appliances of a site.
type PartialPrefix struct {
	Prefix  netip.Prefix `json:"prefix"`
	Missing []string     `json:"missing"`
}

// NoBackup is a prefix heard at exactly one site.
type NoBackup struct {
	Prefix netip.Prefix `json:"prefix"`
	Site   string       `json:"site"`
}

// Consistency checks t against the site layout sites (site → appliances).
// Entries are in site order, then prefix order, so reports diff cleanly.
func Consistency(t *Table, sites map[string][]string) Report {
	siteOf := make(map[string]string)
	members := make(map[string][]string, len(sites))
	for site, apps := range sites {
		// Never nil, so the JSON shows an empty site as [] rather than null.
		apps = slices.Compact(append([]string{}, slices.Sorted(slices.Values(apps))...))
		members[site] = apps
		for _, a := range apps {
			siteOf[a] = site
		}
	}
	siteNames := slices.Sorted(maps.Keys(members))
	partial := make(map[string][]PartialPrefix, len(sites))
	rep := Report{NoBackup: []NoBackup{}}
	unassigned := make(map[string]struct{})

	var heard []string // sites hearing the current prefix; reused across prefixes
	for p, cands := range t.All() {
		heard = heard[:0]
		for _, c := range cands {
			s, ok := siteOf[c.Appliance]
			if !ok {
				unassigned[c.Appliance] = struct{}{}
				continue
			}
			if !slices.Contains(heard, s) {
				heard = append(heard, s)
			}
		}
		for _, s := range heard {
			var missing []string
			for _, a := range members[s] {
				if !slices.ContainsFunc(cands, func(c Candidate) bool { return c.Appliance == a }) {
					missing = append(missing, a)
				}
			}
			if missing != nil {
				partial[s] = append(partial[s], PartialPrefix{Prefix: p, Missing: missing})
			}
		}
		if len(heard) == 1 {
			rep.NoBackup = append(rep.NoBackup, NoBackup{Prefix: p, Site: heard[0]})
		}
	}
	rep.Sites = make([]SiteReport, 0, len(siteNames))
	for _, s := range siteNames {
		pp := partial[s]
		if pp == nil {
			pp = []PartialPrefix{}
		}
		rep.Sites = append(rep.Sites, SiteReport{Site: s, Appliances: members[s], Partial: pp})
	}
	if len(unassigned) > 0 {
		rep.Unassigned = slices.Sorted(maps.Keys(unassigned))
	}
	return rep
}
