package netem_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ocdn/ocdn/internal/conntest"
	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/netem/netemtest"
	"github.com/ocdn/ocdn/internal/tcpinfo"
)

var (
	labClients = []netip.Prefix{netip.MustParsePrefix("127.64.0.0/16")}
	labServers = []netip.Prefix{netip.MustParsePrefix("127.1.0.0/16")}
)

// echoServer listens on addr on p's server side and echoes.
func echoServer(t testing.TB, p *netem.Path, addr string) net.Listener {
	t.Helper()
	ln, err := p.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conntest.Serve(t, ln, func(c net.Conn) {
		go func() { defer c.Close(); io.Copy(c, c) }()
	})
	return ln
}

func TestPathCarriesLabAddresses(t *testing.T) {
	p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: netem.Symmetric(0, 0, 0)})
	ln := echoServer(t, p, "127.1.0.7:8443")
	src := &net.TCPAddr{IP: net.IPv4(127, 64, 3, 9)}
	c, err := p.Dialer(&net.Dialer{LocalAddr: src})(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := []byte("through the tun")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(msg) {
		t.Errorf("echo = %q, want %q", got, msg)
	}
	st := p.Stats()
	t.Logf("stats %+v", st)
	if st.Up.Delivered == 0 || st.Down.Delivered == 0 {
		t.Errorf("the path carried no packets (%+v): traffic bypassed the emulator", st)
	}
}

// dialLab dials addr on p from a client source address.
func dialLab(t testing.TB, p *netem.Path, addr string) net.Conn {
	t.Helper()
	return dialFrom(t, p, net.IPv4(127, 64, 3, 9), addr)
}

