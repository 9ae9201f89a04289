# ocdn — `make test` sets up everything the tests need on a fresh Debian
# machine, then runs vet, staticcheck and the race-enabled tests.

GO ?= go
STATICCHECK_VERSION := v0.8.2

# Debian packages the tests start as real peers, as "package:command".
TEST_PACKAGES := bird2:bird frr:vtysh nginx-light:nginx ffmpeg:ffmpeg postgresql:/usr/lib/postgresql/*/bin/initdb iproute2:ip unbound:unbound openssl:openssl chromium:chromium libnss3-tools:certutil npm:npm
BENCH_PACKAGES := wrk:wrk unbound:unbound dnsperf:dnsperf

# Tests that need an outside program fail (not skip) when it is missing.
export OCDN_REQUIRE_EXTERNAL := 1

.PHONY: test deps console-assets webclient-assets vet staticcheck unit build lab clean soak

test: deps console-assets webclient-assets vet staticcheck unit

deps:
	@scripts/install-deps.sh $(TEST_PACKAGES)

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The deployment test (internal/deploytest) runs on its own, after the
# rest, with -v so that the figures it asserts are printed.
unit:
	$(GO) test -race -timeout 30m $$($(GO) list ./... | grep -v /internal/deploytest$$)
	$(GO) test -race -timeout 10m -v ./internal/deploytest

# The chaos soak (docs/soak.md): the lab's daemons under a seeded random
# schedule of faults for DURATION, invariants checked all along. `make test`
# runs its two-minute version. The soak bounds itself (DURATION plus 15
# minutes for filling and stopping), so go test's timeout is off.
DURATION ?= 30m
SEED ?= 1
soak: deps console-assets
	$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 0 ./internal/soak \
		-soak.duration=$(DURATION) -soak.seed=$(SEED) -soak.gap=12s -soak.octet=130

# The web console's chart library and map outline, from npm, embedded by
# go build (internal/console/vendor/README.md).
console-assets:
	@scripts/console-assets.sh

# The browser player's HLS library (hls.js) from npm, embedded by go build
# (internal/webclient/vendor/README.md).
webclient-assets:
	@scripts/webclient-assets.sh

build: console-assets webclient-assets
	$(GO) build -o bin/ocdn ./cmd/ocdn

lab: console-assets webclient-assets
	$(GO) run ./cmd/ocdn lab

clean:
	rm -rf bin

# Measurement ingest throughput over loopback HTTP, checked lossless.
.PHONY: bench-ingest
bench-ingest:
	@scripts/bench-ingest.sh

# Steering over HTTP against a minimal Go handler, same run, same wrk load;
# then the in-process steering benchmarks on the 1.06M-prefix table.
# -cpu 1 is the per-core figure: the collector shares the one core.
.PHONY: bench-steer
bench-steer:
	@scripts/install-deps.sh $(BENCH_PACKAGES)
	$(GO) run ./scripts/benchsteer
	$(GO) test -run '^$$' -bench 'FullTable' -cpu 1,2 -benchmem ./internal/steer
	$(GO) test -run '^$$' -bench 'BenchmarkLookup|BenchmarkApply' -benchmem ./internal/rib
	$(GO) test -run '^$$' -bench 'BenchmarkBuildFullTable|BenchmarkRIBReplaceFullTable' -benchtime 3x -benchmem ./internal/rib

# Side-by-side nginx vs appliance serving benchmark (wrk) and the RSS of
# 10,000 idle keep-alive connections; prints ratios, asserts nothing.
.PHONY: bench-edge
bench-edge:
	@scripts/bench-edge.sh
	$(GO) test -run '^$$' -bench 'BenchmarkParseRange|BenchmarkVerifyToken|BenchmarkHandler64KiB' -benchmem ./internal/edge

# One control plane under a fleet: 5,000 simulated appliances heartbeating
# every 5 s over real HTTP (with tokens, SQLite store) plus 5,000 steering
# requests/s; prints latency percentiles and the control plane's CPU.
.PHONY: bench-control
bench-control:
	$(GO) run ./scripts/benchcontrol

# The control plane's authoritative DNS server against Unbound answering
# the same names from its cache (dnsperf, UDP, rounds interleaved); prints
# both rates, the ratio and CPU per query, asserts nothing.
.PHONY: bench-dns
bench-dns:
	@scripts/install-deps.sh $(BENCH_PACKAGES)
	$(GO) run ./scripts/benchdns
	$(GO) test -run '^$$' -bench 'BenchmarkRespond' -benchmem ./internal/dns

# The simulator's world (docs/sim.md): the npm IP-to-AS and IP-to-country
# tables (never committed; CC BY 4.0), then a world built from them, the
# full table in ../shared/data/routes and the tz database's zone.tab.
WORLD_DATA ?= .cache/world-data
ROUTES ?= ../shared/data/routes
.PHONY: world-data world bench-sim
world-data:
	@scripts/world-data.sh $(WORLD_DATA)

world: world/world.yaml

# Remove world/world.yaml to rebuild it (say, after editing the model).
world/world.yaml: | world-data
	$(GO) run ./cmd/ocdn sim world build --routes $(ROUTES)/full-table-prefixes.txt.gz \
		--ip-location-db $(WORLD_DATA)/node_modules/@ip-location-db --out world/world.yaml

# One simulated day over that world against the issue's targets, the
# per-core session rate and a determinism check; prints, asserts nothing.
bench-sim: world
	@scripts/install-deps.sh time:/usr/bin/time
	@ROUTES=$(ROUTES) scripts/bench-sim.sh
