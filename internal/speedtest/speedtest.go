// Package speedtest provides a fast.com-style download speed test
// against CDN appliances: the targets are the URLs steering hands the
// client (Targets asks the control plane's replicas through cpclient), so
// the test measures the path real playback would use.
//
// # Method
//
//  1. Unloaded latency: on one kept-alive connection (warmed with one
//     request first), LatencyProbes requests for one byte; the median of
//     request-to-first-byte times.
//  2. Download: MinConns connections each fetch ChunkBytes ranges of the
//     target URLs back to back (connection i uses URL i mod n). Bytes are
//     counted as they are read and sampled every Window.
//  3. Adaptive parallelism: every AdaptEvery windows the mean rate of the
//     phase (after the ramp-up windows that follow a new connection) is
//     compared with the previous phase's; while it grew by more than
//     Growth, one more connection is opened, up to MaxConns. The first
//     phase that does not grow ends the adaptation.
//  4. Stop rule: after adaptation, once the last StableWindows windows
//     (all after the last ramp-up) are each within ±Tolerance of their
//     mean, the test stops and that stable span is the estimate (its
//     bytes over its time). At MaxDuration it stops anyway, Stable is
//     false, and the estimate is every window after the last ramp-up.
//     Ramp-up (slow start, new connections) is thus never in the
//     estimate.
//  5. Loaded latency: during the download, a one-byte request every
//     LoadedEvery on the latency connection; the median. The difference
//     from the unloaded latency is the queueing the download caused.
package speedtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/cpclient"
	"github.com/ocdn/ocdn/internal/defaults"
)

// Config shapes a test. Zero values get the documented defaults.
type Config struct {
	// URLs are the targets, best first (from steering).
	URLs []string
	// Dial opens every connection; nil means a net.Dialer bound to
	// Source. The lab and tests inject a netem dialer.
	Dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	Source    netip.Addr
	TLSConfig *tls.Config

	MinConns int // default 1
	MaxConns int // default 8
	// Window is the sampling interval (default 200 ms).
	Window time.Duration
	// AdaptEvery is how many windows a parallelism phase lasts
	// (default 5); RampWindows are discarded after each new connection
	// (default 3).
	AdaptEvery, RampWindows int
	// Growth is the rate increase a phase must show for another
	// connection to be added (default 0.1 = 10%).
	Growth float64
	// StableWindows within ±Tolerance end the test (defaults 10 and 0.03).
	StableWindows int
	Tolerance     float64
	// MaxDuration bounds the download phase (default 20 s).
	MaxDuration time.Duration
	// ChunkBytes is the range size of one download request (default
	// 8 MiB); a URL whose file is smaller is fetched whole, repeatedly.
	ChunkBytes int64
	// LatencyProbes is the number of unloaded latency samples (default
	// 5); LoadedEvery spaces loaded ones (default 250 ms).
	LatencyProbes int
	LoadedEvery   time.Duration
	// Progress, when set, is called with each window's rate.
	Progress func(Sample)
}

// Sample is one sampling window.
type Sample struct {
	Elapsed     time.Duration
	RateBps     float64
	Connections int
}

// Result is what a test measured.
type Result struct {
	// DownloadBps is the estimate in bits per second.
	DownloadBps float64 `json:"download_bps"`
	// Stable is true when the stop rule ended the test, false when
	// MaxDuration did.
	Stable      bool    `json:"stable"`
	Connections int     `json:"connections"`
	Bytes       int64   `json:"bytes"`
	DurationMs  float64 `json:"duration_ms"`
	// EstimateWindows is how many windows the estimate covers.
	EstimateWindows   int       `json:"estimate_windows"`
	UnloadedLatencyMs float64   `json:"unloaded_latency_ms"`
	LoadedLatencyMs   float64   `json:"loaded_latency_ms"`
	WindowsBps        []float64 `json:"windows_bps"`
	Targets           []string  `json:"targets"`
}

