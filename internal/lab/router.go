package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgpconfig "github.com/osrg/gobgp/v4/pkg/config"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// bgpPort is where every lab BGP speaker listens, each on its own address.
const bgpPort = 1790

// labNextHop is the next hop routers announce: steering forwards no
// packets, and GoBGP treats a loopback next hop as a withdrawal.
var labNextHop = netip.MustParseAddr("192.0.2.1")

// announcement is one prefix a lab router originates.
type announcement struct {
	Prefix netip.Prefix
	// ASPath is prepended to the router's own ASN, e.g. the ISP behind an
	// IXP route server.
	ASPath []uint32
	MED    uint32
}

// router is an ISP's (or an IXP route server's) BGP router in the lab: a
// GoBGP instance configured from the gobgpd config file the lab wrote
// (routers/NAME.toml), which connects out to its appliances and announces
// prefixes to them.
type router struct {
	srv  *server.BgpServer
	done chan struct{}
	// started is the config GoBGP runs (the file's, without neighbors);
	// full is the file's; connect applies the difference.
	started, full *oc.BgpConfigSet
	routes        []announcement
}

// startRouter starts a router's GoBGP instance from its config file,
// without sessions; connect adds them. The two steps are apart because
// every GoBGP instance of the process must be started before any has a
// session (see bgp.Speaker.Start).
func startRouter(ctx context.Context, file string, routes []announcement, log *slog.Logger) (*router, error) {
	full, err := gobgpconfig.ReadConfigFile(file, "toml")
	if err != nil {
		return nil, fmt.Errorf("router config %s: %w", file, err)
	}
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelError)
	r := &router{srv: server.NewBgpServer(server.LoggerOption(log.With("router", full.Global.Config.RouterId), lvl)),
		done: make(chan struct{}), full: full, routes: routes}
	go func() { defer close(r.done); r.srv.Serve() }()
	bare := *full
	bare.Neighbors = nil
	if r.started, err = gobgpconfig.InitialConfig(ctx, r.srv, &bare, false); err != nil {
		r.stop()
		return nil, fmt.Errorf("router %s: %w", file, err)
	}
	return r, nil
}

// connect opens the sessions of the config file (the appliances wait
// for the router) and announces the routes.
func (r *router) connect(ctx context.Context) error {
	if _, err := gobgpconfig.UpdateConfig(ctx, r.srv, r.started, r.full); err != nil {
		return fmt.Errorf("router %s: %w", r.full.Global.Config.RouterId, err)
	}
	return r.announce(r.routes)
}

func (r *router) paths(routes []announcement) ([]*apiutil.Path, error) {
	var out []*apiutil.Path
	for _, a := range routes {
		nlri, err := bgp.NewIPAddrPrefix(a.Prefix)
		if err != nil {
			return nil, err
		}
		family := bgp.RF_IPv4_UC
		var nh bgp.PathAttributeInterface
		if a.Prefix.Addr().Is6() {
			// IPv6 routes carry their next hop in MP_REACH_NLRI (RFC 4760).
			family = bgp.RF_IPv6_UC
			nh, err = bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, labNextHop6)
		} else {
			nh, err = bgp.NewPathAttributeNextHop(labNextHop)
		}
		if err != nil {
			return nil, err
		}
		attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh, bgp.NewPathAttributeMultiExitDisc(a.MED)}
		if len(a.ASPath) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, a.ASPath)}))
		}
		out = append(out, &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs})
	}
	return out, nil
}

// announce originates routes; withdraw takes them back.
func (r *router) announce(routes []announcement) error {
	paths, err := r.paths(routes)
	if err != nil || len(paths) == 0 {
		return err
	}
	_, err = r.srv.AddPath(apiutil.AddPathRequest{Paths: paths})
	return err
}

func (r *router) withdraw(routes []announcement) error {
	paths, err := r.paths(routes)
	if err != nil || len(paths) == 0 {
		return err
	}
	return r.srv.DeletePath(apiutil.DeletePathRequest{Paths: paths})
}

func (r *router) stop() {
	r.srv.Stop()
	<-r.done
}
