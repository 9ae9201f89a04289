package dns

import (
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// result is what kind of reply a query got.
type result uint8

const (
	resAnswer result = iota
	resNoData
	resNXDomain
	resRefused
	resFormErr
	resNotImp
	resBadVers
	resServFail
	numResults
)

var resultNames = [numResults]string{"answer", "nodata", "nxdomain", "refused", "formerr", "notimp", "badvers", "servfail"}

// qtypeLabel bounds the qtype label: a client choosing types cannot grow
// the series without limit.
type qtypeLabel uint8

const (
	qtA qtypeLabel = iota
	qtAAAA
	qtSOA
	qtNS
	qtANY
	qtOther
	numQtypes
)

var qtypeNames = [numQtypes]string{"A", "AAAA", "SOA", "NS", "ANY", "other"}

func qtypeOf(t uint16) qtypeLabel {
	switch t {
	case mdns.TypeA:
		return qtA
	case mdns.TypeAAAA:
		return qtAAAA
	case mdns.TypeSOA:
		return qtSOA
	case mdns.TypeNS:
		return qtNS
	case mdns.TypeANY:
		return qtANY
	}
	return qtOther
}

type dropReason uint8

const (
	dropShort    dropReason = iota // shorter than a DNS header
	dropResponse                   // a response, not a query
	numDrops
)

// metrics are the server's Prometheus metrics. The per-query counters
// are resolved once, so counting a query is an atomic add.
type metrics struct {
	queries     [2][numQtypes][numResults]prometheus.Counter
	duration    [2]prometheus.Observer
	truncated   prometheus.Counter
	drops       [numDrops]prometheus.Counter
	probes      [2]prometheus.Counter // without, with ECS
	tcpRejected prometheus.Counter
	tcpOpen     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	queries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_dns_queries_total",
		Help: "DNS queries answered, by transport, query type and kind of reply (answer, nodata, nxdomain, refused, formerr, notimp, badvers, servfail)."},
		[]string{"transport", "qtype", "result"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ocdn_dns_query_duration_seconds",
		Help:    "Time from a query's arrival to its packed reply, excluding the socket.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}, []string{"transport"})
	truncated := prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_dns_truncated_responses_total",
		Help: "UDP replies truncated (TC) because they did not fit the client's buffer; the client retries over TCP."})
	drops := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_dns_dropped_messages_total",
		Help: "Messages that got no reply: shorter than a DNS header, or responses rather than queries."}, []string{"reason"})
	probes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_dns_probe_queries_total",
		Help: "Queries for probe names, logged for the measurement side, by whether the resolver sent an EDNS Client Subnet."}, []string{"ecs"})
	tcpRejected := prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_dns_tcp_connections_rejected_total",
		Help: "TCP connections closed at once because the server already had its maximum open."})
	tcpOpen := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_dns_tcp_connections",
		Help: "TCP connections open."})
	reg.MustRegister(queries, duration, truncated, drops, probes, tcpRejected, tcpOpen)
	m := &metrics{truncated: truncated, tcpRejected: tcpRejected, tcpOpen: tcpOpen}
	for tr := range 2 {
		trName := transport(tr).String()
		m.duration[tr] = duration.WithLabelValues(trName)
		for q := range numQtypes {
			for r := range numResults {
				m.queries[tr][q][r] = queries.WithLabelValues(trName, qtypeNames[q], resultNames[r])
			}
		}
	}
	m.drops[dropShort] = drops.WithLabelValues("short")
	m.drops[dropResponse] = drops.WithLabelValues("response")
	m.probes[0] = probes.WithLabelValues("no")
	m.probes[1] = probes.WithLabelValues("yes")
	return m
}

func (m *metrics) query(tr transport, q qtypeLabel, r result, d time.Duration) {
	m.queries[tr][q][r].Inc()
	m.duration[tr].Observe(d.Seconds())
}

func (m *metrics) dropped(r dropReason) { m.drops[r].Inc() }

func (m *metrics) probe(ecs bool) {
	if ecs {
		m.probes[1].Inc()
	} else {
		m.probes[0].Inc()
	}
}
