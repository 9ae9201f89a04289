package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gobgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/ocdn/ocdn/internal/rib"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// SessionUp: the session reached Established. Routes follow as Announce.
	SessionUp EventKind = iota + 1
	// SessionDown: the session left Established (or was shut down for
	// max-prefix). The consumer must withdraw every route it holds from the
	// neighbor; no Withdraw events are sent for them.
	SessionDown
	// Announce: Routes were accepted by the import policy. A route replaces
	// any earlier route for the same neighbor and prefix.
	Announce
	// Withdraw: the Withdrawn prefixes, all previously announced, are gone.
	Withdraw
)

func (k EventKind) String() string {
	switch k {
	case SessionUp:
		return "session_up"
	case SessionDown:
		return "session_down"
	case Announce:
		return "announce"
	case Withdraw:
		return "withdraw"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change seen by the speaker, for one neighbor.
type Event struct {
	Kind      EventKind
	Neighbor  netip.Addr
	Family    Family
	Routes    []rib.Route    // Announce
	Withdrawn []netip.Prefix // Withdraw
	State     string         // session state after the change (SessionUp/SessionDown)
	Reason    string         // why the session went down, when known
}

// Session states reported by Status and in Event.State.
const (
	StateIdle              = "idle"
	StateConnect           = "connect"
	StateActive            = "active"
	StateOpenSent          = "opensent"
	StateOpenConfirm       = "openconfirm"
	StateEstablished       = "established"
	StateMaxPrefixExceeded = "max-prefix exceeded"
)

// defaultLocalPref is what a route without LOCAL_PREF (every eBGP route:
// GoBGP strips it on ingress, RFC 4271 5.1.5) is given, the conventional
// default, so that steering compares eBGP and iBGP routes sensibly.
const defaultLocalPref = 100

// connectRetry is how often GoBGP retries an outgoing connection. GoBGP's
// default (120 s) is far slower than ocdn's "routes in seconds" goal.
const connectRetry = 5 // seconds

// NeighborStatus is a snapshot of one session.
type NeighborStatus struct {
	Address          netip.Addr    `json:"address"`
	Family           Family        `json:"family"`
	State            string        `json:"state"`
	Uptime           time.Duration `json:"uptime"`
	PrefixesReceived int           `json:"prefixes_received"`
	PrefixesAccepted int           `json:"prefixes_accepted"`
	PrefixesRejected int           `json:"prefixes_rejected"`
}

// neighbor is the speaker's view of one session. Guarded by Speaker.mu.
type neighbor struct {
	cfg         NeighborConfig
	fsm         gobgp.FSMState
	up          bool // SessionUp sent and SessionDown not yet
	maxPrefix   bool // shut down for max-prefix; sticky until Run ends
	since       time.Time
	routerID    netip.Addr
	accepted    map[netip.Prefix]rib.Route // as last announced to the consumer
	rejected    map[netip.Prefix]struct{}
	transitions uint64
	// goingDown: GoBGP has taken the session down and is dropping its
	// routes; the SessionDown event has not arrived yet.
	goingDown bool
}

func (n *neighbor) state() string {
	if n.maxPrefix {
		return StateMaxPrefixExceeded
	}
	return fsmStateName(n.fsm)
}

func (n *neighbor) reset() {
	clear(n.accepted)
	clear(n.rejected)
	n.goingDown = false
}

// startMu serializes GoBGP's StartBgp across all speakers in the process.
var startMu sync.Mutex

// Speaker is the appliance's embedded, receive-only BGP speaker.
type Speaker struct {
	cfg     Config
	log     *slog.Logger
	onEvent func(Event)
	policy  importPolicy
	now     func() time.Time

	// disableCh carries neighbors to shut down for max-prefix from the watch
	// callback to Run, which owns the GoBGP server; calling GoBGP from inside
	// its own watch callback is avoided. Buffered per neighbor; a neighbor is
	// sent at most once.
	disableCh chan netip.Addr
	running   atomic.Bool

	// The GoBGP server, set by Start (or Run) and owned by Run from then on.
	srv         *server.BgpServer
	serveDone   chan struct{}
	cancelWatch context.CancelFunc
	ran         bool
	// stopping is set before GoBGP is stopped: its loop then no longer
	// answers queries, and finish reports every session down anyway.
	stopping atomic.Bool

	// emitMu serializes event delivery (GoBGP's watch goroutine and Run's
	// final SessionDowns) and guards closed: once Run is returning, no
	// further events reach onEvent.
	emitMu sync.Mutex
	closed bool

	mu        sync.Mutex // guards the fields below; never held while calling onEvent
	neighbors map[netip.Addr]*neighbor
	order     []netip.Addr
	rejects   map[RejectReason]uint64
}

// New validates cfg and returns a speaker; nothing runs until Run.
// onEvent is called from a single goroutine, in order; it should return
// quickly, as it holds up the processing of further BGP updates.
func New(cfg Config, logger *slog.Logger, onEvent func(Event)) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bgp config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	s := &Speaker{
		cfg:       cfg,
		log:       logger.With("component", "bgp"),
		onEvent:   onEvent,
		policy:    importPolicy{allow: cfg.AllowPrefixes},
		now:       time.Now,
		disableCh: make(chan netip.Addr, len(cfg.Neighbors)),
		neighbors: make(map[netip.Addr]*neighbor, len(cfg.Neighbors)),
		rejects:   make(map[RejectReason]uint64),
	}
	for _, nc := range cfg.Neighbors {
		s.neighbors[nc.Address] = &neighbor{
			cfg:      nc,
			accepted: make(map[netip.Prefix]rib.Route),
			rejected: make(map[netip.Prefix]struct{}),
		}
		s.order = append(s.order, nc.Address)
	}
	return s, nil
}

// Start starts GoBGP, without any session, so that it is ready to accept
// or open connections when Run adds the neighbors. Calling it before Run is
// optional; a process that runs several GoBGP instances (the lab) must
// start every one of them before any of them adds a neighbor: GoBGP v4.8.0
// writes package-level route-selection settings in StartBgp that every
// instance reads while processing updates, and starting all instances first
// orders those writes before every read.
func (s *Speaker) Start(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("bgp: Start or Run called more than once")
	}
	return s.startServer(ctx)
}