// echoTimes measures n one-byte round trips over c.
func echoTimes(t testing.TB, c net.Conn, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	b := []byte{0}
	for range n {
		start := time.Now()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

func TestPathRTT(t *testing.T) {
	const rtt = 40 * time.Millisecond
	link := netem.Symmetric(rtt, 0, 0)
	p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: link})
	ln := echoServer(t, p, "127.1.0.7:8443")
	start := time.Now()
	c := dialLab(t, p, ln.Addr().String())
	connect := time.Since(start)
	got := echoTimes(t, c, 20)
	lo, med := slices.Min(got), median(got)
	t.Logf("emulated RTT %v: connect %v, echo min %v median %v max %v", rtt, connect, lo, med, slices.Max(got))
	// Never early: that would be an emulator bug on any machine. Late by
	// timer slack and scheduling: the bound only catches a gross error.
	if connect < rtt || lo < rtt {
		t.Errorf("connect %v, fastest echo %v: faster than the emulated RTT %v", connect, lo, rtt)
	}
	if med > rtt+rtt/2 {
		t.Errorf("median echo %v, want within %v of the emulated RTT %v", med, rtt/2, rtt)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// udpEnds returns a UDP socket on each side of p: the server's at
// 127.1.0.7:9000, the client's at 127.64.0.9:9001, each with a receive
// buffer large enough that the socket itself drops nothing in a test.
func udpEnds(t testing.TB, p *netem.Path) (server, client *net.UDPConn) {
	t.Helper()
	open := func(in func(func() error) error, addr string) *net.UDPConn {
		var c *net.UDPConn
		err := in(func() (err error) {
			c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := c.SyscallConn()
		raw.Control(func(fd uintptr) {
			// FORCE: root may exceed rmem_max, which a new namespace
			// keeps at its small default.
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
			// Arrival times from the kernel, so that a reader that is
			// scheduled late does not bunch them.
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	server = open(p.InServer, "127.1.0.7:9000")
	client = open(p.InClient, "127.64.0.9:9001")
	return server, client
}

// receive reads datagrams from c, recording each arrival time, until
// done(received) holds; it re-checks done every 50ms while nothing
// arrives, so it waits on the condition however slow the machine is. A
// condition still false after a minute of silence is a bug: it fails
// with what p counted.
func receive(t testing.TB, p *netem.Path, c *net.UDPConn, done func(n int) bool) []time.Time {
	t.Helper()
	var at []time.Time
	buf := make([]byte, 2048)
	oob := make([]byte, 128)
	last := time.Now()
	for !done(len(at)) {
		if time.Since(last) > time.Minute {
			t.Fatalf("received %d datagrams, then nothing for a minute; path stats %+v", len(at), p.Stats())
		}
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			t.Fatal(err)
		}
		last = time.Now()
		at = append(at, kernelTime(t, oob[:oobn]))
	}
	return at
}

// kernelTime is the SO_TIMESTAMPNS arrival time in a datagram's control
// messages.
func kernelTime(t testing.TB, oob []byte) time.Time {
	t.Helper()
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix())
		}
	}
	t.Fatal("datagram without SO_TIMESTAMPNS")
	return time.Time{}
}

// rcvbufErrors is the client side's count of datagrams its sockets had
// no room for.
func rcvbufErrors(t testing.TB, p *netem.Path) int {
	t.Helper()
	n := 0
	err := p.InClient(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i, name := range names {
				if name == "RcvbufErrors" {
					n, err = strconv.Atoi(f[i])
					return err
				}
			}
		}
		return errors.New("no Udp RcvbufErrors in /proc/net/snmp")
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPathLoss(t *testing.T) {
	const loss, n = 0.02, 4000
	p := netemtest.NewPath(t, netem.PathConfig{
		ClientPrefixes: labClients, ServerPrefixes: labServers,
		Link: netem.PacketLink{Down: netem.Shape{Loss: loss, Delay: time.Millisecond}},
		Seed: 17,
	})
	server, client := udpEnds(t, p)
	dst := client.LocalAddr().(*net.UDPAddr)
	msg := make([]byte, 200)
	for range n {
		if _, err := server.WriteToUDP(msg, dst); err != nil {
			t.Fatal(err)
		}
	}
	var st netem.PathStats
	got := receive(t, p, client, func(received int) bool {
		st = p.Stats()
		d := st.Down
		return d.Packets == n && d.Delivered == d.Packets-d.LossDrops-d.QueueDrops && uint64(received+rcvbufErrors(t, p)) == d.Delivered
	})
	d := st.Down
	measured := 1 - float64(len(got))/float64(d.Packets)
	t.Logf("loss %.3f configured; %d packets entered, %d received: measured %.4f (emulator dropped %d; socket dropped %d)",
		loss, d.Packets, len(got), measured, d.LossDrops, rcvbufErrors(t, p))
	// Binomial(4000, 0.02) has sd 8.9 packets (0.22%); ±5 sd.
	if measured < 0.0089 || measured > 0.0311 {
		t.Errorf("measured loss %.4f over %d packets, want %.3f ± 0.0111 (5 sd)", measured, d.Packets, loss)
	}
	if d.QueueDrops != 0 {
		t.Errorf("queue dropped %d packets on a link without a rate limit", d.QueueDrops)
	}
}

func TestPathRate(t *testing.T) {
	const rate = 8e6
	const n, size = 800, 1000 // IP bytes per packet: 972 payload + 28 header
	p := netemtest.NewPath(t, netem.PathConfig{
		ClientPrefixes: labClients, ServerPrefixes: labServers,
		// The queue holds the whole burst, so the link drains it at its
		// rate without a gap however late the sender runs.
		Link: netem.PacketLink{Down: netem.Shape{RateBps: rate, QueueBytes: 2 * n * size, Delay: 5 * time.Millisecond}},
	})
	server, client := udpEnds(t, p)
	dst := client.LocalAddr().(*net.UDPAddr)
	msg := make([]byte, size-28)
	for range n {
		if _, err := server.WriteToUDP(msg, dst); err != nil {
			t.Fatal(err)
		}
	}
	var st netem.PathStats
	at := receive(t, p, client, func(received int) bool {
		st = p.Stats()
		return st.Down.Packets == st.Down.Delivered && uint64(received) == st.Down.Delivered && received > 0 && st.Down.Packets+st.Down.QueueDrops >= n-50
	})
	// The rate between the arrivals of the 10th and 90th percentile
	// packets: the first ones meet a deliverer just woken while the
	// sender still holds the CPU, and would skew a two-point estimate.
	i, j := len(at)/10, len(at)*9/10
	got := float64((j-i)*size*8) / at[j].Sub(at[i]).Seconds()
	t.Logf("rate %.1f Mbit/s configured; %d packets received, %.3f Mbit/s between the 10th and 90th percentile arrivals (%+.2f%%); max queue %d bytes, %v",
		rate/1e6, len(at), got/1e6, 100*(got-rate)/rate, st.Down.MaxQueueBytes, st.Down.MaxQueueDelay)
	if len(at) < n/2 {
		t.Fatalf("only %d of %d packets reached the emulator (stats %+v)", len(at), n, st.Down)
	}
	// Kernel timestamps leave only the deliverer's timer lateness at the
	// two packets, a few ms over 640 ms.
	if got > 1.02*rate || got < 0.95*rate {
		t.Errorf("rate through an %.1f Mbit/s bottleneck = %.3f Mbit/s, want within [-5%%, +2%%]", rate/1e6, got/1e6)
	}
}

// A sender that fills the bottleneck queue adds the queue's delay to
// every packet behind it (bufferbloat), and what does not fit is dropped.
func TestPathFullQueueInflatesRTT(t *testing.T) {
	const (
		rate  = 8e6
		queue = 50_000 // 50 ms at 8 Mbit/s
		burst = 45     // 1000-byte packets sent ahead of each echo: 45 ms
		rtt   = 20 * time.Millisecond
	)
	link := netem.PacketLink{
		Down: netem.Shape{Delay: rtt / 2, RateBps: rate, QueueBytes: queue},
		Up:   netem.Shape{Delay: rtt / 2},
	}
	p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: link})
	server, client := udpEnds(t, p)
	serverDone := make(chan struct{})
	go func() {
		// On each probe: a burst of bulk data to the client, then the
		// echo, which queues behind it.
		defer close(serverDone)
		buf := make([]byte, 2048)
		bulk := make([]byte, 1000-28)
		for {
			n, from, err := server.ReadFromUDP(buf)
			if err != nil {
				return
			}
			for range burst {
				server.WriteToUDP(bulk, from)
			}
			server.WriteToUDP(buf[:n], from)
		}
	}()
	defer func() { server.Close(); <-serverDone }()
	dst := server.LocalAddr().(*net.UDPAddr)
	var rtts []time.Duration
	buf := make([]byte, 2048)
	for i := range 10 {
		probe := []byte{'p', byte(i)}
		start := time.Now()
		if _, err := client.WriteToUDP(probe, dst); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := client.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 2 && buf[0] == 'p' && buf[1] == byte(i) {
				break
			}
		}
		rtts = append(rtts, time.Since(start))
	}
	queued := time.Duration(float64(burst*1000) * 8 / rate * float64(time.Second))
	lo, med := slices.Min(rtts), median(rtts)
	st := p.Stats()
	t.Logf("probe RTT behind %d bytes of queue: min %v median %v (base %v + queue %v = %v); max queue %d bytes, %v",
		burst*1000, lo, med, rtt, queued, rtt+queued, st.Down.MaxQueueBytes, st.Down.MaxQueueDelay)
	if lo < rtt+queued {
		t.Errorf("fastest probe %v behind a %v queue, want at least %v", lo, queued, rtt+queued)
	}
	if med > 2*(rtt+queued) {
		t.Errorf("median probe %v, want near %v", med, rtt+queued)
	}
	if st.Down.QueueDrops != 0 {
		t.Errorf("%d packets tail-dropped although each burst fitted the queue", st.Down.QueueDrops)
	}

	// Now more than the queue holds: the excess is tail-dropped and the
	// queue never exceeds its size.
	bulk := make([]byte, 1000-28)
	for range 2 * queue / 1000 {
		server.WriteToUDP(bulk, client.LocalAddr().(*net.UDPAddr))
	}
	st = p.Stats()
	for st.Down.Packets < st.Down.Delivered+st.Down.QueueDrops || st.Down.QueueDrops == 0 {
		// The pump admits the burst within moments; waiting on the count
		// it must reach, re-checked on each packet the client gets.
		client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		client.Read(buf)
		st = p.Stats()
	}
	t.Logf("after a %d-byte burst into a %d-byte queue: %d tail drops, max queue %d bytes", 2*queue, queue, st.Down.QueueDrops, st.Down.MaxQueueBytes)
	if st.Down.MaxQueueBytes > queue {
		t.Errorf("queue held %d bytes, more than its %d", st.Down.MaxQueueBytes, queue)
	}
}

// bulk sends size bytes from a server on p to a client, with the server's
// socket using congestion control cc, and samples the server's TCP_INFO
// every 100ms after the first second.
func bulk(t *testing.T, p *netem.Path, addr, cc string, size int64) (samples []tcpinfo.Record, final tcpinfo.Record) {
	t.Helper()
	var smp *tcpinfo.Sampler
	var next time.Time
	netemtest.Download(t, p, cc, addr, netip.MustParseAddr("127.64.3.9"), size, netemtest.Server{
		Accepted: func(c net.Conn) {
			var err error
			if smp, err = tcpinfo.NewSampler(c); err != nil {
				t.Error(err)
			}
			next = time.Now().Add(time.Second)
		},
		Wrote: func(net.Conn) {
			if now := time.Now(); smp != nil && now.After(next) {
				var rec tcpinfo.Record
				if err := smp.Sample(&rec); err == nil {
					samples = append(samples, rec)
				}
				next = now.Add(100 * time.Millisecond)
			}
		},
		Done: func(net.Conn) error { return smp.Sample(&final) },
	})
	return samples, final
}

func meanInflation(rs []tcpinfo.Record) time.Duration {
	var sum time.Duration
	for i := range rs {
		sum += rs[i].RTTInflation()
	}
	return sum / time.Duration(max(len(rs), 1))
}

// On a deep queue CUBIC fills the buffer until it drops, so its RTT
// rises by most of the queue's delay; BBR paces at its estimate of the
// bottleneck rate and keeps the queue near one BDP. The emulated queue
// must show that difference, or it is not a queue TCP can feel.
func TestPathBBRKeepsDeepQueueShorterThanCUBIC(t *testing.T) {
	const rate, rtt = 12e6, 20 * time.Millisecond
	queue := int(rate / 8 * 0.2) // 200 ms
	link := netem.PacketLink{
		Down: netem.Shape{Delay: rtt / 2, RateBps: rate, QueueBytes: queue},
		Up:   netem.Shape{Delay: rtt / 2},
	}
	p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: link})
	infl := map[string]time.Duration{}
	for i, cc := range []string{"cubic", "bbr"} {
		samples, final := bulk(t, p, fmt.Sprintf("127.1.0.7:%d", 9100+i), cc, 4<<20)
		infl[cc] = meanInflation(samples)
		t.Logf("%s: %d samples, mean RTT inflation %v (queue holds %v); final min RTT %v, srtt %v, retransmits %d of %d segments, delivery rate %.2f Mbit/s",
			cc, len(samples), infl[cc], link.Down.QueueDelay(), final.MinRTT, final.SmoothedRTT, final.Retransmits, final.DataSegsOut, float64(final.DeliveryRate)*8/1e6)
		if final.MinRTT < rtt {
			t.Errorf("%s: min RTT %v below the emulated %v", cc, final.MinRTT, rtt)
		}
	}
	if infl["cubic"] < link.Down.QueueDelay()/4 {
		t.Errorf("CUBIC's mean RTT inflation %v on a %v queue: the queue did not fill", infl["cubic"], link.Down.QueueDelay())
	}
	if infl["bbr"] >= infl["cubic"] {
		t.Errorf("BBR's mean RTT inflation %v is not below CUBIC's %v on a deep queue", infl["bbr"], infl["cubic"])
	}
	t.Logf("stats %+v", p.Stats())
}

