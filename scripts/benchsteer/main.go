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
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/config"
	"github.com/ocdn/ocdn/internal/content"
	"github.com/ocdn/ocdn/internal/daemon"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "benchsteer-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(routesFile); err != nil {
		return fmt.Errorf("%v (the shared data must sit beside the repository)", err)
	}
	abs, err := filepath.Abs(routesFile)
	if err != nil {
		return err
	}
	// The control plane is assembled as `ocdn control --config` assembles
	// it, from this file: the full table is the IXP site's route file.
	cfg, cat, err := writeConfig(dir, abs)
	if err != nil {
		return err
	}
	ctl, err := daemon.NewControl(ctx, cfg, daemon.Hooks{})
	if err != nil {
		return err
	}
	go ctl.Run(ctx)
	base := ctl.URLs()[0]
	fmt.Printf("control plane: the routes of %s for site ix (2 appliances), embedded site routes 10.0.0.0/8\n", filepath.Base(routesFile))
	for _, id := range []string{"e1", "e2", "x1", "x2"} {
		if err := post(base, "/v1/heartbeat", id, api.Heartbeat{Appliance: id, ContentGen: 1, Held: []string{cat.Files[0].Path}}); err != nil {
			return err
		}
	}
	if err := post(base, "/v1/routes", "e1", api.RouteReport{Appliance: "e1", Epoch: "b", Seq: 1, Snapshot: true,
		Announce: []rib.Route{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Attrs: rib.Attrs{LocalPref: 100}}}}); err != nil {
		return err
	}
	minimal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}` + "\n"))
	})
	minSrv, err := serve.Listen("127.0.0.1:0", minimal, serve.Options{})
	if err != nil {
		return err
	}
	go minSrv.Run(ctx)
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
		sr, err := wrk(base+"/", lua, d, conns)
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

// writeConfig writes the control plane's config and the files it names.
func writeConfig(dir, routes string) (*config.Control, *content.Catalog, error) {
	cat, err := content.Synth(content.SynthSpec{Titles: 1, LadderKbps: []int{100}, Duration: time.Second})
	if err != nil {
		return nil, nil, err
	}
	catJSON, err := cat.Marshal()
	if err != nil {
		return nil, nil, err
	}
	keys, err := json.Marshal(urlsign.Generate())
	if err != nil {
		return nil, nil, err
	}
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
catalog: catalog.json
origin_url: http://127.0.0.1:1
key_file: keys.json
admin_token_file: admin.token
appliance_secret_file: appliance.secret
heartbeat_interval: 1h
turn_up: {enabled: false}
route_files: [{site: ix, file: %s}]
isps: [{name: isp, asn: 64500, prefixes: [10.0.0.0/8]}]
sites:
  - {id: emb, kind: embedded, isp: isp, time_zone: UTC}
  - {id: ix, kind: ixp, time_zone: UTC}
appliances:
  - {id: e1, site: emb, address: 127.1.0.1:80, capacity: 1GiB}
  - {id: e2, site: emb, address: 127.1.0.2:80, capacity: 1GiB}
  - {id: x1, site: ix, address: 127.1.0.3:80, capacity: 1GiB}
  - {id: x2, site: ix, address: 127.1.0.4:80, capacity: 1GiB}
`, routes)
	for name, b := range map[string][]byte{"catalog.json": catJSON, "keys.json": keys, "admin.token": []byte(adminToken),
		"appliance.secret": []byte(secret.Encode()), "control.yaml": []byte(yaml)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, nil, err
		}
	}
	var cfg config.Control
	if err := config.Load(filepath.Join(dir, "control.yaml"), &cfg); err != nil {
		return nil, nil, err
	}
	return &cfg, cat, nil
}

// secret mints the simulated appliances' credentials.
var secret = auth.NewSecret()

// post sends v as JSON to the control plane, as appliance id would.
func post(base, path, id string, v any) error {
	b, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret.Mint(id, time.Now().Add(time.Hour)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return nil
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
