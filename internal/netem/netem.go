// Package netem provides link emulation on one machine, at two levels.
//
// Stream level (Link, Dialer, Listener, Wrap) wraps a net.Conn: a round
// trip on connect and per exchange, a bottleneck rate on reads, jitter
// and time-varying profiles. It needs no privilege and is what the lab
// uses between every ISP and site on loopback. It cannot drop a packet:
// TCP underneath sees a perfect loopback, so congestion control,
// retransmissions and TCP_INFO are untouched. Use it for application
// timing (TTFB, throughput, ABR), not for transport behaviour.
//
// Packet level (Path, PacketLink, Shape) carries every IP packet between
// two network namespaces through a Go emulator with random loss, jitter,
// a bounded tail-drop queue drained at the link rate, and schedules. TCP
// meets real drops and a real queue: it retransmits, its RTT inflates
// with queue occupancy, BBR and CUBIC behave differently. It needs root
// (namespaces, TUN devices); kernel netem is not needed. See Path and
// docs/netem.md.
//
// # Stream-level model
//
// A Link is a round-trip propagation delay RTT and a bottleneck rate
// BandwidthBps on the path towards the wrapped side (the downlink, for a
// client).
//
//   - Connect: Dialer waits RTT/2 before the real dial and returns RTT
//     after it started, so a measured TCP connect time is RTT plus the
//     loopback handshake (~0.05 ms).
//
//   - Writes are queued and handed to the real connection RTT/2 after
//     Write was called, in order. Write returns at once, as a kernel send
//     buffer would, unless more than a window of bytes is queued.
//
//   - Reads: every chunk the real connection delivers is serialized
//     through the bottleneck (a fluid FIFO queue: a chunk starts when it
//     arrived or when the previous chunk finished, whichever is later, and
//     drains at BandwidthBps), and each byte becomes readable RTT/2 after
//     it left the bottleneck. Visibility is computed from absolute times,
//     so timer wake-up jitter never accumulates into the rate: a long
//     download measures the bottleneck rate to well under 1%.
//
//   - Jitter adds a random delay (see Jitter for the distributions) to
//     each write, each chunk read and each direction of the connect;
//     bytes stay in order, so a late chunk holds back those behind it.
//
//   - Profile makes RTT, BandwidthBps and Jitter a Schedule over time.
//
//   - Loss delays a chunk by a retransmission timeout with the
//     probability that one of its packets is lost (see Link.Loss).
//
// A request/response exchange thus takes RTT plus the transfer time at
// the bottleneck. Upload bandwidth and loss on writes are not modelled. Reads and
// writes wait on runtime timers, which on Linux may fire up to about a
// millisecond late, so a TTFB through a link reads RTT + 0–1 ms; the
// connect wait spins out its last 1.5 ms and is exact to ~0.05 ms.
//
// # Goroutines
//
// A wrapped connection runs at most two goroutines: a read pump that
// moves bytes from the real connection into a bounded queue (so TCP flow
// control still pushes back on the sender), and, when writes are delayed
// (RTT, jitter or a profile), a write pump. Both exit when Close returns;
// Close waits for them. Writes still queued at Close are dropped. A Path
// runs four (see Path); Close stops them.
package netem

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Link is one emulated path.
type Link struct {
	// RTT is the round-trip propagation delay.
	RTT time.Duration `json:"rtt" yaml:"rtt"`
	// BandwidthBps is the bottleneck rate towards the wrapped side, in
	// bits per second; 0 means unlimited. Each connection has its own
	// bottleneck unless Shared is set.
	BandwidthBps float64 `json:"bandwidth_bps" yaml:"bandwidth_bps"`
	// Shared, when set, is one bottleneck for every connection whose Link
	// names it (a household's access link): their bytes are serialized
	// through one FIFO queue at its rate, and BandwidthBps is ignored.
	Shared *Bottleneck `json:"-" yaml:"-"`
	// Jitter delays each chunk of bytes read (one read of the real
	// connection, up to 64 KiB) and each write by a random extra amount,
	// and each direction of the connect. A byte stream cannot reorder,
	// so a late chunk holds back the ones behind it.
	Jitter Jitter `json:"jitter,omitzero" yaml:"jitter,omitempty"`
	// Loss is the probability that a packet is lost. A byte stream
	// cannot drop bytes, so a loss is modelled as what TCP makes of it
	// when the loss ends a burst: the chunk it is in (and every chunk
	// behind it) becomes readable one retransmission timeout later,
	// max(200 ms, 2·RTT), with probability 1 − (1 − Loss)^packets for a
	// chunk of that many 1448-byte packets. Congestion control's reaction
	// (a smaller window) is not modelled: use a Path for that.
	Loss float64 `json:"loss,omitempty" yaml:"loss,omitempty"`
	// Profile, when set, gives RTT, BandwidthBps, Jitter and Loss over time
	// (its steps' own Profile and Shared are ignored): each chunk and
	// write takes the step in force when it arrives. Set its Start so
	// all connections share one clock; zero means each connection's own
	// start.
	Profile *Schedule[Link] `json:"profile,omitempty" yaml:"profile,omitempty"`
}

