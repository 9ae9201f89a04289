package transport

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/measure"
)

// Reasons a record is dropped (ocdn_transport_records_dropped_total).
const (
	dropSpoolFull = "spool_full" // the oldest spooled batch made room for a new one
	dropMemory    = "memory_full"
	dropRejected  = "rejected" // the control plane refused the batch as invalid
	dropSpoolIO   = "spool_error"
	dropInvalid   = "invalid" // a record the control plane would refuse, left out of its batch
)

// What sampling does is counted where it is done, on the sampled path
// only (one atomic add each), so that its own work can be accounted:
// make bench-edge multiplies these by the Go benchmarks' cost of each.
type metrics struct {
	sent          prometheus.Counter
	queued        prometheus.Gauge
	dropped       *prometheus.CounterVec
	spoolBytes    prometheus.Gauge
	sendFailures  prometheus.Counter
	ccUnavailable prometheus.Counter

	// sampled is the records taken, by reason; sampledFinal and
	// sampledPeriodic are its two children, resolved once.
	sampled                       *prometheus.CounterVec
	sampledFinal, sampledPeriodic prometheus.Counter
	connsSampled                  prometheus.Counter
	sampledRequests               prometheus.Counter
	batchesSpooled                prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sampled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_transport_records_sampled_total",
			Help: "TCP_INFO samples taken of content connections, by reason (final: at close; periodic: every interval)."}, []string{"reason"}),
		connsSampled: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_connections_sampled_total",
			Help: "Content connections drawn for sampling at accept."}),
		sampledRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_sampled_connection_requests_total",
			Help: "Requests with a verified token on sampled connections (their file and arm noted for the records)."}),
		batchesSpooled: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_batches_spooled_total",
			Help: "Batches of transport records written to the spool."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_records_sent_total",
			Help: "Transport records the control plane acknowledged."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_transport_records_queued",
			Help: "Transport records waiting for delivery, in memory and in the spool."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocdn_transport_records_dropped_total",
			Help: "Transport records dropped, by reason (spool_full: the oldest, to bound the spool)."}, []string{"reason"}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ocdn_transport_spool_bytes",
			Help: "Bytes of transport batches in the spool."}),
		sendFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_send_failures_total",
			Help: "Batch deliveries that failed and will be retried."}),
		ccUnavailable: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocdn_transport_cc_unavailable_total",
			Help: "Requests whose token named a congestion control the kernel refused; they were served with the default."}),
	}
	m.sampledFinal = m.sampled.WithLabelValues(measure.ReasonFinal)
	m.sampledPeriodic = m.sampled.WithLabelValues(measure.ReasonPeriodic)
	for _, r := range []string{dropSpoolFull, dropMemory, dropRejected, dropSpoolIO, dropInvalid} {
		m.dropped.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sampled, m.connsSampled, m.sampledRequests, m.batchesSpooled, m.sent, m.queued, m.dropped, m.spoolBytes, m.sendFailures, m.ccUnavailable} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("transport: metrics already registered (one Recorder per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