func (s *Speaker) startServer(ctx context.Context) error {
	// GoBGP logs chatty per-peer details at info; keep only its warnings.
	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelWarn)
	s.srv = server.NewBgpServer(server.LoggerOption(s.log.With("subsystem", "gobgp"), lvl))
	s.serveDone = make(chan struct{})
	go func() { // owner: Run; exits when Stop cancels GoBGP's loop
		defer close(s.serveDone)
		s.srv.Serve()
	}()
	// watchCtx outlives ctx on purpose: the watch must see the peers go down
	// while GoBGP stops, and is cancelled right after.
	var watchCtx context.Context
	watchCtx, s.cancelWatch = context.WithCancel(context.Background())
	if err := s.start(ctx, s.srv, watchCtx); err != nil {
		s.stop()
		return err
	}
	return nil
}

// stop ends GoBGP. Stop, not just StopBgp: it also ends the BFD goroutine
// that NewBgpServer starts. StopBgp inside it sends CEASE to every
// neighbor, closes the listeners and ends Serve.
func (s *Speaker) stop() {
	s.stopping.Store(true)
	s.srv.Stop()
	<-s.serveDone
	s.cancelWatch()
	s.finish()
}

// Run starts GoBGP unless Start did, adds the neighbors, holds the sessions
// until ctx ends, then stops GoBGP (sending CEASE to every neighbor) and
// returns. For each session that was up it delivers a final SessionDown
// before returning; no event is delivered after Run returns. Run may be
// called only once.
func (s *Speaker) Run(ctx context.Context) error {
	if s.running.CompareAndSwap(false, true) {
		if err := s.startServer(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // cancelled while starting: a normal shutdown
			}
			return err
		}
	} else if s.srv == nil || s.ran {
		return errors.New("bgp: Run called more than once, or after a failed Start")
	}
	s.ran = true
	for _, nc := range s.cfg.Neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(nc)}); err != nil {
			s.stop()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("adding neighbor %s: %w", nc.Address, err)
		}
		s.log.Info("bgp neighbor configured", "neighbor", nc)
	}
	s.log.Info("bgp speaker started", "local_asn", s.cfg.LocalASN, "router_id", s.cfg.RouterID,
		"listen", s.cfg.ListenAddr, "neighbors", len(s.cfg.Neighbors))

	for {
		select {
		case <-ctx.Done():
			s.stop()
			s.log.Info("bgp speaker stopped")
			return nil
		case addr := <-s.disableCh:
			// Shut the session down and keep it down: the router's operator
			// must fix the leak; the shutdown communication (RFC 8203) tells
			// them why.
			if err := s.srv.DisablePeer(ctx, &api.DisablePeerRequest{
				Address:       addr.String(),
				Communication: StateMaxPrefixExceeded,
			}); err != nil && ctx.Err() == nil {
				s.log.Error("disabling neighbor after max-prefix", "neighbor", addr, "err", err)
			}
		}
	}
}