// IsZero reports whether the link changes nothing.
func (l Link) IsZero() bool {
	return l.RTT <= 0 && l.BandwidthBps <= 0 && l.Shared == nil && l.Jitter.IsZero() && l.Loss <= 0 && l.Profile == nil
}

// Validate names the field that is out of range.
func (l Link) Validate() error {
	if l.RTT < 0 {
		return fmt.Errorf("netem: rtt %v is negative", l.RTT)
	}
	if !(l.BandwidthBps >= 0) || math.IsInf(l.BandwidthBps, 0) {
		return fmt.Errorf("netem: bandwidth_bps %v must be a non-negative number (0 is unlimited)", l.BandwidthBps)
	}
	if err := l.Jitter.Validate("jitter"); err != nil {
		return err
	}
	if !(l.Loss >= 0 && l.Loss < 1) {
		return fmt.Errorf("netem: loss %v is not a probability from 0 to below 1", l.Loss)
	}
	if l.Profile != nil {
		return l.Profile.Validate(func(s Link) error {
			s.Profile = nil
			return s.Validate()
		})
	}
	return nil
}

// at returns the fixed settings in force at now; start is the
// connection's own start, used when the profile has none.
func (l Link) at(now, start time.Time) Link {
	if l.Profile == nil {
		return l
	}
	if !l.Profile.Start.IsZero() {
		start = l.Profile.Start
	}
	s := l.Profile.At(now.Sub(start))
	return Link{RTT: s.RTT, BandwidthBps: s.BandwidthBps, Jitter: s.Jitter, Loss: s.Loss, Shared: l.Shared}
}

// retransmitDelay is the extra delay of a chunk of n bytes through l:
// one retransmission timeout when one of its packets is lost.
func retransmitDelay(l Link, n int, r *rand.Rand) time.Duration {
	if l.Loss <= 0 || r == nil {
		return 0
	}
	packets := float64((n + 1447) / 1448)
	if r.Float64() >= 1-math.Pow(1-l.Loss, packets) {
		return 0
	}
	return max(200*time.Millisecond, 2*l.RTT)
}

