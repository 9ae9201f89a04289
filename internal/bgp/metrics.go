package bgp

import "github.com/prometheus/client_golang/prometheus"

// The speaker is its own prometheus.Collector: metrics are computed from the
// same state Status reads at scrape time, so they can never disagree, and no
// global registry is touched. Register it with reg.MustRegister(speaker).
var (
	descSessionUp = prometheus.NewDesc("ocdn_bgp_session_up",
		"1 when the BGP session with the neighbor is established.",
		[]string{"neighbor", "family"}, nil)
	descPrefixesReceived = prometheus.NewDesc("ocdn_bgp_prefixes_received",
		"Prefixes currently received from the neighbor, accepted or rejected by the import policy.",
		[]string{"neighbor", "family"}, nil)
	descPrefixesAccepted = prometheus.NewDesc("ocdn_bgp_prefixes_accepted",
		"Prefixes currently received from the neighbor and accepted by the import policy.",
		[]string{"neighbor", "family"}, nil)
	descRoutesRejected = prometheus.NewDesc("ocdn_bgp_routes_rejected_total",
		"Route announcements rejected by the import policy, by reason.",
		[]string{"reason"}, nil)
	descTransitions = prometheus.NewDesc("ocdn_bgp_session_transitions_total",
		"BGP session state changes for the neighbor.",
		[]string{"neighbor"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Speaker) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessionUp
	ch <- descPrefixesReceived
	ch <- descPrefixesAccepted
	ch <- descRoutesRejected
	ch <- descTransitions
}

// Collect implements prometheus.Collector.
func (s *Speaker) Collect(ch chan<- prometheus.Metric) {
	type row struct {
		addr, fam          string
		up                 float64
		received, accepted float64
		transitions        float64
	}
	s.mu.Lock()
	rows := make([]row, 0, len(s.order))
	for _, addr := range s.order {
		n := s.neighbors[addr]
		r := row{addr: addr.String(), fam: string(n.cfg.Family),
			received:    float64(len(n.accepted) + len(n.rejected)),
			accepted:    float64(len(n.accepted)),
			transitions: float64(n.transitions)}
		if n.up {
			r.up = 1
		}
		rows = append(rows, r)
	}
	rejects := make([]float64, len(rejectReasons))
	for i, reason := range rejectReasons {
		rejects[i] = float64(s.rejects[reason])
	}
	s.mu.Unlock()

	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(descSessionUp, prometheus.GaugeValue, r.up, r.addr, r.fam)
		ch <- prometheus.MustNewConstMetric(descPrefixesReceived, prometheus.GaugeValue, r.received, r.addr, r.fam)
		ch <- prometheus.MustNewConstMetric(descPrefixesAccepted, prometheus.GaugeValue, r.accepted, r.addr, r.fam)
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, r.transitions, r.addr)
	}
	for i, reason := range rejectReasons {
		ch <- prometheus.MustNewConstMetric(descRoutesRejected, prometheus.CounterValue, rejects[i], string(reason))
	}
}
