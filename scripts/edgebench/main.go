// Command edgebench is the helper of scripts/bench-edge.sh: it prepares
// identical content for nginx and an appliance store, and holds thousands
// of idle keep-alive connections to measure an appliance's memory.
//
//	edgebench prep -store DIR -root DIR -keys FILE -files N -size BYTES
//	edgebench idle -addr HOST:PORT -n 10000 -pid PID
//	edgebench paired -name sampling <PAIRS
//	edgebench accounted -before M0 -after M1 -bench BENCH -cpu-ns N -conns N
//
// prep prints one line per file: "<appliance path> <nginx path>".
// paired reads "CASE A B" lines (the CPU per request of the two arms of
// one pair) and prints, per case, the median ratio A/B as a percentage
// change with its 95% interval (paired.go). accounted prints sampling's
// own work over the pairs of one size: the sampling appliance's counters
// (the difference of two /metrics scrapes) times internal/transport's
// benchmarks' cost of each, against the appliance's CPU (accounted.go).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/store"
	"github.com/ocdn/ocdn/internal/urlsign"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: edgebench prep|idle|paired|accounted [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "prep":
		err = prep(os.Args[2:])
	case "idle":
		err = idle(os.Args[2:])
	case "paired":
		err = paired(os.Args[2:], os.Stdin, os.Stdout)
	case "accounted":
		err = accounted(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

// prep writes N synthetic files into an appliance store (verified Put)
// and, byte for byte the same, under an nginx root; it makes a key file
// and prints signed paths.
func prep(args []string) error {
	fs := flag.NewFlagSet("prep", flag.ExitOnError)
	storeDir := fs.String("store", "", "appliance store directory")
	root := fs.String("root", "", "nginx document root")
	keyFile := fs.String("keys", "", "URL-signing key file to write")
	files := fs.Int("files", 4, "number of files")
	size := fs.Int64("size", 32<<20, "bytes per file")
	fs.Parse(args)
	if *storeDir == "" || *root == "" || *keyFile == "" {
		return errors.New("prep needs -store, -root and -keys")
	}
	st, err := store.Open(*storeDir, 0, nil)
	if err != nil {
		return err
	}
	ks := urlsign.Generate()
	if err := ks.Save(*keyFile); err != nil {
		return err
	}
	for i := range *files {
		p := fmt.Sprintf("t%04d/video_3000k.mp4", i)
		f := content.File{Path: p, Size: *size, SHA256: content.SynthHash(p, *size), Kind: content.KindVideo}
		if err := st.Put(context.Background(), f, content.SynthReader(p, *size)); err != nil {
			return err
		}
		dst := filepath.Join(*root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, content.SynthReader(p, *size)); err != nil {
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		tok, err := ks.Sign(urlsign.Grant{Scope: p, Expires: time.Now().Add(24 * time.Hour)})
		if err != nil {
			return err
		}
		fmt.Printf("/c/%s/%s /%s\n", tok, p, p)
	}
	return nil
}

// idle opens n keep-alive connections, each completing one request
// (/healthz) so it is an idle HTTP connection the server keeps, spread
// over source addresses in 127.64.0.0/16 so ephemeral ports never run out;
// then it reads the server's VmRSS and closes them.
func idle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", "", "appliance host:port")
	n := fs.Int("n", 10000, "connections")
	pid := fs.Int("pid", 0, "appliance process id (for VmRSS)")
	perSource := fs.Int("per-source", 2000, "connections per source address")
	hold := fs.Duration("hold", 2*time.Second, "how long to hold them before measuring")
	fs.Parse(args)
	if *addr == "" || *pid == 0 {
		return errors.New("idle needs -addr and -pid")
	}
	before, err := vmRSS(*pid)
	if err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	start := time.Now()
	for i := range *n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			src := netip.AddrFrom4([4]byte{127, 64, byte(1 + i / *perSource / 250), byte(1 + (i / *perSource)%250)})
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
			c, err := d.Dial("tcp", *addr)
			if err == nil {
				err = oneRequest(c)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				if c != nil {
					c.Close()
				}
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	opened := time.Since(start)
	time.Sleep(*hold) // let the server settle; this measures a steady state
	after, err := vmRSS(*pid)
	if err != nil {
		return err
	}
	stats, _ := memStats(*addr) // while the connections are open
	// Check they are still open: the server must not have dropped them.
	alive := 0
	for _, c := range conns {
		if c == nil {
			continue
		}
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			alive++
		}
		c.Close()
	}
	fmt.Printf("idle connections: %d opened in %v, %d failed, %d still open after %v\n", *n-int(failed.Load()), opened.Round(time.Millisecond), failed.Load(), alive, *hold)
	if e := firstErr.Load(); e != nil {
		fmt.Printf("first error: %v\n", e)
	}
	fmt.Printf("appliance VmRSS: %.1f MB before, %.1f MB with %d idle connections (%.1f KB per connection)\n",
		float64(before)/1e6, float64(after)/1e6, alive, float64(after-before)/1e3/float64(max(alive, 1)))
	if stats != "" {
		fmt.Printf("appliance Go memory: %s\n", stats)
	}
	if failed.Load() > 0 || alive != *n {
		return fmt.Errorf("%d connections failed or were dropped", *n-alive)
	}
	return nil
}

func oneRequest(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb)
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// memStats picks the Go runtime's memory figures from /metrics.
func memStats(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	want := map[string]string{"go_memstats_heap_inuse_bytes": "heap in use", "go_memstats_stack_inuse_bytes": "stacks",
		"go_memstats_heap_idle_bytes": "heap idle", "go_memstats_heap_released_bytes": "released", "go_goroutines": "goroutines"}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if label, hit := want[name]; ok && hit {
			var v float64
			fmt.Sscanf(val, "%g", &v)
			if name == "go_goroutines" {
				out = append(out, fmt.Sprintf("%s %.0f", label, v))
			} else {
				out = append(out, fmt.Sprintf("%s %.1f MB", label, v/1e6))
			}
		}
	}
	return strings.Join(out, ", "), sc.Err()
}
