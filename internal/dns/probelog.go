package dns

import (
	"net/netip"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/dnsname"
)

// ProbeQuery is one query the server answered for a probe name: which
// resolver asked on behalf of which probe, and the client subnet it
// passed on. The measurement side joins it with the probe's report by
// Nonce (the client's prefix ↔ its resolver's address).
type ProbeQuery struct {
	// Seq numbers queries in the order they arrived, from 1.
	Seq  uint64
	Time time.Time
	// Name is the probe name asked (canonical, without the trailing
	// dot); Nonce is its unique part.
	Name      string
	Nonce     string
	Appliance string
	Family    dnsname.Family
	// QType is the type asked ("A", "AAAA", …).
	QType string
	// Resolver is the address the query came from, Transport "udp" or
	// "tcp".
	Resolver  netip.AddrPort
	Transport string
	// ECS is the EDNS Client Subnet the resolver sent (RFC 7871); not
	// valid when it sent none.
	ECS netip.Prefix
}

// ProbeLog keeps the latest probe queries in a ring of fixed size:
// memory is bounded, and a consumer that falls behind loses the oldest
// entries (Since says how many).
type ProbeLog struct {
	mu   sync.Mutex
	ring []ProbeQuery
	next uint64 // Seq of the next entry
}

func newProbeLog(size int) *ProbeLog {
	return &ProbeLog{ring: make([]ProbeQuery, size), next: 1}
}

func (l *ProbeLog) add(q ProbeQuery) {
	l.mu.Lock()
	q.Seq = l.next
	l.ring[q.Seq%uint64(len(l.ring))] = q
	l.next++
	l.mu.Unlock()
}

// oldest is the Seq of the oldest entry held; l.mu is held.
func (l *ProbeLog) oldest() uint64 {
	if n := uint64(len(l.ring)); l.next > n {
		return l.next - n
	}
	return 1
}

// Since returns the entries with Seq >= seq still held, oldest first,
// the seq to pass next time, and how many entries from seq on were
// already overwritten (lost).
func (l *ProbeLog) Since(seq uint64) (entries []ProbeQuery, next, lost uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if o := l.oldest(); seq < o {
		if seq > 0 {
			lost = o - seq
		} else {
			lost = o - 1
		}
		seq = o
	}
	for s := seq; s < l.next; s++ {
		entries = append(entries, l.ring[s%uint64(len(l.ring))])
	}
	return entries, l.next, lost
}

// Lookup returns the held queries for a probe nonce, oldest first.
func (l *ProbeLog) Lookup(nonce string) []ProbeQuery {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ProbeQuery
	for s := l.oldest(); s < l.next; s++ {
		if e := l.ring[s%uint64(len(l.ring))]; e.Nonce == nonce {
			out = append(out, e)
		}
	}
	return out
}
