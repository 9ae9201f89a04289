#!/usr/bin/env bash
# bench-edge.sh — serve the same files with nginx and `ocdn appliance
# --standalone`, load both with wrk (2 MiB and 64 KiB byte ranges at fixed
# and at random offsets, 1 and 64 connections, HTTP and HTTPS) and print,
# for each server, requests/s and its own CPU time per request, with the
# appliance/nginx ratios; then hold 10,000 idle keep-alive connections to
# the appliance and print its RSS. Run with `make bench-edge`.
#
# CPU per request is what each server process spent (utime + stime from
# /proc/PID/stat, summed over nginx's master and workers) during a run,
# divided by the requests wrk completed. On a shared 2-core machine it is
# the steadier figure: requests/s also measures wrk and the neighbours.
#
# The appliance runs as in production: signed URLs, metrics, an access
# log (to a file, buffered 1 MiB, flushed every second) and the store
# scrubber at its default rate. nginx runs as it is usually tuned:
# sendfile on, worker_processes auto, access_log off. Nothing here asserts
# on speed.
#
# Two columns more make the comparison fair without moving the anchor
# (ocdn against that nginx, the issue's targets): nginxL is a second nginx
# that logs every request as the appliance does (access_log with
# buffer=1m flush=1s, nginx's way of the appliance's buffered log), with
# CPU xL = ocdn / nginxL; and ocdnS is the appliance with --scrub-rate 0,
# with CPU xS = ocdnS / nginx. The scrubber re-hashes 40 MB/s — 6-9% of a
# core here — for 6.4 s in every 66 on this 256 MiB store (a pass, then a
# minute's pause), a tenth of that while the machine's CPUs are more than
# half busy, as they are in every round: a cost per second, not per
# request, that lands on some rounds and not others.
#
# Each row is the median of ROUNDS rounds that alternate the servers,
# ranked by ocdn's CPU-per-request ratio to nginx; the last column lists
# every round's ratio. Targets (issue 19, 64 connections): 64 KiB plain
# HTTP ≤ 1.2×, 2 MiB plain HTTP ≤ 1.0×, 2 MiB HTTPS ≤ 1.3× nginx's CPU per
# request.
#
# Each appliance runs three times: ocdn with transport sampling at its
# default rate (TCP_INFO of 10% of connections, every 5 s and at close,
# spooled to disk: no control plane), ocdn0 with --transport-sample-rate
# 0 (nothing installed on the serving path) and ocdnS (above). The
# issue 17 target is that sampling keeps the ratios within 3%.
#
# The table's "sampling" column (CPU x / CPU0 x of the median round)
# cannot show that: rounds of 4 s minutes apart vary by ±20% here (0.83
# to 1.29 in one run). So a paired section follows the table, which
# measures sampling two ways, on ocdnS (sampling 0.1) and ocdnS0, the
# same appliance with --transport-sample-rate 0, both with the scrubber
# off (its passes are a cost per second that would land on one side of a
# pair and not the other; without it the denominator is smaller, so the
# share sampling adds can only look larger).
#
# Paired: PAIRS pairs of runs of ocdnS and ocdnS0 on the same files. The
# two of a pair are loaded at the same time (one wrk each, 64
# connections, PAIR_DURATION), so both see the same neighbours: run one
# after the other, an A/A test (two identical appliances) at load 10
# gave pair ratios from 0.80 to 1.19 and a "significant" -5.7% out of
# drift, at the same time 0.92 to 1.10 (and 1.22 once) with intervals
# around 0. Each pair gives the ratio of the two CPU times per request,
# read in nanoseconds (the sum of /proc/PID/task/*/schedstat) rather
# than in clock ticks. The section prints the median ratio as the cost
# of sampling with a 95% interval for it (the sign test's order
# statistics: no assumption on the noise's shape),
#   64KiB  random http 64: … sampling cost: -0.5% [-17.6%, +1.2%] (median of 30 pair ratios, …)
# An interval whose upper end is under 3% shows the target met; one
# that straddles 3% says the machine was too noisy to tell (more PAIRS
# narrow it). This catches every cost of sampling, indirect ones too
# (caches, the collector, the scheduler), and on an idle machine shows
# it under 3% at 64 KiB, as above. At 2 MiB a request's CPU is mostly
# the kernel's loopback work, which varies from run to run: the same
# idle run gave -4.4% [-17.7%, +7.1%], and no practical number of pairs
# narrows that to ±3%.
#
# Accounted: after each size's pairs, sampling's own work during them,
#   2MiB   random http 64: sampling's own work: 48 connections sampled x 9.8 us, 0 periodic samples x 5.9 us,
#     570 requests on them x 26 ns, 336 other connections x 68 ns, 4043 other requests x 9 ns,
#     6 batches spooled x 610.8 us, 42 further records in them x 1.7 us = 4.3 ms of ocdnS's 1.1 s CPU (0.403%)
# (one line; from PAIRS=6 at load 2). ocdnS counts what it did
# (ocdn_transport_connections_sampled_total, _records_sampled_total by
# reason, _sampled_connection_requests_total, _batches_spooled_total),
# read from its /metrics (--ops-listen) before and after the pairs; the
# connections and requests it did not sample are the 64 connections of
# each wrk run and ocdn_edge_requests_total, less the sampled ones.
# internal/transport's benchmarks, run here before the pairs
# (UnsampledConnection, SampledConnection, PeriodicSample, OnGrant,
# SpoolBatch: the process's CPU per operation, the median of 3), price
# each kind of work; the sum is set against ocdnS's CPU over the pairs
# (the same schedstat). That bounds sampling's direct cost at both
# sizes; the paired figure is the one that sees indirect costs.
#
# Neither grows with the range size per request: the HTTP server sends a
# sampled connection's ranges by the same path as any other's
# (internal/serve/h1 newConn takes the socket under the trackedConn
# wrapper, by its TCPConn method, for sendfile(2), and reads and writes
# its descriptor raw), so sampling adds nothing per byte. What it adds
# is per connection, per sample and per batch (every 2 s), and those
# weigh more where the appliance spends less CPU per second: at 2 MiB,
# where a run's CPU was a quarter of 64 KiB's in the run above, and the
# accounted line shows them there. Records are cut into a batch every
# 2 s, so the last pair's may be spooled after the counters are read,
# as the uncounted first pair's may be spooled after the first
# reading: a batch either way.
#
# Env: DURATION (per measurement, default 4s), ROUNDS (3), CONNS ("64 1"),
# FILES (4), FILE_SIZE (64 MiB), IDLE_CONNS (10000; 0 skips that part),
# PAIRS (30; 0 skips the paired section), PAIR_DURATION (2s), PAIR_SIZES
# ("64KiB 2MiB": ranges at random offsets, plain HTTP), KEEP=1 keeps the
# work directory. ROUNDS=0 skips the table, for a paired section alone.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64 1}
FILES=${FILES:-4}
FILE_SIZE=${FILE_SIZE:-$((64 << 20))}
IDLE_CONNS=${IDLE_CONNS:-10000}
PAIRS=${PAIRS:-30}
PAIR_DURATION=${PAIR_DURATION:-2s}
PAIR_SIZES=${PAIR_SIZES:-64KiB 2MiB}
GO=${GO:-go}

