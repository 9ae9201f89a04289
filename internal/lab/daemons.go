package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/daemon"
)

// The lab runs each daemon either in its own process (`ocdn control
// --config …`, as an operator would) or in the lab's process. Either way
// the daemon is built by internal/daemon from the config file the lab
// wrote, and the lab watches it the way an operator can: over HTTP
// (/healthz, /metrics, the appliance's /v1/status, the control plane's
// API). The only differences are how a daemon is started, crashed and
// paused.

// runner starts daemons.
type runner interface {
	origin(ctx context.Context, path string, h daemon.Hooks) (daemonHandle, error)
	// control starts a control-plane replica; name tells replicas apart
	// (its log file).
	control(ctx context.Context, name, path string, h daemon.Hooks) (controlHandle, error)
	appliance(ctx context.Context, id, path string, h daemon.Hooks) (applianceHandle, error)
	// stop stops every daemon started, as an operator takes a CDN down:
	// the appliances first, so that their last heartbeat (draining) and
	// transport records reach a control plane still up, then the control
	// plane (which compacts its measurements), then the origin, each tier
	// once the one before it has stopped. It returns when all have;
	// calling it again waits for the same.
	stop()
}

// tier is a daemon's place in the stop order (runner.stop): tiers stop
// from the last to the first.
type tier int

const (
	tierOrigin tier = iota
	tierControl
	tierAppliance
	tiers
)

// daemonHandle is one running daemon.
type daemonHandle interface {
	// Kill stops it at once, as a crash would.
	Kill()
}

// controlHandle is the control plane.
type controlHandle interface {
	daemonHandle
	// Outage takes it off the network for d: nothing is answered,
	// connections in progress are cut or stall, new ones wait.
	Outage(ctx context.Context, d time.Duration)
	// Registry is its metrics registry in this process (nil when it
	// runs as its own process: read /metrics).
	Registry() prometheus.Gatherer
}

// applianceHandle is one appliance.
type applianceHandle interface {
	daemonHandle
	// Status is what the appliance reports about itself.
	Status(ctx context.Context) (api.ApplianceRuntime, error)
}

// inProcess runs daemons as goroutines of the lab.
type inProcess struct {
	// errs logs a daemon that stopped with an error before its context
	// ended.
	onErr func(name string, err error)

	mu      sync.Mutex
	wg      [tiers]sync.WaitGroup
	cancels [tiers][]context.CancelFunc
}

// run runs a daemon under a context of its own, derived from ctx, and
// returns its cancel.
func (r *inProcess) run(ctx context.Context, t tier, name string, run func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.cancels[t] = append(r.cancels[t], cancel)
	r.wg[t].Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg[t].Done()
		if err := run(ctx); err != nil && ctx.Err() == nil {
			r.onErr(name, err)
		}
	}()
	return cancel
}

func (r *inProcess) stop() {
	for t := tiers - 1; t >= 0; t-- {
		r.mu.Lock()
		cancels := r.cancels[t]
		r.mu.Unlock()
		for _, c := range cancels {
			c()
		}
		r.wg[t].Wait()
	}
}

func (r *inProcess) origin(ctx context.Context, path string, h daemon.Hooks) (daemonHandle, error) {
	var cfg config.Origin
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	d, err := daemon.NewOrigin(&cfg, h)
	if err != nil {
		return nil, err
	}
	return cancelHandle(r.run(ctx, tierOrigin, "origin", d.Run)), nil
}

type cancelHandle context.CancelFunc

func (c cancelHandle) Kill() { c() }

// inProcessControl holds the control plane's socket across an outage, as
// systemd socket activation or a load balancer in front of replicas
// would: while it is paused nothing is accepted (new connections wait in
// the kernel's backlog) and every connection it had is cut.
type inProcessControl struct {
	cancel context.CancelFunc
	ln     *pausableListener
	reg    prometheus.Gatherer
}

func (r *inProcess) control(ctx context.Context, _, path string, h daemon.Hooks) (controlHandle, error) {
	var cfg config.Control
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen[0].AddrPort.String())
	if err != nil {
		return nil, err
	}
	pl := newPausable(ln)
	h.Listeners = []net.Listener{pl}
	h.Registry = daemon.NewRegistry()
	d, err := daemon.NewControl(ctx, &cfg, h)
	if err != nil {
		ln.Close()
		return nil, err
	}
	cancel := r.run(ctx, tierControl, "control", d.Run)
	return &inProcessControl{cancel: cancel, ln: pl, reg: h.Registry}, nil
}

