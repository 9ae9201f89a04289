package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runSimCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errOut.String(), err
}

func TestSimLabWorldWritesSummaryTablesReport(t *testing.T) {
	dir := t.TempDir()
	out, err := runSimCmd(t, "sim", "--world", "lab:default", "--out", dir)
	if err != nil {
		t.Fatalf("ocdn sim --world lab:default: %v\n%s", err, out)
	}
	for _, want := range []string{"offload", "origin bytes per unique byte", "sessions"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"summary.json", "report.html", "intervals", "sites", "appliances"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("--out: %v", err)
		}
	}
}

func TestSimWorldBuildNamesMakeTarget(t *testing.T) {
	out, err := runSimCmd(t, "sim", "world", "build", "--ip-location-db", t.TempDir(), "--out", filepath.Join(t.TempDir(), "w.yaml"))
	if err == nil || !strings.Contains(err.Error(), "make world-data") {
		t.Errorf("world build without data = %v (%s), want an error naming make world-data", err, out)
	}
}

func TestSimNeedsWorld(t *testing.T) {
	if _, err := runSimCmd(t, "sim"); err == nil || !strings.Contains(err.Error(), "--world") {
		t.Errorf("ocdn sim without --world = %v, want an error naming --world", err)
	}
}
