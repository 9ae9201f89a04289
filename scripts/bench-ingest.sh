#!/usr/bin/env bash
# bench-ingest: measurement ingest throughput over real HTTP on loopback.
#
# Posts REPORTS reports of 20 pulses from 64 concurrent clients (each bound
# to its own 127.64.N.1 source address) to POST /v1/reports, every one
# fsynced to the write-ahead log before it is acknowledged, then compacts
# to Parquet and checks the row count equals the pulses acknowledged. The
# ingest directory is created under BENCH_DIR (default: the system temp
# directory; put it on the disk you care about, fsync is the cost).
#
#   scripts/bench-ingest.sh            # 20000 reports (400000 pulses)
#   REPORTS=50000 COUNT=3 scripts/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPORTS=${REPORTS:-20000}
COUNT=${COUNT:-1}
GO=${GO:-go}
export OCDN_BENCH_DIR=${BENCH_DIR:-${TMPDIR:-/tmp}}

out=$("$GO" test -run '^$' -bench '^BenchmarkIngestHTTP$' -benchtime "${REPORTS}x" -count "$COUNT" \
	./internal/measure 2>&1) || { echo "$out"; exit 1; }
echo "$out" | grep -E '^(cpu|BenchmarkIngestHTTP)' || true
echo "$out" | grep -E 'nothing lost' | grep -v ' 1 reports:' | sed 's/^ *bench_test.go:[0-9]*: /  /'
echo "$out" | awk '/^BenchmarkIngestHTTP/ { for (i = 1; i < NF; i++) if ($(i+1) == "pulses/s") { s += $i; n++ } }
	END { if (n) printf "accepted: %.0f pulses/s (mean of %d run(s); target >= 20000)\n", s / n, n }'