// jitterRand returns a generator for a link's jitter, nil if none can
// be needed.
func jitterRand(l Link) *rand.Rand {
	if l.Jitter.IsZero() && l.Loss <= 0 && l.Profile == nil {
		return nil
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// sample draws j with r, which may be nil for no jitter.
func sample(j Jitter, r *rand.Rand) time.Duration {
	if r == nil || j.IsZero() {
		return 0
	}
	return j.Sample(r)
}

// Bottleneck is a rate shared by several connections.
type Bottleneck struct {
	bps        float64 // bytes per second
	mu         sync.Mutex
	lastDepart time.Time
	// idle is how long the queue has sat empty between its first and
	// last bytes: tests tell a gap in the shaping from a slow reader by it.
	idle time.Duration
}

// NewBottleneck returns a shared bottleneck of bandwidthBps bits per
// second.
func NewBottleneck(bandwidthBps float64) *Bottleneck {
	return &Bottleneck{bps: bandwidthBps / 8}
}

// admit schedules n bytes that arrived at arrival (or, when chained,
// right after whatever is queued) and returns when they start draining
// at bps bytes per second (b's own rate when bps is 0).
func (b *Bottleneck) admit(n int, arrival time.Time, chained bool, bps float64) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := arrival
	if b.lastDepart.After(start) || (chained && !b.lastDepart.IsZero()) {
		start = b.lastDepart
	} else if !b.lastDepart.IsZero() {
		b.idle += start.Sub(b.lastDepart)
	}
	if bps <= 0 {
		bps = b.bps
	}
	b.lastDepart = start.Add(time.Duration(float64(n) / bps * float64(time.Second)))
	return start
}

// DialFunc is the shape of net.Dialer.DialContext and http.Transport's
// DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a dial function that dials with base (nil means a zero
// net.Dialer) and wraps the connection in the Link linkFor returns for the
// remote address. Where linkFor returns false, or is nil, the connection
// is returned unwrapped.
//
// Since the remote address of a name is only known after the dial, the
// RTT/2 before the dial is taken only when addr is a literal IP:port
// (the lab's case); for a name the whole RTT is waited after the dial.
func Dialer(base *net.Dialer, linkFor func(remote netip.AddrPort) (Link, bool)) DialFunc {
	if base == nil {
		base = &net.Dialer{}
	}
	return Via(base.DialContext, linkFor)
}

// Via is Dialer over any dial function: dial opens the connection (in a
// namespace, say: DialerIn), and Via delays it and wraps it in its Link.
func Via(dial DialFunc, linkFor func(remote netip.AddrPort) (Link, bool)) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		var pre Link
		havePre := false
		// The SYN's one-way delay, and the SYN-ACK's once known.
		var there, back time.Duration
		if linkFor != nil {
			if ap, err := netip.ParseAddrPort(addr); err == nil {
				ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
				if l, ok := linkFor(ap); ok && !l.IsZero() {
					pre, havePre = l, true
					now := l.at(start, start)
					r := jitterRand(now)
					there = now.RTT/2 + sample(now.Jitter, r)
					back = now.RTT - now.RTT/2 + sample(now.Jitter, r)
					if err := sleepUntil(ctx, start.Add(there)); err != nil {
						return nil, err
					}
				}
			}
		}
		c, err := dial(ctx, network, addr)
		if err != nil || linkFor == nil {
			return c, err
		}
		l, ok := pre, havePre
		if !havePre {
			if ta, isTCP := c.RemoteAddr().(*net.TCPAddr); isTCP {
				ap := ta.AddrPort()
				l, ok = linkFor(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			}
			if ok && !l.IsZero() {
				now := l.at(start, start)
				r := jitterRand(now)
				back = now.RTT + sample(now.Jitter, r) + sample(now.Jitter, r)
			}
		}
		if !ok || l.IsZero() {
			return c, nil
		}
		if err := sleepUntil(ctx, start.Add(there+back)); err != nil {
			c.Close()
			return nil, err
		}
		return Wrap(c, l), nil
	}
}

// Listener wraps every connection ln accepts in the Link linkFor returns
// for the remote (client) address; the server then sees its clients
// through the link (its reads capped and delayed, its writes delayed).
// The handshake is not delayed.
func Listener(ln net.Listener, linkFor func(remote netip.AddrPort) (Link, bool)) net.Listener {
	return &listener{Listener: ln, linkFor: linkFor}
}

type listener struct {
	net.Listener
	linkFor func(netip.AddrPort) (Link, bool)
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok && l.linkFor != nil {
		ap := ta.AddrPort()
		if link, ok := l.linkFor(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())); ok && !link.IsZero() {
			return Wrap(c, link), nil
		}
	}
	return c, nil
}

const (
	chunkSize = 64 << 10
	// minWindow bounds the queue in each direction; the bound grows with
	// the bandwidth-delay product so that a long fat link is not limited
	// by the emulator's queue.
	minWindow = 1 << 20
)

