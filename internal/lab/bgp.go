package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/bgp"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
)

// The lab's BGP numbering: appliances are in the CDN's AS (Netflix's is
// 2906), each ISP has a router at routerAddr(i), and the IXP's route
// server re-announces every ISP's prefixes behind its own AS.
const (
	applianceASN   = 2906
	routeServerASN = 64600
	routeServer    = "ixp-route-server"
)

func routerAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 1)}) }

var routeServerAddr = netip.MustParseAddr("127.0.3.200")

// startRouters starts a BGP router per ISP, to announce the ISP's prefixes
// to the appliances of its embedded and private sites, and a route server
// to announce every ISP's prefixes to the appliances of IXP sites.
// connectRouters makes them announce, once every appliance's speaker has
// started.
func (l *Lab) startRouters(ctx context.Context) error {
	l.routers = map[string]*router{}
	peersOf := func(match func(config.Site) bool) []netip.Addr {
		var out []netip.Addr
		for _, a := range l.sc.Appliances {
			if s, _ := l.sc.SiteByID(a.Site); match(s) {
				out = append(out, a.Address.Addr())
			}
		}
		return out
	}
	var all []announcement
	for i, isp := range l.sc.ISPs {
		routes := ispAnnouncements(isp)
		for _, r := range routes {
			all = append(all, announcement{Prefix: r.Prefix, ASPath: []uint32{isp.ASN}})
		}
		peers := peersOf(func(s config.Site) bool { return s.ISP == isp.Name })
		if len(peers) == 0 {
			continue // an ISP without embedded sites has no router of ours
		}
		r, err := startRouter(ctx, isp.ASN, routerAddr(i), l.log)
		if err != nil {
			return err
		}
		r.peers, r.peerASN, r.routes = peers, applianceASN, routes
		l.routers[isp.Name] = r
	}
	if peers := peersOf(func(s config.Site) bool { return s.Kind == config.SiteIXP }); len(peers) > 0 {
		r, err := startRouter(ctx, routeServerASN, routeServerAddr, l.log)
		if err != nil {
			return err
		}
		r.peers, r.peerASN, r.routes = peers, applianceASN, all
		l.routers[routeServer] = r
	}
	return nil
}

func (l *Lab) connectRouters(ctx context.Context) error {
	for _, r := range l.routers {
		if err := r.connect(ctx, r.peers, r.peerASN, r.routes); err != nil {
			return err
		}
	}
	return nil
}

func ispAnnouncements(isp config.ISP) []announcement {
	out := make([]announcement, len(isp.Prefixes))
	for i, p := range isp.Prefixes {
		out[i] = announcement{Prefix: p.Prefix}
	}
	return out
}

func (l *Lab) stopRouters() {
	for _, r := range l.routers {
		r.stop()
	}
}

// bgpConfig is an appliance's BGP session: with its ISP's router at an
// embedded or private site, with the route server at an IXP site; none at
// a fallback site, which serves anyone without routes.
func (l *Lab) bgpConfig(a config.Appliance) *bgp.Config {
	site, _ := l.sc.SiteByID(a.Site)
	var nb bgp.NeighborConfig
	switch site.Kind {
	case config.SiteEmbedded, config.SitePrivate:
		i := slices.IndexFunc(l.sc.ISPs, func(isp config.ISP) bool { return isp.Name == site.ISP })
		nb = bgp.NeighborConfig{Address: routerAddr(i), PeerASN: l.sc.ISPs[i].ASN}
	case config.SiteIXP:
		nb = bgp.NeighborConfig{Address: routeServerAddr, PeerASN: routeServerASN}
	default:
		return nil
	}
	// The appliance waits for its router, as the router connects out.
	nb.Port, nb.Family, nb.Passive = bgpPort, bgp.FamilyIPv4, true
	return &bgp.Config{
		LocalASN: applianceASN, RouterID: a.Address.Addr(),
		ListenAddr:    netip.AddrPortFrom(a.Address.Addr(), bgpPort),
		Neighbors:     []bgp.NeighborConfig{nb},
		AllowPrefixes: []netip.Prefix{loopback4},
	}
}

func (l *Lab) applianceConfig(id string) config.Appliance {
	for _, a := range l.sc.Appliances {
		if a.ID == id {
			return a
		}
	}
	return config.Appliance{}
}

// routeEvent makes an ISP's router withdraw or announce a prefix and
// returns how long the control plane took to change its answer for an
// address inside it.
func (l *Lab) routeEvent(ctx context.Context, e Event) (time.Duration, error) {
	r := l.routers[e.Target]
	if r == nil {
		return 0, fmt.Errorf("ISP %s has no router (no embedded site)", e.Target)
	}
	probe := e.Prefix.Addr().Next()
	before := l.routedAppliances(probe)
	start := time.Now()
	ann := []announcement{{Prefix: e.Prefix.Prefix}}
	var err error
	if e.Kind == "withdraw_prefix" {
		err = r.withdraw(ann)
	} else {
		err = r.announce(ann)
	}
	if err != nil {
		return 0, err
	}
	for time.Since(start) < 30*time.Second {
		if !slices.Equal(before, l.routedAppliances(probe)) {
			return time.Since(start), nil
		}
		if clock.Sleep(ctx, 10*time.Millisecond) != nil {
			return 0, ctx.Err()
		}
	}
	return time.Since(start), fmt.Errorf("steering did not change within 30s of %s %s", e.Kind, e.Prefix.Prefix)
}

func (l *Lab) routedAppliances(a netip.Addr) []string {
	_, cands, _ := l.control.Lookup(a)
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.Appliance
	}
	slices.Sort(out)
	return out
}

// bgpReport sums the appliances' sessions.
func (l *Lab) bgpReport() BGPReport {
	var r BGPReport
	for _, la := range l.appliances {
		for _, s := range la.a.BGPSessions() {
			r.Sessions++
			if s.State == bgp.StateEstablished {
				r.SessionsEstablished++
			}
			r.PrefixesReceived += s.PrefixesReceived
		}
	}
	return r
}
