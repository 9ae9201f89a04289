package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/netem"
)

// A link with a packet section is carried at the packet level
// (docs/netem.md): its ISP's clients and its site's appliances talk over a
// netem.Path — two network namespaces and a user-space emulator between
// them — so TCP meets real loss, a bottleneck queue and jitter: it
// retransmits, its RTT inflates when the queue fills, and congestion
// controls differ. Every other link stays at the stream level. Paths need
// root; without it the lab falls back to stream links with the same
// round trip, bandwidth, jitter and loss (a loss that only delays bytes),
// and its report says so.

// PacketSpec is what a packet-level link adds to its rtt and bandwidth
// (the bottleneck rate): all on the downlink, where the appliance's data
// goes; the uplink carries ACKs and requests with half the round trip.
type PacketSpec struct {
	// Loss is the probability that each packet is dropped (0 to 1).
	Loss float64 `yaml:"loss,omitempty"`
	// QueueBytes is the bottleneck's buffer (tail drop); a full one adds
	// queue_bytes·8/bandwidth of delay: bufferbloat. 0 means 100 ms at
	// the bandwidth.
	QueueBytes config.ByteSize `yaml:"queue_bytes,omitempty"`
	// Jitter is extra delay per packet (netem.Jitter: uniform, normal,
	// pareto).
	Jitter netem.Jitter `yaml:"jitter,omitempty"`
	// Profile makes the link vary in time (a congested evening).
	Profile *PacketProfile `yaml:"profile,omitempty"`
	// PerClient gives every client address its own bottleneck — the
	// bandwidth, queue and loss are each home's access line
	// (netem.Shape.PerClient) — instead of one queue all the ISP's
	// clients share. It holds for the profile's steps too.
	PerClient bool `yaml:"per_client,omitempty"`
}

// PacketProfile is a time-varying packet link: each step's settings hold
// from its at (after streaming starts) until the next; before the first,
// the link's own settings hold. With period, the profile repeats.
type PacketProfile struct {
	Period time.Duration `yaml:"period,omitempty"`
	Steps  []PacketStep  `yaml:"steps"`
}

// PacketStep is one setting of a profile. RTT and bandwidth 0 keep the
// link's; loss, queue and jitter are the step's own (0 is none or the
// default queue).
type PacketStep struct {
	At            time.Duration   `yaml:"at"`
	RTT           time.Duration   `yaml:"rtt,omitempty"`
	BandwidthMbps float64         `yaml:"bandwidth_mbps,omitempty"`
	Loss          float64         `yaml:"loss,omitempty"`
	QueueBytes    config.ByteSize `yaml:"queue_bytes,omitempty"`
	Jitter        netem.Jitter    `yaml:"jitter,omitempty"`
}

// packetLink is the emulator's setting for rtt, bandwidth and the packet
// fields.
func packetLink(rtt time.Duration, mbps, loss float64, queue config.ByteSize, j netem.Jitter, perClient bool) netem.PacketLink {
	pl := netem.Symmetric(rtt, mbps*1e6, loss)
	pl.Down.QueueBytes = int(queue)
	pl.Down.Jitter = j
	pl.Down.PerClient = perClient
	return pl
}