func (s *Speaker) start(ctx context.Context, srv *server.BgpServer, watchCtx context.Context) error {
	global := &api.Global{
		Asn:        s.cfg.LocalASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: -1, // GoBGP: negative means do not listen
	}
	if s.cfg.ListenAddr.IsValid() {
		global.ListenPort = int32(s.cfg.ListenAddr.Port())
		global.ListenAddresses = []string{s.cfg.ListenAddr.Addr().String()}
	}
	// GoBGP v4.8.0's StartBgp writes package-level variables
	// (table.SelectionOptions, table.UseMultiplePaths); serialize it so that
	// several speakers in one process (the lab) at least never write them
	// concurrently. The values written are always the same.
	startMu.Lock()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: global})
	startMu.Unlock()
	if err != nil {
		return fmt.Errorf("starting gobgp on %v: %w", s.cfg.ListenAddr, err)
	}
	// Receive-only: the appliance must never advertise anything to the ISP.
	if err := srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		return fmt.Errorf("setting export policy: %w", err)
	}
	// Post-policy Adj-RIB-In updates are per neighbor and include every
	// path the neighbor sends, whereas best-path events hide a neighbor's
	// route whenever another neighbor's route for the same prefix wins. One
	// watcher for both paths and peer states keeps their relative order.
	if err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{
		OnPathUpdate: s.handlePaths,
		OnPeerUpdate: s.handlePeer,
	}, server.WatchPeer(), server.WatchPostUpdate(false, "", "")); err != nil {
		return fmt.Errorf("watching gobgp events: %w", err)
	}
	return nil
}

func (s *Speaker) apiPeer(nc NeighborConfig) *api.Peer {
	afi := api.Family_AFI_IP
	if nc.Family == FamilyIPv6 {
		afi = api.Family_AFI_IP6
	}
	tr := &api.Transport{PassiveMode: nc.Passive, RemotePort: uint32(nc.port())}
	// Source outgoing connections from the listen address: the router knows
	// the appliance by that address (and on loopback the kernel would pick
	// 127.0.0.1 otherwise).
	if la := s.cfg.ListenAddr.Addr(); la.IsValid() && la.Is4() == nc.Address.Is4() {
		tr.LocalAddress = la.String()
	}
	return &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: nc.Address.String(),
			PeerAsn:         nc.PeerASN,
			AuthPassword:    nc.MD5Password,
		},
		Transport: tr,
		Timers:    &api.Timers{Config: timers(nc)},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST},
			Enabled: true,
		}}},
	}
}

// timers are the session's timers: the configured hold time with a
// keepalive of a third of it (RFC 4271's suggestion), else GoBGP's
// defaults.
func timers(nc NeighborConfig) *api.TimersConfig {
	t := &api.TimersConfig{ConnectRetry: connectRetry}
	if hold := uint64(nc.HoldTime / time.Second); hold > 0 {
		t.HoldTime, t.KeepaliveInterval = hold, max(1, hold/3)
	}
	return t
}

// emit delivers events unless Run has finished.
func (s *Speaker) emit(evs []Event) {
	if len(evs) == 0 {
		return
	}
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	if s.closed {
		return
	}
	for _, ev := range evs {
		s.onEvent(ev)
	}
}

// finish closes event delivery, first telling the consumer about every
// session that was still up so that it can drop their routes.
func (s *Speaker) finish() {
	s.emitMu.Lock()
	defer s.emitMu.Unlock()
	var evs []Event
	s.mu.Lock()
	for _, addr := range s.order {
		n := s.neighbors[addr]
		if n.fsm != gobgp.BGP_FSM_IDLE {
			n.fsm = gobgp.BGP_FSM_IDLE
			n.transitions++
		}
		if n.up {
			n.up = false
			n.reset()
			evs = append(evs, Event{Kind: SessionDown, Neighbor: addr, Family: n.cfg.Family,
				State: n.state(), Reason: "speaker stopped"})
		}
	}
	s.mu.Unlock()
	if !s.closed {
		for _, ev := range evs {
			s.onEvent(ev)
		}
	}
	s.closed = true
}

