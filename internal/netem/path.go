package netem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PathConfig describes a packet-level path between a client side and a
// server side, each its own network namespace.
type PathConfig struct {
	// ClientPrefixes are the addresses clients use as sources (an ISP's
	// prefixes), ServerPrefixes those servers listen on. Any address in
	// them can be bound on its side. Prefixes inside 127.0.0.0/8 work
	// too (the lab's addresses): the path then routes those loopback
	// addresses over its TUN devices inside its namespaces.
	ClientPrefixes []netip.Prefix
	ServerPrefixes []netip.Prefix
	// Link is what the path does to packets; Profile, when set, replaces
	// it with a schedule.
	Link    PacketLink
	Profile *Schedule[PacketLink]
	// Seed makes loss and jitter reproducible; Up uses Seed+1.
	Seed uint64
	// MTU of both TUN devices, at most 1500 (0 means 1500).
	MTU int
	// MaxClientQueues bounds the per-client queues of each direction
	// (Shape.PerClient); 0 means DefaultMaxClientQueues.
	MaxClientQueues int
	// Logger gets set-up and tear-down events (component "netem").
	Logger *slog.Logger
}

// Validate names the field that is wrong.
func (c *PathConfig) Validate() error {
	if len(c.ClientPrefixes) == 0 {
		return errors.New("netem: client_prefixes is empty")
	}
	if len(c.ServerPrefixes) == 0 {
		return errors.New("netem: server_prefixes is empty")
	}
	for _, side := range []struct {
		name string
		ps   []netip.Prefix
	}{{"client_prefixes", c.ClientPrefixes}, {"server_prefixes", c.ServerPrefixes}} {
		for i, p := range side.ps {
			if !p.IsValid() {
				return fmt.Errorf("netem: %s[%d] is not a valid prefix", side.name, i)
			}
			if p != p.Masked() {
				return fmt.Errorf("netem: %s[%d] %v has host bits set (did you mean %v?)", side.name, i, p, p.Masked())
			}
		}
	}
	for _, a := range c.ClientPrefixes {
		for _, b := range c.ServerPrefixes {
			if a.Overlaps(b) {
				return fmt.Errorf("netem: client prefix %v overlaps server prefix %v", a, b)
			}
		}
	}
	for _, fam := range []bool{true, false} {
		if hasFamily(c.ClientPrefixes, fam) != hasFamily(c.ServerPrefixes, fam) {
			return fmt.Errorf("netem: client_prefixes and server_prefixes must cover the same address families (IPv4 on one side only cannot be routed)")
		}
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > maxPacket) {
		return fmt.Errorf("netem: mtu %d is outside [576, %d]", c.MTU, maxPacket)
	}
	if c.MaxClientQueues < 0 {
		return fmt.Errorf("netem: max_client_queues %d is negative (0 is the default, %d)", c.MaxClientQueues, DefaultMaxClientQueues)
	}
	if c.Profile != nil {
		return c.Profile.Validate(func(l PacketLink) error { return l.Validate() })
	}
	return c.Link.Validate()
}

func hasFamily(ps []netip.Prefix, v4 bool) bool {
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			return true
		}
	}
	return false
}

// Path is a running packet-level emulator: two network namespaces, a TUN
// device in each, routes that send each side's traffic for the other
// into its TUN, and goroutines that carry every IP packet from one TUN to
// the other through a Shape. TCP between the sides therefore meets real
// loss, queueing and delay: its congestion control reacts, and TCP_INFO
// shows retransmissions and RTT inflation.
//
// Sockets are put on a side with Dialer/Listen (or InClient/InServer, or
// from another process with `ip netns exec NAME`). The rest of a process
// stays in its own namespace, so a lab's client can reach the control
// plane on 127.0.0.1 directly and its appliance through the path.
//
// Goroutines: per direction one reader (TUN → pipe) and one deliverer
// (pipe → the other TUN). Close stops them and waits.
type Path struct {
	client, server string // namespace names
	ctun, stun     *os.File
	down, up       *pipe
	src            atomic.Pointer[linkSource]
	start          time.Time
	log            *slog.Logger

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	undo      []func() error // tear-down steps, run in reverse
	writeErrs atomic.Uint64
}

type linkSource struct {
	fixed PacketLink
	sched *Schedule[PacketLink]
	start time.Time
}

func (s *linkSource) at(now time.Time) PacketLink {
	if s.sched == nil {
		return s.fixed
	}
	return s.sched.At(now.Sub(s.start))
}

var pathSeq atomic.Uint64

// ErrNoIP is returned by NewPath when iproute2 is missing.
var ErrNoIP = errors.New("netem: packet-level emulation needs ip (Debian package iproute2)")

// tunName is the TUN device on each side; each lives in its own
// namespace, so the names never collide.
const tunName = "netem0"

