package rib

import (
	"os"
	"path/filepath"
	"testing"
)

// routeDataDir holds the shared real-world route data: the package lives
// at internal/rib of /work/main, the data at /work/shared/data/routes.
const routeDataDir = "../../../shared/data/routes"

// openData opens a file of the shared route data. Missing data fails the
// test: skipping would let the import code go untested without anyone
// noticing.
func openData(t testing.TB, name string) *os.File {
	t.Helper()
	path := filepath.Join(routeDataDir, name)
	f, err := os.Open(path)
	if err != nil {
		abs, _ := filepath.Abs(path)
		t.Fatalf("route test data missing: %v (expected at %s)", err, abs)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readData returns the bytes of a file of the shared route data.
func readData(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(openData(t, name).Name())
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}
