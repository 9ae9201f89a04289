package appliance

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/urlsign"
)

// The BGP speaker's metrics are on the appliance's registry, so that
// operators see ocdn_bgp_session_up on its /metrics.
func TestBGPMetricsOnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{ID: "a1", Listeners: listen(t, "127.0.0.1:0"), StoreDir: t.TempDir(), Keys: urlsign.Generate(),
		HeartbeatInterval: time.Hour, DrainGrace: time.Millisecond, DrainTimeout: time.Millisecond, Registry: reg,
		BGP: &bgp.Config{LocalASN: 2906, RouterID: netip.MustParseAddr("192.0.2.1"), Neighbors: []bgp.NeighborConfig{
			{Address: netip.MustParseAddr("192.0.2.9"), PeerASN: 64500, Passive: true, Family: bgp.FamilyIPv4}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer a.Run(ctx) // stops the speaker
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "ocdn_bgp_session_up" && len(mf.Metric) == 1 {
			return
		}
	}
	t.Errorf("ocdn_bgp_session_up with one neighbor not gathered from the appliance's registry")
}
