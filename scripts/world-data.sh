#!/usr/bin/env bash
# Installs the simulator's IP-to-AS and IP-to-country tables, the npm
# packages @ip-location-db/asn and @ip-location-db/asn-country (CC BY 4.0:
# RouteViews, DB-IP, NRO; see docs/sim.md), into DIR/node_modules. The data
# is never committed.
set -euo pipefail
dir=${1:-.cache/world-data}
version=2.3.2026061719
if [ -f "$dir/node_modules/@ip-location-db/asn/asn-ipv4.csv" ] && [ -f "$dir/node_modules/@ip-location-db/asn-country/asn-country-ipv4.csv" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is needed to install @ip-location-db/asn and @ip-location-db/asn-country (Debian package npm)" >&2
  exit 1
fi
mkdir -p "$dir"
echo "installing @ip-location-db/asn and @ip-location-db/asn-country $version into $dir" >&2
npm install --no-audit --no-fund --prefix "$dir" "@ip-location-db/asn@$version" "@ip-location-db/asn-country@$version" >&2