// NewPath sets up a path and starts it. It needs root and iproute2's ip.
// Whatever it made is removed again if a later step fails; Close removes
// it all after use.
func NewPath(cfg PathConfig) (_ *Path, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, ErrNeedsRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoIP, err)
	}
	if cfg.MTU == 0 {
		cfg.MTU = maxPacket
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := pathSeq.Add(1)
	p := &Path{
		client: fmt.Sprintf("ocdn-netem-%d-%d-client", os.Getpid(), n),
		server: fmt.Sprintf("ocdn-netem-%d-%d-server", os.Getpid(), n),
		start:  time.Now(),
		log:    log.With("component", "netem"),
		done:   make(chan struct{}),
	}
	src := &linkSource{fixed: cfg.Link, sched: cfg.Profile, start: p.start}
	if cfg.Profile != nil && !cfg.Profile.Start.IsZero() {
		src.start = cfg.Profile.Start
	}
	p.src.Store(src)
	// Every step below registers its undo in p.undo first: on failure,
	// all of them run.
	defer func() {
		if err != nil {
			err = errors.Join(err, p.teardown())
		}
	}()
	for _, ns := range []string{p.client, p.server} {
		if err := runIP("netns", "add", ns); err != nil {
			return nil, err
		}
		p.undo = append(p.undo, func() error { return runIP("netns", "del", ns) })
	}
	if p.ctun, err = p.side(p.client, cfg.ClientPrefixes, cfg.ServerPrefixes, cfg.MTU); err != nil {
		return nil, err
	}
	if p.stun, err = p.side(p.server, cfg.ServerPrefixes, cfg.ClientPrefixes, cfg.MTU); err != nil {
		return nil, err
	}
	p.down = newPipe(func(now time.Time) Shape { return p.src.Load().at(now).Down }, cfg.Seed, p.writer(p.ctun))
	p.up = newPipe(func(now time.Time) Shape { return p.src.Load().at(now).Up }, cfg.Seed+1, p.writer(p.stun))
	p.up.clientOf = srcAddr // the client sends on the uplink
	if cfg.MaxClientQueues > 0 {
		p.down.maxClients, p.up.maxClients = cfg.MaxClientQueues, cfg.MaxClientQueues
	}
	p.wg.Add(4)
	go p.pump(p.stun, p.down) // what servers send goes down to clients
	go p.pump(p.ctun, p.up)
	go func() { defer p.wg.Done(); p.down.run(p.done) }()
	go func() { defer p.wg.Done(); p.up.run(p.done) }()
	p.log.Info("packet path up", "client_netns", p.client, "server_netns", p.server,
		"client_prefixes", cfg.ClientPrefixes, "server_prefixes", cfg.ServerPrefixes)
	return p, nil
}

