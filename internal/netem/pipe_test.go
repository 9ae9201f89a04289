package netem

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// arrival is a packet the far side of a pipe got.
type arrival struct {
	id byte
	at time.Time
}

// runPipe starts a pipe with shape in a synctest bubble and returns it,
// with a function returning what arrived so far; the pipe stops when the
// test's bubble ends.
func runPipe(t *testing.T, shape Shape, seed uint64) (*pipe, func() []arrival) {
	return runRecording(t, func(time.Time) Shape { return shape }, seed, func(b []byte) arrival { return arrival{b[0], time.Now()} })
}

// runRecording starts a pipe whose far side records each packet as
// note makes it, and returns it with the records so far.
func runRecording[T any](t *testing.T, shape func(time.Time) Shape, seed uint64, note func([]byte) T) (*pipe, func() []T) {
	var mu sync.Mutex
	var got []T
	p := newPipe(shape, seed, func(b []byte) {
		mu.Lock()
		got = append(got, note(b))
		mu.Unlock()
	})
	startPipe(t, p)
	return p, func() []T {
		mu.Lock()
		defer mu.Unlock()
		return append([]T(nil), got...)
	}
}

// startPipe runs p's deliverer until the test (its bubble) ends.
func startPipe(t *testing.T, p *pipe) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { p.run(done); close(stopped) }()
	t.Cleanup(func() { close(done); <-stopped })
}

func TestPipeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, got := runPipe(t, Shape{Delay: 30 * time.Millisecond}, 1)
		t0 := time.Now()
		p.admit([]byte{1}, t0)
		time.Sleep(10 * time.Millisecond)
		p.admit([]byte{2}, time.Now())
		time.Sleep(time.Second)
		synctest.Wait()
		a := got()
		if len(a) != 2 || a[0].at.Sub(t0) != 30*time.Millisecond || a[1].at.Sub(t0) != 40*time.Millisecond {
			t.Errorf("arrivals %v after %v, want packet 1 at 30ms and 2 at 40ms", a, t0)
		}
	})
}

func TestPipeRateAndTailDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 8 Mbit/s: a 1000-byte packet takes 1 ms; the queue holds 10.
		p, got := runPipe(t, Shape{RateBps: 8e6, QueueBytes: 10_000, Delay: 5 * time.Millisecond}, 1)
		t0 := time.Now()
		for i := range 25 {
			b := make([]byte, 1000)
			b[0] = byte(i)
			p.admit(b, t0)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		a := got()
		if len(a) != 10 {
			t.Fatalf("%d packets through a 10-packet queue from a burst of 25, want 10", len(a))
		}
		for i, x := range a {
			want := time.Duration(i+1)*time.Millisecond + 5*time.Millisecond
			if x.id != byte(i) || x.at.Sub(t0) != want {
				t.Errorf("packet %d = id %d at %v, want id %d at %v", i, x.id, x.at.Sub(t0), i, want)
			}
		}
		st := p.snapshot()
		if st.QueueDrops != 15 || st.MaxQueueBytes != 10_000 || st.MaxQueueDelay != 9*time.Millisecond {
			t.Errorf("stats %+v, want 15 queue drops, max queue 10000 bytes and 9ms", st)
		}
	})
}

func TestPipeLossRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, loss = 20_000, 0.02
		p, got := runPipe(t, Shape{Loss: loss}, 7)
		for range n {
			p.admit([]byte{0}, time.Now())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		lost := n - len(got())
		// sd of Binomial(2e4, 0.02) is 20 packets; ±5 sd.
		if math.Abs(float64(lost)-n*loss) > 5*math.Sqrt(n*loss*(1-loss)) {
			t.Errorf("lost %d of %d at loss %v, want %v ± 5 sd", lost, n, loss, n*loss)
		}
		if st := p.snapshot(); st.LossDrops != uint64(lost) {
			t.Errorf("LossDrops = %d, but %d did not arrive", st.LossDrops, lost)
		}
	})
}

