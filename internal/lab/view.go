package lab

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/control"
)

// controlView is the lab's view of the control plane: its HTTP API, with
// the operator's token (and, for manifests, each appliance's), as an
// operator sees it. While the control plane is stopped its calls fail;
// callers keep what they knew.
type controlView struct {
	urls   []string // the replicas, asked in turn until one answers
	admin  string
	tokens map[string]string
	hc     *http.Client
}

func newControlView(urls []string, d *Deployment) *controlView {
	return &controlView{urls: urls, admin: d.AdminToken, tokens: d.tokens, hc: &http.Client{Timeout: 5 * time.Second}}
}

func (v *controlView) appliances(ctx context.Context) ([]api.ApplianceStatus, error) {
	var out []api.ApplianceStatus
	err := v.get(ctx, "/v1/appliances", v.admin, &out)
	return out, err
}

// appliancesAt is what replica i (0 the first) says of each appliance.
func (v *controlView) appliancesAt(ctx context.Context, i int) ([]api.ApplianceStatus, error) {
	var out []api.ApplianceStatus
	err := getJSON(ctx, v.hc, v.urls[i]+"/v1/appliances", v.admin, &out)
	return out, err
}

func (v *controlView) fillSummary(ctx context.Context) (api.FillSummary, error) {
	var out api.FillSummary
	err := v.get(ctx, "/v1/admin/fill", v.admin, &out)
	return out, err
}

// manifest is appliance id's manifest, asked for with its own credential.
func (v *controlView) manifest(ctx context.Context, id string) (api.Manifest, error) {
	var out api.Manifest
	err := v.get(ctx, "/v1/manifest?appliance="+url.QueryEscape(id), v.tokens[id], &out)
	return out, err
}

// get asks each replica in turn until one answers: a replica killed by
// the chaos soak must not blind the lab.
func (v *controlView) get(ctx context.Context, path, token string, out any) error {
	var err error
	for _, u := range v.urls {
		if err = getJSON(ctx, v.hc, u+path, token, out); err == nil {
			return nil
		}
	}
	return err
}

// routed lists the appliances holding a route for a, sorted.
func (v *controlView) routed(ctx context.Context, a netip.Addr) ([]string, error) {
	var rep control.LookupReply
	if err := v.get(ctx, "/v1/routes/lookup?ip="+a.String(), v.admin, &rep); err != nil {
		return nil, err
	}
	out := make([]string, len(rep.Candidates))
	for i, c := range rep.Candidates {
		out[i] = c.Appliance
	}
	slices.Sort(out)
	return out, nil
}

// metrics scrapes a daemon's /metrics.
func scrape(ctx context.Context, hc *http.Client, base string) ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s/metrics: %w", base, err)
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	return out, nil
}

// counter sums the counter name over the label sets that match (label
// "" matches all).
func counter(fams []*dto.MetricFamily, name, label, value string) float64 {
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || slices.ContainsFunc(m.GetLabel(), func(lp *dto.LabelPair) bool { return lp.GetName() == label && lp.GetValue() == value }) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// counterByLabel sums the counter name per value of label.
func counterByLabel(fams []*dto.MetricFamily, name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// measured is measured steering per prefix group and arm.
func (v *controlView) measured(ctx context.Context) (api.MeasuredStatus, error) {
	var out api.MeasuredStatus
	err := v.get(ctx, "/v1/steering/measured", v.admin, &out)
	return out, err
}
