package netem

import (
	"math/rand/v2"
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
	// (divide by Packets − drops for the mean).
	MaxQueueBytes int
	QueueDelaySum time.Duration
	MaxQueueDelay time.Duration
}

// pipe is one direction of a packet path: admit applies loss and the
// bottleneck at arrival and schedules delivery; run delivers packets when
// due. It knows nothing of TUN devices, so tests drive it directly.
type pipe struct {
	shape func(now time.Time) Shape
	out   func([]byte) // takes the packet; called from run only

	mu         sync.Mutex
	rng        *rand.Rand
	lastDepart time.Time // when the bottleneck finishes what it holds
	lastDue    time.Time // the latest delivery scheduled, for FIFO order
	q          pktHeap
	seq        uint64
	stats      DirStats

	wake chan struct{} // a packet was queued; capacity 1
}

func newPipe(shape func(time.Time) Shape, seed uint64, out func([]byte)) *pipe {
	return &pipe{
		shape: shape,
		out:   out,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake:  make(chan struct{}, 1),
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
	depart := now
	if s.RateBps > 0 {
		bps := s.RateBps / 8
		queued := 0
		if p.lastDepart.After(now) {
			queued = int(p.lastDepart.Sub(now).Seconds() * bps)
		}
		if queued+len(b) > s.queueLimit() {
			p.stats.QueueDrops++
			p.mu.Unlock()
			return
		}
		start := now
		if p.lastDepart.After(start) {
			start = p.lastDepart
		}
		wait := start.Sub(now)
		p.stats.QueueDelaySum += wait
		p.stats.MaxQueueDelay = max(p.stats.MaxQueueDelay, wait)
		p.stats.MaxQueueBytes = max(p.stats.MaxQueueBytes, queued+len(b))
		depart = start.Add(time.Duration(float64(len(b)) / bps * float64(time.Second)))
		p.lastDepart = depart
	}
	due := depart.Add(s.Delay + s.Jitter.Sample(p.rng))
	if !s.Reorder && due.Before(p.lastDue) {
		due = p.lastDue
	}
	if due.After(p.lastDue) {
		p.lastDue = due
	}
	p.seq++
	p.q.push(pkt{due: due, seq: p.seq, b: b})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
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
	return p.stats
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