func (c *inProcessControl) Kill()                         { c.cancel() }
func (c *inProcessControl) Registry() prometheus.Gatherer { return c.reg }

func (c *inProcessControl) Outage(ctx context.Context, d time.Duration) {
	c.ln.pause()
	clock.Sleep(ctx, d)
	c.ln.resume()
}

type inProcessAppliance struct {
	d      *daemon.Appliance
	cancel context.CancelFunc
	once   sync.Once
}

func (r *inProcess) appliance(ctx context.Context, id, path string, h daemon.Hooks) (applianceHandle, error) {
	var cfg config.ApplianceDaemon
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	d, err := daemon.NewAppliance(&cfg, h, false)
	if err != nil {
		return nil, err
	}
	cancel := r.run(ctx, tierAppliance, "appliance "+id, d.Run)
	return &inProcessAppliance{d: d, cancel: cancel}, nil
}

func (a *inProcessAppliance) Kill() {
	a.once.Do(func() {
		a.d.Appliance().Kill()
		a.cancel()
	})
}

func (a *inProcessAppliance) Status(context.Context) (api.ApplianceRuntime, error) {
	return a.d.Appliance().Status(), nil
}

// pausableListener hands out connections until paused; pausing closes
// every connection it handed out.
type pausableListener struct {
	net.Listener
	mu     sync.Mutex
	paused chan struct{} // closed while running; a fresh one while paused
	conns  map[*trackedConn]struct{}
}

func newPausable(ln net.Listener) *pausableListener {
	running := make(chan struct{})
	close(running)
	return &pausableListener{Listener: ln, paused: running, conns: map[*trackedConn]struct{}{}}
}

func (p *pausableListener) Accept() (net.Conn, error) {
	for {
		p.mu.Lock()
		gate := p.paused
		p.mu.Unlock()
		<-gate // wait out a pause: connections queue in the backlog
		c, err := p.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		if p.paused != gate { // paused while this one was accepted
			p.mu.Unlock()
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, p: p}
		p.conns[tc] = struct{}{}
		p.mu.Unlock()
		return tc, nil
	}
}

func (p *pausableListener) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = make(chan struct{})
	for c := range p.conns {
		c.Conn.Close()
		delete(p.conns, c)
	}
}

func (p *pausableListener) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.paused)
}

type trackedConn struct {
	net.Conn
	p *pausableListener
}

func (c *trackedConn) Close() error {
	c.p.mu.Lock()
	delete(c.p.conns, c)
	c.p.mu.Unlock()
	return c.Conn.Close()
}

// processes runs every daemon as its own `ocdn` process.
type processes struct {
	binary string
	logDir string
	mu     sync.Mutex
	procs  []*proc
}

// proc is one daemon process. Its output goes to logDir/NAME.log; it dies
// with the lab (Pdeathsig) even if the lab is killed.
type proc struct {
	tier tier
	name string
	cmd  *exec.Cmd
	done chan struct{}
	url  string // where /healthz answers
}

