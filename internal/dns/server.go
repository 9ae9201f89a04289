package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/ocdn/ocdn/internal/config"
)

// Config is an authoritative server's configuration.
type Config struct {
	Zone *Zone
	// Listen are the addresses served over UDP and TCP each; port 0
	// picks a free port, the same for both.
	Listen []netip.AddrPort
	Logger *slog.Logger
	// Registry collects the ocdn_dns_* metrics (default: not exported).
	Registry prometheus.Registerer
	// Now stamps probe log entries (default time.Now).
	Now func() time.Time
	// ProbeLogSize bounds the probe log (default 65536 entries).
	ProbeLogSize int
	// MaxTCPConns bounds open TCP connections (default 1024); more are
	// closed at once, so idle or slow clients cannot exhaust the server.
	MaxTCPConns int
	// TCPIdleTimeout is how long a TCP connection may take to send its
	// next whole query (default 10s, RFC 7766 §6.2.3 asks for seconds).
	TCPIdleTimeout time.Duration
	// UDPWorkers read and answer each UDP socket (default GOMAXPROCS).
	UDPWorkers int
}

// Server is an authoritative DNS server for one zone, over UDP and TCP.
type Server struct {
	zone   atomic.Pointer[Zone]
	probes *ProbeLog
	m      *metrics
	log    *slog.Logger
	now    func() time.Time
	cfg    Config

	udp   []*net.UDPConn
	tcp   []*net.TCPListener
	addrs []netip.AddrPort

	tcpSlots chan struct{}
	pool     sync.Pool // *responder for TCP messages

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen binds every address over UDP and TCP and returns a server ready
// to Run; on error nothing stays bound and the error names the address.
func Listen(cfg Config) (*Server, error) {
	if cfg.Zone == nil {
		return nil, errors.New("dns: no zone")
	}
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dns: no listen address")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProbeLogSize <= 0 {
		cfg.ProbeLogSize = config.DefaultProbeLogSize
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 1024
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = 10 * time.Second
	}
	if cfg.UDPWorkers <= 0 {
		cfg.UDPWorkers = runtime.GOMAXPROCS(0)
	}
	s := &Server{probes: newProbeLog(cfg.ProbeLogSize), log: cfg.Logger.With("component", "dns"), now: cfg.Now, cfg: cfg,
		tcpSlots: make(chan struct{}, cfg.MaxTCPConns), conns: map[net.Conn]struct{}{}}
	s.zone.Store(cfg.Zone)
	s.pool.New = func() any { return newResponder(s) }
	for _, a := range cfg.Listen {
		u, t, err := listenPair(a)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("listen %s (UDP and TCP): %w", a, err)
		}
		// Room for bursts: a full receive buffer drops queries. The
		// kernel caps it at net.core.rmem_max.
		u.SetReadBuffer(4 << 20)
		u.SetWriteBuffer(4 << 20)
		s.udp = append(s.udp, u)
		s.tcp = append(s.tcp, t)
		s.addrs = append(s.addrs, u.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	s.m = newMetrics(cfg.Registry)
	return s, nil
}

// listenPair binds a UDP socket and a TCP listener on the same address
// and port; for port 0 it retries until a port is free for both.
func listenPair(a netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	for attempt := 0; ; attempt++ {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if err != nil {
			return nil, nil, err
		}
		port := u.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(a.Addr(), port)))
		if err == nil {
			return u, t, nil
		}
		u.Close()
		if a.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) || attempt == 20 {
			return nil, nil, err
		}
	}
}

// Addrs are the addresses served (each over UDP and TCP), with the
// ports picked for port 0.
func (s *Server) Addrs() []netip.AddrPort { return s.addrs }

// SetZone replaces the zone; queries answered after it returns see the
// new one.
func (s *Server) SetZone(z *Zone) { s.zone.Store(z) }

// Zone is the zone served.
func (s *Server) Zone() *Zone { return s.zone.Load() }

// Probes is the log of queries for probe names.
func (s *Server) Probes() *ProbeLog { return s.probes }

