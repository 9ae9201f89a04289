package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocdn/ocdn/internal/store/storetest"
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
	c := startCDN(t, "rot", "127.1.201", []string{"--titles", "3", "--ladder", "1000,2000", "--duration", "8s"}, nil)
	storeDir, manifest, urls := c.storeDir, c.manifest, c.urls
	start := func() *proc { return c.startAppliance(t) }
	allServed := func() bool {
		absent, _ := checkServed(t, manifest.Files, urls)
		return absent == 0
	}
	app := start()
	waitFor(t, "the first fill", 60*time.Second, allServed, app)

	for round, stop := range []struct {
		name string
		stop func(*proc)
	}{
		{"clean stop (SIGTERM)", func(d *proc) {
			d.cmd.Process.Signal(syscall.SIGTERM)
			<-d.done
		}},
		{"crash (SIGKILL)", (*proc).kill},
	} {
		stop.stop(app)
		truncated, flipped := manifest.Files[2*round], manifest.Files[2*round+1]
		if err := os.Truncate(storetest.ObjectFile(storeDir, truncated), truncated.Size/3); err != nil {
			t.Fatal(err)
		}
		if err := storetest.FlipBit(storetest.ObjectFile(storeDir, flipped), flipped.Size/2); err != nil {
			t.Fatal(err)
		}
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
