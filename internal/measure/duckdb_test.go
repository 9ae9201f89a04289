package measure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DuckDB, installed from the npm registry, reads the Parquet output in
// these tests: an implementation independent of parquet-go, and one of the
// engines the files are written for.
const duckdbNodeVersion = "1.5.6-r.1"

// duckdbDir returns a directory whose node_modules holds @duckdb/node-api,
// installing it into the user cache on first use. Without node or npm (or
// the registry) the test is skipped, or fails when OCDN_REQUIRE_EXTERNAL=1.
func duckdbDir(t *testing.T) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatalf("DuckDB (npm @duckdb/node-api@%s) is needed as an independent Parquet reader: %s", duckdbNodeVersion, msg)
		}
		t.Skipf("skipping: DuckDB not available (%s); set OCDN_REQUIRE_EXTERNAL=1 to make this a failure", msg)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	base := os.Getenv("OCDN_CACHE_DIR")
	if base == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			missing("no cache directory: %v", err)
		}
		base = filepath.Join(c, "ocdn")
	}
	dir := filepath.Join(base, "duckdb-node-"+duckdbNodeVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err == nil {
		return dir
	}
	if _, err := exec.LookPath("npm"); err != nil {
		missing("npm is not installed")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		missing("%v", err)
	}
	tmp, err := os.MkdirTemp(base, ".duckdb-install-")
	if err != nil {
		missing("%v", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", tmp, "@duckdb/node-api@"+duckdbNodeVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		missing("npm install @duckdb/node-api@%s: %v\n%s", duckdbNodeVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
		if _, serr := os.Stat(dir); serr != nil { // not a concurrent install that won
			missing("%v", err)
		}
	}
	return dir
}

// duckQuery runs sql in DuckDB and returns the rows (BIGINTs come back as
// strings).
func duckQuery(t *testing.T, sql string) []map[string]any {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "duckdb-query.js"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script, sql)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(duckdbDir(t), "node_modules"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb %q: %v: %s", sql, err, stderr.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("duckdb output: %v", err)
	}
	return rows
}

// duckPulseCounts returns, for every (report id, seq) in DIR/pulses, how
// many rows DuckDB finds.
func duckPulseCounts(t *testing.T, dir string) map[string]int {
	t.Helper()
	rows := duckQuery(t, fmt.Sprintf(
		`SELECT report_id || '/' || seq AS k, count(*)::INTEGER AS n
		 FROM read_parquet('%s/pulses/**/*.parquet', hive_partitioning = true) GROUP BY 1`, dir))
	counts := make(map[string]int, len(rows))
	for _, r := range rows {
		counts[r["k"].(string)] = int(r["n"].(float64))
	}
	return counts
}
