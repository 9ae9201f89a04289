package netem

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// DirStats counts what one direction of a packet path did.
type DirStats struct {
	Packets    uint64 // packets that entered
	Bytes      uint64 // their IP bytes
	LossDrops  uint64 // dropped by random loss
	QueueDrops uint64 // dropped because the bottleneck queue was full
	Delivered  uint64 // packets handed to the far side
	// MaxQueueBytes is the deepest the bottleneck queue got, and
	// QueueDelaySum the queueing delay summed over admitted packets
	// (divide by Packets − drops for the mean). With per-client queues
	// they are over every client's queue.
	MaxQueueBytes int
	QueueDelaySum time.Duration
	MaxQueueDelay time.Duration
	// ClientQueues is how many per-client queues (Shape.PerClient) the
	// direction holds now, PeakClientQueues the most it held at once,
	// and ClientOverflow the packets that went through the shared queue
	// instead because MaxClientQueues busy clients already had theirs.
	ClientQueues     int
	PeakClientQueues int
	ClientOverflow   uint64
}

// DefaultMaxClientQueues bounds the per-client queues of one direction
// when PathConfig.MaxClientQueues is 0: a few thousand homes, some 100
// bytes each.
const DefaultMaxClientQueues = 4096

// sweepEvery is how often a direction whose per-client queues are all
// taken looks for idle ones to forget, at most: with that many busy
// clients, a newcomer's packets go through the shared queue meanwhile.
const sweepEvery = 100 * time.Millisecond

// line is one bottleneck queue: when it finishes what it holds and the
// latest delivery it scheduled (packets of one line keep their order).
type line struct {
	lastDepart time.Time
	lastDue    time.Time
}

// idle reports whether l holds nothing at now: it then acts as a new
// line would, so forgetting it changes nothing.
func (l *line) idle(now time.Time) bool {
	return !l.lastDepart.After(now) && !l.lastDue.After(now)
}

// pipe is one direction of a packet path: admit applies loss and the
// bottleneck at arrival and schedules delivery; run delivers packets when
// due. It knows nothing of TUN devices, so tests drive it directly.
type pipe struct {
	shape func(now time.Time) Shape
	out   func([]byte) // takes the packet; called from run only
	// clientOf is the client address of a packet (the destination on the
	// downlink, the source on the uplink); invalid for what is not IP.
	clientOf   func([]byte) netip.Addr
	maxClients int

	mu        sync.Mutex
	rng       *rand.Rand
	shared    line
	clients   map[netip.Addr]*line // Shape.PerClient: each client's line
	perClient bool                 // the mode of the last packet admitted
	nextSweep time.Time
	q         pktHeap
	seq       uint64
	stats     DirStats

	wake chan struct{} // a packet was queued; capacity 1
}

func newPipe(shape func(time.Time) Shape, seed uint64, out func([]byte)) *pipe {
	return &pipe{
		shape:      shape,
		out:        out,
		clientOf:   dstAddr,
		maxClients: DefaultMaxClientQueues,
		clients:    map[netip.Addr]*line{},
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake:       make(chan struct{}, 1),
	}
}