// Without Reorder, jitter delays packets but never lets one overtake
// another; with it, some do.
func TestPipeJitterOrder(t *testing.T) {
	j := Jitter{Dist: "uniform", Max: 20 * time.Millisecond}
	for _, reorder := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			p, got := runPipe(t, Shape{Delay: 10 * time.Millisecond, Jitter: j, Reorder: reorder}, 3)
			t0 := time.Now()
			for i := range 200 {
				p.admit([]byte{byte(i)}, time.Now())
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Second)
			synctest.Wait()
			a := got()
			overtaken := 0
			for i := 1; i < len(a); i++ {
				if a[i].id < a[i-1].id {
					overtaken++
				}
			}
			lo, hi := time.Hour, time.Duration(0)
			for _, x := range a {
				d := x.at.Sub(t0) - time.Duration(x.id)*time.Millisecond
				lo, hi = min(lo, d), max(hi, d)
			}
			t.Logf("reorder=%v: one-way delay %v..%v, %d overtaken", reorder, lo, hi, overtaken)
			if lo < 10*time.Millisecond {
				t.Errorf("a packet took %v, less than the fixed delay", lo)
			}
			if !reorder && overtaken > 0 {
				t.Errorf("%d packets overtaken without Reorder", overtaken)
			}
			if reorder && overtaken == 0 {
				t.Error("no packet overtaken with Reorder and 20ms of jitter at 1ms spacing")
			}
		})
	}
}

func TestJitterMeans(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		j    Jitter
		mean time.Duration
	}{
		{Jitter{Dist: "uniform", Max: 10 * ms}, 5 * ms},
		{Jitter{Dist: "normal", Mean: 20 * ms, Stddev: 4 * ms}, 20 * ms},
		{Jitter{Dist: "pareto", Scale: 10 * ms, Alpha: 3}, 5 * ms}, // Scale/(Alpha−1)
	} {
		if err := tc.j.Validate("jitter"); err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		const n = 200_000
		var sum float64
		for range n {
			sum += float64(tc.j.Sample(r))
		}
		got := time.Duration(sum / n)
		t.Logf("%+v: mean %v, want %v", tc.j, got, tc.mean)
		if math.Abs(float64(got-tc.mean)) > 0.03*float64(tc.mean) {
			t.Errorf("mean of %+v = %v, want %v ± 3%%", tc.j, got, tc.mean)
		}
	}
}

func TestShapeValidate(t *testing.T) {
	for _, tc := range []struct {
		s     Shape
		field string
	}{
		{Shape{Loss: 1.5}, "down.loss"},
		{Shape{Loss: math.NaN()}, "down.loss"},
		{Shape{RateBps: -1}, "down.rate_bps"},
		{Shape{QueueBytes: -1}, "down.queue_bytes"},
		{Shape{RateBps: 1e6, QueueBytes: 100}, "down.queue_bytes"},
		{Shape{QueueBytes: 10000}, "down.queue_bytes"},
		{Shape{Delay: -1}, "down.delay"},
		{Shape{PerClient: true}, "down.per_client"},
		{Shape{Jitter: Jitter{Dist: "gamma"}}, "down.jitter.dist"},
		{Shape{Jitter: Jitter{Dist: "uniform"}}, "down.jitter.max"},
		{Shape{Jitter: Jitter{Dist: "normal", Mean: 5}}, "down.jitter.stddev"},
		{Shape{Jitter: Jitter{Dist: "pareto", Scale: 5}}, "down.jitter.alpha"},
		{Shape{Jitter: Jitter{Dist: "pareto", Alpha: 2}}, "down.jitter.scale"},
	} {
		err := tc.s.Validate("down")
		if err == nil || !strings.Contains(err.Error(), tc.field+" ") {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.s, err, tc.field)
		}
	}
	if err := (Shape{RateBps: 1e6, Loss: 0.01, Delay: time.Millisecond}).Validate("down"); err != nil {
		t.Errorf("Validate(good shape) = %v", err)
	}
}