scripts/install-deps.sh nginx-light:nginx wrk:wrk openssl:openssl curl:curl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# Thousands of sockets for the idle-connection check; the Go runtime raises
# its soft limit to the hard one by itself.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/bench-edge.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "building ocdn and the bench helper…" >&2
$GO build -o "$WORK/ocdn" ./cmd/ocdn
$GO build -o "$WORK/edgebench" ./scripts/edgebench
# The unit costs of sampling's work, for the paired section's account.
if [ "$PAIRS" -gt 0 ]; then $GO test -c -o "$WORK/transport.test" ./internal/transport; fi

echo "preparing $FILES files of $((FILE_SIZE >> 20)) MiB for both servers…" >&2
mkdir -p "$WORK/root"
"$WORK/edgebench" prep -store "$WORK/store" -root "$WORK/root" -keys "$WORK/keys.json" \
  -files "$FILES" -size "$FILE_SIZE" >"$WORK/paths"
# nginx workers drop to nobody/www-data when started as root: make the
# tree readable.
chmod -R a+rX "$WORK/root"; chmod a+rx "$WORK"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NG_HTTP=$(free_port); NG_HTTPS=$(free_port); OC_HTTP=$(free_port); OC_HTTPS=$(free_port)
O0_HTTP=$(free_port); O0_HTTPS=$(free_port); NL_HTTP=$(free_port); NL_HTTPS=$(free_port)
OS_HTTP=$(free_port); OS_HTTPS=$(free_port); OZ_HTTP=$(free_port); OS_OPS=$(free_port)

