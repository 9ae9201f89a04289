// Package happyeyeballs provides a dialer that connects to a dual-stack
// host as Happy Eyeballs version 2 (RFC 8305) does: it resolves AAAA and A
// in parallel, prefers IPv6, interleaves the families, starts a new
// connection attempt every attempt delay (or as soon as one fails), keeps
// the first connection that succeeds and cancels the rest. It records
// which family won and when each attempt started and ended, so clients
// can report what the fallback cost them.
package happyeyeballs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/ocdn/ocdn/internal/dnsname"
)

// The RFC's recommended values (RFC 8305 §8).
const (
	// DefaultResolutionDelay is how long to wait for AAAA after A arrived.
	DefaultResolutionDelay = 50 * time.Millisecond
	// DefaultAttemptDelay is the wait between starting connection attempts.
	DefaultAttemptDelay = 250 * time.Millisecond
)

// Resolver looks up a host's addresses of one family; network is "ip6"
// or "ip4". *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer dials by Happy Eyeballs. The zero value uses the system resolver,
// a plain net.Dialer and the RFC's delays. A Dialer may be used by
// several goroutines at once once configured.
type Dialer struct {
	// Resolver resolves host names (default net.DefaultResolver). IP
	// literals are never resolved.
	Resolver Resolver
	// Dial opens one connection to one address (default a net.Dialer);
	// a caller that binds a source address or emulates links puts that
	// here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ResolutionDelay (default 50 ms) and AttemptDelay (default 250 ms)
	// are the RFC's delays.
	ResolutionDelay, AttemptDelay time.Duration
	// Alternates, when set, returns other names of the same server whose
	// addresses are raced along with the host's own: ocdn's appliances
	// have one name per family (ipv4-…, ipv6-…), so a client given both
	// URLs of an appliance can race the two.
	Alternates func(host string) []string
	// Observe, when set, is called with the record of every dial, won or
	// lost, before DialContext returns.
	Observe func(Result)
}

// familyOf is a's family (an IPv4-mapped IPv6 address is IPv4).
func familyOf(a netip.Addr) dnsname.Family {
	if a.Unmap().Is4() {
		return dnsname.IPv4
	}
	return dnsname.IPv6
}

// Attempt is one connection attempt. Times are from the start of the dial.
type Attempt struct {
	Addr  netip.AddrPort
	Start time.Duration
	// End is when the attempt succeeded, failed or was cancelled.
	End time.Duration
	// Err is nil for the winner; context.Canceled for an attempt
	// abandoned because another won (or the dial was cancelled).
	Err error
}

// Result records one dial.
type Result struct {
	Host string
	// Family is the winner's family (dnsname's, the one appliance
	// names and the probe log use); 0 when every attempt failed.
	Family dnsname.Family
	Winner netip.AddrPort
	// Resolve6 and Resolve4 are how long each family's lookup took;
	// zero for a family not looked up (an IP literal) or not answered
	// before the dial ended.
	Resolve6, Resolve4 time.Duration
	Attempts           []Attempt
	// Elapsed is the whole dial, resolution included.
	Elapsed time.Duration
}

// DialContext connects to addr (host:port) over network "tcp", "tcp4" or
// "tcp6", and has the signature of http.Transport.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, _, err := d.DialResult(ctx, network, addr)
	return c, err
}

// answer is one family's resolution.
type answer struct {
	name   string // the host or one of its alternates
	family dnsname.Family
	addrs  []netip.Addr
	err    error
	took   time.Duration
}

// outcome is one attempt's end.
type outcome struct {
	i    int
	conn net.Conn
	err  error
}

