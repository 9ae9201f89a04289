// Command benchdns measures the control plane's authoritative DNS server
// side by side with Unbound answering the same names from its cache, the
// anchor: the same dnsperf load (UDP, the same query file of A and AAAA
// questions for every appliance name) against each in turn, rounds
// interleaved so both see the same machine. The control plane runs in a
// child process (this binary with -serve), assembled by internal/daemon
// from a config file as `ocdn control --config` is, so its CPU is
// measured apart from dnsperf's. Unbound (dnstest) resolves the zone
// through it and is warmed so that every measured answer comes from its
// cache. It prints queries per second, lost queries, latency and CPU per
// query for both, and the ratio. Run it with `make bench-dns`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
	"gopkg.in/yaml.v3"

	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
	"github.com/ocdn/ocdn/internal/dns/dnstest"
	"github.com/ocdn/ocdn/internal/procstat"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const (
	domain  = "cdn.bench.example"
	perSite = 10
	target  = 50000 // queries per second, issue 16
)

func main() {
	serveDir := flag.String("serve", "", "internal: run the control plane configured in this directory")
	n := flag.Int("appliances", 1000, "dual-stack appliances in the inventory (two names each)")
	duration := flag.Duration("duration", 10*time.Second, "length of each measured dnsperf run")
	rounds := flag.Int("rounds", 3, "measured rounds per server, interleaved")
	clients := flag.Int("clients", 8, "dnsperf -c: client sockets")
	outstanding := flag.Int("outstanding", 200, "dnsperf -q: queries in flight")
	threads := flag.Int("unbound-threads", runtime.NumCPU(), "Unbound's num-threads (the ocdn server uses every core too)")
	cpuProfile := flag.String("cpuprofile", "", "write the control plane's CPU profile over the whole run to this file")
	flag.Parse()
	var err error
	if *serveDir != "" {
		err = serveControl(*serveDir, *cpuProfile)
	} else {
		err = run(*n, *duration, *rounds, *clients, *outstanding, *threads, *cpuProfile)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdns:", err)
		os.Exit(1)
	}
}

// writeDeployment writes a control plane's config with a dns section
// and n dual-stack appliances, and the files it names, into dir.
func writeDeployment(dir string, n int) (queries []string, err error) {
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		return nil, err
	}
	catJSON, err := cat.Marshal()
	if err != nil {
		return nil, err
	}
	keys, err := json.Marshal(urlsign.Generate())
	if err != nil {
		return nil, err
	}
	no := false
	// Appliance credentials are required (no appliance heartbeats here,
	// but the control plane refuses to start without them).
	secret := []byte(auth.NewSecret().Encode())
	cfg := config.Control{Catalog: "catalog.json", OriginURL: "http://127.0.0.1:9", KeyFile: "keys.json", ApplianceSecretFile: "appliance.secret",
		TurnUp: config.TurnUp{Enabled: &no}, Listen: config.AddrList{{AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}},
		DNS: &config.DNS{Domain: domain, Listen: config.AddrList{{AddrPort: netip.MustParseAddrPort("127.0.0.1:0")}}}}
	cfg.ISPs = []config.ISP{{Name: "isp", ASN: 64500}}
	for s := 0; s < (n+perSite-1)/perSite; s++ {
		cfg.Sites = append(cfg.Sites, config.Site{ID: fmt.Sprintf("site%03d", s), Kind: config.SiteIXP, TimeZone: "UTC"})
	}
	for i := range n {
		v4 := netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)})
		v6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
		cfg.Appliances = append(cfg.Appliances, config.Appliance{ID: fmt.Sprintf("oca%04d", i), Site: fmt.Sprintf("site%03d", i/perSite),
			Address: config.AddrPort{AddrPort: netip.AddrPortFrom(v4, 443)}, Address6: config.AddrPort{AddrPort: netip.AddrPortFrom(v6, 443)}, Capacity: 1 << 40})
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names, err := cfg.DNS.Names(cfg.Inventory)
	if err != nil {
		return nil, err
	}
	for _, nm := range names {
		qt := "A"
		if nm.Addr.Is6() {
			qt = "AAAA"
		}
		queries = append(queries, nm.Name+". "+qt)
	}
	y, err := yaml.Marshal(&cfg)
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"catalog.json": catJSON, "keys.json": keys, "control.yaml": y, "appliance.secret": secret,
		"queries.txt": []byte(strings.Join(queries, "\n") + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return queries, nil
}