# $1 name, $2 HTTP port, $3 HTTPS port, $4 access_log directive.
nginx_conf() {
  mkdir -p "$WORK/$1"
  cat >"$WORK/$1/nginx.conf" <<EOF
worker_processes auto;
error_log $WORK/$1/error.log;
pid $WORK/$1/nginx.pid;
events { worker_connections 4096; }
http {
  $4;
  sendfile on;
  keepalive_requests 1000000;
  etag on;
  types { video/mp4 mp4; }
  default_type application/octet-stream;
  client_body_temp_path $WORK/$1/body;
  ssl_certificate $WORK/cert.pem;
  ssl_certificate_key $WORK/key.pem;
  server {
    listen 127.0.0.1:$2;
    listen 127.0.0.1:$3 ssl;
    root $WORK/root;
    location / { }
  }
}
EOF
  "$NGINX" -c "$WORK/$1/nginx.conf" -p "$WORK/$1" -g 'daemon off;' &
}
nginx_conf nginx "$NG_HTTP" "$NG_HTTPS" "access_log off"
NG_PID=$!; PIDS+=($NG_PID)
nginx_conf nginx-log "$NL_HTTP" "$NL_HTTPS" "access_log $WORK/nginx-log/access.log combined buffer=1m flush=1s"
NL_PID=$!; PIDS+=($NL_PID)

# $1 listen port, $2 name, $3 transport sample rate, then extra flags.
# Each appliance gets its own store directory of hard links to the same
# object files (the same page-cache pages): a store is one appliance's,
# and six opening one directory at once raced clearing its tmp/.
appliance() {
  local port=$1 name=$2 rate=$3; shift 3
  cp -al "$WORK/store" "$WORK/store-$name"
  "$WORK/ocdn" appliance --standalone --store "$WORK/store-$name" --listen "127.0.0.1:$port" \
    --key-file "$WORK/keys.json" --access-log "$WORK/access-$name.log" \
    --transport-sample-rate "$rate" --transport-dir "$WORK/spool-$name" "$@" 2>"$WORK/appliance-$name.log" &
}
TLSFLAGS=(--tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
appliance "$OC_HTTP" http 0.1; OC_HTTP_PID=$!; PIDS+=($OC_HTTP_PID)
appliance "$OC_HTTPS" https 0.1 "${TLSFLAGS[@]}"; OC_HTTPS_PID=$!; PIDS+=($OC_HTTPS_PID)
appliance "$O0_HTTP" http-nosample 0; O0_HTTP_PID=$!; PIDS+=($O0_HTTP_PID)
appliance "$O0_HTTPS" https-nosample 0 "${TLSFLAGS[@]}"; O0_HTTPS_PID=$!; PIDS+=($O0_HTTPS_PID)
# ocdnS serves /metrics for the paired section's account of sampling.
appliance "$OS_HTTP" http-noscrub 0.1 --scrub-rate 0 --ops-listen "127.0.0.1:$OS_OPS"; OS_HTTP_PID=$!; PIDS+=($OS_HTTP_PID)
appliance "$OS_HTTPS" https-noscrub 0.1 --scrub-rate 0 "${TLSFLAGS[@]}"; OS_HTTPS_PID=$!; PIDS+=($OS_HTTPS_PID)
# ocdnS0: ocdnS without sampling, the other arm of the paired section.
appliance "$OZ_HTTP" http-noscrub-nosample 0 --scrub-rate 0; OZ_HTTP_PID=$!; PIDS+=($OZ_HTTP_PID)

wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listening on port $1; logs in $WORK" >&2; KEEP=1; exit 1
}
for p in $NG_HTTP $NG_HTTPS $NL_HTTP $NL_HTTPS $OC_HTTP $OC_HTTPS $O0_HTTP $O0_HTTPS $OS_HTTP $OS_HTTPS $OZ_HTTP $OS_OPS; do wait_port "$p"; done