// Run serves until ctx ends, then closes every socket and connection and
// returns when all its goroutines have.
func (s *Server) Run(ctx context.Context) error {
	for _, u := range s.udp {
		for range s.cfg.UDPWorkers {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.serveUDP(u) }()
		}
	}
	for _, t := range s.tcp {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.serveTCP(t) }()
	}
	s.log.Info("authoritative DNS serving", "zone", s.Zone().Domain(), "addrs", s.addrs)
	<-ctx.Done()
	s.Close()
	s.wg.Wait()
	return nil
}

// Close closes every socket and open connection; Run's goroutines then
// return. It is safe to call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, u := range s.udp {
		u.Close()
	}
	for _, t := range s.tcp {
		t.Close()
	}
	for c := range s.conns {
		c.Close()
	}
}

// udpBatch is how many datagrams a worker reads, and answers, per
// system call (recvmmsg, sendmmsg): under load the system calls are most
// of a query's cost. maxUDPQuery bounds a query read over UDP: a longer
// one (no real query is) is cut, which makes it unparseable: FORMERR.
const (
	udpBatch    = 32
	maxUDPQuery = 4096
)

// batchConn is ipv4.PacketConn or ipv6.PacketConn (their Message types
// are one type).
type batchConn interface {
	ReadBatch([]ipv4.Message, int) (int, error)
	WriteBatch([]ipv4.Message, int) (int, error)
}

// serveUDP answers queries on u until it is closed. A worker answers a
// batch inline, without a goroutine per packet: UDP replies never block
// for long, and the workers bound the concurrency.
func (s *Server) serveUDP(u *net.UDPConn) {
	var bc batchConn = ipv4.NewPacketConn(u)
	if u.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Is6() {
		bc = ipv6.NewPacketConn(u)
	}
	r := newResponder(s)
	in, out := make([]ipv4.Message, udpBatch), make([]ipv4.Message, udpBatch)
	inBuf, outBuf := make([]byte, udpBatch*maxUDPQuery), make([]byte, udpBatch*MaxUDPSize)
	for i := range in {
		in[i].Buffers = [][]byte{inBuf[i*maxUDPQuery : (i+1)*maxUDPQuery]}
		out[i].Buffers = [][]byte{nil}
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("UDP read", "err", err)
			continue
		}
		k := 0
		for i := range n {
			m := &in[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			reply := r.respond(m.Buffers[0][:m.N], udp, ua.AddrPort())
			if reply == nil || len(reply) > MaxUDPSize {
				continue
			}
			ob := outBuf[k*MaxUDPSize : (k+1)*MaxUDPSize]
			out[k].Buffers[0], out[k].Addr = ob[:copy(ob, reply)], m.Addr
			k++
		}
		for sent := 0; sent < k; {
			w, err := bc.WriteBatch(out[sent:k], 0)
			sent += w
			if err != nil {
				// The datagram that failed (an unreachable source) is
				// dropped, as the network might have; the rest go on.
				s.log.Debug("UDP write", "err", err)
				sent++
			}
		}
	}
}

// serveTCP accepts connections on l until it is closed.
func (s *Server) serveTCP(l *net.TCPListener) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off a little
			// rather than spin.
			s.log.Warn("TCP accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case s.tcpSlots <- struct{}{}:
		default:
			s.m.tcpRejected.Inc()
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.tcpSlots
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.m.tcpOpen.Inc()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
			s.m.tcpOpen.Dec()
			<-s.tcpSlots
		}()
	}
}

// serveConn answers the queries on one TCP connection in order (RFC
// 7766 framing: a two-byte length before each message). Every query must
// arrive whole within the idle timeout; a connection that sends garbage
// or nothing is closed.
func (s *Server) serveConn(c net.Conn) {
	from := netip.AddrPort{}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		from = ta.AddrPort()
	}
	var lenBuf [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		r := s.pool.Get().(*responder)
		if _, err := io.ReadFull(c, r.in[:n]); err != nil {
			s.pool.Put(r)
			return
		}
		out := r.respond(r.in[:n], tcp, from)
		if out == nil {
			s.pool.Put(r)
			return
		}
		// out sits two bytes into r.out: the length goes in front and
		// the message leaves in one write.
		binary.BigEndian.PutUint16(r.out, uint16(len(out)))
		c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		_, err := c.Write(r.out[:2+len(out)])
		s.pool.Put(r)
		if err != nil {
			return
		}
	}
}
