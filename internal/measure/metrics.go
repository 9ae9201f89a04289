package measure

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes counted by ocdn_measure_reports_total.
const (
	OutcomeAccepted    = "accepted"
	OutcomeDuplicate   = "duplicate"
	OutcomeInvalid     = "invalid"      // schema or JSON error
	OutcomeFutureDated = "future_dated" // client_time or a pulse start ahead of the server clock
	OutcomeTooOld      = "too_old"
	OutcomeTooLarge    = "too_large" // body over 1 MiB
	OutcomeRateLimited = "rate_limited"
	OutcomeError       = "error" // not stored: WAL failure or closing
)

type metrics struct {
	reports     *prometheus.CounterVec
	pulses      prometheus.Counter
	transport   prometheus.Counter
	walBytes    prometheus.Gauge
	compactions prometheus.Counter
	// claims.go
	claimErrors   prometheus.Counter
	heldElsewhere prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ocdn_measure_reports_total",
			Help: "Measurement reports received, by outcome.",
		}, []string{"outcome"}),
		pulses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_measure_pulses_total",
			Help: "Pulses stored (in accepted, non-duplicate reports).",
		}),
		transport: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_measure_transport_records_total",
			Help: "Transport records stored (in accepted, non-duplicate appliance batches).",
		}),
		walBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ocdn_measure_wal_bytes",
			Help: "Bytes in write-ahead log segments not yet compacted into Parquet.",
		}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_measure_compactions_total",
			Help: "WAL segments compacted into Parquet files.",
		}),
		claimErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_measure_claim_errors_total",
			Help: "Report claims the shared database did not answer (at upload: the report is claimed at compaction; at compaction: retried).",
		}),
		heldElsewhere: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ocdn_measure_reports_held_elsewhere_total",
			Help: "Reports in this replica's WAL left out of its Parquet files because another replica's store holds them.",
		}),
	}
	for _, o := range []string{OutcomeAccepted, OutcomeDuplicate, OutcomeInvalid, OutcomeFutureDated,
		OutcomeTooOld, OutcomeTooLarge, OutcomeRateLimited, OutcomeError} {
		m.reports.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reports, m.pulses, m.transport, m.walBytes, m.compactions, m.claimErrors, m.heldElsewhere} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("measure: metrics already registered (one Ingester per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
