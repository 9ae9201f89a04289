package tcpinfo

import (
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pair returns both ends of a loopback TCP connection.
func pair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// send writes n bytes from w while r discards them, and returns when r
// has read them all.
func send(t testing.TB, w, r net.Conn, n int64) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	var got int64
	var rerr error
	go func() {
		defer wg.Done()
		got, rerr = io.CopyN(io.Discard, r, n)
	}()
	buf := make([]byte, 64<<10)
	for left := n; left > 0; {
		k, err := w.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			t.Fatal(err)
		}
		left -= int64(k)
	}
	wg.Wait()
	if rerr != nil || got != n {
		t.Fatalf("reader got %d of %d bytes: %v", got, n, rerr)
	}
}

func TestKernelFillsFields(t *testing.T) {
	c, s := pair(t)
	const n = 8 << 20
	send(t, s, c, n)
	smp, err := NewSampler(s)
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := smp.Sample(&r); err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel filled %d of the %d bytes of x/sys TCPInfo; record %+v", r.InfoLen, unsafe.Sizeof(unix.TCPInfo{}), r)
	if r.InfoLen < int(unsafe.Offsetof(unix.TCPInfo{}.Bytes_retrans)) {
		t.Errorf("kernel filled %d bytes of tcp_info, too few for bytes_sent/bytes_retrans (Linux 4.19+)", r.InfoLen)
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate(sample of a real connection) = %v", err)
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"state established", r.State == unix.BPF_TCP_ESTABLISHED},
		{"mss > 0", r.MSS > 0},
		{"min rtt > 0", r.MinRTT > 0},
		{"smoothed rtt >= min rtt", r.SmoothedRTT >= r.MinRTT},
		{"min rtt under 50ms on loopback", r.MinRTT < 50*time.Millisecond},
		{"cwnd > 0", r.Cwnd > 0},
		{"bytes sent >= payload", r.BytesSent >= n},
		{"bytes acked >= payload", r.BytesAcked >= n},
		{"data segments out > 0", r.DataSegsOut > 0},
		{"delivery rate > 0", r.DeliveryRate > 0},
		{"busy time > 0", r.BusyTime > 0},
		// Loopback loses nothing, but a receiver starved of CPU can make
		// the sender fire a tail-loss probe; the receiver then reports it
		// as a duplicate (DSACK). Any other retransmission is a bug.
		{"every retransmission on loopback spurious (DSACKed)", r.Retransmits <= r.SpuriousRetransmits},
		{"congestion control named", r.CongestionControl != ""},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("sample after sending %d bytes: want %s; record %+v", n, c.what, r)
		}
	}
	// The receiving side counts bytes received, not sent.
	var cr Record
	cs, err := NewSampler(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Sample(&cr); err != nil {
		t.Fatal(err)
	}
	if cr.BytesReceived != n {
		t.Errorf("receiver's bytes_received = %d, want %d", cr.BytesReceived, n)
	}
}

func TestCongestionPerConnection(t *testing.T) {
	avail, err := Available()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("available: %v", avail)
	for _, name := range avail {
		c, s := pair(t)
		if err := SetCongestion(s, name); err != nil {
			t.Fatalf("SetCongestion(%q) = %v", name, err)
		}
		send(t, s, c, 1<<20)
		got, err := Congestion(s)
		if err != nil {
			t.Fatal(err)
		}
		if got != name {
			t.Errorf("after SetCongestion(%q), Congestion = %q", name, got)
		}
		smp, _ := NewSampler(s)
		var r Record
		if err := smp.Sample(&r); err != nil {
			t.Fatal(err)
		}
		if name == "bbr" {
			t.Logf("bbr model after 1 MiB on loopback: %+v", r.BBR)
			if r.BBR.Bandwidth == 0 || r.BBR.MinRTT <= 0 || r.BBR.PacingGain <= 0 {
				t.Errorf("bbr connection's TCP_CC_INFO = %+v, want bandwidth, min rtt and gains", r.BBR)
			}
		} else if r.BBR != (BBRInfo{}) {
			t.Errorf("%s connection has a BBR model %+v", name, r.BBR)
		}
	}

	_, s := pair(t)
	err = SetCongestion(s, "nosuchcc")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SetCongestion(nosuchcc) = %v, want ErrUnavailable", err)
	}
	for _, name := range avail {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name available %q", err, name)
		}
	}
	if err := CheckCongestion("nosuchcc"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("CheckCongestion(nosuchcc) = %v, want ErrUnavailable", err)
	}
	if err := CheckCongestion(avail[0]); err != nil {
		t.Errorf("CheckCongestion(%q) = %v", avail[0], err)
	}
}