// Wrap returns c seen through l. The returned connection owns c.
func Wrap(c net.Conn, l Link) net.Conn {
	born := time.Now()
	first := l.at(born, born)
	w := &conn{
		Conn:    c,
		link:    l,
		born:    born,
		rng:     jitterRand(l),
		half:    max(first.RTT/2, 0),
		bps:     max(first.BandwidthBps/8, 0), // bytes per second
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	w.window = minWindow
	if l.Shared != nil && l.Shared.bps > 0 {
		w.bps = l.Shared.bps
		w.queue = l.Shared
	} else {
		w.queue = &Bottleneck{bps: w.bps}
	}
	if w.bps > 0 {
		w.window = max(minWindow, int(w.bps*first.RTT.Seconds()*2))
		if l.Shared != nil {
			// Every connection's queue adds to the shared one's delay:
			// keep each to about 100 ms of the rate, as a router's
			// buffer would.
			w.window = max(64<<10, int(w.bps/10))
		}
	}
	w.wg.Add(1)
	go w.readPump()
	// Writes go through the pump whenever they may need delaying.
	w.pumpWrites = w.half > 0 || w.rng != nil
	if w.pumpWrites {
		w.wg.Add(1)
		go w.writePump()
	}
	return w
}

type chunk struct {
	b     []byte
	off   int           // bytes already read
	start time.Time     // when the chunk starts draining through the bottleneck
	delay time.Duration // from leaving the bottleneck to readable: RTT/2 plus jitter
	bps   float64       // the bottleneck's rate for this chunk, bytes per second; 0 unlimited
}

type pending struct {
	b   []byte
	due time.Time
}

type conn struct {
	net.Conn
	link   Link      // as given, with any profile
	born   time.Time // the profile's start when it has none of its own
	rng    *rand.Rand
	half   time.Duration // at Wrap; chunks and writes carry their own
	bps    float64
	queue  *Bottleneck // this connection's own, or a shared one
	window int
	// pumpWrites is set when writes are delayed (RTT, jitter or a
	// profile), so they go through the write pump.
	pumpWrites bool
	// lastRead and lastWrite are the latest times a chunk became
	// readable and a write was due: jitter may not reorder a stream.
	lastRead, lastWrite time.Time

	wg   sync.WaitGroup
	done chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	closed  bool
	// read side
	rq        []chunk
	rqBytes   int
	rerr      error
	rdeadline time.Time
	// write side
	wq        []pending
	wqBytes   int
	werr      error
	wdeadline time.Time
}

// broadcast wakes every waiter; c.mu must be held.
func (c *conn) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *conn) readPump() {
	defer c.wg.Done()
	// backlogged is true when the sender was waiting on us: the pump last
	// stopped because the queue was full, or its last read filled the
	// whole buffer. If the next bytes are already in the socket when the
	// pump asks, they follow the previous ones through the bottleneck
	// without a gap, however late this goroutine got to run. Bytes the
	// pump has to wait for arrive when they arrive: after a pause they
	// must cross the link, not ride on a queue that drained long ago.
	backlogged := false
	waiting := bytesWaiting(c.Conn)
	for {
		buf := make([]byte, chunkSize)
		chained := backlogged && waiting()
		n, err := c.Conn.Read(buf)
		now := time.Now()
		c.mu.Lock()
		if n > 0 {
			l := c.link.at(now, c.born)
			bps := max(l.BandwidthBps/8, 0)
			if c.queue == c.link.Shared && c.link.Shared != nil {
				bps = c.queue.bps
			}
			start := now
			if bps > 0 {
				start = c.queue.admit(n, now, chained, bps)
			}
			delay := max(l.RTT/2, 0) + sample(l.Jitter, c.rng) + retransmitDelay(l, n, c.rng)
			// Never readable before the chunk ahead of it.
			if at := start.Add(delay); at.Before(c.lastRead) {
				delay = c.lastRead.Sub(start)
			}
			c.lastRead = start.Add(delay)
			c.rq = append(c.rq, chunk{b: buf[:n], start: start, delay: delay, bps: bps})
			c.rqBytes += n
		}
		if err != nil {
			if c.rerr == nil {
				c.rerr = err
			}
			c.broadcast()
			c.mu.Unlock()
			return
		}
		c.broadcast()
		backlogged = c.rqBytes >= c.window || n == len(buf)
		for c.rqBytes >= c.window && !c.closed {
			ch := c.changed
			c.mu.Unlock()
			<-ch
			c.mu.Lock()
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
	}
}

// readable says how many bytes of the head chunk may be read at now, or
// when to look again.
func (c *conn) readable(h *chunk, now time.Time, want int) (int, time.Time) {
	left := len(h.b) - h.off
	if h.bps <= 0 {
		at := h.start.Add(h.delay)
		if now.Before(at) {
			return 0, at
		}
		return min(left, want), time.Time{}
	}
	base := h.start.Add(h.delay)
	sent := 0
	if el := now.Sub(base); el > 0 {
		sent = min(len(h.b), int(el.Seconds()*h.bps))
	}
	avail := sent - h.off
	// Readers wake when about a millisecond of data (at least a packet)
	// is readable, not per byte.
	quantum := max(1500, int(h.bps/1000))
	need := min(quantum, want, left)
	if avail >= need {
		return min(avail, want), time.Time{}
	}
	at := base.Add(time.Duration(float64(h.off+need) / h.bps * float64(time.Second)))
	return 0, at
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		now := time.Now()
		if !c.rdeadline.IsZero() && !now.Before(c.rdeadline) {
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		var wake time.Time
		if len(c.rq) > 0 {
			h := &c.rq[0]
			n, at := c.readable(h, now, len(p))
			if n > 0 {
				copy(p, h.b[h.off:h.off+n])
				h.off += n
				if h.off == len(h.b) {
					c.rq[0] = chunk{}
					c.rq = c.rq[1:]
				}
				c.rqBytes -= n
				c.broadcast()
				c.mu.Unlock()
				return n, nil
			}
			wake = at
		} else if c.rerr != nil {
			err := c.rerr
			c.mu.Unlock()
			return 0, err
		}
		if !c.rdeadline.IsZero() && (wake.IsZero() || c.rdeadline.Before(wake)) {
			wake = c.rdeadline
		}
		c.wait(wake)
	}
}

// wait releases c.mu until the state changes, wake passes (if set) or the
// connection closes, and takes it again.
func (c *conn) wait(wake time.Time) {
	ch := c.changed
	c.mu.Unlock()
	if wake.IsZero() {
		select {
		case <-ch:
		case <-c.done:
		}
	} else if d := time.Until(wake); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ch:
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.pumpWrites {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	for {
		switch {
		case c.closed:
			c.mu.Unlock()
			return 0, net.ErrClosed
		case c.werr != nil:
			err := c.werr
			c.mu.Unlock()
			return 0, err
		case !c.wdeadline.IsZero() && !time.Now().Before(c.wdeadline):
			c.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if c.wqBytes < c.window {
			break
		}
		c.wait(c.wdeadline)
	}
	b := append([]byte(nil), p...)
	now := time.Now()
	l := c.link.at(now, c.born)
	due := now.Add(max(l.RTT/2, 0) + sample(l.Jitter, c.rng))
	if due.Before(c.lastWrite) {
		due = c.lastWrite
	}
	c.lastWrite = due
	c.wq = append(c.wq, pending{b: b, due: due})
	c.wqBytes += len(b)
	c.broadcast()
	c.mu.Unlock()
	return len(p), nil
}

func (c *conn) writePump() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		for len(c.wq) == 0 && !c.closed {
			c.wait(time.Time{})
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		w := c.wq[0]
		c.mu.Unlock()
		if d := time.Until(w.due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-c.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
		_, err := c.Conn.Write(w.b)
		c.mu.Lock()
		c.wq[0] = pending{}
		c.wq = c.wq[1:]
		c.wqBytes -= len(w.b)
		if err != nil {
			c.werr = err
		}
		c.broadcast()
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Close closes the real connection and waits for the pumps to exit.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	close(c.done)
	c.broadcast()
	c.mu.Unlock()
	err := c.Conn.Close()
	c.wg.Wait()
	return err
}

// SetDeadline sets both deadlines; they apply to the emulated queues, not
// to the real connection, whose pumps run until Close.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline, c.wdeadline = t, t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdeadline = t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdeadline = t
	c.broadcast()
	c.mu.Unlock()
	return nil
}

// CloseWrite half-closes once queued writes are delivered, for callers
// that signal end of request (as TCPConn.CloseWrite does).
func (c *conn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.New("netem: underlying connection cannot half-close")
	}
	c.mu.Lock()
	for len(c.wq) > 0 && !c.closed && c.werr == nil {
		c.wait(time.Time{})
	}
	c.mu.Unlock()
	return cw.CloseWrite()
}

// timerSlack is how late the runtime's timers may fire: on Linux the
// netpoller sleeps in whole milliseconds.
const timerSlack = 1500 * time.Microsecond

// sleepUntil waits until t, precisely: a timer gets within timerSlack and
// the rest is spent yielding, so that an emulated connect time is not
// inflated by up to a millisecond. It costs at most timerSlack of CPU per
// connect, which is why reads and writes do not use it.
func sleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t) - timerSlack; d > 0 {
		tm := time.NewTimer(d)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
	for time.Now().Before(t) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return ctx.Err()
}

// bytesWaiting returns a check of whether c's socket holds unread bytes.
// For a connection without a socket it always says yes, which trusts the
// pump's evidence that the sender was backlogged.
func bytesWaiting(c net.Conn) func() bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() bool { return true }
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() bool { return true }
	}
	return func() bool {
		n := 0
		raw.Control(func(fd uintptr) {
			n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		})
		return n > 0
	}
}