func TestScheduleAt(t *testing.T) {
	s := Schedule[int]{Period: 24 * time.Hour, Steps: []Step[int]{
		{At: 0, Link: 1}, {At: 18 * time.Hour, Link: 2}, {At: 23 * time.Hour, Link: 3},
	}}
	if err := s.Validate(nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{0, 1}, {17 * time.Hour, 1}, {18 * time.Hour, 2}, {22*time.Hour + 59*time.Minute, 2},
		{23 * time.Hour, 3}, {24 * time.Hour, 1}, {42 * time.Hour, 2}, {-time.Hour, 3},
	} {
		if got := s.At(tc.at); got != tc.want {
			t.Errorf("At(%v) = %d, want %d", tc.at, got, tc.want)
		}
	}
	for _, bad := range []Schedule[int]{
		{},
		{Steps: []Step[int]{{At: time.Hour}}},
		{Steps: []Step[int]{{At: 0}, {At: 0}}},
		{Period: time.Hour, Steps: []Step[int]{{At: 0}, {At: 2 * time.Hour}}},
	} {
		if err := bad.Validate(nil); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func FuzzJitter(f *testing.F) {
	f.Add("pareto", int64(0), int64(0), int64(0), int64(1e6), 1.5, uint64(1))
	f.Add("normal", int64(0), int64(1e6), int64(5e5), int64(0), 0.0, uint64(2))
	f.Add("uniform", int64(1e7), int64(0), int64(0), int64(0), 0.0, uint64(3))
	f.Add("pareto", int64(0), int64(0), int64(0), int64(1), 1e-300, uint64(4))
	f.Fuzz(func(t *testing.T, dist string, maxd, mean, sd, scale int64, alpha float64, seed uint64) {
		j := Jitter{Dist: dist, Max: time.Duration(maxd), Mean: time.Duration(mean), Stddev: time.Duration(sd), Scale: time.Duration(scale), Alpha: alpha}
		if j.Validate("jitter") != nil {
			return
		}
		r := rand.New(rand.NewPCG(seed, 0))
		for range 100 {
			d := j.Sample(r)
			if d < 0 {
				t.Fatalf("%+v sampled %v", j, d)
			}
			if j.Max > 0 && d > j.Max {
				t.Fatalf("%+v sampled %v above its max", j, d)
			}
		}
	})
}

// ipv4 is a size-byte IPv4 packet to dst from 127.1.0.7 carrying id
// after its header.
func ipv4(dst netip.Addr, id byte, size int) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	copy(b[12:16], []byte{127, 1, 0, 7})
	a := dst.As4()
	copy(b[16:20], a[:])
	b[20] = id
	return b
}

// ipArrival is an IP packet the far side of a pipe got.
type ipArrival struct {
	dst netip.Addr
	id  byte
	at  time.Duration // after t0
}

// runIPPipe is runPipe for IP packets, with the shape read on every
// packet from shape under p.mu (so a test can change it holding p.mu)
// and arrivals timed from t0.
func runIPPipe(t *testing.T, shape *Shape, t0 time.Time) (*pipe, func() []ipArrival) {
	return runRecording(t, func(time.Time) Shape { return *shape }, 1, func(b []byte) ipArrival {
		return ipArrival{dstAddr(b), b[20], time.Since(t0)}
	})
}

var (
	homeA = netip.MustParseAddr("127.64.3.9")
	homeB = netip.MustParseAddr("127.64.4.9")
	homeC = netip.MustParseAddr("127.64.5.9")
	homeD = netip.MustParseAddr("127.64.6.9")
)

// One client overfilling the bottleneck: with one shared queue, the other
// client's packet waits behind it or is tail-dropped; with per-client
// queues it goes through its own line at once, and each client's queue
// drops only its own excess.
func TestPipePerClient(t *testing.T) {
	for _, perClient := range []bool{false, true} {
		t.Run(fmt.Sprint("per_client=", perClient), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// 8 Mbit/s: a 1000-byte packet takes 1 ms; a queue holds 20.
				shape := Shape{RateBps: 8e6, QueueBytes: 20_000, Delay: 5 * time.Millisecond, PerClient: perClient}
				t0 := time.Now()
				p, got := runIPPipe(t, &shape, t0)
				for i := range 25 {
					p.admit(ipv4(homeA, byte(i), 1000), t0)
				}
				p.admit(ipv4(homeB, 100, 1000), t0)
				time.Sleep(time.Second)
				synctest.Wait()
				var a, b []ipArrival
				for _, x := range got() {
					if x.dst == homeA {
						a = append(a, x)
					} else {
						b = append(b, x)
					}
				}
				if len(a) != 20 {
					t.Fatalf("%d of A's 25 packets through its 20-packet queue, want 20", len(a))
				}
				for i, x := range a {
					if want := time.Duration(i+1)*time.Millisecond + 5*time.Millisecond; x.id != byte(i) || x.at != want {
						t.Errorf("A's packet %d = id %d at %v, want id %d at %v", i, x.id, x.at, i, want)
					}
				}
				st := p.snapshot()
				if !perClient {
					// The queue was full of A's packets: B's was dropped.
					if len(b) != 0 || st.QueueDrops != 6 || st.ClientQueues != 0 {
						t.Errorf("shared queue: B's arrivals %v, stats %+v; want B's packet tail-dropped with A's 5 (6 drops) and no client queues", b, st)
					}
					return
				}
				// B's own line was empty: 1 ms to send, 5 ms to arrive.
				if len(b) != 1 || b[0].at != 6*time.Millisecond {
					t.Errorf("per-client queues: B's arrivals %v, want one at 6ms", b)
				}
				if st.QueueDrops != 5 || st.ClientQueues != 2 || st.PeakClientQueues != 2 || st.ClientOverflow != 0 || st.MaxQueueBytes != 20_000 {
					t.Errorf("stats %+v, want A's 5 excess packets dropped, 2 client queues, none overflowing, the deepest 20000 bytes", st)
				}
			})
		})
	}
}