// One home downloading in bulk with CUBIC fills its line's deep queue.
// Another client of the same ISP, exchanging one-byte echoes meanwhile,
// waits behind that queue when the ISP's clients share one bottleneck
// (the default), and sees only the base round trip when each home has
// its own (Shape.PerClient): the difference between an ISP's congested
// core and a household's bufferbloated access line.
func TestPathPerClientQueues(t *testing.T) {
	const rate, rtt, queue = 8e6, 20 * time.Millisecond, 300_000 // 300 ms at 8 Mbit/s
	for _, perClient := range []bool{false, true} {
		t.Run(fmt.Sprint("per_client=", perClient), func(t *testing.T) {
			link := netem.PacketLink{
				Down: netem.Shape{Delay: rtt / 2, RateBps: rate, QueueBytes: queue, PerClient: perClient},
				Up:   netem.Shape{Delay: rtt / 2},
			}
			full := link.Down.QueueDelay()
			p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: link})
			echo := echoServer(t, p, "127.1.0.7:8443")

			// Home A: a CUBIC sender writing until the test stops it.
			lc := net.ListenConfig{Control: tcpinfo.ControlCongestion("cubic")}
			var ln net.Listener
			if err := p.InServer(func() (err error) {
				ln, err = lc.Listen(context.Background(), "tcp", "127.1.0.7:9200")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			accepted := conntest.Accept(t, ln)
			a, err := p.Dialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 64, 3, 9)}})(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			sc := <-accepted
			smp, err := tcpinfo.NewSampler(sc)
			if err != nil {
				t.Fatal(err)
			}
			read, wrote := make(chan struct{}), make(chan struct{})
			go func() { defer close(read); io.Copy(io.Discard, a) }()
			go func() {
				defer close(wrote)
				buf := make([]byte, 16<<10)
				for {
					if _, err := sc.Write(buf); err != nil {
						return // closed below
					}
				}
			}()
			defer func() { sc.Close(); <-wrote; a.Close(); <-read }()
			inflation := func() time.Duration {
				var rec tcpinfo.Record
				if err := smp.Sample(&rec); err != nil {
					t.Fatal(err)
				}
				return rec.RTTInflation()
			}

			// Client B (another /24) echoes one byte at a time: each echo
			// is the pace of the wait for A's queue to fill, then 15 of
			// them are measured with it full.
			b := dialFrom(t, p, net.IPv4(127, 64, 4, 9), echo.Addr().String())
			for i := 0; inflation() < full/2; i++ {
				if i == 5000 { // ≥ 100 s of echoes
					t.Fatalf("CUBIC's RTT inflation stayed below %v on a %v queue", full/2, full)
				}
				echoTimes(t, b, 1)
			}
			var got []time.Duration
			var ainfl time.Duration
			for range 15 {
				got = append(got, echoTimes(t, b, 1)...)
				ainfl += inflation()
			}
			ainfl /= 15
			st := p.Stats().Down
			t.Logf("A's CUBIC RTT inflation %v (queue %v full); B's echoes min %v median %v max %v (base %v); client queues %d, deepest %d bytes, %v",
				ainfl, full, slices.Min(got), median(got), slices.Max(got), rtt, st.ClientQueues, st.MaxQueueBytes, st.MaxQueueDelay)
			if ainfl < full/4 {
				t.Errorf("A's mean RTT inflation %v while B measured: its queue (%v) was not full", ainfl, full)
			}
			if lo := slices.Min(got); lo < rtt {
				t.Errorf("B's fastest echo %v, faster than the emulated %v", lo, rtt)
			}
			// A quarter of the queue apart: far above the emulator's and a
			// loaded machine's lateness, far below what A's queue adds.
			bound := rtt + full/4
			if med := median(got); perClient && med >= bound {
				t.Errorf("per-client queues: B's median echo %v behind A's full queue, want below %v (its own line is empty)", med, bound)
			} else if !perClient && med < bound {
				t.Errorf("shared queue: B's median echo %v, want at least %v (behind A's data)", med, bound)
			}
			want := 0
			if perClient {
				want = 2
			}
			if st.ClientQueues != want || st.ClientOverflow != 0 {
				t.Errorf("client queues %d, overflow %d; want %d and 0", st.ClientQueues, st.ClientOverflow, want)
			}
		})
	}
}

