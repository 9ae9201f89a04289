package sim

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The simulator's tables are read back by DuckDB (an engine independent
// of parquet-go) with hive partitioning, as a researcher would. The query
// script and the DuckDB package are the ones internal/measure's tests use
// (same npm version, same cache directory).
const duckdbVersion = "1.5.6-r.1"

func duckdb(t *testing.T, sql string) []map[string]any {
	t.Helper()
	missing := func(msg string) {
		t.Helper()
		if os.Getenv("OCDN_REQUIRE_EXTERNAL") == "1" {
			t.Fatalf("DuckDB (npm @duckdb/node-api@%s) is needed to read the Parquet tables: %s", duckdbVersion, msg)
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
			missing(err.Error())
		}
		base = filepath.Join(c, "ocdn")
	}
	dir := filepath.Join(base, "duckdb-node-"+duckdbVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api")); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			missing(err.Error())
		}
		out, err := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "@duckdb/node-api@"+duckdbVersion).CombinedOutput()
		if err != nil {
			missing(fmt.Sprintf("npm install: %v\n%s", err, out))
		}
	}
	script, _ := filepath.Abs(filepath.Join("..", "measure", "testdata", "duckdb-query.js"))
	cmd := exec.Command("node", script, sql)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb %q: %v", sql, err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestTablesReadByDuckDB(t *testing.T) {
	dir := t.TempDir()
	s := run(t, testScenario(t), dir)
	rows := duckdb(t, fmt.Sprintf(`SELECT count(*)::INTEGER AS n, sum(sessions)::BIGINT AS sessions, min(date)::VARCHAR AS date,
		sum(bytes_embedded + bytes_private + bytes_ixp + bytes_fallback + bytes_origin)::BIGINT AS bytes
		FROM read_parquet('%s/intervals/**/*.parquet', hive_partitioning = true)`, dir))
	if len(rows) != 1 {
		t.Fatalf("rows = %v", rows)
	}
	num := func(v any) int64 {
		switch x := v.(type) {
		case float64:
			return int64(x)
		case string:
			n, _ := strconv.ParseInt(x, 10, 64)
			return n
		}
		return -1
	}
	var all int64
	for _, v := range s.ClientBytes {
		all += v
	}
	r := rows[0]
	if num(r["n"]) != int64(s.Steps) || num(r["sessions"]) != s.Sessions || num(r["bytes"]) != all || r["date"] != "2026-01-15" {
		t.Errorf("DuckDB read %v; want %d steps, %d sessions, %d bytes, date 2026-01-15", r, s.Steps, s.Sessions, all)
	}
	isp := duckdb(t, fmt.Sprintf(`SELECT sum(sessions)::BIGINT AS sessions FROM read_parquet('%s/isps/**/*.parquet', hive_partitioning = true)`, dir))
	if num(isp[0]["sessions"]) != s.Sessions {
		t.Errorf("isps table sessions %v, want %d", isp[0]["sessions"], s.Sessions)
	}
}