// DialResult is DialContext that also returns the dial's record.
func (d *Dialer) DialResult(ctx context.Context, network, addr string) (net.Conn, Result, error) {
	start := time.Now()
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, Result{}, fmt.Errorf("happyeyeballs: address %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, Result{}, fmt.Errorf("happyeyeballs: address %q: port %q is not a number from 0 to 65535", addr, portStr)
	}
	var want6, want4 bool
	switch network {
	case "tcp":
		want6, want4 = true, true
	case "tcp6":
		want6 = true
	case "tcp4":
		want4 = true
	default:
		return nil, Result{}, fmt.Errorf("happyeyeballs: network %q: want tcp, tcp4 or tcp6", network)
	}
	res := Result{Host: host}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Resolution: one goroutine per (name, family), each sending once on
	// the buffered channel and exiting when its lookup returns (cancel
	// above ends a lookup the dial no longer needs).
	names := []string{host}
	if d.Alternates != nil {
		names = append(names, d.Alternates(host)...)
	}
	answers := make(chan answer, 2*len(names))
	pending := 0
	var q6, q4 []netip.AddrPort
	for _, name := range names {
		if ip, err := netip.ParseAddr(name); err == nil {
			ap := netip.AddrPortFrom(ip.Unmap(), uint16(port))
			if f := familyOf(ip); f == dnsname.IPv6 && want6 {
				q6 = append(q6, ap)
			} else if f == dnsname.IPv4 && want4 {
				q4 = append(q4, ap)
			}
			continue
		}
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		for _, f := range []dnsname.Family{dnsname.IPv6, dnsname.IPv4} {
			if (f == dnsname.IPv6 && !want6) || (f == dnsname.IPv4 && !want4) {
				continue
			}
			pending++
			go func() {
				netw := "ip4"
				if f == dnsname.IPv6 {
					netw = "ip6"
				}
				addrs, err := r.LookupNetIP(ctx, netw, name)
				answers <- answer{name: name, family: f, addrs: addrs, err: err, took: time.Since(start)}
			}()
		}
	}
	var lookupErrs []error
	add := func(a answer) {
		pending--
		if a.err != nil {
			lookupErrs = append(lookupErrs, fmt.Errorf("resolve %s (%s): %w", a.name, a.family, a.err))
			return
		}
		if a.family == dnsname.IPv6 {
			res.Resolve6 = max(res.Resolve6, a.took)
		} else {
			res.Resolve4 = max(res.Resolve4, a.took)
		}
		for _, ip := range a.addrs {
			ip = ip.Unmap()
			if familyOf(ip) != a.family {
				continue
			}
			ap := netip.AddrPortFrom(ip, uint16(port))
			if a.family == dnsname.IPv6 && !slices.Contains(q6, ap) {
				q6 = append(q6, ap)
			} else if a.family == dnsname.IPv4 && !slices.Contains(q4, ap) {
				q4 = append(q4, ap)
			}
		}
	}
	finish := func() { res.Elapsed = time.Since(start) }

	// Wait until attempts may begin (RFC 8305 §3): at once when AAAA has
	// answered (or only literals are known); after ResolutionDelay when
	// only A has.
	resolutionDelay := d.ResolutionDelay
	if resolutionDelay <= 0 {
		resolutionDelay = DefaultResolutionDelay
	}
	attemptDelay := d.AttemptDelay
	if attemptDelay <= 0 {
		attemptDelay = DefaultAttemptDelay
	}
	have6 := func() bool { return len(q6) > 0 }
	var delay <-chan time.Time
	for pending > 0 && !have6() {
		if len(q4) > 0 && delay == nil {
			t := time.NewTimer(resolutionDelay)
			defer t.Stop()
			delay = t.C
		}
		select {
		case a := <-answers:
			add(a)
			continue
		case <-delay:
		case <-ctx.Done():
			finish()
			d.observe(res)
			return nil, res, fmt.Errorf("happyeyeballs: dial %s: %w", addr, ctx.Err())
		}
		break
	}
	if len(q6)+len(q4) == 0 {
		finish()
		d.observe(res)
		if len(lookupErrs) == 0 {
			lookupErrs = append(lookupErrs, fmt.Errorf("resolve %s: no addresses", host))
		}
		return nil, res, fmt.Errorf("happyeyeballs: dial %s: %w", addr, errors.Join(lookupErrs...))
	}

	// Connection attempts, interleaving the families starting with IPv6
	// (RFC 8305 §4, first address family count 1). Each attempt is a
	// goroutine that sends once on outcomes; the loop below receives from
	// every attempt it started before returning, closing the connections
	// of losers that succeeded too late, so none outlives the dial.
	dial := d.Dial
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	outcomes := make(chan outcome)
	var cancels []context.CancelFunc
	next := dnsname.IPv6
	startNext := func() bool {
		var ap netip.AddrPort
		switch {
		case len(q6) > 0 && (next == dnsname.IPv6 || len(q4) == 0):
			ap, q6 = q6[0], q6[1:]
			next = dnsname.IPv4
		case len(q4) > 0:
			ap, q4 = q4[0], q4[1:]
			next = dnsname.IPv6
		default:
			return false
		}
		actx, acancel := context.WithCancel(ctx)
		cancels = append(cancels, acancel)
		i := len(res.Attempts)
		res.Attempts = append(res.Attempts, Attempt{Addr: ap, Start: time.Since(start)})
		go func() {
			c, err := dial(actx, network, ap.String())
			outcomes <- outcome{i: i, conn: c, err: err}
		}()
		return true
	}
	startNext()
	running := 1
	timer := time.NewTimer(attemptDelay)
	defer timer.Stop()
	// due is set when the attempt delay passed with no address left to
	// try: the next address to arrive starts at once.
	due := false
	done := ctx.Done()
	var winner net.Conn
	var dialErrs []error
	for running > 0 || (winner == nil && pending > 0 && done != nil) {
		select {
		case o := <-outcomes:
			running--
			at := &res.Attempts[o.i]
			at.End = time.Since(start)
			switch {
			case o.err == nil && winner == nil:
				winner = o.conn
				res.Winner, res.Family = at.Addr, familyOf(at.Addr.Addr())
				for j, c := range cancels {
					if j != o.i {
						c()
					}
				}
			case o.err == nil:
				o.conn.Close() // a loser that connected after the winner
				at.Err = context.Canceled
			case winner != nil || done == nil:
				at.Err = context.Canceled
			default:
				at.Err = o.err
				dialErrs = append(dialErrs, fmt.Errorf("%s: %w", at.Addr, o.err))
				// A failure starts the next attempt at once (§5).
				if startNext() {
					running++
					due = false
					resetTimer(timer, attemptDelay)
				} else {
					due = true
				}
			}
		case a := <-answers:
			add(a) // late answers join the list (§4)
			if winner == nil && done != nil && (due || running == 0) && startNext() {
				running++
				due = false
				resetTimer(timer, attemptDelay)
			}
		case <-timer.C:
			if winner == nil && done != nil {
				if startNext() {
					running++
					timer.Reset(attemptDelay)
				} else {
					due = true
				}
			}
		case <-done:
			done = nil
			for _, c := range cancels {
				c()
			}
		}
	}
	for _, c := range cancels {
		c()
	}
	finish()
	d.observe(res)
	if winner != nil {
		return winner, res, nil
	}
	if err := ctx.Err(); err != nil {
		dialErrs = append(dialErrs, err)
	}
	return nil, res, fmt.Errorf("happyeyeballs: dial %s: %w", addr, errors.Join(append(lookupErrs, dialErrs...)...))
}

func (d *Dialer) observe(r Result) {
	if d.Observe != nil {
		d.Observe(r)
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	t.Reset(d)
}