// handlePeer turns GoBGP peer state changes into SessionUp/SessionDown.
func (s *Speaker) handlePeer(pe *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if pe.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := pe.Peer.State
	var evs []Event
	s.mu.Lock()
	n := s.neighbors[st.NeighborAddress]
	if n == nil || n.fsm == st.SessionState {
		s.mu.Unlock()
		return
	}
	n.fsm = st.SessionState
	n.transitions++
	addr := st.NeighborAddress
	switch {
	case st.SessionState == gobgp.BGP_FSM_ESTABLISHED && !n.maxPrefix:
		n.up, n.goingDown = true, false
		n.since = s.now()
		n.routerID = st.RouterID
		n.reset()
		evs = append(evs, Event{Kind: SessionUp, Neighbor: addr, Family: n.cfg.Family, State: n.state()})
	case n.up && st.SessionState != gobgp.BGP_FSM_ESTABLISHED:
		n.up = false
		n.reset()
		evs = append(evs, Event{Kind: SessionDown, Neighbor: addr, Family: n.cfg.Family,
			State: n.state(), Reason: disconnectReason(st)})
	}
	state := n.state()
	s.mu.Unlock()
	// Up and down matter to operators; the connect/active churn of a
	// neighbor that is not there yet does not.
	level := slog.LevelDebug
	if len(evs) > 0 {
		level = slog.LevelInfo
	}
	s.log.Log(context.Background(), level, "bgp session state", "neighbor", addr, "state", state)
	s.emit(evs)
}

func disconnectReason(st apiutil.PeerState) string {
	r := strings.ToLower(strings.TrimPrefix(st.DisconnectReason.String(), "DISCONNECT_REASON_"))
	if st.DisconnectMessage != "" {
		r += ": " + st.DisconnectMessage
	}
	return r
}

// handlePaths applies the import policy and max-prefix to post-policy
// Adj-RIB-In updates and emits at most one Announce and one Withdraw per
// neighbor and batch.
// droppedOnDown finds neighbors whose routes this batch withdraws because
// their session went down. GoBGP v4.8.0 drops a neighbor's Adj-RIB-In,
// reporting every route withdrawn (one callback a path), before it reports
// the session leaving Established; passed on, those withdrawals would take
// the routes out of steering at once and defeat the consumer's hold, which
// rides out flaps. So a batch with withdrawals is checked against GoBGP's
// own peer state, which it records before the drop; once a neighbor is
// seen going down the rest of its flood is skipped without asking again.
// A withdrawal over a live session costs one query.
func (s *Speaker) droppedOnDown(paths []*apiutil.Path) map[netip.Addr]bool {
	var out map[netip.Addr]bool
	asked := map[netip.Addr]bool{}
	for _, p := range paths {
		addr := p.PeerAddress
		if !p.Withdrawal || asked[addr] {
			continue
		}
		asked[addr] = true
		s.mu.Lock()
		n := s.neighbors[addr]
		known := n != nil && n.goingDown
		live := n != nil && n.up
		s.mu.Unlock()
		if !live || (!known && s.srv == nil) {
			continue
		}
		if !known && s.stopping.Load() {
			known = true // the speaker is stopping: every session goes down
		}
		if !known {
			established := true
			// The watch callback runs on its own goroutine and GoBGP
			// queues its events without bound, so asking the server here
			// does not hold GoBGP up; the timeout covers a server that is
			// being stopped meanwhile.
			qctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := s.srv.ListPeer(qctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
				established = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
			})
			cancel()
			if err != nil || established {
				continue
			}
			s.mu.Lock()
			n.goingDown = true
			s.mu.Unlock()
		}
		if out == nil {
			out = map[netip.Addr]bool{}
		}
		out[addr] = true
	}
	return out
}

