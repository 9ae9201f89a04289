// Command benchsteer compares GET /v1/steer over HTTP with a minimal Go
// handler on the same machine, in the same run, both loaded by wrk: the
// control plane holds the 1.06M-prefix table as the routes of an IXP site
// and each request steers a random client address (client=, admin token).
// It alternates the two for a few rounds and prints requests/s of both and
// the median ratio. Run it with `make bench-steer`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/control"
	"github.com/ocdn/ocdn/internal/rib"
	"github.com/ocdn/ocdn/internal/serve"
	"github.com/ocdn/ocdn/internal/urlsign"
)

const adminToken = "bench-admin-token"

func main() {
	routes := flag.String("routes", "../shared/data/routes/full-table-prefixes.txt.gz", "global table loaded as the IXP site's routes")
	duration := flag.Duration("duration", 5*time.Second, "wrk duration per target and round")
	rounds := flag.Int("rounds", 5, "rounds of steering then minimal handler; the median ratio is the result")
	conns := flag.Int("connections", 64, "wrk connections")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the first steering run to this file")
	flag.Parse()
	if err := run(*routes, *duration, *rounds, *conns, *cpuprofile); err != nil {
		fmt.Fprintln(os.Stderr, "benchsteer:", err)
		os.Exit(1)
	}
}

func run(routesFile string, d time.Duration, rounds, conns int, cpuprofile string) error {
	if rounds < 1 || d < time.Second {
		return fmt.Errorf("want at least one round of at least 1s, have %d of %v", rounds, d)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (Debian package wrk)")
	}
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		return err
	}
	addr := func(s string) config.AddrPort { return config.AddrPort{AddrPort: netip.MustParseAddrPort(s)} }
	inv := config.Inventory{
		ISPs:  []config.ISP{{Name: "isp", ASN: 64500, Prefixes: []config.Prefix{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}}},
		Sites: []config.Site{{ID: "emb", Kind: config.SiteEmbedded, ISP: "isp"}, {ID: "ix", Kind: config.SiteIXP}},
		Appliances: []config.Appliance{
			{ID: "e1", Site: "emb", Address: addr("127.1.0.1:80"), Capacity: 1 << 30},
			{ID: "e2", Site: "emb", Address: addr("127.1.0.2:80"), Capacity: 1 << 30},
			{ID: "x1", Site: "ix", Address: addr("127.1.0.3:80"), Capacity: 1 << 30},
			{ID: "x2", Site: "ix", Address: addr("127.1.0.4:80"), Capacity: 1 << 30},
		},
	}
	ctl, err := control.New(control.Config{Inventory: inv, Catalog: cat, OriginURL: "http://127.0.0.1:1", Keys: urlsign.Generate(),
		AdminToken: adminToken, HeartbeatInterval: time.Hour})
	if err != nil {
		return err
	}
	f, err := os.Open(routesFile)
	if err != nil {
		return fmt.Errorf("%v (the shared data must sit beside the repository)", err)
	}
	global, format, err := rib.ReadRoutes(f)
	f.Close()
	if err != nil {
		return err
	}
	if err := ctl.LoadSiteRoutes("ix", global); err != nil {
		return err
	}
	fmt.Printf("control plane: %d %s routes for site ix (2 appliances), embedded site routes 10.0.0.0/8\n", len(global), format)
	h := ctl.Handler()
	for _, id := range []string{"e1", "e2", "x1", "x2"} {
		post(h, "/v1/heartbeat", api.Heartbeat{Appliance: id, ContentGen: 1, Held: []string{cat.Files[0].Path}})
	}
	post(h, "/v1/routes", api.RouteReport{Appliance: "e1", Epoch: "b", Seq: 1, Snapshot: true, Announce: []rib.Route{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Attrs: rib.Attrs{LocalPref: 100}}}})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	steerSrv, err := serve.Listen("127.0.0.1:0", h, serve.Options{})
	if err != nil {
		return err
	}
	go steerSrv.Run(ctx)
	minimal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}` + "\n"))
	})
	minSrv, err := serve.Listen("127.0.0.1:0", minimal, serve.Options{})
	if err != nil {
		return err
	}
	go minSrv.Run(ctx)

	dir, err := os.MkdirTemp("", "benchsteer-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lua := filepath.Join(dir, "steer.lua")
	// Each request steers a random IPv4 client, so lookups hit the whole
	// table rather than one cached path.
	script := `math.randomseed(42)
wrk.headers["Authorization"] = "Bearer ` + adminToken + `"
request = function()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." .. math.random(0, 255) .. "." .. math.random(1, 254)
  return wrk.format("GET", "/v1/steer?files=` + cat.Files[0].Path + `&n=5&client=" .. ip)
end
`
	if err := os.WriteFile(lua, []byte(script), 0o644); err != nil {
		return err
	}
	runtime.GC() // leave the table build's garbage out of the first round
	// Alternating rounds put both targets under the same passing load of a
	// shared machine; the median round is the result.
	var steerRPS, minRPS, ratios []float64
	for i := range rounds {
		stopProfile, err := profile(cpuprofile, i == 0)
		if err != nil {
			return err
		}
		sr, err := wrk(steerSrv.URL()+"/", lua, d, conns)
		stopProfile()
		if err != nil {
			return err
		}
		// The minimal handler gets the very same requests (wrk's Lua
		// request generator costs wrk CPU on a 2-core machine, so both
		// sides pay it).
		mr, err := wrk(minSrv.URL()+"/", lua, d, conns)
		if err != nil {
			return err
		}
		fmt.Printf("round %d: steer %.0f, minimal %.0f requests/s, ratio %.2f\n", i+1, sr, mr, sr/mr)
		steerRPS, minRPS, ratios = append(steerRPS, sr), append(minRPS, mr), append(ratios, sr/mr)
	}
	fmt.Printf("GET /v1/steer (n=5, signed URLs, random clients): %10.0f requests/s (median)\n", median(steerRPS))
	fmt.Printf("minimal Go handler:                                %10.0f requests/s (median)\n", median(minRPS))
	fmt.Printf("ratio steer/minimal: %.2f, median of %d rounds (target ≥ 0.70)\n", median(ratios), rounds)
	return nil
}

// profile starts a CPU profile into file when file is set and on is true,
// and returns the function that stops it.
func profile(file string, on bool) (stop func(), err error) {
	if file == "" || !on {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func post(h http.Handler, path string, v any) {
	b, _ := json.Marshal(v)
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(b))
	req.RemoteAddr = "127.1.0.1:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		fmt.Fprintf(os.Stderr, "benchsteer: %s: %d %s\n", path, w.Code, w.Body)
		os.Exit(1)
	}
}

var rpsLine = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(url, script string, d time.Duration, conns int) (float64, error) {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d.Seconds())) + "s"}
	args = append(args, "-s", script)
	out, err := exec.Command("wrk", append(args, url)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	m := rpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk printed no Requests/sec:\n%s", out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) {
		return 0, fmt.Errorf("wrk saw errors:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
