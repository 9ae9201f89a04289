// Package metrictest checks a component's Prometheus metrics in tests:
// Prometheus's own lint (names, units, help) and the house prefix
// (ocdn_ and the component's name).
package metrictest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// Lint gathers g and fails t for every problem promlint finds and for
// every family whose name does not start with prefix; it returns the
// families for the caller's own checks.
func Lint(t testing.TB, g prometheus.Gatherer, prefix string) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			t.Errorf("metric %s: want prefix %s", mf.GetName(), prefix)
		}
	}
	return mfs
}