func (s *Speaker) handlePaths(paths []*apiutil.Path, _ time.Time) {
	type batch struct {
		n         *neighbor
		routes    []rib.Route
		withdrawn []netip.Prefix
	}
	var batches []*batch
	byAddr := map[netip.Addr]*batch{}
	var evs []Event
	var toDisable []netip.Addr

	goingDown := s.droppedOnDown(paths)
	s.mu.Lock()
	for _, p := range paths {
		n := s.neighbors[p.PeerAddress]
		if n == nil || !n.up {
			continue // not ours, or the session is already reported down
		}
		if p.Withdrawal && goingDown[p.PeerAddress] {
			continue // SessionDown follows and withdraws them, after the hold
		}
		nlri, ok := p.Nlri.(*gobgp.IPAddrPrefix)
		if !ok {
			continue // only unicast families are negotiated
		}
		pfx := nlri.Prefix.Masked()
		b := byAddr[p.PeerAddress]
		if b == nil {
			b = &batch{n: n}
			byAddr[p.PeerAddress] = b
			batches = append(batches, b)
		}
		if p.Withdrawal {
			if _, ok := n.accepted[pfx]; ok {
				delete(n.accepted, pfx)
				b.withdrawn = append(b.withdrawn, pfx)
			}
			delete(n.rejected, pfx)
			continue
		}
		if reason := s.policy.check(n.cfg.Family, pfx); reason != "" {
			s.rejects[reason]++
			n.rejected[pfx] = struct{}{}
			continue
		}
		r := s.route(n, p, pfx)
		if old, ok := n.accepted[pfx]; ok && old.Equal(r) {
			// A route refresh or a router's soft reconfiguration re-sends
			// unchanged routes; the consumer need not hear them again.
			continue
		}
		n.accepted[pfx] = r
		b.routes = append(b.routes, r)
	}
	for _, b := range batches {
		n := b.n
		addr := n.cfg.Address
		if limit := n.cfg.maxPrefixes(); len(n.accepted) > limit {
			// The routes of this batch are never announced: the consumer
			// drops the whole neighbor on SessionDown anyway.
			s.log.Warn("bgp neighbor exceeded max-prefix, shutting session down",
				"neighbor", addr, "accepted", len(n.accepted), "max_prefixes", limit)
			n.maxPrefix = true
			n.up = false
			n.transitions++
			n.reset()
			evs = append(evs, Event{Kind: SessionDown, Neighbor: addr, Family: n.cfg.Family,
				State: n.state(), Reason: fmt.Sprintf("%s: more than %d prefixes", StateMaxPrefixExceeded, limit)})
			toDisable = append(toDisable, addr)
			continue
		}
		if len(b.routes) > 0 {
			evs = append(evs, Event{Kind: Announce, Neighbor: addr, Family: n.cfg.Family, Routes: b.routes})
		}
		if len(b.withdrawn) > 0 {
			evs = append(evs, Event{Kind: Withdraw, Neighbor: addr, Family: n.cfg.Family, Withdrawn: b.withdrawn})
		}
	}
	s.mu.Unlock()
	for _, addr := range toDisable {
		s.disableCh <- addr // never blocks: buffered per neighbor, sent once
	}
	s.emit(evs)
}

// route translates a GoBGP path into the shared route type.
func (s *Speaker) route(n *neighbor, p *apiutil.Path, pfx netip.Prefix) rib.Route {
	r := rib.Route{Prefix: pfx, Attrs: rib.Attrs{LocalPref: defaultLocalPref, Origin: rib.OriginIncomplete, PeerASN: n.cfg.PeerASN, PeerRouterID: n.routerID, EBGP: n.cfg.PeerASN != s.cfg.LocalASN}}
	if p.PeerID.IsValid() {
		r.PeerRouterID = p.PeerID
	}
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *gobgp.PathAttributeOrigin:
			r.Origin = rib.Origin(a.Value)
		case *gobgp.PathAttributeAsPath:
			// Flattened: AS_SET members are kept in order. Steering only
			// needs the length and the origin AS, and sets are deprecated
			// (RFC 9774) and rare.
			for _, seg := range a.Value {
				r.ASPath = append(r.ASPath, seg.GetAS()...)
			}
		case *gobgp.PathAttributeNextHop:
			r.NextHop = a.Value
		case *gobgp.PathAttributeMpReachNLRI:
			r.NextHop = a.Nexthop
		case *gobgp.PathAttributeMultiExitDisc:
			r.MED = a.Value
		case *gobgp.PathAttributeLocalPref:
			r.LocalPref = a.Value
		}
	}
	return r
}

// Status returns a snapshot of every configured neighbor, in config order.
func (s *Speaker) Status() []NeighborStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]NeighborStatus, 0, len(s.order))
	for _, addr := range s.order {
		n := s.neighbors[addr]
		st := NeighborStatus{
			Address:          addr,
			Family:           n.cfg.Family,
			State:            n.state(),
			PrefixesAccepted: len(n.accepted),
			PrefixesRejected: len(n.rejected),
			PrefixesReceived: len(n.accepted) + len(n.rejected),
		}
		if n.up {
			st.Uptime = now.Sub(n.since)
		}
		out = append(out, st)
	}
	return out
}

// Rejected returns how many route announcements the import policy has
// rejected, per reason, since New.
func (s *Speaker) Rejected() map[RejectReason]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[RejectReason]uint64, len(rejectReasons))
	for _, r := range rejectReasons {
		out[r] = s.rejects[r]
	}
	return out
}

func fsmStateName(st gobgp.FSMState) string {
	switch st {
	case gobgp.BGP_FSM_IDLE:
		return StateIdle
	case gobgp.BGP_FSM_CONNECT:
		return StateConnect
	case gobgp.BGP_FSM_ACTIVE:
		return StateActive
	case gobgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case gobgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case gobgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return fmt.Sprintf("unknown(%d)", int(st))
}