func TestControlCongestionOnListener(t *testing.T) {
	avail, err := Available()
	if err != nil {
		t.Fatal(err)
	}
	want := "reno"
	if !slices.Contains(avail, want) {
		t.Fatalf("reno is built into every Linux kernel, yet not in %v", avail)
	}
	lc := net.ListenConfig{Control: ControlCongestion(want)}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := Congestion(s.(*net.TCPConn)); err != nil || got != want {
		t.Errorf("accepted connection's congestion control = %q, %v; want %q inherited from the listener", got, err, want)
	}
	lc = net.ListenConfig{Control: ControlCongestion("nosuchcc")}
	if _, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Listen with ControlCongestion(nosuchcc) = %v, want ErrUnavailable", err)
	}
}

func TestNotTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := NewSampler(a); !errors.Is(err, ErrNotTCP) {
		t.Errorf("NewSampler(net.Pipe) = %v, want ErrNotTCP", err)
	}
}

func TestSampleAfterClose(t *testing.T) {
	_, s := pair(t)
	smp, err := NewSampler(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var r Record
	if err := smp.Sample(&r); err == nil {
		t.Error("Sample of a closed connection succeeded")
	}
}

func TestValidate(t *testing.T) {
	good := Record{
		MinRTT: time.Millisecond, SmoothedRTT: 2 * time.Millisecond, RTTVar: time.Millisecond,
		Unacked: 10, Lost: 2, Retransmits: 5, DataSegsOut: 100,
		BytesSent: 150000, BytesRetrans: 7000, BytesAcked: 140000,
		BusyTime: time.Second, RwndLimited: 100 * time.Millisecond, SndbufLimited: 200 * time.Millisecond,
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate(good) = %v", err)
	}
	// A SYN-ACK retransmitted before any data (tcpi_total_retrans
	// starts at the request socket's retransmissions).
	synAck := Record{Retransmits: 1}
	if err := synAck.Validate(); err != nil {
		t.Errorf("Validate(a retransmitted SYN-ACK, no data yet) = %v", err)
	}
	afterFIN := good
	afterFIN.BytesAcked = afterFIN.BytesSent + 1
	if err := afterFIN.Validate(); err != nil {
		t.Errorf("Validate(bytes acked = sent + FIN) = %v", err)
	}
	for _, tc := range []struct {
		field string
		bad   func(*Record)
	}{
		{"min_rtt", func(r *Record) { r.MinRTT = -time.Millisecond }},
		{"smoothed_rtt", func(r *Record) { r.SmoothedRTT = -1 }},
		{"rtt_var", func(r *Record) { r.RTTVar = -1 }},
		{"busy_time", func(r *Record) { r.BusyTime = -1 }},
		{"retransmitted_segments", func(r *Record) { r.Retransmits = 100 + maxSynAckRetries + 1 }},
		{"lost_segments", func(r *Record) { r.Lost = 11 }},
		{"bytes_retrans", func(r *Record) { r.BytesRetrans = 150001 }},
		{"bytes_acked", func(r *Record) { r.BytesAcked = 150002 }},
		{"sndbuf_limited", func(r *Record) { r.SndbufLimited = time.Second }},
		{"bbr.min_rtt", func(r *Record) { r.BBR = BBRInfo{Bandwidth: 1, MinRTT: -1} }},
		{"pacing_gain", func(r *Record) { r.BBR = BBRInfo{Bandwidth: 1, PacingGain: -1} }},
	} {
		r := good
		tc.bad(&r)
		err := r.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Validate(bad %s) = %v, want an error naming %s", tc.field, err, tc.field)
		}
	}
}

func TestMonitorConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   MonitorConfig
		field string
	}{
		{MonitorConfig{SampleRate: -0.1}, "sample_rate"},
		{MonitorConfig{SampleRate: 1.5}, "sample_rate"},
		{MonitorConfig{SampleRate: 0.5, Interval: -time.Second}, "interval"},
		{MonitorConfig{SampleRate: 0.5, Interval: time.Millisecond}, "interval"},
	} {
		if _, err := NewMonitor(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewMonitor(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

func TestMonitorSampleRate(t *testing.T) {
	_, s := pair(t)
	count := func(rate float64, n int) int {
		m, err := NewMonitor(MonitorConfig{SampleRate: rate})
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for range n {
			if f := m.Track(s, func(*Record, Reason) {}); f != nil {
				k++
			}
		}
		return k
	}
	if k := count(0, 1000); k != 0 {
		t.Errorf("rate 0 tracked %d of 1000", k)
	}
	if k := count(1, 1000); k != 1000 {
		t.Errorf("rate 1 tracked %d of 1000", k)
	}
	// Binomial(20000, 0.1): sd ≈ 42; 6 sd either side is never hit by chance.
	if k := count(0.1, 20000); k < 2000-255 || k > 2000+255 {
		t.Errorf("rate 0.1 tracked %d of 20000, want 2000 ± 255", k)
	}
	var nilFlow *Flow
	if err := nilFlow.Finish(); err != nil {
		t.Errorf("nil Flow Finish = %v", err)
	}
}

func TestMonitorPeriodicAndFinal(t *testing.T) {
	c, s := pair(t)
	send(t, s, c, 1<<20)
	synctest.Test(t, func(t *testing.T) {
		m, err := NewMonitor(MonitorConfig{SampleRate: 1, Interval: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var got []Reason
		var last Record
		f := m.Track(s, func(r *Record, why Reason) {
			got = append(got, why)
			last = *r
		})
		time.Sleep(31 * time.Second) // six intervals in the bubble's clock
		synctest.Wait()
		if err := f.Finish(); err != nil {
			t.Fatal(err)
		}
		if err := f.Finish(); err != nil {
			t.Errorf("second Finish = %v", err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []Reason{Periodic, Periodic, Periodic, Periodic, Periodic, Periodic, Final}
		if !slices.Equal(got, want) {
			t.Errorf("samples over 31s at a 5s interval, then Finish = %v, want %v", got, want)
		}
		if last.BytesSent < 1<<20 {
			t.Errorf("final sample's bytes_sent = %d, want at least %d", last.BytesSent, 1<<20)
		}
	})
}

func BenchmarkSample(b *testing.B) {
	for _, cc := range []string{"cubic", "bbr"} {
		b.Run(cc, func(b *testing.B) {
			c, s := pair(b)
			if err := SetCongestion(s, cc); err != nil {
				b.Skip(err)
			}
			send(b, s, c, 1<<20)
			smp, err := NewSampler(s)
			if err != nil {
				b.Fatal(err)
			}
			var r Record
			b.ReportAllocs()
			for b.Loop() {
				if err := smp.Sample(&r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzParseAvailable(f *testing.F) {
	f.Add("reno bbr cubic\n")
	f.Add("")
	f.Add("  cubic\tcubic  \n\n")
	f.Fuzz(func(t *testing.T, s string) {
		names := parseAvailable(s)
		if !slices.IsSorted(names) {
			t.Errorf("parseAvailable(%q) = %v, not sorted", s, names)
		}
		for i, n := range names {
			if n == "" || strings.ContainsAny(n, " \t\n") {
				t.Errorf("parseAvailable(%q) has name %q", s, n)
			}
			if i > 0 && names[i-1] == n {
				t.Errorf("parseAvailable(%q) repeats %q", s, n)
			}
			if err := checkIn(n, names); err != nil {
				t.Errorf("checkIn(%q, %v) = %v", n, names, err)
			}
		}
	})
}