// side sets up one namespace: its TUN, its own prefixes bindable on lo,
// the peer's prefixes routed into the TUN.
func (p *Path) side(ns string, own, peer []netip.Prefix, mtu int) (*os.File, error) {
	var tun *os.File
	loopback := overlapsLoopback(own) || overlapsLoopback(peer)
	err := InNetns(ns, func() (err error) {
		if tun, err = openTUN(tunName); err != nil {
			return err
		}
		sysctls := [][2]string{
			// Symmetric routes pass strict reverse-path checks, but
			// the namespace may inherit any setting: switch it off.
			{"net.ipv4.conf.all.rp_filter", "0"},
			{"net.ipv4.conf." + tunName + ".rp_filter", "0"},
		}
		if loopback {
			// Without route_localnet the kernel drops 127/8 packets
			// that arrive on (or would leave by) a device other than lo
			// as martians.
			sysctls = append(sysctls,
				[2]string{"net.ipv4.conf.all.route_localnet", "1"},
				[2]string{"net.ipv4.conf." + tunName + ".route_localnet", "1"})
		}
		if hasFamily(own, false) {
			// IPv6 binds only configured addresses unless this is on.
			sysctls = append(sysctls, [2]string{"net.ipv6.ip_nonlocal_bind", "1"})
		} else {
			// No IPv6 here: keep router solicitations and MLD off the
			// emulated link, where they would count as traffic.
			sysctls = append(sysctls, [2]string{"net.ipv6.conf." + tunName + ".disable_ipv6", "1"})
		}
		for _, kv := range sysctls {
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if tun != nil {
			tun.Close()
		}
		return nil, err
	}
	p.undo = append(p.undo, tun.Close)
	steps := [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		// The TUN's ring is only a hand-off to the pump, not the emulated
		// queue: make it long enough that a burst arriving while the
		// pump is descheduled is not dropped before the emulator sees it.
		{"-n", ns, "link", "set", tunName, "mtu", fmt.Sprint(mtu), "txqueuelen", "10000", "up"},
	}
	if loopback {
		// lo's 127.0.0.1/8 makes all of 127/8 local through the local
		// table, which is consulted before any route: narrow it to
		// 127.0.0.1 so other 127 prefixes can go over the TUN.
		steps = append(steps, []string{"-n", ns, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"})
	}
	for _, pr := range own {
		steps = append(steps, []string{"-n", ns, family(pr), "route", "add", "local", pr.String(), "dev", "lo"})
	}
	for _, pr := range peer {
		route := []string{"-n", ns, family(pr), "route", "add", pr.String(), "dev", tunName}
		if src, ok := firstOf(own, pr.Addr().Is4()); ok {
			route = append(route, "src", src.String())
		}
		steps = append(steps, route)
	}
	for _, s := range steps {
		if err := runIP(s...); err != nil {
			return nil, err
		}
	}
	return tun, nil
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "-4"
	}
	return "-6"
}

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

func overlapsLoopback(ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Overlaps(loopbackNet) {
			return true
		}
	}
	return false
}

// firstOf returns a usable source address in the first prefix of the
// family: its first host (the prefix's own address for a /32 or /128).
func firstOf(ps []netip.Prefix, v4 bool) (netip.Addr, bool) {
	for _, p := range ps {
		if p.Addr().Is4() != v4 {
			continue
		}
		a := p.Addr()
		if p.Bits() < a.BitLen() {
			a = a.Next()
		}
		return a, true
	}
	return netip.Addr{}, false
}

func (p *Path) writer(tun *os.File) func([]byte) {
	return func(b []byte) {
		if _, err := tun.Write(b); err != nil {
			p.writeErrs.Add(1)
		}
	}
}

// pump reads packets from tun into pi until tun is closed.
func (p *Path) pump(tun *os.File, pi *pipe) {
	defer p.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := tun.Read(buf)
		if err != nil {
			return
		}
		pi.admit(append([]byte(nil), buf[:n]...), time.Now())
	}
}

// RemoveStale deletes the namespaces of paths whose process has died
// without Close (killed, or a test binary that timed out): names carry
// the creating pid, and a pid with no /proc entry cannot be using them.
// It assumes the machine's processes share one pid namespace.
func RemoveStale() error {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netem: %w", err)
	}
	var errs []error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "ocdn-netem-")
		if !ok {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		if !ok || pid == "" || strings.Trim(pid, "0123456789") != "" {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := ip("netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ClientNetns and ServerNetns are the namespaces' names, for `ip netns
// exec NAME` and InNetns.
func (p *Path) ClientNetns() string { return p.client }
func (p *Path) ServerNetns() string { return p.server }

// Dialer returns a dial function whose connections start on the client
// side; set base.LocalAddr to pick a source in the client prefixes.
func (p *Path) Dialer(base *net.Dialer) DialFunc { return DialerIn(p.client, base) }

// Listen listens on the server side.
func (p *Path) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	return ListenIn(ctx, p.server, network, addr)
}

// InClient and InServer run fn inside that side's namespace (see
// InNetns), for sockets Dialer and Listen do not cover (UDP, raw).
func (p *Path) InClient(fn func() error) error { return InNetns(p.client, fn) }
func (p *Path) InServer(fn func() error) error { return InNetns(p.server, fn) }

// SetLink replaces the path's link (and any profile) from now on.
func (p *Path) SetLink(l PacketLink) error {
	if err := l.Validate(); err != nil {
		return err
	}
	p.src.Store(&linkSource{fixed: l})
	return nil
}

// SetProfile replaces the path's link (or profile) with s from now on;
// s.Start zero means now. The lab sets it when streaming starts, so a
// profile's times are on the run's clock, not the set-up's.
func (p *Path) SetProfile(s *Schedule[PacketLink]) error {
	if err := s.Validate(func(l PacketLink) error { return l.Validate() }); err != nil {
		return err
	}
	start := s.Start
	if start.IsZero() {
		start = time.Now()
	}
	p.src.Store(&linkSource{sched: s, start: start})
	return nil
}

// Link returns the settings in force now.
func (p *Path) Link() PacketLink { return p.src.Load().at(time.Now()) }

// PathStats counts what each direction did.
type PathStats struct {
	Down, Up DirStats
	// WriteErrors counts packets the far TUN refused.
	WriteErrors uint64
}

// Stats returns the counters so far.
func (p *Path) Stats() PathStats {
	return PathStats{Down: p.down.snapshot(), Up: p.up.snapshot(), WriteErrors: p.writeErrs.Load()}
}

// Close stops the emulator and removes the namespaces and devices. Sockets
// still open on either side keep their namespace alive (unreachable)
// until they are closed.
func (p *Path) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.closeErr = p.teardown()
		p.wg.Wait()
		p.log.Info("packet path removed", "client_netns", p.client, "server_netns", p.server)
	})
	return p.closeErr
}

// teardown runs the undo steps in reverse, all of them, and joins their
// errors.
func (p *Path) teardown() error {
	var errs []error
	for i := len(p.undo) - 1; i >= 0; i-- {
		if err := p.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	p.undo = nil
	return errors.Join(errs...)
}