# An appliance serves an object once it has re-hashed what may have
# changed since its store's last checkpoint (all of it here: linking the
# files changed their ctime): wait until every object answers, so no
# measurement pays for that or counts a 404.
wait_served() { # $1 base URL
  local p
  for p in $(awk '{ print $1 }' "$WORK/paths"); do
    for _ in $(seq 600); do
      [ "$(curl -sk -o /dev/null -w '%{http_code}' -H 'Range: bytes=0-0' "$1$p")" = 206 ] && continue 2
      sleep 0.1
    done
    echo "$1 does not serve $p after 60s; logs in $WORK" >&2; KEEP=1; exit 1
  done
}
for p in $OC_HTTP $O0_HTTP $OS_HTTP $OZ_HTTP; do wait_served "http://127.0.0.1:$p"; done
for p in $OC_HTTPS $O0_HTTPS $OS_HTTPS; do wait_served "https://127.0.0.1:$p"; done

# wrk script: range requests over the files, at a random offset or always
# at 1 MiB; prints one machine-readable line at the end.
lua() { # $1 = column of $WORK/paths (1 appliance, 2 nginx), $2 = range length, $3 = name, $4 = random|fixed
  {
    echo "local paths = {"
    awk -v c="$1" '{ printf "  \"%s\",\n", $c }' "$WORK/paths"
    echo "}"
    cat <<EOF
local size, len, random = $FILE_SIZE, $2, $([ "$4" = random ] && echo true || echo false)
local n = 0
function setup(thread) n = n + 1; thread:set("id", n) end
function init(args) math.randomseed(os.time() * 100 + (id or 0)) end
function request()
  local off = 1048576
  if random then off = math.random(0, size - len) end
  return wrk.format("GET", paths[math.random(#paths)], { ["Range"] = "bytes=" .. off .. "-" .. (off + len - 1) })
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.bytes, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
  } >"$WORK/$3.lua"
  echo "$WORK/$3.lua"
}

# cpu_ticks PID… prints the user + system clock ticks the processes used.
cpu_ticks() {
  local p t=0
  for p in "$@"; do
    t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
  done
  echo "$t"
}
# server_pids PID prints PID and its children (nginx's workers).
server_pids() { echo "$1" $(cat "/proc/$1/task/$1/children" 2>/dev/null); }
HZ=$(getconf CLK_TCK)

measure() { # $1 url, $2 lua, $3 connections, $4 server PID, $5 name → "req/s MB/s µs-CPU/req [errors]"
  local threads=1; [ "$3" -gt 1 ] && threads=2
  local pids before after out name=$5
  pids=$(server_pids "$4")
  # shellcheck disable=SC2086
  before=$(cpu_ticks $pids)
  out=$(wrk -t"$threads" -c"$3" -d"$DURATION" -s "$2" "$1" 2>&1 | grep '^RESULT') || { echo "0 0 0 wrk-failed"; return; }
  # shellcheck disable=SC2086
  after=$(cpu_ticks $pids)
  # shellcheck disable=SC2086
  set -- $out
  awk -v r="$2" -v b="$3" -v d="$4" -v se="$5" -v ce="$6" -v ticks=$((after - before)) -v hz="$HZ" -v name="$name" 'BEGIN {
    s = d / 1e6; note = ""
    if (se > 0 || ce > 0) note = sprintf(" (%s errors: %d status, %d socket)", name, se, ce)
    printf "%.0f %.1f %.2f%s\n", r / s, b / s / 1e6, (r > 0 ? ticks / hz / r * 1e6 : 0), note }'
}

target() { # $1 label, $2 proto, $3 conns → the issue's CPU-ratio target, or -
  case "$1/$2/$3" in
    64KiB/http/64) echo "<=1.2" ;;
    2MiB/http/64) echo "<=1.0" ;;
    2MiB/https/64) echo "<=1.3" ;;
    *) echo "-" ;;
  esac
}

