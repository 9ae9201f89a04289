package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
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
// GoBGP instance that waits for its appliances to connect and announces
// prefixes to them.
type router struct {
	srv  *server.BgpServer
	done chan struct{}
	addr netip.Addr
	// peers, peerASN and routes are what connect will set up.
	peers   []netip.Addr
	peerASN uint32
	routes  []announcement
}

// startRouter starts a router's GoBGP instance without sessions; connect
// adds them. The two steps are apart because every GoBGP instance of the
// process must be started before any has a session (see bgp.Speaker.Start).
func startRouter(ctx context.Context, asn uint32, addr netip.Addr, log *slog.Logger) (*router, error) {
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelError)
	r := &router{srv: server.NewBgpServer(server.LoggerOption(log.With("router", addr.String()), lvl)), done: make(chan struct{}), addr: addr}
	go func() { defer close(r.done); r.srv.Serve() }()
	// The router listens nowhere and connects out to its appliances, whose
	// addresses are unique to the scenario: two labs on one machine then
	// never compete for a router's port.
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: addr.String(), ListenPort: -1,
	}}); err != nil {
		r.stop()
		return nil, fmt.Errorf("router %s: %w", addr, err)
	}
	return r, nil
}

// connect opens sessions to the peers (the appliances wait for the
// router) and announces routes to them.
func (r *router) connect(ctx context.Context, peers []netip.Addr, peerASN uint32, routes []announcement) error {
	addr := r.addr
	for _, p := range peers {
		if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: p.String(), PeerAsn: peerASN},
			Transport: &api.Transport{LocalAddress: addr.String(), RemotePort: bgpPort},
			Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1}},
			AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
				Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}},
		}}); err != nil {
			return fmt.Errorf("router %s: peer %s: %w", addr, p, err)
		}
	}
	return r.announce(routes)
}

func (r *router) paths(routes []announcement) ([]*apiutil.Path, error) {
	var out []*apiutil.Path
	for _, a := range routes {
		nlri, err := bgp.NewIPAddrPrefix(a.Prefix)
		if err != nil {
			return nil, err
		}
		nh, err := bgp.NewPathAttributeNextHop(labNextHop)
		if err != nil {
			return nil, err
		}
		attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), nh, bgp.NewPathAttributeMultiExitDisc(a.MED)}
		if len(a.ASPath) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, a.ASPath)}))
		}
		out = append(out, &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: attrs})
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
