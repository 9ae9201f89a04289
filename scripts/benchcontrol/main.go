// Command benchcontrol loads one control plane the way a large fleet
// would: N simulated appliances (default 5,000) heartbeat every interval
// (default 5 s) over real HTTP with their own bearer tokens, while clients
// ask for steering at a fixed rate. The control plane runs in a child
// process (this binary with -serve) with its SQLite store and the active
// prober off (the simulated appliances have no /healthz), so its CPU is
// measured apart from the load generators. The child is assembled by
// internal/daemon from a config file, as `ocdn control --config` is. Every client uses its own
// source address on 127.x so that no single address runs out of ports.
// It prints heartbeat and steering latency percentiles, achieved rates,
// errors and the control plane's CPU. Run it with `make bench-control`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/procstat"
	"github.com/ocdn/ocdn/internal/urlsign"
	"gopkg.in/yaml.v3"
)

// secret is fixed so the child and the parent agree without a file; it is
// a benchmark, not a deployment.
var secret = auth.Secret(bytes.Repeat([]byte{7}, 32))

const perSite = 10

func main() {
	serveDir := flag.String("serve", "", "internal: run the control plane configured in this directory")
	n := flag.Int("appliances", 5000, "simulated appliances")
	interval := flag.Duration("interval", 5*time.Second, "heartbeat interval")
	steerRate := flag.Int("steer-rate", 5000, "steering requests per second")
	duration := flag.Duration("duration", 30*time.Second, "measured time (after a warm-up of one interval)")
	store := flag.String("store", "", "state store of the control plane (default a SQLite file in a temporary directory)")
	flag.Parse()
	var err error
	if *serveDir != "" {
		err = serveControl(*serveDir)
	} else {
		err = run(*n, *interval, *steerRate, *duration, *store)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcontrol:", err)
		os.Exit(1)
	}
}

// ispPrefix is ISP i's clients: 127.(64+i/256).(i%256).0/24.
func ispPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(64 + i/256), byte(i % 256), 0}), 24)
}

func applianceID(i int) string { return fmt.Sprintf("oca-%05d", i) }

func catalog() (*content.Catalog, error) {
	return content.Synth(content.SynthSpec{Titles: 4, LadderKbps: []int{1000}, Duration: 10 * time.Second})
}

// writeDeployment writes the control plane's config for n appliances and
// the files it names into dir, as an operator would: the inventory, one
// route file per site (each site's ISP prefix, as its appliances would
// hear it), the catalog, keys and the appliance secret.
func writeDeployment(dir, addr string, n int, interval time.Duration, dsn string) error {
	cat, err := catalog()
	if err != nil {
		return err
	}
	catJSON, err := cat.Marshal()
	if err != nil {
		return err
	}
	keys, err := json.Marshal(urlsign.Generate())
	if err != nil {
		return err
	}
	files := map[string][]byte{"catalog.json": catJSON, "keys.json": keys, "appliance.secret": []byte(secret.Encode())}
	no := false
	cfg := config.Control{Catalog: "catalog.json", OriginURL: "http://127.0.0.1:9", KeyFile: "keys.json",
		ApplianceSecretFile: "appliance.secret", HeartbeatInterval: interval, Store: dsn, TurnUp: config.TurnUp{Enabled: &no}}
	if err := cfg.Listen.UnmarshalYAML(&yaml.Node{Kind: yaml.ScalarNode, Value: addr}); err != nil {
		return err
	}
	sites := (n + perSite - 1) / perSite
	for s := 0; s < sites; s++ {
		isp, site, p := fmt.Sprintf("isp-%04d", s), fmt.Sprintf("site-%04d", s), ispPrefix(s)
		cfg.ISPs = append(cfg.ISPs, config.ISP{Name: isp, ASN: uint32(64512 + s%1000), Prefixes: []config.Prefix{{Prefix: p}}})
		cfg.Sites = append(cfg.Sites, config.Site{ID: site, Kind: config.SiteEmbedded, ISP: isp, TimeZone: "UTC"})
		name := filepath.Join("routes", site+".txt")
		files[name] = []byte(p.String() + "\n")
		cfg.RouteFiles = append(cfg.RouteFiles, config.RouteFile{Site: site, File: name})
	}
	for i := 0; i < n; i++ {
		a := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
		cfg.Appliances = append(cfg.Appliances, config.Appliance{ID: applianceID(i), Site: fmt.Sprintf("site-%04d", i/perSite),
			Address: config.AddrPort{AddrPort: netip.AddrPortFrom(a, 80)}, Capacity: 1 << 40})
	}
	y, err := yaml.Marshal(&cfg)
	if err != nil {
		return err
	}
	files["control.yaml"] = y
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// serveControl runs the control plane from dir/control.yaml, assembled
// as `ocdn control --config` assembles it.
func serveControl(dir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var cfg config.Control
	if err := config.Load(filepath.Join(dir, "control.yaml"), &cfg); err != nil {
		return err
	}
	c, err := daemon.NewControl(ctx, &cfg, daemon.Hooks{})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	return c.Run(ctx)
}

// clientFrom is an HTTP client whose connections come from src.
func clientFrom(src netip.Addr, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext,
		MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute}}
}