echo "median of $ROUNDS alternating rounds of $DURATION per server; CPU = the server's own utime+stime per request, in us" >&2
echo "ocdn: as in production (sampling 0.1, scrubber on); ocdn0: --transport-sample-rate 0; sampling = CPU x / CPU0 x" >&2
echo "nginxL: nginx with a buffered access log like ocdn's, CPU xL = ocdn / nginxL; ocdnS: --scrub-rate 0, CPU xS = ocdnS / nginx" >&2
printf '\n%-6s %-6s %-5s %5s | %9s %7s | %7s | %9s %7s | %7s | %7s | %6s %6s %6s %8s %6s %6s %6s | %s\n' size offset proto conns \
  "nginx r/s" "CPU" "nginxL" "ocdn r/s" "CPU" "ocdn0" "ocdnS" "r/s x" "CPU x" "CPU0 x" sampling "CPU xL" "CPU xS" target "CPU x each round"
printf '%s\n' "------------------------------------------------------------------------------------------------------------------------------------------------------------"
# ROUNDS=0 skips the table (for a quick paired run).
table_lens=""; [ "$ROUNDS" -gt 0 ] && table_lens="$((64 << 10)) $((2 << 20))"
for len in $table_lens; do
  label=$([ "$len" -eq $((2 << 20)) ] && echo 2MiB || echo 64KiB)
  for offsets in random fixed; do
    OCL=$(lua 1 "$len" "oc-$label-$offsets" "$offsets"); NGL=$(lua 2 "$len" "ng-$label-$offsets" "$offsets")
    for proto in http https; do
      if [ "$proto" = http ]; then
        ng="http://127.0.0.1:$NG_HTTP"; nl="http://127.0.0.1:$NL_HTTP"; oc="http://127.0.0.1:$OC_HTTP"; ocpid=$OC_HTTP_PID
        o0="http://127.0.0.1:$O0_HTTP"; o0pid=$O0_HTTP_PID; os="http://127.0.0.1:$OS_HTTP"; ospid=$OS_HTTP_PID
      else
        ng="https://127.0.0.1:$NG_HTTPS"; nl="https://127.0.0.1:$NL_HTTPS"; oc="https://127.0.0.1:$OC_HTTPS"; ocpid=$OC_HTTPS_PID
        o0="https://127.0.0.1:$O0_HTTPS"; o0pid=$O0_HTTPS_PID; os="https://127.0.0.1:$OS_HTTPS"; ospid=$OS_HTTPS_PID
      fi
      for conns in $CONNS; do
        # Alternate the servers for ROUNDS rounds; print the median round
        # by the CPU ratio of ocdn to nginx, so one disturbed run on a
        # shared machine does not decide.
        rows=""
        for _ in $(seq "$ROUNDS"); do
          read -r ngr ngm ngc ngnote <<<"$(measure "$ng" "$NGL" "$conns" "$NG_PID" nginx)"
          read -r ocr ocm occ ocnote <<<"$(measure "$oc" "$OCL" "$conns" "$ocpid" ocdn)"
          read -r o0r o0m o0c o0note <<<"$(measure "$o0" "$OCL" "$conns" "$o0pid" ocdn0)"
          read -r nlr nlm nlc nlnote <<<"$(measure "$nl" "$NGL" "$conns" "$NL_PID" nginxL)"
          read -r osr osm osc osnote <<<"$(measure "$os" "$OCL" "$conns" "$ospid" ocdnS)"
          rows+="$(awk -v a="$ngc" -v b="$occ" 'BEGIN { printf "%.6f", (a > 0 ? b / a : 0) }') $ngr $ngc $ocr $occ $o0c $nlc $osc $ngnote$ocnote$o0note$nlnote$osnote"$'\n'
        done
        sort -n <<<"${rows%$'\n'}" | awk -v l="$label" -v o="$offsets" -v p="$proto" -v c="$conns" -v t="$(target "$label" "$proto" "$conns")" '
          function ratio(a, b) { return b > 0 ? a / b : 0 }
          { row[NR] = $0; each = each sprintf(" %.2f", $1) }
          END {
            split(row[int((NR + 1) / 2)], f, " "); n = ""; for (i = 9; i in f; i++) n = n " " f[i]
            x0 = ratio(f[6], f[3])
            printf "%-6s %-6s %-5s %5d | %9.0f %7.1f | %7.1f | %9.0f %7.1f | %7.1f | %7.1f | %5.2fx %5.2fx %5.2fx %7.3fx %5.2fx %5.2fx %6s |%s%s\n",
              l, o, p, c, f[2], f[3], f[7], f[4], f[5], f[6], f[8],
              ratio(f[4], f[2]), f[1], x0, ratio(f[1], x0), ratio(f[5], f[7]), ratio(f[8], f[3]), t, each, n }'
      done
    done
  done