// admit takes ownership of b, which arrived now; a dropped packet's
// buffer is left to the garbage collector.
func (p *pipe) admit(b []byte, now time.Time) {
	p.mu.Lock()
	s := p.shape(now)
	p.stats.Packets++
	p.stats.Bytes += uint64(len(b))
	if s.Loss > 0 && p.rng.Float64() < s.Loss {
		p.stats.LossDrops++
		p.mu.Unlock()
		return
	}
	ln := p.lineFor(b, s.PerClient && s.RateBps > 0, now)
	depart := now
	if s.RateBps > 0 {
		bps := s.RateBps / 8
		queued := 0
		if ln.lastDepart.After(now) {
			queued = int(ln.lastDepart.Sub(now).Seconds() * bps)
		}
		if queued+len(b) > s.queueLimit() {
			p.stats.QueueDrops++
			p.mu.Unlock()
			return
		}
		start := now
		if ln.lastDepart.After(start) {
			start = ln.lastDepart
		}
		wait := start.Sub(now)
		p.stats.QueueDelaySum += wait
		p.stats.MaxQueueDelay = max(p.stats.MaxQueueDelay, wait)
		p.stats.MaxQueueBytes = max(p.stats.MaxQueueBytes, queued+len(b))
		depart = start.Add(time.Duration(float64(len(b)) / bps * float64(time.Second)))
		ln.lastDepart = depart
	}
	due := depart.Add(s.Delay + s.Jitter.Sample(p.rng))
	if !s.Reorder && due.Before(ln.lastDue) {
		due = ln.lastDue
	}
	if due.After(ln.lastDue) {
		ln.lastDue = due
	}
	p.seq++
	p.q.push(pkt{due: due, seq: p.seq, b: b})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// lineFor is the bottleneck b goes through: the shared one, or with
// perClient its client's own, made on its first packet. Called with mu
// held.
func (p *pipe) lineFor(b []byte, perClient bool, now time.Time) *line {
	if perClient != p.perClient {
		p.switchMode(perClient)
	}
	if !perClient {
		return &p.shared
	}
	a := p.clientOf(b)
	if !a.IsValid() {
		return &p.shared
	}
	if ln := p.clients[a]; ln != nil {
		return ln
	}
	if len(p.clients) >= p.maxClients {
		if now.Before(p.nextSweep) {
			p.stats.ClientOverflow++
			return &p.shared
		}
		p.nextSweep = now.Add(sweepEvery)
		for k, ln := range p.clients {
			if ln.idle(now) {
				delete(p.clients, k)
			}
		}
		if len(p.clients) >= p.maxClients {
			p.stats.ClientOverflow++
			return &p.shared
		}
	}
	// Behind whatever the shared queue still delivers (packets from
	// before per-client queues were on, or that overflowed): none of
	// this client's packets may overtake its earlier ones.
	ln := &line{lastDue: p.shared.lastDue}
	p.clients[a] = ln
	p.stats.PeakClientQueues = max(p.stats.PeakClientQueues, len(p.clients))
	return ln
}

// switchMode changes between one shared queue and per-client ones (a
// profile step did). Leaving per-client queues, the shared one takes on
// the latest of theirs, so that no packet overtakes one still queued.
func (p *pipe) switchMode(perClient bool) {
	p.perClient = perClient
	if perClient {
		return
	}
	for k, ln := range p.clients {
		p.shared.lastDepart = later(p.shared.lastDepart, ln.lastDepart)
		p.shared.lastDue = later(p.shared.lastDue, ln.lastDue)
		delete(p.clients, k)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// dstAddr and srcAddr read an IP packet's destination and source
// address (the zero Addr for anything else).
func dstAddr(b []byte) netip.Addr { return ipAddr(b, 16, 24) }
func srcAddr(b []byte) netip.Addr { return ipAddr(b, 12, 8) }

// ipAddr is the address at offset v4 of an IPv4 header or v6 of an IPv6
// one.
func ipAddr(b []byte, v4, v6 int) netip.Addr {
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		return netip.AddrFrom4([4]byte(b[v4 : v4+4]))
	case len(b) >= 40 && b[0]>>4 == 6:
		return netip.AddrFrom16([16]byte(b[v6 : v6+16]))
	}
	return netip.Addr{}
}

// run delivers packets when due until done closes; packets still queued
// then are dropped.
func (p *pipe) run(done <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	var batch [][]byte
	for {
		p.mu.Lock()
		now := time.Now()
		for len(p.q) > 0 && !p.q[0].due.After(now) {
			batch = append(batch, p.q.pop().b)
		}
		var next time.Time
		if len(p.q) > 0 {
			next = p.q[0].due
		}
		p.stats.Delivered += uint64(len(batch))
		p.mu.Unlock()
		for i, b := range batch {
			p.out(b)
			batch[i] = nil
		}
		batch = batch[:0]
		var timer <-chan time.Time
		if !next.IsZero() {
			t.Reset(next.Sub(now))
			timer = t.C
		}
		select {
		case <-done:
			p.mu.Lock()
			p.q = nil
			p.mu.Unlock()
			return
		case <-p.wake:
			t.Stop()
		case <-timer:
		}
	}
}

func (p *pipe) snapshot() DirStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.stats
	st.ClientQueues = len(p.clients)
	return st
}

type pkt struct {
	due time.Time
	seq uint64 // ties in due keep arrival order
	b   []byte
}

// pktHeap is a min-heap on (due, seq). Without reordering packets arrive
// in due order and push/pop are O(1) in practice.
type pktHeap []pkt

func (h pktHeap) less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}

func (h *pktHeap) push(x pkt) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q.less(i, parent) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *pktHeap) pop() pkt {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = pkt{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q.less(l, m) {
			m = l
		}
		if r < len(q) && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}