// dialFrom dials addr on p from src on the client side.
func dialFrom(t testing.TB, p *netem.Path, src net.IP, addr string) net.Conn {
	t.Helper()
	c, err := p.Dialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}})(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPathProfileAndSetLink(t *testing.T) {
	// A day in two halves, started 90 minutes ago: the second half, with
	// its 60 ms round trip, is in force.
	prof := &netem.Schedule[netem.PacketLink]{
		Period: 2 * time.Hour,
		Start:  time.Now().Add(-90 * time.Minute),
		Steps: []netem.Step[netem.PacketLink]{
			{At: 0, Link: netem.Symmetric(10*time.Millisecond, 0, 0)},
			{At: time.Hour, Link: netem.Symmetric(60*time.Millisecond, 0, 0)},
		},
	}
	p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Profile: prof})
	if got := p.Link().RTT(); got != 60*time.Millisecond {
		t.Errorf("Link().RTT() = %v in the schedule's second step, want 60ms", got)
	}
	ln := echoServer(t, p, "127.1.0.7:8443")
	c := dialLab(t, p, ln.Addr().String())
	if lo := slices.Min(echoTimes(t, c, 5)); lo < 60*time.Millisecond {
		t.Errorf("echo %v in a 60ms step", lo)
	}
	if err := p.SetLink(netem.Symmetric(10*time.Millisecond, 0, 0)); err != nil {
		t.Fatal(err)
	}
	got := echoTimes(t, c, 5)
	if lo, med := slices.Min(got), median(got); lo < 10*time.Millisecond || med > 40*time.Millisecond {
		t.Errorf("after SetLink to 10ms: echo min %v median %v", lo, med)
	}
	if err := p.SetLink(netem.PacketLink{Down: netem.Shape{Loss: 2}}); err == nil || !strings.Contains(err.Error(), "down.loss") {
		t.Errorf("SetLink(loss 2) = %v, want an error naming down.loss", err)
	}
	// SetProfile puts a schedule on the caller's clock (the lab's
	// streaming start, after the path was made).
	later := &netem.Schedule[netem.PacketLink]{Start: time.Now().Add(-time.Minute), Steps: []netem.Step[netem.PacketLink]{
		{At: 0, Link: netem.Symmetric(10*time.Millisecond, 0, 0)},
		{At: 30 * time.Second, Link: netem.Symmetric(40*time.Millisecond, 0, 0)},
	}}
	if err := p.SetProfile(later); err != nil {
		t.Fatal(err)
	}
	if got := p.Link().RTT(); got != 40*time.Millisecond {
		t.Errorf("after SetProfile: Link().RTT() = %v a minute in, want the second step's 40ms", got)
	}
	later.Steps[0].At = time.Second
	if err := p.SetProfile(later); err == nil || !strings.Contains(err.Error(), "steps[0].at") {
		t.Errorf("SetProfile(first step at 1s) = %v, want an error naming steps[0].at", err)
	}
}

func TestPathCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := netem.NewPath(netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers, Link: netem.Symmetric(5*time.Millisecond, 10e6, 0.01)})
	if err != nil {
		netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: labClients, ServerPrefixes: labServers}) // skips or fails with the reason
		t.Fatal(err)
	}
	server, client := udpEnds(t, p)
	for range 100 {
		server.WriteToUDP(make([]byte, 1000), client.LocalAddr().(*net.UDPAddr))
	}
	server.Close()
	client.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// InNetns's helper goroutines hand back their result just before
	// they return: give stragglers a moment, yielding, not sleeping.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines after Close = %d, before NewPath %d\n%s", after, before, buf[:runtime.Stack(buf, true)])
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