type recorder struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs int
	last string
}

func (r *recorder) add(d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		r.last = err.Error()
		return
	}
	r.lat = append(r.lat, d)
}

func (r *recorder) report(name string, secs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.lat)
	q := func(p float64) string {
		if len(r.lat) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fms", float64(r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))].Microseconds())/1000)
	}
	fmt.Printf("%-10s %8.0f/s ok  %6d errors   p50 %9s  p90 %9s  p99 %9s  max %9s\n", name, float64(len(r.lat))/secs, r.errs,
		q(0.50), q(0.90), q(0.99), q(1))
	if r.errs > 0 {
		fmt.Printf("           last error: %s\n", r.last)
	}
}

func run(n int, interval time.Duration, steerRate int, d time.Duration, dsn string) error {
	dir, err := os.MkdirTemp("", "benchcontrol-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if dsn == "" {
		dsn = filepath.Join(dir, "control.db")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := writeDeployment(dir, addr, n, interval, dsn); err != nil {
		return err
	}
	child := exec.Command(self, "-serve", dir)
	child.Stderr = os.Stderr
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	line := make([]byte, 6)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "ready\n" {
		return fmt.Errorf("control plane did not start: %v %q", err, line)
	}
	base := "http://" + addr
	cat, _ := catalog()
	var held []string
	for _, f := range cat.Files {
		held = append(held, f.Path)
	}
	fmt.Printf("control plane: %d appliances in %d sites, heartbeat every %v, steering at %d/s, %v measured after %v warm-up, store %s\n",
		n, (n+perSite-1)/perSite, interval, steerRate, d, interval, dsn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var measuring atomic.Bool
	hbRec, stRec := &recorder{}, &recorder{}
	var wg sync.WaitGroup

	// Heartbeats: appliance i sends from 127.2.(i/250).(1+i%250)'s
	// group of 64 source addresses, each with a small connection pool.
	hbClients := make([]*http.Client, 64)
	for i := range hbClients {
		hbClients[i] = clientFrom(netip.AddrFrom4([4]byte{127, 2, 0, byte(1 + i)}), 128)
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := applianceID(i)
			tok := "Bearer " + secret.Mint(id, time.Now().Add(time.Hour))
			c := hbClients[i%len(hbClients)]
			phase := time.Duration(rand.Int64N(int64(interval)))
			t := time.NewTimer(phase)
			defer t.Stop()
			var seq uint64
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				t.Reset(interval)
				seq++
				hb := api.Heartbeat{Appliance: id, ContentGen: 1, Seq: seq, SentAt: time.Now(), State: "serving",
					Load: &api.Load{BitsPerSec: 1e9, RequestsPerSec: 100, Connections: 50, CPU: 0.3}, Disk: &api.Disk{CapacityBytes: 1 << 40, UsedBytes: 1 << 39, Disks: 12}}
				if seq == 1 {
					hb.Held = held
				}
				body, _ := json.Marshal(hb)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/heartbeat", bytes.NewReader(body))
				req.Header.Set("Authorization", tok)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				err := do(c, req)
				if measuring.Load() && ctx.Err() == nil {
					hbRec.add(time.Since(start), err)
				}
			}
		}()
	}

	// Steering: an open-loop schedule at steerRate, spread over workers
	// that each send from their own address inside some ISP's prefix.
	const workers = 256
	sites := (n + perSite - 1) / perSite
	ticks := make(chan struct{}, workers)
	for w := 0; w < workers; w++ {
		p := ispPrefix(w % sites).Addr().As4()
		p[3] = byte(10 + w/sites)
		c := clientFrom(netip.AddrFrom4(p), 2)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ticks {
				f := held[rand.IntN(len(held))]
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/steer?n=5&files="+f, nil)
				start := time.Now()
				err := do(c, req)
				if measuring.Load() && ctx.Err() == nil {
					stRec.add(time.Since(start), err)
				}
			}
		}()
	}
	var dropped atomic.Int64
	go func() {
		defer close(ticks)
		every := time.Second / time.Duration(steerRate)
		next := time.Now()
		for ctx.Err() == nil {
			next = next.Add(every)
			if w := time.Until(next); w > 0 {
				time.Sleep(w)
			}
			select {
			case ticks <- struct{}{}:
			default:
				dropped.Add(1) // every worker busy: the server is behind
			}
		}
	}()

	time.Sleep(interval) // warm-up: every appliance's first heartbeat (with its files)
	c0, err := procstat.CPU(child.Process.Pid)
	if err != nil {
		return err
	}
	dropped.Store(0)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	secs := time.Since(start).Seconds()
	c1, _ := procstat.CPU(child.Process.Pid)
	cancel()
	hbRec.report("heartbeat", secs)
	stRec.report("steer", secs)
	fmt.Printf("steering requests not sent because all %d workers were busy: %d\n", workers, dropped.Load())
	fmt.Printf("control plane CPU: %.2f cores (of 2) over %.0f s\n", (c1-c0).Seconds()/secs, secs)
	wg.Wait()
	return nil
}

func do(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}
