// Package netns provides throw-away networks of Linux network namespaces,
// for tests that run ocdn's daemons as separate hosts on one machine: a
// namespace per host, veth links between hosts (optionally joined by a
// bridge, as a switch), IPv4 and IPv6 addresses, static routes, sysctls,
// a kernel bottleneck on an interface (Host.Shape: tc's token bucket
// filter), and processes started inside a host.
//
// Every namespace name carries the run's tag, "<prefix><pid>-<random>-",
// and every link, address and route lives inside the run's namespaces:
// nothing is added to the machine's own namespace, so parallel runs never
// collide even when they use the same addresses. The run's files go in
// its directory, Dir, named after the tag. Close kills what runs inside,
// removes the namespaces (their links go with them) and the directory;
// New first sweeps the namespaces and directories of runs whose process
// is gone (a test that was killed), with the processes left inside them.
// Processes started with Host.Start are also killed by the kernel when the
// test process dies (Pdeathsig).
//
// It needs root and iproute2's ip (and tc for Shape).
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/netem"
)

// runDir is where `ip netns add` binds named namespaces.
const runDir = "/run/netns"

// ErrNeedsRoot is returned by New for a process that cannot make
// namespaces.
var ErrNeedsRoot = errors.New("netns: network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)")

// Net is one run's network.
type Net struct {
	prefix, tag string
	dir         string

	mu     sync.Mutex
	hosts  []*Host
	procs  []*Proc
	closed bool
}

// New sweeps what dead runs with the same prefix left behind and returns
// an empty network whose names start with prefix (letters, digits and
// '-'; keep it short, names also make file names).
func New(prefix string) (*Net, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNeedsRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netns: ip not found (Debian package iproute2): %w", err)
	}
	if _, err := Sweep(prefix); err != nil {
		return nil, err
	}
	var r [3]byte
	rand.Read(r[:])
	n := &Net{prefix: prefix, tag: fmt.Sprintf("%s%d-%s-", prefix, os.Getpid(), hex.EncodeToString(r[:]))}
	n.dir = filepath.Join(os.TempDir(), strings.TrimSuffix(n.tag, "-"))
	// World-readable: daemons that drop root (PostgreSQL) work in it.
	if err := os.Mkdir(n.dir, 0o755); err != nil {
		return nil, err
	}
	return n, nil
}

// ForTest is New for a test: the network is closed when t ends (an error
// closing it fails t). Where namespaces cannot be made (not root, no ip)
// t is skipped, or fails when OCDN_REQUIRE_EXTERNAL=1.
func ForTest(t testing.TB, prefix string) *Net {
	t.Helper()
	n, err := New(prefix)
	if err != nil {
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("tearing the test network down: %v", err)
		}
	})
	return n
}

// Dir is the run's directory, removed by Close.
func (n *Net) Dir() string { return n.dir }

// Tag is the run's tag, the start of every namespace name.
func (n *Net) Tag() string { return n.tag }

// Sweep removes the namespaces and run directories named prefix<pid>-…
// whose process pid no longer runs, killing the processes inside the
// namespaces first, and returns what it removed.
func Sweep(prefix string) ([]string, error) {
	var swept []string
	var errs []error
	for _, where := range []struct {
		dir    string
		remove func(name string) error
	}{
		{runDir, remove}, // first: processes inside may use the directories
		{os.TempDir(), func(name string) error { return os.RemoveAll(filepath.Join(os.TempDir(), name)) }},
	} {
		ents, err := os.ReadDir(where.dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return swept, err
		}
		for _, e := range ents {
			if !deadRun(prefix, e.Name()) {
				continue
			}
			if err := where.remove(e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			swept = append(swept, filepath.Join(where.dir, e.Name()))
		}
	}
	return swept, errors.Join(errs...)
}

// deadRun reports whether name is prefix<pid>-… of a pid that no longer
// runs.
func deadRun(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidStr)
	return ok && err == nil && pid > 0 && !alive(pid)
}

// alive reports whether process pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// remove kills every process in namespace name, waits until they are
// gone, and deletes the namespace.
func remove(name string) error {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.Command("ip", "netns", "pids", name).Output()
		if err != nil {
			break // the namespace is already unusable; delete its name
		}
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: processes %v in %s survive SIGKILL", pids, name)
		}
		<-tick.C
	}
	return ip("netns", "del", name)
}

