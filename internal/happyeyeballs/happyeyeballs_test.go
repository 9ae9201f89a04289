package happyeyeballs

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/conntest"
	"github.com/ocdn/ocdn/internal/dnsname"
)

// resolver answers from fixed tables; a family whose gate is set answers
// only once the gate is closed (or the lookup's context ends).
type resolver struct {
	v6, v4     map[string][]netip.Addr
	gate6      chan struct{}
	gate4      chan struct{}
	answered4  chan struct{} // closed after the first A answer, if set
	lookups    chan string   // "ip6 host", if set
	failFamily string
}

func (r *resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if r.lookups != nil {
		r.lookups <- network + " " + host
	}
	gate, table := r.gate4, r.v4
	if network == "ip6" {
		gate, table = r.gate6, r.v6
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if network == r.failFamily {
		return nil, errors.New("server failure")
	}
	if r.answered4 != nil && network == "ip4" {
		defer close(r.answered4)
	}
	a, ok := table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

var (
	lo6 = netip.MustParseAddr("::1")
	lo4 = netip.MustParseAddr("127.0.0.1")
)

// listen4 is a working IPv4 listener on loopback; it returns the port
// and a channel of accepted connections.
func listen4(t *testing.T) (int, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().(*net.TCPAddr).Port, conntest.Accept(t, ln)
}

// listen6 is a working IPv6 listener on [::1]:port.
func listen6(t *testing.T, port int) <-chan net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on [::1]:%d: %v (IPv6 loopback is needed)", port, err)
	}
	return conntest.Accept(t, ln)
}

