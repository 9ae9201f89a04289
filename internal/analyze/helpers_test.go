package analyze

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// row returns a successful pulse row with only TTFB set.
func ttfbRow(report string, client netip.Addr, group, site, steered string, at time.Time, ttfb float64) Row {
	r := Row{ReportID: report, Time: at, ClientAddr: client, Prefix: group, PrefixGroup: group, ASN: 64500,
		Site: site, Appliance: site + "-oca", Type: "http_ttfb", Status: "ok", Bytes: 1000, SteeredSite: steered}
	r.Values = [numMetrics]float64{math.NaN(), ttfb, math.NaN()}
	return r
}

// lognormal draws exp(N(log median, sigma)).
func lognormal(rng *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*rng.NormFloat64())
}

func clientAddr(group, client int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(group >> 8), byte(group), byte(client + 1)})
}

func groupName(g int) string { return fmt.Sprintf("10.%d.%d.0/24", g>>8, g&0xff) }