// The number of per-client queues is bounded: past the bound a new
// client's packets share the shared queue (counted) until idle queues
// can be forgotten.
func TestPipeClientQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shape := Shape{RateBps: 8e6, QueueBytes: 20_000, Delay: 5 * time.Millisecond, PerClient: true}
		t0 := time.Now()
		p, got := runIPPipe(t, &shape, t0)
		p.maxClients = 2
		for i, a := range []netip.Addr{homeA, homeB, homeC} {
			p.admit(ipv4(a, byte(i), 1000), t0)
			p.admit(ipv4(a, byte(i), 1000), t0)
		}
		if st := p.snapshot(); st.ClientQueues != 2 || st.ClientOverflow != 2 {
			t.Errorf("after three clients with a bound of 2: stats %+v, want 2 queues and C's 2 packets overflowing", st)
		}
		// Meanwhile D is refused a queue too: A and B are busy, and C
		// caused the last sweep less than sweepEvery ago.
		p.admit(ipv4(homeD, 3, 1000), t0.Add(time.Millisecond))
		time.Sleep(time.Second)
		synctest.Wait()
		// All idle now: D gets a queue of its own by forgetting one.
		p.admit(ipv4(homeD, 4, 1000), time.Now())
		time.Sleep(time.Second)
		synctest.Wait()
		st := p.snapshot()
		if st.ClientQueues != 1 || st.PeakClientQueues != 2 || st.ClientOverflow != 3 || st.Delivered != 8 {
			t.Errorf("stats %+v, want the idle queues forgotten for D's, a peak of 2, 3 packets overflowed, all 8 delivered", st)
		}
		// The overflowing packets queued behind each other (C's two, then D's).
		var at []time.Duration
		for _, x := range got() {
			if x.dst == homeC || x.dst == homeD && x.id == 3 {
				at = append(at, x.at)
			}
		}
		if want := []time.Duration{6 * time.Millisecond, 7 * time.Millisecond, 8 * time.Millisecond}; !slices.Equal(at, want) {
			t.Errorf("shared-queue arrivals at %v, want %v", at, want)
		}
	})
}