// blackhole6 makes [::1]:port a listener that never completes a
// handshake: its accept queue (backlog 0 holds one connection) is filled
// by one connection nobody accepts, after which Linux drops every SYN, so
// a connect hangs as it does towards a broken IPv6 path.
func blackhole6(t *testing.T, port int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	sa := &syscall.SockaddrInet6{Port: port, Addr: lo6.As16()}
	if err := syscall.Bind(fd, sa); err != nil {
		t.Fatalf("bind [::1]:%d: %v", port, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	filler, err := net.Dial("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("fill the accept queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	// Check the hole: a dial must not complete while its context lives.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var d net.Dialer
	if c, err := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		c.Close()
		t.Fatal("a second connection to the full listener completed: the kernel does not drop SYNs at a full accept queue here")
	}
}

func hostPort(port int) string { return net.JoinHostPort("cdn.test", strconv.Itoa(port)) }

func bothFamilies() *resolver {
	return &resolver{
		v6: map[string][]netip.Addr{"cdn.test": {lo6}},
		v4: map[string][]netip.Addr{"cdn.test": {lo4}},
	}
}

func TestPrefersIPv6(t *testing.T) {
	port, acc4 := listen4(t)
	acc6 := listen6(t, port)
	// A long attempt delay: IPv4 may only start if IPv6 failed.
	d := &Dialer{Resolver: bothFamilies(), AttemptDelay: time.Hour}
	c, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
	if err != nil {
		t.Fatalf("DialResult: %v", err)
	}
	defer c.Close()
	if res.Family != dnsname.IPv6 || res.Winner != netip.AddrPortFrom(lo6, uint16(port)) {
		t.Errorf("winner %v (%v), want [::1]:%d", res.Winner, res.Family, port)
	}
	if len(res.Attempts) != 1 || res.Attempts[0].Err != nil {
		t.Errorf("attempts %+v, want the one IPv6 attempt", res.Attempts)
	}
	if res.Resolve6 <= 0 {
		t.Errorf("Resolve6 = %v, want the AAAA lookup's time", res.Resolve6)
	}
	<-acc6
	select {
	case c := <-acc4:
		c.Close()
		t.Error("IPv4 listener got a connection")
	default:
	}
}

func TestFallbackFromBlackholedIPv6(t *testing.T) {
	port, acc4 := listen4(t)
	blackhole6(t, port)
	var observed []Result
	d := &Dialer{Resolver: bothFamilies(), Observe: func(r Result) { observed = append(observed, r) }}
	c, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
	if err != nil {
		t.Fatalf("DialResult: %v", err)
	}
	defer c.Close()
	<-acc4
	if res.Family != dnsname.IPv4 {
		t.Fatalf("winner %v (%v), want IPv4; attempts %+v", res.Winner, res.Family, res.Attempts)
	}
	if len(res.Attempts) != 2 {
		t.Fatalf("attempts %+v, want IPv6 then IPv4", res.Attempts)
	}
	a6, a4 := res.Attempts[0], res.Attempts[1]
	if !a6.Addr.Addr().Is6() || !errors.Is(a6.Err, context.Canceled) {
		t.Errorf("first attempt %+v, want the IPv6 one, cancelled", a6)
	}
	if !a4.Addr.Addr().Is4() || a4.Err != nil {
		t.Errorf("second attempt %+v, want the IPv4 one, won", a4)
	}
	// IPv4 waits the connection attempt delay after IPv6 started (a
	// slow machine only makes the gap longer).
	if gap := a4.Start - a6.Start; gap < DefaultAttemptDelay {
		t.Errorf("IPv4 started %v after IPv6, want at least %v", gap, DefaultAttemptDelay)
	}
	if a6.End < a4.End {
		t.Errorf("IPv6 attempt ended at %v, before the IPv4 win at %v", a6.End, a4.End)
	}
	for _, a := range res.Attempts {
		t.Logf("attempt %s: start %v, end %v, err %v", a.Addr, a.Start, a.End, a.Err)
	}
	t.Logf("won by %s after %v (AAAA %v, A %v)", res.Family, res.Elapsed, res.Resolve6, res.Resolve4)
	if len(observed) != 1 || observed[0].Family != dnsname.IPv4 {
		t.Errorf("Observe got %+v, want the one result", observed)
	}
}

func TestRefusedIPv6FallsBackAtOnce(t *testing.T) {
	port, acc4 := listen4(t) // nothing listens on [::1]:port: refused
	d := &Dialer{Resolver: bothFamilies(), AttemptDelay: time.Hour}
	c, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
	if err != nil {
		t.Fatalf("DialResult: %v (with an hour's attempt delay, only a failure can start IPv4)", err)
	}
	defer c.Close()
	<-acc4
	if res.Family != dnsname.IPv4 || len(res.Attempts) != 2 || !errors.Is(res.Attempts[0].Err, syscall.ECONNREFUSED) {
		t.Errorf("result %+v, want a refused IPv6 attempt and an IPv4 win", res)
	}
}

func TestResolutionDelay(t *testing.T) {
	port, acc4 := listen4(t)
	listen6(t, port)

	t.Run("late AAAA", func(t *testing.T) {
		r := bothFamilies()
		r.gate6 = make(chan struct{}) // AAAA never answers
		d := &Dialer{Resolver: r, AttemptDelay: time.Hour}
		c, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
		if err != nil {
			t.Fatalf("DialResult: %v", err)
		}
		defer c.Close()
		<-acc4
		if res.Family != dnsname.IPv4 || len(res.Attempts) != 1 {
			t.Fatalf("result %+v, want one IPv4 attempt", res)
		}
		if res.Attempts[0].Start < DefaultResolutionDelay {
			t.Errorf("IPv4 started at %v, want after the %v resolution delay", res.Attempts[0].Start, DefaultResolutionDelay)
		}
		if res.Resolve6 != 0 {
			t.Errorf("Resolve6 = %v for an AAAA lookup that never answered", res.Resolve6)
		}
	})

	t.Run("AAAA within the delay", func(t *testing.T) {
		r := bothFamilies()
		r.gate6 = make(chan struct{})
		r.answered4 = make(chan struct{})
		go func() { <-r.answered4; close(r.gate6) }() // AAAA right after A
		// An hour's resolution delay: IPv4 must wait for AAAA.
		d := &Dialer{Resolver: r, ResolutionDelay: time.Hour, AttemptDelay: time.Hour}
		c, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
		if err != nil {
			t.Fatalf("DialResult: %v", err)
		}
		defer c.Close()
		if res.Family != dnsname.IPv6 || len(res.Attempts) != 1 {
			t.Errorf("result %+v, want one IPv6 attempt", res)
		}
		if res.Resolve4 > res.Resolve6 {
			t.Errorf("A took %v, AAAA %v: the test meant A to answer first", res.Resolve4, res.Resolve6)
		}
	})
}

func TestAlternates(t *testing.T) {
	// One name per family, as ocdn names appliances; a client given both
	// races them.
	port, _ := listen4(t)
	acc6 := listen6(t, port)
	r := &resolver{
		v6: map[string][]netip.Addr{"ipv6-a.test": {lo6}},
		v4: map[string][]netip.Addr{"ipv4-a.test": {lo4}},
	}
	d := &Dialer{Resolver: r, AttemptDelay: time.Hour, Alternates: func(host string) []string {
		if host == "ipv4-a.test" {
			return []string{"ipv6-a.test"}
		}
		return nil
	}}
	c, res, err := d.DialResult(context.Background(), "tcp", net.JoinHostPort("ipv4-a.test", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("DialResult: %v", err)
	}
	defer c.Close()
	<-acc6
	if res.Family != dnsname.IPv6 {
		t.Errorf("result %+v, want the alternate's IPv6 address", res)
	}
}

func TestLiteralsAndNetworks(t *testing.T) {
	port, acc4 := listen4(t)
	acc6 := listen6(t, port)
	r := &resolver{lookups: make(chan string, 4)}
	d := &Dialer{Resolver: r}
	for _, tc := range []struct {
		network, addr string
		acc           <-chan net.Conn
		want          dnsname.Family
	}{
		{"tcp", net.JoinHostPort("::1", strconv.Itoa(port)), acc6, dnsname.IPv6},
		{"tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), acc4, dnsname.IPv4},
		{"tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), acc4, dnsname.IPv4},
	} {
		c, res, err := d.DialResult(context.Background(), tc.network, tc.addr)
		if err != nil {
			t.Fatalf("DialResult(%s, %s): %v", tc.network, tc.addr, err)
		}
		c.Close()
		<-tc.acc
		if res.Family != tc.want {
			t.Errorf("DialResult(%s, %s) family %v, want %v", tc.network, tc.addr, res.Family, tc.want)
		}
	}
	if len(r.lookups) != 0 {
		t.Errorf("IP literals were looked up: %q", <-r.lookups)
	}
	// A literal of the other family than the network asks for.
	if _, err := d.DialContext(context.Background(), "tcp4", net.JoinHostPort("::1", strconv.Itoa(port))); err == nil {
		t.Error("tcp4 to an IPv6 literal succeeded")
	}
	for _, bad := range []struct{ network, addr, want string }{
		{"udp", "127.0.0.1:1", `network "udp"`},
		{"tcp", "127.0.0.1", "address"},
		{"tcp", "127.0.0.1:http", `port "http"`},
	} {
		if _, err := d.DialContext(context.Background(), bad.network, bad.addr); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("DialContext(%s, %s) = %v, want an error naming %s", bad.network, bad.addr, err, bad.want)
		}
	}
}

func TestAllFail(t *testing.T) {
	port, _ := listen4(t)
	r := bothFamilies()
	r.v4 = map[string][]netip.Addr{"cdn.test": {netip.MustParseAddr("127.0.0.2")}} // nothing listens there
	d := &Dialer{Resolver: r}
	_, res, err := d.DialResult(context.Background(), "tcp", hostPort(port))
	if err == nil {
		t.Fatal("DialResult succeeded with nothing listening")
	}
	for _, want := range []string{"[::1]:" + strconv.Itoa(port), "127.0.0.2:" + strconv.Itoa(port)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if res.Family != 0 || len(res.Attempts) != 2 {
		t.Errorf("result %+v, want two failed attempts", res)
	}

	// A lookup failure of one family leaves the other.
	listen6(t, port)
	r = bothFamilies()
	r.failFamily = "ip4"
	if c, err := (&Dialer{Resolver: r}).DialContext(context.Background(), "tcp", hostPort(port)); err != nil {
		t.Errorf("DialContext with A failing: %v", err)
	} else {
		c.Close()
	}
	// Unknown name: both lookups fail, and the error says so.
	_, err = (&Dialer{Resolver: bothFamilies()}).DialContext(context.Background(), "tcp", net.JoinHostPort("nowhere.test", "80"))
	if err == nil || !strings.Contains(err.Error(), "no such host") {
		t.Errorf("dial of an unknown name = %v, want no such host", err)
	}
}

func TestCancel(t *testing.T) {
	port, _ := listen4(t)
	blackhole6(t, port)
	r := bothFamilies()
	r.v4 = nil // only the black hole
	ctx, cancel := context.WithCancel(context.Background())
	r.lookups = make(chan string, 4)
	go func() {
		<-r.lookups // the dial has begun
		<-r.lookups
		cancel()
	}()
	d := &Dialer{Resolver: r, AttemptDelay: time.Hour}
	_, res, err := d.DialResult(ctx, "tcp", hostPort(port))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DialResult = %v, want context.Canceled", err)
	}
	for _, a := range res.Attempts {
		if !errors.Is(a.Err, context.Canceled) {
			t.Errorf("attempt %+v not cancelled", a)
		}
	}
}
