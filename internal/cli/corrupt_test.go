package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/api"
	"github.com/ocdn/ocdn/internal/content"
)

// TestCorruptWhileDownIsNeverServed is issue 19's bullet with real origin,
// control plane and appliance processes: the appliance is stopped, once
// cleanly (SIGTERM) and once by SIGKILL; while it is down one object is
// truncated and another has a bit flipped; it restarts on the same store.
// From the first request on, every file is either 404 (the client fails
// over) or exactly the catalog's bytes: never the old ETag with a length or
// bytes that no longer hold. The damaged objects are quarantined, leave
// the held set (the control plane puts them back in the appliance's fill
// plan, which lists only files it does not hold), are filled again and
// served intact, and `ocdn store verify` passes.
func TestCorruptWhileDownIsNeverServed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs origin, control plane and appliance processes")
	}
	dir := t.TempDir()
	catalog := filepath.Join(dir, "synth.json")
	keyFile := filepath.Join(dir, "keys.json")
	storeDir := filepath.Join(dir, "store")
	mustOCDN(t, "catalog", "synth", "--titles", "3", "--ladder", "1000,2000", "--duration", "8s", "-o", catalog)
	mustOCDN(t, "urlsign", "keygen", "--out", keyFile)
	cat, err := content.Load(catalog)
	if err != nil {
		t.Fatal(err)
	}

	originAddr := freeAddr(t, "127.1.201.1")
	origin := startOCDN(t, dir, "origin", "origin", "--catalog", catalog, "--listen", originAddr)
	waitFor(t, "the origin", 20*time.Second, func() bool { return healthy("http://" + originAddr) }, origin)
	controlAddr := freeAddr(t, "127.1.201.2")
	applianceAddr := freeAddr(t, "127.1.201.3")
	controlYAML := filepath.Join(dir, "control.yaml")
	writeFile(t, controlYAML, fmt.Sprintf(`listen: %s
catalog: %s
origin_url: http://%s
key_file: %s
heartbeat_interval: 200ms
replicas: 1
sites:
  - {id: rot-site, kind: ixp}
appliances:
  - {id: rot-1, site: rot-site, address: %s, capacity: 1GiB}
`, controlAddr, catalog, originAddr, keyFile, applianceAddr))
	applianceYAML := filepath.Join(dir, "appliance.yaml")
	writeFile(t, applianceYAML, fmt.Sprintf(`id: rot-1
listen: %s
control_url: http://%s
store: %s
capacity: 1GiB
key_file: %s
heartbeat_interval: 200ms
`, applianceAddr, controlAddr, storeDir, keyFile))
	control := startOCDN(t, dir, "control", "control", "--config", controlYAML)
	waitFor(t, "the control plane", 20*time.Second, func() bool { return healthy("http://" + controlAddr) }, control)
	var manifest api.Manifest
	getJSON(t, "http://"+controlAddr+"/v1/manifest?appliance=rot-1", &manifest)

	base := "http://" + applianceAddr
	urls := map[string]string{}
	for _, title := range cat.Titles() {
		files := cat.TitleFiles(title)
		u := strings.TrimSpace(mustOCDN(t, "urlsign", "--key-file", keyFile, "--scope", title+"/", "--base", base, files[0].Path))
		prefix := strings.TrimSuffix(u, files[0].Path)
		for _, f := range files {
			urls[f.Path] = prefix + f.Path
		}
	}
	start := func() *daemon {
		app := startOCDN(t, dir, "appliance", "appliance", "--config", applianceYAML, "--drain-grace", "0s")
		waitFor(t, "the appliance", 20*time.Second, func() bool { return healthy(base) }, app)
		return app
	}
	allServed := func() bool {
		absent, _ := checkServed(t, manifest.Files, urls)
		return absent == 0
	}
	app := start()
	waitFor(t, "the first fill", 60*time.Second, allServed, app)

	for round, stop := range []struct {
		name string
		stop func(*daemon)
	}{
		{"clean stop (SIGTERM)", func(d *daemon) {
			d.cmd.Process.Signal(syscall.SIGTERM)
			<-d.done
		}},
		{"crash (SIGKILL)", (*daemon).kill},
	} {
		stop.stop(app)
		truncated, flipped := manifest.Files[2*round], manifest.Files[2*round+1]
		if err := os.Truncate(objectPath(t, storeDir, truncated), truncated.Size/3); err != nil {
			t.Fatal(err)
		}
		flipBit(t, objectPath(t, storeDir, flipped), flipped.Size/2)
		quarantinedBefore := countFiles(filepath.Join(storeDir, "quarantine"))

		app = start()
		// Every answer from the first on is checked by checkServed:
		// a 404 or the exact bytes.
		waitFor(t, "after a "+stop.name+": the damaged files refilled and served intact", 60*time.Second, allServed, app)
		if got := countFiles(filepath.Join(storeDir, "quarantine")) - quarantinedBefore; got != 2 {
			t.Errorf("%s: %d files quarantined, want the truncated and the flipped one", stop.name, got)
		}
		if out := mustOCDN(t, "store", "verify", "--store", storeDir); out != fmt.Sprintf("%d objects verified, all good\n", len(manifest.Files)) {
			t.Errorf("%s: store verify printed %q", stop.name, out)
		}
		for _, line := range strings.Split(app.logText(), "\n") {
			if strings.Contains(line, "store opened") {
				t.Logf("%s: %s", stop.name, line)
			}
		}
	}
}

// objectPath finds f's object file in a store.
func objectPath(t *testing.T, storeDir string, f content.File) string {
	t.Helper()
	title, name, _ := strings.Cut(f.Path, "/")
	m, err := filepath.Glob(filepath.Join(storeDir, "objects", f.SHA256[:2], title, name+"~"+f.SHA256+"~*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("object file of %s: %q, %v", f.Path, m, err)
	}
	return m[0]
}

func flipBit(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

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