// Close stops every process started in the network, kills any other
// process left in its namespaces and removes them. It may be called more
// than once.
func (n *Net) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs, hosts := n.procs, n.hosts
	n.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, h := range hosts {
		if err := remove(h.ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(n.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Host is one namespace of the network.
type Host struct {
	net  *Net
	name string // short name, as given
	ns   string // namespace name
}

// Host makes a namespace for a host called name, with lo up, reverse-path
// filtering off (routes here are static and may be asymmetric) and IPv6
// duplicate address detection off (addresses are usable at once).
func (n *Net) Host(name string) (*Host, error) {
	h := &Host{net: n, name: name, ns: n.tag + name}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("netns: network closed")
	}
	n.mu.Unlock()
	if err := ip("netns", "add", h.ns); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	if err := h.ip("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return h, h.Sysctl(map[string]string{
		"net.ipv4.conf.all.rp_filter":      "0",
		"net.ipv4.conf.default.rp_filter":  "0",
		"net.ipv6.conf.all.accept_dad":     "0",
		"net.ipv6.conf.default.accept_dad": "0",
	})
}

// Name is the host's namespace name (for `ip netns exec NAME`).
func (h *Host) Name() string { return h.ns }

// Link joins host a (interface aIf) and host b (interface bIf) with a
// veth pair, made directly inside the two namespaces, and sets both ends
// up.
func (n *Net) Link(a *Host, aIf string, b *Host, bIf string) error {
	if err := ip("link", "add", aIf, "netns", a.ns, "type", "veth", "peer", "name", bIf, "netns", b.ns); err != nil {
		return err
	}
	if err := a.ip("link", "set", aIf, "up"); err != nil {
		return err
	}
	return b.ip("link", "set", bIf, "up")
}

// Bridge makes a bridge called name on the host (a switch without spanning
// tree, forwarding at once) with the given interfaces as its ports.
func (h *Host) Bridge(name string, ports ...string) error {
	if err := h.ip("link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0"); err != nil {
		return err
	}
	for _, p := range ports {
		if err := h.ip("link", "set", p, "master", name); err != nil {
			return err
		}
	}
	return h.ip("link", "set", name, "up")
}

// Addr assigns addr with its prefix length (10.0.0.1/30) to interface
// ifname.
func (h *Host) Addr(ifname string, addr netip.Prefix) error {
	args := []string{family(addr.Addr()), "addr", "add", addr.String(), "dev", ifname}
	if addr.Addr().Is6() {
		args = append(args, "nodad")
	}
	return h.ip(args...)
}

// Route sends traffic for dst through gateway via.
func (h *Host) Route(dst netip.Prefix, via netip.Addr) error {
	return h.ip(family(via), "route", "add", dst.String(), "via", via.String())
}

// DefaultRoute sends all traffic of via's family through via.
func (h *Host) DefaultRoute(via netip.Addr) error {
	return h.ip(family(via), "route", "add", "default", "via", via.String())
}

// Local makes every address of p local to the host, so that clients can
// bind any of them as their source (an ISP's client prefix).
func (h *Host) Local(p netip.Prefix) error {
	if err := h.ip(family(p.Addr()), "route", "add", "local", p.String(), "dev", "lo"); err != nil {
		return err
	}
	if p.Addr().Is6() {
		// IPv6 binds only configured addresses unless told otherwise.
		return h.Sysctl(map[string]string{"net.ipv6.ip_nonlocal_bind": "1"})
	}
	return nil
}

// Router turns on IPv4 and IPv6 forwarding.
func (h *Host) Router() error {
	return h.Sysctl(map[string]string{"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"})
}

// Sysctl sets sysctls of the host's namespace.
func (h *Host) Sysctl(kv map[string]string) error {
	return netem.InNetns(h.ns, func() error {
		for k, v := range kv {
			// /proc/sys/net is the namespace of the thread that opens it.
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				return fmt.Errorf("netns: %s: sysctl %s=%s: %w", h.name, k, v, err)
			}
		}
		return nil
	})
}

// Run runs a command inside the host to completion; its output is in the
// error.
func (h *Host) Run(name string, args ...string) error {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s: %s %s: %w: %s", h.name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Output runs a command inside the host to completion and returns its
// standard output; its error output is in the error.
func (h *Host) Output(name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("netns: %s: %s %s: %w: %s", h.name, name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// ip runs `ip -n NS args…`.
func (h *Host) ip(args ...string) error {
	if err := ip(append([]string{"-n", h.ns}, args...)...); err != nil {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	return nil
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "-4"
	}
	return "-6"
}

// DialContext dials from inside the host: the socket belongs to its
// namespace for its whole life.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return netem.DialerIn(h.ns, nil)(ctx, network, addr)
}

// HTTPClient is an HTTP client whose connections are made inside the
// host, from src when it is valid (a client address of a local prefix).
func (h *Host) HTTPClient(timeout time.Duration, src netip.Addr) *http.Client {
	d := &net.Dialer{}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: netem.DialerIn(h.ns, d)}}
}

// Proc is a process started inside a host.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	path string
}

// Start starts argv inside the host with its output appended to the file
// logPath. The process is killed by the kernel if the test process dies,
// and by Close at the latest.
func (h *Host) Start(name, logPath string, argv ...string) (*Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// `ip netns exec` execs argv in place, so the signal reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: %s: starting %s: %w", h.name, name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{}), path: logPath}
	go func() { // owner: the Proc; ends when the process exits
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	h.net.mu.Lock()
	h.net.procs = append(h.net.procs, p)
	h.net.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig unless the process has exited.
func (p *Proc) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the exit (or ctx) and returns the process's error.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Log returns the last max bytes of the process's output.
func (p *Proc) Log(max int) string {
	b, err := os.ReadFile(p.path)
	if err != nil {
		return err.Error()
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
