package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/auth"
	"github.com/ocdn/ocdn/internal/content"
)

// TestSIGKILLDuringFill is the acceptance test for crash safety: real
// origin, control plane and appliance processes; the appliance is killed
// with SIGKILL while it is writing fill downloads into its store, three
// times at different moments, and restarted on the same store. After each
// restart `ocdn store verify` must pass and every manifest file must be
// either absent (404) or served with exactly the catalog's bytes. Objects
// published since the store's last checkpoint are re-hashed before they
// are served (a 404 until then); the log line saying so is shown.
func TestSIGKILLDuringFill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs origin, control plane and appliance processes and moves ~200 MB")
	}
	// Fill runs at loopback speed; a user-space throttle between the
	// appliance and the origin keeps writes in progress long enough to
	// kill the appliance in the middle of them.
	c := startCDN(t, "crash", "127.1.200", []string{"--titles", "6", "--ladder", "4000,8000", "--duration", "20s"},
		func(originURL string) string { return throttledRelay(t, "127.1.200.4", originURL, 24<<20) })
	storeDir, manifest, urls := c.storeDir, c.manifest, c.urls

	tmp := filepath.Join(storeDir, "tmp")
	moments := []struct {
		name string
		when func() bool
	}{
		{"as the first write starts", func() bool { return len(partials(tmp)) > 0 }},
		{"deep inside a large write", func() bool {
			for _, p := range partials(tmp) {
				if p.size > 4<<20 {
					return true
				}
			}
			return false
		}},
		{"just after an object is published, with another write open", nil}, // set below
	}
	var published int
	moments[2].when = func() bool { return countObjects(storeDir) > published && len(partials(tmp)) > 0 }

	start := func() *proc { return c.startAppliance(t) }
	app := start()
	for round, m := range moments {
		published = countObjects(storeDir)
		waitFor(t, "the moment "+m.name, 60*time.Second, m.when, app)
		inFlight := partials(tmp)
		app.kill()
		objects := countObjects(storeDir)
		t.Logf("round %d: SIGKILL %s: %d objects stored, %d partial writes %v", round+1, m.name, objects, len(inFlight), inFlight)
		if objects == len(manifest.Files) {
			t.Fatalf("round %d: the fill had already finished; the kill tested nothing", round+1)
		}

		app = start()
		for _, line := range strings.Split(app.logText(), "\n") {
			if strings.Contains(line, "store opened") {
				t.Logf("round %d: %s", round+1, line)
			}
		}
		absent, served := checkServed(t, manifest.Files, urls)
		t.Logf("round %d: after restart %d files served intact, %d not yet stored (404)", round+1, served, absent)
		if out, errOut, err := runOCDN(t, "store", "verify", "--store", storeDir); err != nil || !strings.HasSuffix(out, "all good\n") {
			t.Fatalf("round %d: ocdn store verify after SIGKILL: %v\nstdout:\n%s\nstderr:\n%s", round+1, err, out, errOut)
		}
	}

	// The restarted appliance finishes the fill (and the re-hashing of
	// what the crash left in doubt), and every file is right.
	waitFor(t, "every file served after the last restart", 120*time.Second, func() bool {
		absent, _ := checkServed(t, manifest.Files, urls)
		return absent == 0
	}, app)
	if out := mustOCDN(t, "store", "verify", "--store", storeDir); out != fmt.Sprintf("%d objects verified, all good\n", len(manifest.Files)) {
		t.Errorf("final store verify printed %q", out)
	}
}

// cdn is an origin and a control plane running as processes, the config
// of one appliance (on its own store) in their inventory, and a signed URL
// for every file of the catalog.
type cdn struct {
	dir, storeDir string
	applianceYAML string
	base          string // the appliance's URL
	manifest      api.Manifest
	urls          map[string]string // by catalog path
}

