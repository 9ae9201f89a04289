package rib

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRoutesDetectsFormat(t *testing.T) {
	for _, tc := range []struct {
		file, format string
		min          int
	}{
		{"full-table-prefixes.txt.gz", FormatPrefixList, 1_062_046},
		{"sample-bird-mrtdump_rib.mrt", FormatMRT, 1},
		{"ris-updates.20160811.1600.gz", FormatMRT, 1000},
	} {
		path := filepath.Join(routeDataDir, tc.file)
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("open %s: %v (the shared data must sit beside the repository)", path, err)
		}
		routes, format, err := ReadRoutes(f)
		f.Close()
		if err != nil || format != tc.format || len(routes) < tc.min {
			t.Errorf("ReadRoutes(%s) = %d routes, %q, %v; want ≥ %d, %q", tc.file, len(routes), format, err, tc.min, tc.format)
		}
		seen := map[string]bool{}
		for _, r := range routes {
			if seen[r.Prefix.String()] {
				t.Errorf("ReadRoutes(%s): %s twice; want one route a prefix", tc.file, r.Prefix)
				break
			}
			seen[r.Prefix.String()] = true
		}
	}
	if _, _, err := ReadRoutes(strings.NewReader("10.0.0.0/8\nnot a prefix\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadRoutes(bad list) = %v, want an error naming line 2", err)
	}
	if _, _, err := ReadRoutes(strings.NewReader("\x00\x00\x01\x02\x00\x0d\x00\x02\x00\x00\x00\x50garbage")); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("ReadRoutes(bad MRT) = %v, want an error with the byte offset", err)
	}
}