// serveControl runs the control plane from dir/control.yaml, assembled as
// `ocdn control --config` assembles it, and prints "ready ADDR" with its
// DNS address.
func serveControl(dir, cpuProfile string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var cfg config.Control
	if err := config.Load(filepath.Join(dir, "control.yaml"), &cfg); err != nil {
		return err
	}
	c, err := daemon.NewControl(ctx, &cfg, daemon.Hooks{})
	if err != nil {
		return err
	}
	fmt.Printf("ready %s %s\n", c.DNS().Addrs()[0], c.URLs()[0])
	return c.Run(ctx)
}

// result is one dnsperf run.
type result struct {
	qps, latency, cpuPerQuery float64
	sent, lost                int64
	rcodes                    string
}

func run(n int, d time.Duration, rounds, clients, outstanding, threads int, cpuProfile string) error {
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		return errors.New("dnsperf not found: install the Debian package dnsperf (make bench-dns does)")
	}
	dir, err := os.MkdirTemp("", "benchdns-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	queries, err := writeDeployment(dir, n)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "-serve", dir, "-cpuprofile", cpuProfile)
	child.Stderr = os.Stderr
	out, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		return fmt.Errorf("control plane did not start: %v %q", err, line)
	}
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return fmt.Errorf("control plane said %q", line)
	}
	ocdnAddr, err := netip.ParseAddrPort(fields[1])
	if err != nil {
		return err
	}
	apiURL := fields[2]
	if err := check(ocdnAddr, queries[0]); err != nil {
		return fmt.Errorf("ocdn: %w", err)
	}
	listen, err := dnstest.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return err
	}
	udir := filepath.Join(dir, "unbound")
	os.Mkdir(udir, 0o755)
	ub, err := dnstest.StartUnbound(dnstest.UnboundConfig{Zone: domain, Auth: ocdnAddr, Listen: listen, Threads: threads, CacheMinTTL: 3600, Dir: udir})
	if err != nil {
		return err
	}
	defer ub.Stop()
	qfile := filepath.Join(dir, "queries.txt")
	perf := func(addr netip.AddrPort, pid int, runFor time.Duration, once bool) (result, error) {
		args := []string{"-s", addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())), "-d", qfile,
			"-c", strconv.Itoa(clients), "-q", strconv.Itoa(outstanding), "-t", "2"}
		if once {
			args = append(args, "-n", "1")
		} else {
			args = append(args, "-l", strconv.FormatFloat(runFor.Seconds(), 'f', -1, 64))
		}
		c0, err := procstat.CPU(pid)
		if err != nil {
			return result{}, err
		}
		b, err := exec.Command(dnsperf, args...).CombinedOutput()
		if err != nil {
			return result{}, fmt.Errorf("dnsperf %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		c1, _ := procstat.CPU(pid)
		r, err := parseDNSPerf(b)
		if err != nil {
			return r, fmt.Errorf("%w\n%s", err, b)
		}
		if done := r.sent - r.lost; done > 0 {
			r.cpuPerQuery = (c1 - c0).Seconds() / float64(done)
		}
		return r, nil
	}
	// Warm Unbound's cache with every name (through ocdn), then check
	// that it now answers them itself.
	if _, err := perf(listen, ub.Pid(), 0, true); err != nil {
		return fmt.Errorf("warming unbound: %w", err)
	}
	if err := check(listen, queries[len(queries)-1]); err != nil {
		return fmt.Errorf("unbound: %w", err)
	}
	fmt.Printf("bench-dns: %d names (%d dual-stack appliances, A and AAAA), dnsperf over UDP: %d clients, %d queries in flight, %v per run, %d rounds; %d cores\n",
		len(queries), n, clients, outstanding, d, rounds, runtime.NumCPU())
	fmt.Printf("  ocdn: the control plane's authoritative server (%s); unbound: %d threads answering from its cache (warmed through ocdn, cache-min-ttl 3600)\n",
		ocdnAddr, threads)
	fmt.Printf("%-7s %-8s %12s %8s %14s %12s  %s\n", "round", "server", "queries/s", "lost", "avg latency", "CPU/query", "response codes")
	var missed float64 // queries Unbound passed on to ocdn while measured
	var ocdnQPS, ubQPS, ocdnCPU, ubCPU []float64
	for r := 1; r <= rounds; r++ {
		for _, s := range []struct {
			name string
			addr netip.AddrPort
			pid  int
			qps  *[]float64
			cpu  *[]float64
		}{{"ocdn", ocdnAddr, child.Process.Pid, &ocdnQPS, &ocdnCPU}, {"unbound", listen, ub.Pid(), &ubQPS, &ubCPU}} {
			before, err := queriesServed(apiURL)
			if err != nil {
				return err
			}
			res, err := perf(s.addr, s.pid, d, false)
			if err != nil {
				return err
			}
			if s.name == "unbound" {
				after, err := queriesServed(apiURL)
				if err != nil {
					return err
				}
				missed += after - before
			}
			*s.qps = append(*s.qps, res.qps)
			*s.cpu = append(*s.cpu, res.cpuPerQuery)
			fmt.Printf("%-7d %-8s %12.0f %8d %12.3fms %10.2fµs  %s\n", r, s.name, res.qps, res.lost, res.latency*1e3, res.cpuPerQuery*1e6, res.rcodes)
		}
	}
	fmt.Printf("unbound answered from its cache: %.0f of its queries reached ocdn while measured\n", missed)
	mo, mu := median(ocdnQPS), median(ubQPS)
	fmt.Printf("median  ocdn %.0f queries/s (%.2fµs CPU/query), unbound %.0f queries/s (%.2fµs CPU/query)\n", mo, median(ocdnCPU)*1e6, mu, median(ubCPU)*1e6)
	fmt.Printf("ratio   ocdn / unbound = %.2f× queries/s, %.2f× CPU per query\n", mo/mu, median(ocdnCPU)/median(ubCPU))
	verdict := "met"
	if mo < target {
		verdict = "NOT met"
	}
	fmt.Printf("target  ≥ %d queries/s: %s (dnsperf shares the machine's cores with the server)\n", target, verdict)
	return nil
}

