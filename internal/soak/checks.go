package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/clock"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/lab"
	"github.com/ocdn/ocdn/internal/measure"
)

// byteCheck fetches random ranges (and now and then whole files) of random
// files from random appliances all through the soak, and compares every
// byte with what the origin serves (a synthetic catalog's bytes are a
// function of the path). Nine times in ten the file is one of the
// appliance's manifest (refreshed every 30 s), which it should hold; the
// tenth time any file of the catalog, which it may refuse. Its requests
// carry the measurement mark, so that they do not count as demand and
// move the placement they check. A fetch that fails — its appliance
// down, the connection cut — proves nothing either way; a byte that
// differs is a violation. After a store_corrupt fault it asks the
// restarted appliance for the damaged object first.
type byteCheck struct {
	mu         sync.Mutex
	ranges     int
	wholeFiles int
	verified   int64
	failed     int
	notServed  int // 404/503: the appliance said it does not serve it (e.g. quarantined)
	wrong      limited
	watched    []watch
	// What the restarted appliances answered for the objects corrupted
	// while they were down.
	corruptOK, corruptRefused, corruptUnchecked int
}

type watch struct {
	id, path string
	tries    int
}

// outcome is what one check found.
type outcome int

const (
	fetchOK      outcome = iota
	fetchFailed          // no answer, or cut short: proves nothing
	fetchRefused         // 404 or 503
	fetchWrong           // a violation
)

// watch queues path on appliance id, just restarted after its object was
// corrupted, to be checked next.
func (b *byteCheck) watch(id, path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.watched = append(b.watched, watch{id: id, path: path})
}

func (b *byteCheck) run(ctx context.Context, c *lab.Chaos, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xb17e5))
	// The appliances serve HTTPS with the lab's CA: verify with it.
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, TLSClientConfig: c.TLSConfig()}}
	defer hc.CloseIdleConnections()
	cat := c.Catalog()
	apps := c.Appliances()
	placed := map[string][]content.File{}
	var placedAt time.Time
	for n := 0; clock.Sleep(ctx, 200*time.Millisecond) == nil; n++ {
		if time.Since(placedAt) > 30*time.Second {
			for _, a := range apps {
				if files, err := c.Manifest(ctx, a.ID); err == nil {
					placed[a.ID] = files
				}
			}
			placedAt = time.Now()
		}
		b.mu.Lock()
		var w *watch
		if len(b.watched) > 0 {
			w = &b.watched[0]
			b.watched = b.watched[1:]
		}
		b.mu.Unlock()
		id := apps[rng.IntN(len(apps))].ID
		f := cat.Files[rng.IntN(len(cat.Files))]
		if m := placed[id]; len(m) > 0 && rng.IntN(10) > 0 {
			f = m[rng.IntN(len(m))]
		}
		whole := n%10 == 0
		if w == nil {
			b.check(ctx, hc, c.ContentURL, rng, id, f, whole)
			continue
		}
		f, _ = cat.Lookup(w.path)
		out := b.check(ctx, hc, c.ContentURL, rng, w.id, f, true)
		b.mu.Lock()
		switch {
		case out == fetchOK:
			b.corruptOK++
		case out == fetchRefused:
			b.corruptRefused++
		case out == fetchFailed && w.tries < 50:
			// Not serving yet (it answered /healthz, it may still be
			// opening its store): ask again.
			w.tries++
			b.watched = append(b.watched, *w)
		case out == fetchFailed:
			b.corruptUnchecked++
		}
		b.mu.Unlock()
	}
}