// A profile switching per-client queues off: the shared queue starts
// behind what the clients' queues hold, so nothing overtakes it.
func TestPipePerClientSwitchOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		shape := Shape{RateBps: 8e6, QueueBytes: 20_000, Delay: 5 * time.Millisecond, PerClient: true}
		t0 := time.Now()
		p, got := runIPPipe(t, &shape, t0)
		for i := range 10 {
			p.admit(ipv4(homeA, byte(i), 1000), t0)
		}
		p.mu.Lock()
		shape.PerClient = false
		p.mu.Unlock()
		p.admit(ipv4(homeA, 10, 1000), t0)
		time.Sleep(time.Second)
		synctest.Wait()
		a := got()
		if len(a) != 11 || a[10].id != 10 || a[10].at != 16*time.Millisecond {
			t.Errorf("arrivals %v, want the 11th packet last, at 16ms (behind A's 10 ms of queue)", a)
		}
		if st := p.snapshot(); st.ClientQueues != 0 {
			t.Errorf("stats %+v, want no client queues left", st)
		}
	})
}

func TestPacketAddrs(t *testing.T) {
	v6 := make([]byte, 40)
	v6[0] = 0x60
	src6, dst6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2")
	s, d := src6.As16(), dst6.As16()
	copy(v6[8:24], s[:])
	copy(v6[24:40], d[:])
	for _, tc := range []struct {
		name     string
		b        []byte
		src, dst netip.Addr
	}{
		{"ipv4", ipv4(homeA, 0, 40), netip.MustParseAddr("127.1.0.7"), homeA},
		{"ipv6", v6, src6, dst6},
		{"short ipv4", ipv4(homeA, 0, 40)[:19], netip.Addr{}, netip.Addr{}},
		{"short ipv6", v6[:39], netip.Addr{}, netip.Addr{}},
		{"not ip", []byte{1, 2, 3}, netip.Addr{}, netip.Addr{}},
		{"empty", nil, netip.Addr{}, netip.Addr{}},
	} {
		if got := srcAddr(tc.b); got != tc.src {
			t.Errorf("%s: srcAddr = %v, want %v", tc.name, got, tc.src)
		}
		if got := dstAddr(tc.b); got != tc.dst {
			t.Errorf("%s: dstAddr = %v, want %v", tc.name, got, tc.dst)
		}
	}
}

// BenchmarkPipeAdmit is the emulator's per-packet work (loss, the
// bottleneck, jitter, the delivery heap) with one shared queue and with
// a queue for each of 64 clients; the packets are made beforehand, as the
// pump's copy is not admit's cost.
func BenchmarkPipeAdmit(b *testing.B) {
	for _, perClient := range []bool{false, true} {
		b.Run(fmt.Sprint("per_client=", perClient), func(b *testing.B) {
			shape := Shape{Loss: 0.01, RateBps: 1e9, QueueBytes: 1 << 30, Delay: 5 * time.Millisecond, PerClient: perClient,
				Jitter: Jitter{Dist: "uniform", Max: time.Millisecond}}
			p := newPipe(func(time.Time) Shape { return shape }, 1, func([]byte) {})
			pkts := make([][]byte, 64)
			for i := range pkts {
				pkts[i] = ipv4(netip.AddrFrom4([4]byte{127, 64, byte(i), 9}), 0, 1500)
			}
			now := time.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p.admit(pkts[i%len(pkts)], now)
				now = now.Add(12 * time.Microsecond) // 1 Gbit/s of 1500-byte packets
				if len(p.q) >= 1024 {
					for len(p.q) > 0 {
						p.q.pop()
					}
				}
			}
		})
	}
}