func (r *processes) start(ctx context.Context, t tier, name, url string, args ...string) (*proc, error) {
	// Appended to: a daemon restarted after a crash (the chaos soak)
	// keeps the log of its previous life above the new one's.
	logf, err := os.OpenFile(filepath.Join(r.logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(r.binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{tier: t, name: name, cmd: cmd, done: make(chan struct{}), url: url}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	// Stopped by stop, in its tier, or when ctx ends.
	go func() {
		select {
		case <-p.done:
		case <-ctx.Done():
			p.terminate()
		}
	}()
	if err := p.waitHealthy(ctx, filepath.Join(r.logDir, name+".log")); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// waitHealthy waits until GET /healthz answers (any status: an appliance
// may say 503 while it drains) or the process exits.
func (p *proc) waitHealthy(ctx context.Context, logPath string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("%s exited at start: %s", p.name, lastLines(b, 5))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: /healthz did not answer within a minute", p.name)
}

func lastLines(b []byte, n int) string {
	lines := 0
	for i := len(b) - 1; i > 0; i-- {
		if b[i-1] == '\n' {
			if lines++; lines == n {
				return string(b[i:])
			}
		}
	}
	return string(b)
}

func (p *proc) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// terminate stops the process as an operator does: SIGTERM drains (the
// control plane then compacts its measurements into Parquet); one that
// does not exit in time is killed. It returns once it has exited.
func (p *proc) terminate() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// PID is the process's id, for reading /proc.
func (p *proc) PID() int { return p.cmd.Process.Pid }

func (r *processes) stop() {
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for t := tiers - 1; t >= 0; t-- {
		var wg sync.WaitGroup
		for _, p := range procs {
			if p.tier == t {
				wg.Go(p.terminate)
			}
		}
		wg.Wait()
	}
}

func baseURL(addrs config.AddrList) string { return "http://" + addrs[0].AddrPort.String() }

func (r *processes) origin(ctx context.Context, path string, h daemon.Hooks) (daemonHandle, error) {
	var cfg config.Origin
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	return r.start(ctx, tierOrigin, "origin", baseURL(cfg.Listen), "origin", "--config", path)
}

// processControl is a control-plane process; an outage stops it
// (SIGSTOP) and continues it (SIGCONT): its connections stall and new ones
// wait in the backlog.
type processControl struct{ *proc }

func (c processControl) Outage(ctx context.Context, d time.Duration) {
	c.cmd.Process.Signal(syscall.SIGSTOP)
	clock.Sleep(ctx, d)
	c.cmd.Process.Signal(syscall.SIGCONT)
}

func (c processControl) Registry() prometheus.Gatherer { return nil }

func (r *processes) control(ctx context.Context, name, path string, h daemon.Hooks) (controlHandle, error) {
	var cfg config.Control
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	p, err := r.start(ctx, tierControl, name, baseURL(cfg.Listen), "control", "--config", path)
	if err != nil {
		return nil, err
	}
	return processControl{p}, nil
}

// processAppliance is an appliance process; its status is read from
// GET /v1/status, and the last one read stands in once it is killed.
type processAppliance struct {
	*proc
	ops  string // where /v1/status answers
	mu   sync.Mutex
	last api.ApplianceRuntime
}

func (r *processes) appliance(ctx context.Context, id, path string, h daemon.Hooks) (applianceHandle, error) {
	var cfg config.ApplianceDaemon
	if err := config.Load(path, &cfg); err != nil {
		return nil, err
	}
	args := []string{"appliance", "--config", path}
	if c, ok := h.FillClock.(*clock.Scaled); ok {
		args = append(args, "--lab-fill-clock", c.String())
	}
	if len(h.CorruptFill) > 0 {
		args = append(args, "--lab-corrupt-fill", strings.Join(h.CorruptFill, ","))
	}
	// Readiness is asked on the operators' port: plain HTTP, whether or
	// not the content port serves TLS.
	ready := baseURL(cfg.Listen)
	if len(cfg.OpsListen) > 0 {
		ready = baseURL(cfg.OpsListen)
	}
	p, err := r.start(ctx, tierAppliance, "appliance-"+id, ready, args...)
	if err != nil {
		return nil, err
	}
	return &processAppliance{proc: p, ops: baseURL(cfg.OpsListen)}, nil
}

func (a *processAppliance) Status(ctx context.Context) (api.ApplianceRuntime, error) {
	var st api.ApplianceRuntime
	err := getJSON(ctx, http.DefaultClient, a.ops+"/v1/status", "", &st)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		return a.last, err
	}
	a.last = st
	return st, nil
}

// getJSON GETs url (with a bearer token when set) into out.
func getJSON(ctx context.Context, hc *http.Client, url, token string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, msg)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// freePort finds a port on a that nothing listens on now (TCP or UDP),
// for a daemon the lab may stop and start again on it. It lies below the
// kernel's ephemeral range: a port from that range (what port 0 gives)
// can be taken, while its daemon is down, as the source port of some
// client's connection or DNS query, and the restart then fails with
// "address already in use" (a chaos soak lost its DNS server so).
func freePort(a netip.Addr) (netip.AddrPort, error) {
	const floor = 10000
	if lo := ephemeralLow(); lo > floor+1000 {
		for range 100 {
			ap := netip.AddrPortFrom(a, uint16(floor+rand.IntN(lo-floor)))
			if portFree(ap) {
				return ap, nil
			}
		}
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer ln.Close()
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return netip.AddrPort{}, errors.New("listener address: " + err.Error())
	}
	return ap, nil
}

// portFree says whether both a TCP listener and a UDP socket can bind ap.
func portFree(ap netip.AddrPort) bool {
	ln, err := net.Listen("tcp", ap.String())
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", ap.String())
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (0 when
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
