package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/api"
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

// routerAddr is ISP i's router's address, of its IPv6 router for v6
// (127.0.4.x: a router per family, as appliances hold a session per
// family).
func routerAddr(i int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom4([4]byte{127, 0, 4, byte(i + 1)})
	}
	return netip.AddrFrom4([4]byte{127, 0, 3, byte(i + 1)})
}

func routeServerAddr(v6 bool) netip.Addr { return routerAddr(199, v6) }

// routerName is the name of ISP isp's router (or the route server's) of
// a family: the ISP's name for IPv4, with "-v6" for IPv6.
func routerName(isp string, v6 bool) string {
	if v6 {
		return isp + "-v6"
	}
	return isp
}

// startRouters starts the compiled routers (a router per ISP with
// embedded or private sites, a route server for the IXP sites) from their
// config files; connectRouters makes them announce, once every
// appliance's speaker has started.
func (l *Lab) startRouters(ctx context.Context) error {
	l.routers = map[string]*router{}
	for _, rc := range l.dep.Routers {
		r, err := startRouter(ctx, routerPath(l.etc, rc.Name), rc.Routes, l.log)
		if err != nil {
			return err
		}
		l.routers[rc.Name] = r
	}
	return nil
}

func (l *Lab) connectRouters(ctx context.Context) error {
	for _, r := range l.routers {
		if err := r.connect(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ispAnnouncements are the ISP's prefixes of one family.
func ispAnnouncements(isp config.ISP, v6 bool) []announcement {
	var out []announcement
	for _, p := range prefixesOf(isp, v6) {
		out = append(out, announcement{Prefix: p.Prefix})
	}
	return out
}

func (l *Lab) stopRouters() {
	for _, r := range l.routers {
		r.stop()
	}
}

// routeEvent makes an ISP's router withdraw or announce a prefix and
// returns how long the control plane took to change its answer for an
// address inside it.
func (l *Lab) routeEvent(ctx context.Context, e Event) (time.Duration, error) {
	r := l.routers[routerName(e.Target, e.Prefix.Addr().Is6())]
	if r == nil {
		return 0, fmt.Errorf("ISP %s has no router (no embedded site)", e.Target)
	}
	probe := e.Prefix.Addr().Next()
	before, err := l.view.routed(ctx, probe)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	ann := []announcement{{Prefix: e.Prefix.Prefix}}
	if e.Kind == "withdraw_prefix" {
		err = r.withdraw(ann)
	} else {
		err = r.announce(ann)
	}
	if err != nil {
		return 0, err
	}
	for time.Since(start) < 30*time.Second {
		if now, err := l.view.routed(ctx, probe); err == nil && !slices.Equal(before, now) {
			return time.Since(start), nil
		}
		if clock.Sleep(ctx, 10*time.Millisecond) != nil {
			return 0, ctx.Err()
		}
	}
	return time.Since(start), fmt.Errorf("steering did not change within 30s of %s %s", e.Kind, e.Prefix.Prefix)
}

// bgpReport sums the appliances' sessions.
func bgpReport(statuses []api.ApplianceRuntime) BGPReport {
	var r BGPReport
	for _, st := range statuses {
		for _, s := range st.BGP {
			r.Sessions++
			if s.State == bgp.StateEstablished {
				r.SessionsEstablished++
			}
			r.PrefixesReceived += s.PrefixesReceived
		}
	}
	return r
}