func (c *Config) setDefaults() {
	if c.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if c.Source.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: c.Source.AsSlice()}
		}
		c.Dial = d.DialContext
	}
	defaults.Positive(&c.MinConns, 1)
	defaults.Positive(&c.MaxConns, 8)
	c.MaxConns = max(c.MaxConns, c.MinConns)
	defaults.Positive(&c.Window, 200*time.Millisecond)
	defaults.Positive(&c.AdaptEvery, 5)
	defaults.Positive(&c.RampWindows, 3)
	defaults.Positive(&c.Growth, 0.1)
	defaults.Positive(&c.StableWindows, 10)
	defaults.Positive(&c.Tolerance, 0.03)
	defaults.Positive(&c.MaxDuration, 20*time.Second)
	defaults.Positive(&c.ChunkBytes, 8<<20)
	defaults.Positive(&c.LatencyProbes, 5)
	defaults.Positive(&c.LoadedEvery, 250*time.Millisecond)
}

// ErrNoTargets means Config.URLs is empty, or steering had no URL.
var ErrNoTargets = errors.New("speedtest: no target URLs")

// Targets asks the control plane, through cp, for steering's ranked URLs
// (at most n) of file, a title/file path; with file empty, of the largest
// file of title. It returns the file and its URLs, best first.
func Targets(ctx context.Context, cp *cpclient.Client, title, file string, n int) (string, []string, error) {
	if file == "" {
		var files []content.File
		if err := cp.GetJSON(ctx, "/v1/titles/"+url.PathEscape(title), &files); err != nil {
			return "", nil, fmt.Errorf("speedtest: title %s: %w", title, err)
		}
		var best content.File
		for _, f := range files {
			if f.Size > best.Size {
				best = f
			}
		}
		if best.Path == "" {
			return "", nil, fmt.Errorf("speedtest: title %s has no files", title)
		}
		file = best.Path
	}
	var resp api.SteerResponse
	if err := cp.GetJSON(ctx, fmt.Sprintf("/v1/steer?files=%s&n=%d", url.QueryEscape(file), n), &resp); err != nil {
		return "", nil, fmt.Errorf("speedtest: steer %s: %w", file, err)
	}
	var urls []string
	for _, f := range resp.Files {
		for _, c := range f.URLs {
			urls = append(urls, c.URL)
		}
	}
	if len(urls) == 0 {
		return "", nil, fmt.Errorf("%w for %s", ErrNoTargets, file)
	}
	return file, urls, nil
}

func (c *Config) transport() *http.Transport {
	return &http.Transport{DialContext: c.Dial, TLSClientConfig: c.TLSConfig, MaxConnsPerHost: 1,
		MaxIdleConnsPerHost: 1, DisableCompression: true, IdleConnTimeout: 30 * time.Second}
}