done

# cpu_ns PID prints the CPU time its threads have used, in ns: the sum
# of the first field of each /proc/PID/task/*/schedstat. A Go process
# keeps its threads, so nothing used between two readings is lost with
# an exited thread; ticks (utime + stime) would be ±1% of a 2 s run.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%.0f\n", t }'; }
# per_request NS RESULT-LINE prints NS per request of a wrk run, or "-"
# when it failed (no RESULT, no requests, any error).
per_request() {
  # shellcheck disable=SC2086
  set -- "$1" $2
  if [ "$#" -lt 7 ] || [ "$3" -le 0 ] || [ "$6" -gt 0 ] || [ "$7" -gt 0 ]; then echo -; return; fi
  awk -v r="$3" -v t="$1" 'BEGIN { printf "%.1f\n", t / r }'
}
# measure_pair LUA first second: runs wrk against the two appliances
# ("URL PID" each) at once, 64 connections each, for PAIR_DURATION, and
# prints the CPU ns per request of each, in the order given.
measure_pair() {
  local lua=$1 u1 p1 u2 p2 c1 c2 d1 d2 r1 r2
  read -r u1 p1 <<<"$2"; read -r u2 p2 <<<"$3"
  c1=$(cpu_ns "$p1"); c2=$(cpu_ns "$p2")
  wrk -t1 -c64 -d"$PAIR_DURATION" -s "$lua" "$u1" >"$WORK/pair-1.out" 2>&1 &
  r1=$!
  wrk -t1 -c64 -d"$PAIR_DURATION" -s "$lua" "$u2" >"$WORK/pair-2.out" 2>&1 &
  r2=$!
  wait "$r1" "$r2" || true
  d1=$(($(cpu_ns "$p1") - c1)); d2=$(($(cpu_ns "$p2") - c2))
  echo "$(per_request "$d1" "$(grep '^RESULT' "$WORK/pair-1.out")") $(per_request "$d2" "$(grep '^RESULT' "$WORK/pair-2.out")")"
}
if [ "$PAIRS" -gt 0 ]; then
  echo
  echo "sampling cost, paired: $PAIRS pairs of $PAIR_DURATION runs of ocdnS (sampling 0.1) and ocdnS0 (--transport-sample-rate 0), both --scrub-rate 0, loaded at once; CPU ns per request from schedstat"
  echo "sampling's own work: ocdnS's counters over the pairs times the CPU per operation of internal/transport's benchmarks (median of 3), run now"
  echo "running go test -bench 'UnsampledConnection|SampledConnection|PeriodicSample|OnGrant|SpoolBatch' ./internal/transport…" >&2
  (cd internal/transport && "$WORK/transport.test" -test.run '^$' -test.bench 'UnsampledConnection|SampledConnection|PeriodicSample|OnGrant|SpoolBatch' \
    -test.benchtime 0.5s -test.count 3) >"$WORK/bench-transport.txt"
  for label in $PAIR_SIZES; do
    case "$label" in
      64KiB) len=$((64 << 10)) ;;
      2MiB) len=$((2 << 20)) ;;
      *) echo "PAIR_SIZES: $label is neither 64KiB nor 2MiB" >&2; exit 1 ;;
    esac
    OCL=$(lua 1 "$len" "pair-$label" random)
    a="http://127.0.0.1:$OS_HTTP $OS_HTTP_PID"; b="http://127.0.0.1:$OZ_HTTP $OZ_HTTP_PID"
    : >"$WORK/pairs-$label"
    # A first pair, not counted: the first load after a pause grows
    # heaps and stacks (its ratio was 1.30 where the rest were 0.90-1.15).
    measure_pair "$OCL" "$a" "$b" >/dev/null
    curl -sf "http://127.0.0.1:$OS_OPS/metrics" >"$WORK/metrics-$label-before"
    os_cpu=$(cpu_ns "$OS_HTTP_PID")
    for i in $(seq "$PAIRS"); do
      # Which wrk starts first alternates.
      if [ $((i % 2)) = 1 ]; then
        read -r ca cb <<<"$(measure_pair "$OCL" "$a" "$b")"
      else
        read -r cb ca <<<"$(measure_pair "$OCL" "$b" "$a")"
      fi
      if [ "$ca" = - ] || [ "$cb" = - ]; then
        echo "pair $i of $label: a run failed (wrk errors or no requests); pair left out" >&2
        continue
      fi
      echo "$label $ca $cb" >>"$WORK/pairs-$label"
    done
    awk '{ print $2 }' "$WORK/pairs-$label" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%-6s random http 64: ocdnS median %.1f us/req, ", "'"$label"'", v[int((NR + 1) / 2)] / 1000 }'
    awk '{ print $3 }' "$WORK/pairs-$label" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "ocdnS0 %.1f us/req; ", v[int((NR + 1) / 2)] / 1000 }'
    "$WORK/edgebench" paired -name "sampling cost" <"$WORK/pairs-$label" | cut -d' ' -f2-
    os_cpu=$(($(cpu_ns "$OS_HTTP_PID") - os_cpu))
    curl -sf "http://127.0.0.1:$OS_OPS/metrics" >"$WORK/metrics-$label-after"
    printf '%-6s random http 64: ' "$label"
    "$WORK/edgebench" accounted -before "$WORK/metrics-$label-before" -after "$WORK/metrics-$label-after" \
      -bench "$WORK/bench-transport.txt" -cpu-ns "$os_cpu" -conns $((64 * PAIRS))
  done
fi

lines=$(cat "$WORK"/access-*.log | wc -l)
echo
echo "appliance access log: $lines lines written (on for every request above)"
echo "nginxL access log: $(wc -l <"$WORK/nginx-log/access.log") lines written"
grep -c 'status=206' "$WORK/access-http.log" >/dev/null || echo "warning: no 206 in the access log" >&2

echo
echo "idle keep-alive connections to the plain-HTTP appliance:"
[ "$IDLE_CONNS" -gt 0 ] && { "$WORK/edgebench" idle -addr "127.0.0.1:$OC_HTTP" -n "$IDLE_CONNS" -pid "$OC_HTTP_PID" || true; }

echo
echo "transport records spooled by the sampling appliances (no control plane):"
du -sh "$WORK"/spool-http "$WORK"/spool-https "$WORK"/spool-http-noscrub "$WORK"/spool-https-noscrub 2>/dev/null || true
