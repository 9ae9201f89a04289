// Package dnstest provides DNS servers for tests and benchmarks: ocdn's
// own authoritative server, run until the test ends (Serve, AuthServer,
// StartAuth), and a real recursive resolver, Unbound (Debian package
// unbound), configured to send the CDN zone to an ocdn authoritative
// server, as an ISP's resolver would after following the delegation.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/ocdn/ocdn/internal/syncbuf"
)

// UnboundConfig is what the resolver is started with.
type UnboundConfig struct {
	// Zone is sent to Auth (an Unbound stub zone), and to MoreAuth, the
	// zone's other name servers, which Unbound tries when one fails.
	Zone     string
	Auth     netip.AddrPort
	MoreAuth []netip.AddrPort
	// Listen is where Unbound answers clients (UDP and TCP); it needs a
	// port.
	Listen netip.AddrPort
	// Threads is Unbound's num-threads (default 1).
	Threads int
	// ECS sends each client's subnet (/24 or /56) to Auth as an EDNS
	// Client Subnet, as public resolvers do (Unbound's subnetcache).
	ECS bool
	// CacheMinTTL raises every cached TTL to at least this many seconds,
	// so a benchmark measures answers from the cache, not refetches.
	CacheMinTTL int
	// Dir holds the config file and the pid file.
	Dir string
	// Netns, when set, runs Unbound inside that network namespace (ip
	// netns exec), where Dial reaches Listen for the readiness check.
	Netns string
	Dial  func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Unbound is a running resolver.
type Unbound struct {
	Addr netip.AddrPort
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit, once done is closed
	log  *syncbuf.Buffer
	once sync.Once
}

// Binary finds the unbound program.
func Binary() (string, error) {
	if p, err := exec.LookPath("unbound"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/unbound"); err == nil {
		return "/usr/sbin/unbound", nil
	}
	return "", errors.New("unbound not found: install the Debian package unbound (apt-get install unbound)")
}

// StartUnbound starts Unbound in the foreground and returns once it
// answers a query for the zone's SOA (through Auth), or after 30 s with
// an error carrying its log.
func StartUnbound(cfg UnboundConfig) (*Unbound, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	if cfg.Threads <= 0 {
		cfg.Threads = 1
	}
	modules, ecs := "iterator", ""
	if cfg.ECS {
		modules = "subnetcache iterator"
		ecs = fmt.Sprintf("  send-client-subnet: %s\n  max-client-subnet-ipv4: 24\n  max-client-subnet-ipv6: 56\n", cfg.Auth.Addr())
	}
	zone := strings.TrimSuffix(cfg.Zone, ".")
	stubs := ""
	for _, a := range cfg.MoreAuth {
		stubs += fmt.Sprintf("  stub-addr: %s@%d\n", a.Addr(), a.Port())
	}
	conf := fmt.Sprintf(`server:
  interface: %s
  port: %d
  do-ip6: %s
  num-threads: %d
  so-reuseport: yes
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  access-control: ::1/128 allow
  do-not-query-localhost: no
  qname-minimisation: no
  module-config: %q
  cache-min-ttl: %d
  local-zone: %q transparent
%sremote-control:
  control-enable: no
stub-zone:
  name: %q
  stub-addr: %s@%d
%s`, cfg.Listen.Addr(), cfg.Listen.Port(), yesNo(cfg.Listen.Addr().Is6() || cfg.Auth.Addr().Is6()), cfg.Threads, cfg.Dir, filepath.Join(cfg.Dir, "unbound.pid"),
		modules, cfg.CacheMinTTL, zone, ecs, zone, cfg.Auth.Addr(), cfg.Auth.Port(), stubs)
	path := filepath.Join(cfg.Dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	u := &Unbound{Addr: cfg.Listen, done: make(chan struct{}), log: &syncbuf.Buffer{}}
	u.cmd = exec.Command(bin, "-d", "-c", path)
	if cfg.Netns != "" {
		u.cmd = exec.Command("ip", "netns", "exec", cfg.Netns, bin, "-d", "-c", path)
	}
	u.cmd.Stdout, u.cmd.Stderr = u.log, u.log
	if err := u.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting unbound: %w", err)
	}
	go func() { u.err = u.cmd.Wait(); close(u.done) }()
	c := &mdns.Client{Net: "udp", Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := new(mdns.Msg)
		m.SetQuestion(zone+".", mdns.TypeSOA)
		r, err := exchange(c, m, cfg)
		if err == nil && r.Rcode == mdns.RcodeSuccess && len(r.Answer) > 0 {
			return u, nil
		}
		select {
		case <-u.done:
			return nil, fmt.Errorf("unbound exited (%v):\n%s", u.err, u.log.String())
		default:
		}
		if time.Now().After(deadline) {
			u.Stop()
			return nil, fmt.Errorf("unbound does not answer for %s at %s after 30s (last: %v, %v):\n%s", zone, cfg.Listen, r, err, u.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Pid is the resolver's process id (to read its CPU time).
func (u *Unbound) Pid() int { return u.cmd.Process.Pid }

// Log is what Unbound wrote so far.
func (u *Unbound) Log() string { return u.log.String() }

// Stop ends the resolver and waits for it.
func (u *Unbound) Stop() {
	u.once.Do(func() {
		u.cmd.Process.Kill()
		<-u.done
	})
}

// exchange asks Unbound for m, through cfg.Dial when it is set.
func exchange(c *mdns.Client, m *mdns.Msg, cfg UnboundConfig) (*mdns.Msg, error) {
	if cfg.Dial == nil {
		r, _, err := c.Exchange(m, cfg.Listen.String())
		return r, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	conn, err := cfg.Dial(ctx, "udp", cfg.Listen.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r, _, err := c.ExchangeWithConnContext(ctx, m, &mdns.Conn{Conn: conn})
	return r, err
}

// Start is StartUnbound for a test: it skips when Unbound is not
// installed, or fails when OCDN_REQUIRE_EXTERNAL=1, and stops the
// resolver when the test ends. Listen and Dir are chosen when unset.
func Start(t testing.TB, cfg UnboundConfig) *Unbound {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(err)
		}
		t.Skip(err.Error() + "; set OCDN_REQUIRE_EXTERNAL=1 to make this a failure")
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if !cfg.Listen.IsValid() {
		var err error
		if cfg.Listen, err = FreePort(netip.MustParseAddr("127.0.0.1")); err != nil {
			t.Fatal(err)
		}
	}
	u, err := StartUnbound(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Stop)
	return u
}

// FreePort returns addr with a port free for UDP and TCP at the time of
// the call.
func FreePort(addr netip.Addr) (netip.AddrPort, error) {
	for range 20 {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			return netip.AddrPort{}, err
		}
		ap := u.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(ap))
		u.Close()
		if err == nil {
			l.Close()
			return ap, nil
		}
	}
	return netip.AddrPort{}, errors.New("no port free for both UDP and TCP")
}