// check asks addr for one line of the query file and wants an answer.
func check(addr netip.AddrPort, q string) error {
	name, qt, _ := strings.Cut(q, " ")
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.StringToType[qt])
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, addr.String())
	if err != nil {
		return err
	}
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		return fmt.Errorf("%s: %s with %d answers, want one", q, mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}

// queriesServed is the control plane's ocdn_dns_queries_total, summed.
func queriesServed(apiURL string) (float64, error) {
	resp, err := http.Get(apiURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "ocdn_dns_queries_total{") {
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err != nil {
				return 0, fmt.Errorf("metrics line %q: %w", l, err)
			}
			sum += v
		}
	}
	return sum, sc.Err()
}

// parseDNSPerf reads dnsperf's statistics.
func parseDNSPerf(b []byte) (result, error) {
	var r result
	var found int
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Queries sent":
			r.sent, _ = strconv.ParseInt(f[0], 10, 64)
			found++
		case "Queries lost":
			r.lost, _ = strconv.ParseInt(f[0], 10, 64)
			found++
		case "Queries per second":
			r.qps, _ = strconv.ParseFloat(f[0], 64)
			found++
		case "Average Latency (s)":
			r.latency, _ = strconv.ParseFloat(f[0], 64)
			found++
		case "Response codes":
			r.rcodes = strings.TrimSpace(v)
		}
	}
	if found != 4 {
		return r, errors.New("dnsperf printed no statistics")
	}
	return r, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
