package tcpinfo_test

import (
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/netem"
	"github.com/ocdn/ocdn/internal/netem/netemtest"
	"github.com/ocdn/ocdn/internal/tcpinfo"
)

// download sends size bytes from a server on p's server side to a client
// on its client side, tracking the server's connection as a server would,
// and returns the final TCP_INFO sample, taken after the client has
// acknowledged everything.
func download(t *testing.T, p *netem.Path, cc string, size int64) tcpinfo.Record {
	t.Helper()
	m, err := tcpinfo.NewMonitor(tcpinfo.MonitorConfig{SampleRate: 1, Interval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var final tcpinfo.Record
	var periodic atomic.Int64
	var f *tcpinfo.Flow
	netemtest.Download(t, p, cc, "127.1.0.7:0", netip.MustParseAddr("127.64.0.9"), size, netemtest.Server{
		// What a server does: track at accept, Finish before closing.
		Accepted: func(c net.Conn) {
			f = m.Track(c, func(rec *tcpinfo.Record, why tcpinfo.Reason) {
				if why == tcpinfo.Final {
					final = *rec
				} else {
					periodic.Add(1)
				}
			})
		},
		Done: func(net.Conn) error { return f.Finish() },
	})
	r := final
	if err := r.Validate(); err != nil {
		t.Errorf("Validate(final sample) = %v", err)
	}
	t.Logf("%s, %d periodic samples; final: min RTT %v, srtt %v, rttvar %v, cwnd %d, retransmits %d of %d data segments (%.2f%%), lost now %d, RTOs %d, spurious %d, delivery %.2f Mbit/s, busy %v (rwnd-limited %v, sndbuf-limited %v), bbr %+v",
		cc, periodic.Load(), r.MinRTT, r.SmoothedRTT, r.RTTVar, r.Cwnd, r.Retransmits, r.DataSegsOut,
		100*r.RetransmitRate(), r.Lost, r.RTOs, r.SpuriousRetransmits, float64(r.DeliveryRate)*8/1e6,
		r.BusyTime, r.RwndLimited, r.SndbufLimited, r.BBR)
	return r
}

var (
	clients = []netip.Prefix{netip.MustParsePrefix("127.64.0.0/16")}
	servers = []netip.Prefix{netip.MustParsePrefix("127.1.0.0/16")}
)

// The server's own view of a connection over an emulated lossy link: it
// retransmits about as often as the link drops, and its min RTT is the
// link's. Over the same link without loss, it retransmits nothing.
func TestRecordOverEmulatedLink(t *testing.T) {
	const rtt, size = 30 * time.Millisecond, 3 << 19
	for _, tc := range []struct {
		loss, rate float64
		cc         string
	}{{0, 0, "cubic"}, {0.02, 20e6, "cubic"}, {0.02, 20e6, "bbr"}} {
		link := netem.Symmetric(rtt, tc.rate, tc.loss)
		if tc.rate > 0 {
			link.Down.QueueBytes = int(tc.rate / 8 * 0.05) // 50 ms
		}
		p := netemtest.NewPath(t, netem.PathConfig{ClientPrefixes: clients, ServerPrefixes: servers, Link: link, Seed: 5})
		r := download(t, p, tc.cc, size)
		st := p.Stats().Down
		dropped := float64(st.LossDrops) / float64(st.Packets)
		t.Logf("loss %.3f on %s: the emulator dropped %d of %d packets (%.2f%%) at random, %d at the queue",
			tc.loss, tc.cc, st.LossDrops, st.Packets, 100*dropped, st.QueueDrops)
		if r.MinRTT < rtt || r.MinRTT > rtt+rtt/2 {
			t.Errorf("loss %v, %s: min RTT %v, want the emulated %v (+ up to 50%% for serialization and timers)", tc.loss, tc.cc, r.MinRTT, rtt)
		}
		if r.CongestionControl != tc.cc {
			t.Errorf("congestion control %q, want %q", r.CongestionControl, tc.cc)
		}
		if r.BytesAcked < size {
			t.Errorf("bytes acked %d, want at least %d", r.BytesAcked, size)
		}
		drops := st.LossDrops + st.QueueDrops
		// Retransmissions the receiver reported as duplicates (DSACK) were
		// not needed: probes fired while a loaded machine held back ACKs.
		needed := r.Retransmits - min(r.Retransmits, r.SpuriousRetransmits)
		if tc.loss == 0 && tc.rate == 0 && needed != 0 {
			t.Errorf("%d retransmissions (%d spurious) over a link without loss or a queue", r.Retransmits, r.SpuriousRetransmits)
		}
		if tc.loss > 0 && (dropped < tc.loss/2 || dropped > 2*tc.loss) {
			t.Errorf("the emulator dropped %.4f of packets at loss %v", dropped, tc.loss)
		}
		// Every data segment the link drops is sent again (a dropped
		// retransmission again too): the server's count of
		// retransmissions is the emulator's count of drops, give or take
		// tail-loss probes and spurious retransmissions.
		if diff := math.Abs(float64(needed) - float64(drops)); diff > max(3, 0.1*float64(drops)) {
			t.Errorf("%s at loss %v: the server retransmitted %d segments (%d spurious), the link dropped %d packets", tc.cc, tc.loss, r.Retransmits, r.SpuriousRetransmits, drops)
		}
	}
}