// packetSchedule is the link's emulator settings: fixed, or a schedule
// on the streaming clock (its Start is set when streaming starts).
func (ls LinkSpec) packetSchedule() (netem.PacketLink, *netem.Schedule[netem.PacketLink]) {
	p := ls.Packet
	base := packetLink(ls.RTT, ls.BandwidthMbps, p.Loss, p.QueueBytes, p.Jitter, p.PerClient)
	if p.Profile == nil {
		return base, nil
	}
	s := &netem.Schedule[netem.PacketLink]{Period: p.Profile.Period}
	if len(p.Profile.Steps) == 0 || p.Profile.Steps[0].At > 0 {
		s.Steps = append(s.Steps, netem.Step[netem.PacketLink]{At: 0, Link: base})
	}
	for _, st := range p.Profile.Steps {
		rtt, mbps := cmpOr(st.RTT, ls.RTT), cmpOr(st.BandwidthMbps, ls.BandwidthMbps)
		s.Steps = append(s.Steps, netem.Step[netem.PacketLink]{At: st.At, Link: packetLink(rtt, mbps, st.Loss, st.QueueBytes, st.Jitter, p.PerClient)})
	}
	return base, s
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// validatePacket checks links[i].packet.
func (s *Scenario) validatePacket(f string, ls LinkSpec) error {
	if ls.Packet == nil {
		return nil
	}
	f += ".packet"
	if ls.BandwidthMbps == 0 && (ls.Packet.QueueBytes > 0 || ls.Packet.Profile != nil && slices.ContainsFunc(ls.Packet.Profile.Steps, func(st PacketStep) bool { return st.QueueBytes > 0 })) {
		return config.Errf(f+".queue_bytes", "a queue needs a bottleneck: set the link's bandwidth_mbps")
	}
	if ls.BandwidthMbps == 0 && ls.Packet.PerClient {
		return config.Errf(f+".per_client", "each client's queue needs a bottleneck: set the link's bandwidth_mbps (each home's line rate)")
	}
	base, sched := ls.packetSchedule()
	if err := base.Validate(); err != nil {
		return config.Errf(f, "%v", err)
	}
	if sched != nil {
		if err := sched.Validate(func(l netem.PacketLink) error { return l.Validate() }); err != nil {
			return config.Errf(f+".profile", "%v", err)
		}
	}
	for _, e := range s.Events {
		if e.Kind == "degrade_link" && e.Link != nil && e.Link.ISP == ls.ISP && e.Link.Site == ls.Site {
			return config.Errf(f, "link %s→%s is packet-level: change it over time with packet.profile, not a degrade_link event", ls.ISP, ls.Site)
		}
	}
	return nil
}

// transportSampling is the transport section of the config of an
// appliance at site: every connection sampled each second where a packet
// link ends (the lab report compares arms over it), the default
// elsewhere.
func (s *Scenario) transportSampling(site string) config.ApplianceTransport {
	for _, ls := range s.Links {
		if ls.Packet != nil && ls.Site == site {
			all := 1.0
			return config.ApplianceTransport{SampleRate: &all, Interval: time.Second}
		}
	}
	return config.ApplianceTransport{}
}

// packetPath is one running packet-level link.
type packetPath struct {
	spec  LinkSpec
	path  *netem.Path
	sched *netem.Schedule[netem.PacketLink]
	// addrs are the site's appliances' addresses.
	addrs map[netip.Addr]bool
}

// openPaths starts a path per packet link, from the ISP's prefixes to the
// /32s of the site's appliances, and names its server namespace in each
// of those appliances' listen_netns, before their configs are written.
// Without root it leaves the links at the stream level and records why.
func (l *Lab) openPaths() error {
	stale := false
	for i, ls := range l.sc.Links {
		if ls.Packet == nil {
			continue
		}
		var servers []netip.Prefix
		addrs := map[netip.Addr]bool{}
		for _, a := range l.sc.Appliances {
			if a.Site == ls.Site {
				servers = append(servers, netip.PrefixFrom(a.Address.Addr(), 32))
				addrs[a.Address.Addr()] = true
			}
		}
		if len(servers) == 0 {
			continue
		}
		var clients []netip.Prefix
		for _, p := range prefixesOf(l.isp(ls.ISP), false) {
			clients = append(clients, p.Prefix)
		}
		if !stale {
			stale = true
			// A lab killed before it could remove its paths left
			// namespaces named for its pid: remove those of dead pids.
			if err := netem.RemoveStale(); err != nil {
				l.log.Warn("removing stale packet paths", "err", err)
			}
		}
		base, sched := ls.packetSchedule()
		cfg := netem.PathConfig{ClientPrefixes: clients, ServerPrefixes: servers, Link: base, Seed: uint64(i + 1), Logger: l.opts.Logger}
		p, err := netem.NewPath(cfg)
		if errors.Is(err, netem.ErrNeedsRoot) || errors.Is(err, netem.ErrNoIP) {
			l.packetFallback = err.Error()
			l.log.Warn("packet-level links fall back to stream links", "err", err)
			l.status("packet links: " + err.Error() + "; falling back to stream links (no transport figures)")
			return nil
		}
		if err != nil {
			return fmt.Errorf("links[%d] %s→%s: %w", i, ls.ISP, ls.Site, err)
		}
		l.paths = append(l.paths, &packetPath{spec: ls, path: p, sched: sched, addrs: addrs})
		for j := range l.dep.Appliances {
			if addrs[l.dep.Appliances[j].Listen[0].Addr()] {
				l.dep.Appliances[j].ListenNetns = append(l.dep.Appliances[j].ListenNetns, config.NetnsListen{Name: p.ServerNetns()})
			}
		}
	}
	return nil
}

// startProfiles puts every path's profile on the streaming clock.
func (l *Lab) startProfiles() {
	for _, pp := range l.paths {
		if pp.sched != nil {
			s := *pp.sched
			s.Start = l.start
			if err := pp.path.SetProfile(&s); err != nil {
				l.log.Error("packet profile", "link", pp.spec.ISP+"→"+pp.spec.Site, "err", err)
			}
		}
	}
}

// closePaths removes every path (after the daemons have stopped: their
// listeners keep a namespace alive, unreachable, until closed).
func (l *Lab) closePaths() {
	for _, pp := range l.paths {
		if err := pp.path.Close(); err != nil {
			l.log.Error("removing a packet path", "err", err)
		}
	}
}

// packetDialer returns, for a client of isp bound to src, a dialer per
// appliance address reached over a packet path.
func (l *Lab) packetDialer(isp string, src netip.Addr) map[netip.Addr]netem.DialFunc {
	out := map[netip.Addr]netem.DialFunc{}
	for _, pp := range l.paths {
		if pp.spec.ISP != isp {
			continue
		}
		d := pp.path.Dialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 3 * time.Second})
		for a := range pp.addrs {
			out[a] = d
		}
	}
	return out
}

