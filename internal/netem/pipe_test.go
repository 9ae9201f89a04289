package netem

import (
	"math"
	"math/rand/v2"
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
	var mu sync.Mutex
	var got []arrival
	p := newPipe(func(time.Time) Shape { return shape }, seed, func(b []byte) {
		mu.Lock()
		got = append(got, arrival{b[0], time.Now()})
		mu.Unlock()
	})
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { p.run(done); close(stopped) }()
	t.Cleanup(func() { close(done); <-stopped })
	return p, func() []arrival {
		mu.Lock()
		defer mu.Unlock()
		return append([]arrival(nil), got...)
	}
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