// startCDN starts the origin and the control plane on loopback addresses
// under host (e.g. "127.1.200"), with a synthetic catalog made by synth
// (flags of ocdn catalog synth), the appliance and its site named after
// name. via, if set, turns the origin's URL into the one fill uses.
func startCDN(t *testing.T, name, host string, synth []string, via func(originURL string) string) *cdn {
	t.Helper()
	c := &cdn{dir: t.TempDir()}
	catalog := filepath.Join(c.dir, "synth.json")
	keyFile := filepath.Join(c.dir, "keys.json")
	c.storeDir = filepath.Join(c.dir, "store")
	mustOCDN(t, append(append([]string{"catalog", "synth"}, synth...), "-o", catalog)...)
	mustOCDN(t, "urlsign", "keygen", "--out", keyFile)
	cat, err := content.Load(catalog)
	if err != nil {
		t.Fatal(err)
	}

	originAddr := freeAddr(t, host+".1")
	origin := startOCDN(t, c.dir, "origin", "origin", "--catalog", catalog, "--listen", originAddr)
	waitFor(t, "the origin", 20*time.Second, func() bool { return healthy("http://" + originAddr) }, origin)
	originURL := "http://" + originAddr
	if via != nil {
		originURL = via(originURL)
	}

	controlAddr := freeAddr(t, host+".2")
	applianceAddr := freeAddr(t, host+".3")
	controlYAML := filepath.Join(c.dir, "control.yaml")
	writeFile(t, controlYAML, fmt.Sprintf(`listen: %s
catalog: %s
origin_url: %s
key_file: %s
appliance_secret_file: appliance.secret
heartbeat_interval: 500ms
replicas: 1
turn_up: {enabled: false}
sites:
  - {id: %s-site, kind: ixp, time_zone: UTC}
appliances:
  - {id: %s-1, site: %s-site, address: %s, capacity: 1GiB}
`, controlAddr, catalog, originURL, keyFile, name, name, name, applianceAddr))
	// The appliance's credential, minted as an operator mints it.
	writeFile(t, filepath.Join(c.dir, "appliance.secret"), auth.NewSecret().Encode())
	writeFile(t, filepath.Join(c.dir, "appliance.token"), mustOCDN(t, "control", "--config", controlYAML, "--mint-token", name+"-1"))
	c.applianceYAML = filepath.Join(c.dir, "appliance.yaml")
	writeFile(t, c.applianceYAML, fmt.Sprintf(`id: %s-1
listen: %s
control_urls: [http://%s]
store: %s
capacity: 1GiB
key_file: %s
token_file: appliance.token
heartbeat_interval: 500ms
drain_grace: 1ms
`, name, applianceAddr, controlAddr, c.storeDir, keyFile))

	control := startOCDN(t, c.dir, "control", "control", "--config", controlYAML)
	waitFor(t, "the control plane", 20*time.Second, func() bool { return healthy("http://" + controlAddr) }, control)
	token, err := os.ReadFile(filepath.Join(c.dir, "appliance.token"))
	if err != nil {
		t.Fatal(err)
	}
	getJSON(t, "http://"+controlAddr+"/v1/manifest?appliance="+name+"-1", strings.TrimSpace(string(token)), &c.manifest)
	if len(c.manifest.Files) != len(cat.Files) {
		t.Fatalf("manifest has %d files, want all %d of the catalog", len(c.manifest.Files), len(cat.Files))
	}

	// One title-scoped URL per title, made by the operator command; the
	// other files of the title reuse its token.
	c.base = "http://" + applianceAddr
	c.urls = map[string]string{}
	for _, title := range cat.Titles() {
		files := cat.TitleFiles(title)
		u := strings.TrimSpace(mustOCDN(t, "urlsign", "--key-file", keyFile, "--scope", title+"/", "--base", c.base, files[0].Path))
		prefix := strings.TrimSuffix(u, files[0].Path)
		for _, f := range files {
			c.urls[f.Path] = prefix + f.Path
		}
	}
	return c
}

// startAppliance starts the appliance on its store and waits until it is
// healthy.
func (c *cdn) startAppliance(t *testing.T) *proc {
	t.Helper()
	app := startOCDN(t, c.dir, "appliance", "appliance", "--config", c.applianceYAML)
	waitFor(t, "the appliance", 20*time.Second, func() bool { return healthy(c.base) }, app)
	return app
}

// checkServed fetches every file and fails the test unless each is 404 or
// exactly the catalog's bytes.
func checkServed(t *testing.T, files []content.File, urls map[string]string) (absent, served int) {
	t.Helper()
	for _, f := range files {
		code, sum, n, err := fetchSHA(urls[f.Path])
		switch {
		case err != nil:
			t.Errorf("GET %s: %v after %d bytes", f.Path, err, n)
		case code == http.StatusNotFound:
			absent++
		case code == http.StatusOK && sum == f.SHA256 && n == f.Size:
			served++
		case code == http.StatusOK:
			t.Errorf("GET %s: 200 with %d bytes, sha256 %s; want %d bytes, sha256 %s", f.Path, n, sum, f.Size, f.SHA256)
		default:
			t.Errorf("GET %s: status %d, want 200 or 404", f.Path, code)
		}
	}
	return absent, served
}

type partial struct {
	name string
	size int64
}

// partials lists the store's writes in progress (tmp/put-*).
func partials(tmp string) []partial {
	entries, _ := os.ReadDir(tmp)
	var out []partial
	for _, e := range entries {
		if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "put-") {
			out = append(out, partial{e.Name(), info.Size()})
		}
	}
	return out
}

// countObjects counts published object files.
func countObjects(storeDir string) int { return countFiles(filepath.Join(storeDir, "objects")) }

// countFiles counts the files under dir.
func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// throttledRelay proxies to target, sending each response body at no
// more than bytesPerSecond, and returns its base URL.
func throttledRelay(t *testing.T, host, target string, bytesPerSecond int) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(r *http.Response) error {
		r.Body = &slowBody{ReadCloser: r.Body, rate: bytesPerSecond, start: time.Now()}
		return nil
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0) // aborted fills are expected here
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(proxy)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// slowBody paces reads to rate bytes per second since start: a bandwidth
// emulation, the way the lab emulates distance.
type slowBody struct {
	io.ReadCloser
	rate  int
	start time.Time
	n     int64
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	due := b.start.Add(time.Duration(float64(b.n) / float64(b.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// getJSON GETs u (with a bearer token, when set) into out.
func getJSON(t *testing.T, u, token string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
