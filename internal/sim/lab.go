package sim

import (
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/lab"
	"github.com/ocdn/ocdn/internal/sim/world"
)

// labSessionGap is the time a lab player spends between two titles
// (steering, startup); with the title's length it sets how many sessions
// a client plays back to back.
const labSessionGap = time.Second

// FromLab turns a lab scenario (internal/lab's YAML) into a world and a
// scenario that simulate the same CDN: its ISPs as networks with their
// prefixes, each lab client as one subscriber who streams titles back to
// back, its sites and appliances, its catalog, placement and fill
// settings, and its events (kill_appliance, withdraw_prefix,
// announce_prefix). What the simulator leaves out is in docs/sim.md.
func FromLab(lsc *lab.Scenario) (*world.World, *Scenario, error) {
	cat, err := content.Synth(lsc.Catalog)
	if err != nil {
		return nil, nil, fmt.Errorf("lab catalog: %w", err)
	}
	w := &world.World{Version: world.FormatVersion, Name: "lab",
		Population: world.Population{DefaultSubscriberShare: 1, UsersPerAddress: 1, NonAccessWeight: 1},
		Deployment: world.Deployment{Embedded: world.EmbeddedSpec{SubscribersPerSite: 1, SubscribersPerAppliance: 1, MinAppliances: 1, MaxAppliances: 1},
			IXP: world.IXPSpec{SubscribersPerAppliance: 1, MinAppliances: 1, MaxAppliances: 1}},
		Routing: world.Routing{RouteServerASN: 64600, IXPGlobal: true},
	}
	zoneOf := func(loc config.Location) string {
		best, bestKm := "UTC", math.Inf(1)
		for _, s := range lsc.Sites {
			if km := world.DistanceKm(loc.Lat, loc.Lon, s.Location.Lat, s.Location.Lon); km < bestKm && s.TimeZone != "" {
				best, bestKm = s.TimeZone, km
			}
		}
		return best
	}
	clients := map[string]int{}
	for _, c := range lsc.Clients {
		clients[c.ISP] += c.Count
	}
	for i, isp := range lsc.ISPs {
		code := fmt.Sprintf("X%c", 'A'+i)
		w.Countries = append(w.Countries, world.Country{Code: code})
		w.Metros = append(w.Metros, world.Metro{ID: isp.Name, Country: code, Lat: isp.Location.Lat, Lon: isp.Location.Lon, TimeZone: zoneOf(isp.Location), Weight: 1})
		w.ASes = append(w.ASes, world.AS{ASN: isp.ASN, Country: code, Access: true, Subscribers: float64(clients[isp.Name]), Name: isp.Name})
	}
	ixps := 0
	for _, s := range lsc.Sites {
		// A site's metro is its own place, in the country of the nearest ISP.
		best, bestKm := 0, math.Inf(1)
		for i, isp := range lsc.ISPs {
			if km := world.DistanceKm(s.Location.Lat, s.Location.Lon, isp.Location.Lat, isp.Location.Lon); km < bestKm {
				best, bestKm = i, km
			}
		}
		tz := s.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		w.Metros = append(w.Metros, world.Metro{ID: "site-" + s.ID, Country: w.Countries[best].Code, Lat: s.Location.Lat, Lon: s.Location.Lon, TimeZone: tz})
		ws := world.Site{ID: s.ID, Kind: s.Kind, Metro: "site-" + s.ID}
		if s.Kind == config.SiteEmbedded || s.Kind == config.SitePrivate {
			for _, isp := range lsc.ISPs {
				if isp.Name == s.ISP {
					ws.ASN = isp.ASN
				}
			}
		}
		if s.Kind == config.SiteIXP {
			ixps++
		}
		w.Sites = append(w.Sites, ws)
	}
	w.Routing.IXPSitesPerPrefix = min(ixps, 8)
	for _, a := range lsc.Appliances {
		// Lab appliances are not throughput-bound (loopback): 10 Gb/s.
		w.Appliances = append(w.Appliances, world.Appliance{ID: a.ID, Site: a.Site, Storage: world.Size(a.Capacity), ThroughputGbps: 10})
	}
	if err := w.Index(); err != nil {
		return nil, nil, fmt.Errorf("lab world: %w", err)
	}
	// Clients go round-robin over their ISP's IPv4 prefixes (lab
	// clientAddr). A dual-stack lab client's IPv6 prefix is its ISP's,
	// announced to the same sites, so steering sends it where its IPv4
	// address would: the world keeps one prefix per client.
	for i, isp := range lsc.ISPs {
		var v4 []config.Prefix
		for _, p := range isp.Prefixes {
			if p.Addr().Is4() {
				v4 = append(v4, p)
			}
		}
		n := len(v4)
		for j, p := range v4 {
			subs := clients[isp.Name] / n
			if j < clients[isp.Name]%n {
				subs++
			}
			w.Prefixes = append(w.Prefixes, world.Prefix{Prefix: p.Prefix, ASN: isp.ASN, Metro: int32(i), Subscribers: float32(subs)})
		}
	}

	sc, err := LoadScenario("")
	if err != nil {
		return nil, nil, err
	}
	sc.Name = "lab"
	sc.file = "lab scenario"
	sc.root = nil
	sc.Duration = lsc.Duration
	sc.Step = time.Second
	sc.WarmStart, sc.Prefill = false, true
	sc.labCatalog = cat
	sc.Catalog = CatalogSpec{Titles: lsc.Catalog.Titles, LadderKbps: lsc.Catalog.LadderKbps, MinDuration: lsc.Catalog.Duration, MaxDuration: lsc.Catalog.Duration}
	perDay := float64(24*time.Hour) / float64(lsc.Catalog.Duration+labSessionGap)
	sc.Demand = DemandSpec{SessionsPerSubscriberDay: perDay, Diurnal: flat24(), WatchMean: 24 * time.Hour, Zipf: 1,
		RungShares: labRungShares(len(lsc.Catalog.LadderKbps))}
	sc.Placement = PlacementSpec{Replicas: lsc.Replicas, Epsilon: 0.1, Every: lsc.Duration + time.Second, Region: "site"}
	esc := lsc.Fill.EscalateAfter
	if esc <= 0 {
		esc = 10 * time.Second
	}
	rate := float64(lsc.Fill.RateBytes) * 8 / 1e9
	if rate <= 0 {
		rate = 10
	}
	sc.Fill = FillSpec{StartHour: 2, EndHour: 14, RateGbps: rate, EscalateAfter: esc, OutOfCycle: 1 << 30}
	sc.Health = HealthSpec{HeartbeatInterval: lsc.HeartbeatInterval, MissedBeats: 3}
	sc.Failures = FailureSpec{}
	sc.Churn = ChurnSpec{}
	sc.Steering = SteeringSpec{URLs: 5, Locate: true}
	for _, e := range lsc.Events {
		at, err := e.When(lsc.Duration)
		if err != nil {
			return nil, nil, err
		}
		switch e.Kind {
		case "kill_appliance":
			sc.Events = append(sc.Events, Event{At: at, Kind: "fail_appliance", Target: e.Target, Duration: lsc.Duration - at + time.Second})
		case "withdraw_prefix", "announce_prefix":
			sc.Events = append(sc.Events, Event{At: at, Kind: e.Kind, Target: netip.Prefix(e.Prefix.Prefix).String()})
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, nil, fmt.Errorf("lab scenario as a simulation: %w", err)
	}
	return w, sc, nil
}

func flat24() []float64 {
	d := make([]float64, 24)
	for i := range d {
		d[i] = 1
	}
	return d
}

// labRungShares puts most sessions on the top rung, as lab players on
// their emulated links of 8–40 Mb/s do.
func labRungShares(n int) []float64 {
	s := make([]float64, n)
	if n == 1 {
		s[0] = 1
		return s
	}
	s[n-1] = 0.8
	for i := 0; i < n-1; i++ {
		s[i] = 0.2 / float64(n-1)
	}
	return s
}