// streamFallback is a packet link's stream-level stand-in when there are
// no paths: its round trip, bandwidth, jitter and loss (a loss that only
// delays bytes, netem.Link.Loss).
func (ls LinkSpec) streamFallback() netem.Link {
	return netem.Link{RTT: ls.RTT, BandwidthBps: ls.BandwidthMbps * 1e6, Jitter: ls.Packet.Jitter, Loss: ls.Packet.Loss}
}

// PathReport is what one packet-level link's emulator did over the run:
// what was planted and what it dropped and queued (downlink, the
// appliance's data).
type PathReport struct {
	ISP  string `json:"isp"`
	Site string `json:"site"`
	// Planted settings at the start (a profile changes them).
	RTTMs         float64 `json:"rtt_ms"`
	BandwidthMbps float64 `json:"bandwidth_mbps"`
	Loss          float64 `json:"loss"`
	QueueMs       float64 `json:"queue_ms"`
	Profile       bool    `json:"profile,omitempty"`
	// PerClient: the bandwidth and queue are each client's own line;
	// ClientQueues is how many clients' lines the downlink held at most.
	PerClient    bool `json:"per_client,omitempty"`
	ClientQueues int  `json:"client_queues,omitempty"`
	// Packets entered the downlink; LossRate is the share dropped at
	// random, QueueDrops those tail-dropped at a full queue.
	Packets    uint64  `json:"packets"`
	LossDrops  uint64  `json:"loss_drops"`
	LossRate   float64 `json:"loss_rate"`
	QueueDrops uint64  `json:"queue_drops"`
	// MeanQueueMs and MaxQueueMs are the queueing delay admitted packets
	// met: the bufferbloat.
	MeanQueueMs float64 `json:"mean_queue_ms"`
	MaxQueueMs  float64 `json:"max_queue_ms"`
}

// pathReports reads every path's counters.
func (l *Lab) pathReports() []PathReport {
	var out []PathReport
	for _, pp := range l.paths {
		st := pp.path.Stats().Down
		base, _ := pp.spec.packetSchedule()
		r := PathReport{ISP: pp.spec.ISP, Site: pp.spec.Site, RTTMs: ms(base.RTT()), BandwidthMbps: pp.spec.BandwidthMbps,
			Loss: base.Down.Loss, QueueMs: ms(base.Down.QueueDelay()), Profile: pp.sched != nil,
			PerClient: base.Down.PerClient, ClientQueues: st.PeakClientQueues,
			Packets: st.Packets, LossDrops: st.LossDrops, QueueDrops: st.QueueDrops, MaxQueueMs: ms(st.MaxQueueDelay)}
		if st.Packets > 0 {
			r.LossRate = float64(st.LossDrops) / float64(st.Packets)
		}
		if adm := st.Packets - st.LossDrops - st.QueueDrops; adm > 0 {
			r.MeanQueueMs = ms(st.QueueDelaySum) / float64(adm)
		}
		out = append(out, r)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// dialVia picks a packet path's dialer for addresses behind one, else
// stream.
func dialVia(paths map[netip.Addr]netem.DialFunc, stream netem.DialFunc) netem.DialFunc {
	if len(paths) == 0 {
		return stream
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			if d, ok := paths[ap.Addr().Unmap()]; ok {
				return d(ctx, network, addr)
			}
		}
		return stream(ctx, network, addr)
	}
}