// check fetches f (or a random range of it) from appliance id, at the URL
// sign makes, and compares it with the origin's bytes.
func (b *byteCheck) check(ctx context.Context, hc *http.Client, sign func(id, path string) (string, error), rng *rand.Rand, id string, f content.File, whole bool) outcome {
	u, err := sign(id, f.Path)
	if err != nil {
		b.note(func() { b.wrong.add("signing a URL for %s: %v", f.Path, err) })
		return fetchWrong
	}
	off, end := int64(0), f.Size-1
	if !whole {
		n := 1 + rng.Int64N(min(f.Size, 256<<10))
		off = rng.Int64N(f.Size - n + 1)
		end = off + n - 1
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set(api.MeasurementHeader, "soak")
	if !whole {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.note(func() { b.failed++ })
		return fetchFailed
	}
	defer resp.Body.Close()
	want := http.StatusOK
	if !whole {
		want = http.StatusPartialContent
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusServiceUnavailable {
		b.note(func() { b.notServed++ })
		return fetchRefused
	}
	if resp.StatusCode != want {
		b.note(func() { b.wrong.add("%s from %s: %s, want %d", f.Path, id, resp.Status, want) })
		return fetchWrong
	}
	if resp.ContentLength >= 0 && resp.ContentLength != end-off+1 {
		b.note(func() {
			b.wrong.add("%s from %s: Content-Length %d for bytes %d-%d of a %d-byte file", f.Path, id, resp.ContentLength, off, end, f.Size)
		})
		return fetchWrong
	}
	got, err := io.ReadAll(io.LimitReader(resp.Body, end-off+2))
	// Compare what arrived, even if the transfer was then cut: a wrong
	// byte is wrong however the connection ended.
	origin := make([]byte, len(got))
	content.SynthReader(f.Path, f.Size).ReadAt(origin, off)
	if int64(len(got)) > end-off+1 {
		b.note(func() { b.wrong.add("%s from %s: more than the %d bytes asked for", f.Path, id, end-off+1) })
		return fetchWrong
	}
	if i := firstDiff(got, origin); i >= 0 {
		b.note(func() {
			b.wrong.add("%s from %s: byte %d of the file differs from the origin's", f.Path, id, off+int64(i))
		})
		return fetchWrong
	}
	if err != nil || int64(len(got)) != end-off+1 {
		b.note(func() { b.failed++ })
		return fetchFailed
	}
	if whole {
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			b.note(func() { b.wrong.add("%s from %s: SHA-256 differs from the catalog's", f.Path, id) })
			return fetchWrong
		}
	}
	b.note(func() {
		b.verified += int64(len(got))
		if whole {
			b.wholeFiles++
		} else {
			b.ranges++
		}
	})
	return fetchOK
}

func (b *byteCheck) note(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}

func (b *byteCheck) invariant() Invariant {
	b.mu.Lock()
	defer b.mu.Unlock()
	inv := Invariant{Name: "no byte served differs from the origin", Held: b.wrong.n == 0 && b.ranges+b.wholeFiles > 0,
		Violations: b.wrong.list}
	inv.Detail = fmt.Sprintf("%d ranges and %d whole files (SHA-256) checked, %s matched; %d fetches failed (daemon down or cut), %d refused (404/503); "+
		"each object corrupted on disk asked of its restarted appliance: %d served right, %d refused, %d never answered",
		b.ranges, b.wholeFiles, mib(b.verified), b.failed, b.notServed, b.corruptOK, b.corruptRefused, b.corruptUnchecked)
	if b.wrong.n > 0 {
		inv.Detail += fmt.Sprintf("; %d WRONG", b.wrong.n)
	}
	return inv
}

// sessionCheck: a playback session that failed is a violation unless,
// in the half minute before it failed, every appliance of every site its
// client can reach was down by the soak's doing.
type sessionCheck struct {
	sites      func(isp string) []string
	appliances []lab.ApplianceInfo
	down       func(id string, from, to time.Time) bool

	mu                     sync.Mutex
	ended, failed, excused int
	violations             limited
}

func (s *soak) session(e lab.SessionEnd) {
	sc := &s.sessions
	if e.Interrupted {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.ended++
	if e.Err == nil {
		return
	}
	sc.failed++
	var could []string
	for _, site := range sc.sites(e.ISP) {
		for _, a := range sc.appliances {
			if a.Site == site && !sc.down(a.ID, e.At.Add(-30*time.Second), e.At) {
				could = append(could, a.ID)
			}
		}
	}
	if len(could) == 0 {
		sc.excused++
		return
	}
	sc.violations.add("%s (%s) %s at %s: %v; %s could serve", e.Client, e.ISP, e.Title, e.At.UTC().Format("15:04:05"), e.Err, strings.Join(could, ", "))
}

func (sc *sessionCheck) invariant() Invariant {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return Invariant{Name: "no session failed while another site could serve it", Held: sc.violations.n == 0 && sc.ended > 0,
		Detail:     fmt.Sprintf("%d sessions ended, %d failed (%d with nothing left to serve them)", sc.ended, sc.failed, sc.excused),
		Violations: sc.violations.list}
}

// reportsInvariant compares the reports the control plane acknowledged
// (spooled, then deleted from the spool on a 2xx) with the report ids in
// the Parquet store of every replica, after the run.
func (s *soak) reportsInvariant(measureDir string) Invariant {
	inv := Invariant{Name: "no acknowledged report lost"}
	unsent, err := lab.UnsentReports(s.cfg.WorkDir)
	if err != nil {
		inv.Detail = "reading the spools: " + err.Error()
		return inv
	}
	var buf bytes.Buffer
	rows, err := measure.Export(&buf, measureDir, "pulses", "jsonl")
	if err != nil {
		inv.Detail = "reading the Parquet store: " + err.Error()
		return inv
	}
	stored := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row struct {
			ReportID string `json:"report_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err == nil {
			stored[row.ReportID] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var acked, missing limited
	for _, id := range sortedKeys(s.reports) {
		// A report without pulses has no row to find.
		if unsent[id] || s.reports[id] == 0 {
			continue
		}
		acked.n++
		if !stored[id] {
			missing.add("report %s acknowledged, not in the Parquet store", id)
		}
	}
	inv.Held = missing.n == 0 && acked.n > 0
	inv.Violations = missing.list
	inv.Detail = fmt.Sprintf("%d reports spooled, %d acknowledged, %d of them in Parquet (%d pulse rows in %s); %d left in spools",
		len(s.reports), acked.n, acked.n-missing.n, rows, measureDir, len(unsent))
	return inv
}

// procCheck samples every daemon process's resident memory and open file
// descriptors from /proc every two seconds.
type procCheck struct {
	mu      sync.Mutex
	samples int
	peak    map[string]procSample
	// series per daemon name, for the growth check.
	series map[string][]procSample
}

type procSample struct {
	at  time.Time
	rss int64
	fds int
}

func (p *procCheck) run(ctx context.Context, c *lab.Chaos, cfg Config) {
	for clock.Sleep(ctx, 2*time.Second) == nil {
		for name, pid := range c.Processes() {
			if pid <= 0 {
				continue
			}
			smp, err := readProc(pid)
			if err != nil {
				continue // it just died (or was killed by us)
			}
			p.mu.Lock()
			p.samples++
			if p.series == nil {
				p.series = map[string][]procSample{}
			}
			p.series[name] = append(p.series[name], smp)
			pk := p.peak[name]
			pk.rss, pk.fds = max(pk.rss, smp.rss), max(pk.fds, smp.fds)
			p.peak[name] = pk
			p.mu.Unlock()
		}
	}
}

func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			s.rss = kb << 10
		}
		if v, ok := strings.CutPrefix(line, "State:"); ok && strings.Contains(v, "zombie") {
			return s, fmt.Errorf("pid %d exited", pid)
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(ents)
	return s, nil
}

// invariant: every sample within the limits, and, on a run of ten
// minutes or more, no daemon's memory or descriptors still climbing: the
// last fifth's median at most 1.5× the second fifth's, plus slack. A
// leak raises the floor; the peaks also carry the control plane's
// compaction of a minute's reports into Parquet (its RSS swings with
// it), so they are left to the bound above.
func (p *procCheck) invariant(cfg Config) Invariant {
	p.mu.Lock()
	defer p.mu.Unlock()
	inv := Invariant{Name: "daemons' memory and file descriptors bounded"}
	var v limited
	var worstRSS, worstFDs string
	var maxRSS int64
	var maxFDs int
	for _, name := range sortedKeys(p.peak) {
		pk := p.peak[name]
		if pk.rss > cfg.MaxRSS {
			v.add("%s: RSS %s over the %s bound", name, mib(pk.rss), mib(cfg.MaxRSS))
		}
		if pk.fds > cfg.MaxFDs {
			v.add("%s: %d file descriptors, over the bound of %d", name, pk.fds, cfg.MaxFDs)
		}
		if pk.rss > maxRSS {
			maxRSS, worstRSS = pk.rss, name
		}
		if pk.fds > maxFDs {
			maxFDs, worstFDs = pk.fds, name
		}
		if cfg.Duration >= 10*time.Minute {
			ser := p.series[name]
			fifth := len(ser) / 5
			if fifth > 0 {
				early, late := medianOf(ser[fifth:2*fifth]), medianOf(ser[4*fifth:])
				if float64(late.rss) > 1.5*float64(early.rss)+float64(32<<20) {
					v.add("%s: RSS still growing: median %s in the last fifth, %s in the second", name, mib(late.rss), mib(early.rss))
				}
				if float64(late.fds) > 1.5*float64(early.fds)+32 {
					v.add("%s: file descriptors still growing: median %d in the last fifth, %d in the second", name, late.fds, early.fds)
				}
			}
		}
	}
	inv.Held = v.n == 0 && p.samples > 0
	inv.Violations = v.list
	inv.Detail = fmt.Sprintf("%d samples of %d daemons; peak RSS %s (%s, bound %s), peak fds %d (%s, bound %d)",
		p.samples, len(p.peak), mib(maxRSS), worstRSS, mib(cfg.MaxRSS), maxFDs, worstFDs, cfg.MaxFDs)
	if cfg.Duration >= 10*time.Minute {
		inv.Detail += "; no growth of the median from the second fifth of the run to the last"
	}
	return inv
}

// medianOf is the median RSS and the median descriptor count of ss.
func medianOf(ss []procSample) procSample {
	rss := make([]int64, len(ss))
	fds := make([]int, len(ss))
	for i, s := range ss {
		rss[i], fds[i] = s.rss, s.fds
	}
	slices.Sort(rss)
	slices.Sort(fds)
	return procSample{rss: rss[len(rss)/2], fds: fds[len(fds)/2]}
}

// cutoffCheck runs slow and silent clients and checks the server cuts
// each off within the bound.
type cutoffCheck struct {
	mu         sync.Mutex
	runs       map[string]int
	longest    map[string]time.Duration
	violations limited
}

type clientTarget struct{ addr, method, path string }

// run opens one connection as kind and waits for the server to close it.
// A slow client trickles its request header a byte a second and never
// finishes it; a silent one sends a whole header declaring a body of
// 1000 bytes and never sends a byte of it. Either is a violation if the
// connection is still open at bound.
func (cc *cutoffCheck) run(ctx context.Context, kind string, t clientTarget, name string, bound time.Duration) error {
	conn, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		// The server's answer (if any) is read and dropped; EOF or a reset
		// is the cut-off.
		defer close(closed)
		conn.SetReadDeadline(start.Add(bound))
		io.Copy(io.Discard, conn)
	}()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ocdn-soak\r\n", t.method, t.path, t.addr)
	if kind == KindSilentClient {
		conn.Write([]byte(head + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"))
	} else {
		conn.Write([]byte(head))
		trickle := "X-Slow: " + strings.Repeat("a", 1000)
	loop:
		for i := 0; i < len(trickle); i++ {
			select {
			case <-closed:
				break loop
			case <-time.After(time.Second):
			}
			if _, err := conn.Write([]byte{trickle[i]}); err != nil {
				break
			}
		}
	}
	<-closed
	held := time.Since(start)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.runs == nil {
		cc.runs, cc.longest = map[string]int{}, map[string]time.Duration{}
	}
	cc.runs[kind]++
	cc.longest[kind] = max(cc.longest[kind], held)
	if held >= bound {
		cc.violations.add("%s against %s: connection still open after %v", kind, name, bound)
	}
	return nil
}

func (cc *cutoffCheck) invariant(cfg Config) Invariant {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	inv := Invariant{Name: "slow and silent clients cut off", Held: cc.violations.n == 0, Violations: cc.violations.list}
	inv.Detail = fmt.Sprintf("%d slow clients, longest held %v; %d silent clients, longest held %v (bound %v)",
		cc.runs[KindSlowClient], cc.longest[KindSlowClient].Round(100*time.Millisecond),
		cc.runs[KindSilentClient], cc.longest[KindSilentClient].Round(100*time.Millisecond), cfg.CutOffBound)
	return inv
}