// Run performs one test.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.URLs) == 0 {
		return nil, ErrNoTargets
	}
	cfg.setDefaults()
	res := &Result{Targets: slices.Clone(cfg.URLs)}

	lat := &http.Client{Transport: cfg.transport(), Timeout: 10 * time.Second}
	defer lat.CloseIdleConnections()
	if _, err := ping(ctx, lat, cfg.URLs[0]); err != nil {
		return nil, fmt.Errorf("speedtest: %w", err)
	}
	var unloaded []float64
	for range cfg.LatencyProbes {
		d, err := ping(ctx, lat, cfg.URLs[0])
		if err != nil {
			return nil, fmt.Errorf("speedtest: unloaded latency: %w", err)
		}
		unloaded = append(unloaded, ms(d))
	}
	res.UnloadedLatencyMs = median(unloaded)

	dlCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	var counter atomic.Int64
	errs := make(chan error, cfg.MaxConns)
	conns := 0
	addConn := func() {
		u := cfg.URLs[conns%len(cfg.URLs)]
		conns++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := download(dlCtx, cfg, u, &counter); err != nil && dlCtx.Err() == nil {
				errs <- err
			}
		}()
	}
	for range cfg.MinConns {
		addConn()
	}

	// Loaded latency, on the warm latency connection.
	var loadedMu sync.Mutex
	var loaded []float64
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.LoadedEvery)
		defer t.Stop()
		for {
			select {
			case <-dlCtx.Done():
				return
			case <-t.C:
			}
			if d, err := ping(dlCtx, lat, cfg.URLs[0]); err == nil {
				loadedMu.Lock()
				loaded = append(loaded, ms(d))
				loadedMu.Unlock()
			}
		}
	}()

	start := time.Now()
	tick := time.NewTicker(cfg.Window)
	defer tick.Stop()
	type window struct {
		bytes int64
		dur   time.Duration
	}
	var wins []window
	last, lastBytes := start, int64(0)
	rampEnd := cfg.RampWindows // first window index counted after ramp-up
	adapting := true
	prevPhase := 0.0
	estFrom := -1
	for estFrom < 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-errs:
			return nil, fmt.Errorf("speedtest: %w", err)
		case now := <-tick.C:
			b := counter.Load()
			w := window{bytes: b - lastBytes, dur: now.Sub(last)}
			last, lastBytes = now, b
			wins = append(wins, w)
			rate := float64(w.bytes) * 8 / w.dur.Seconds()
			res.WindowsBps = append(res.WindowsBps, rate)
			if cfg.Progress != nil {
				cfg.Progress(Sample{Elapsed: now.Sub(start), RateBps: rate, Connections: conns})
			}
			n := len(wins)
			if adapting && n-rampEnd >= cfg.AdaptEvery {
				phase := meanRate(wins[rampEnd:], func(w window) (int64, time.Duration) { return w.bytes, w.dur })
				if conns < cfg.MaxConns && (prevPhase == 0 || phase > prevPhase*(1+cfg.Growth)) {
					prevPhase = phase
					addConn()
					rampEnd = n + cfg.RampWindows
				} else {
					adapting = false
				}
			}
			if !adapting && n-rampEnd >= cfg.StableWindows {
				tail := res.WindowsBps[n-cfg.StableWindows:]
				m := mean(tail)
				stable := true
				for _, r := range tail {
					stable = stable && r >= m*(1-cfg.Tolerance) && r <= m*(1+cfg.Tolerance)
				}
				if stable {
					res.Stable = true
					estFrom = n - cfg.StableWindows
				}
			}
			if estFrom < 0 && now.Sub(start) >= cfg.MaxDuration {
				estFrom = min(rampEnd, n-1)
			}
		}
	}
	stop()
	wg.Wait()
	var eb int64
	var ed time.Duration
	for _, w := range wins[estFrom:] {
		eb += w.bytes
		ed += w.dur
	}
	res.DownloadBps = float64(eb) * 8 / ed.Seconds()
	res.EstimateWindows = len(wins) - estFrom
	res.Connections = conns
	res.Bytes = counter.Load()
	res.DurationMs = ms(time.Since(start))
	res.LoadedLatencyMs = median(loaded)
	return res, nil
}

// download fetches ChunkBytes ranges of u back to back on one connection
// until ctx ends, counting bytes as they arrive.
func download(ctx context.Context, cfg Config, u string, counter *atomic.Int64) error {
	tr := cfg.transport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Range", fmt.Sprintf("bytes=0-%d", cfg.ChunkBytes-1))
		req.Header.Set(api.MeasurementHeader, "speedtest")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
		for {
			n, err := resp.Body.Read(buf)
			counter.Add(int64(n))
			if err == io.EOF {
				break
			}
			if err != nil {
				resp.Body.Close()
				return err
			}
		}
		resp.Body.Close()
	}
	return nil
}

// ping is one one-byte request on client's (kept-alive) connection: the
// time from sending to the first response byte.
func ping(ctx context.Context, client *http.Client, u string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Range", "bytes=0-0")
	req.Header.Set(api.MeasurementHeader, "speedtest")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return d, nil
}

func meanRate[T any](ws []T, f func(T) (int64, time.Duration)) float64 {
	var b int64
	var d time.Duration
	for _, w := range ws {
		wb, wd := f(w)
		b += wb
		d += wd
	}
	if d <= 0 {
		return 0
	}
	return float64(b) * 8 / d.Seconds()
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
