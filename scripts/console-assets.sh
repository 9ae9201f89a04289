#!/usr/bin/env bash
# Installs the web console's front-end assets from npm into
# internal/console/vendor/, where `go build` embeds them: uPlot (the chart
# library) and world-atlas (Natural Earth country outlines for the fleet
# map). Versions and the registry's sha512 integrity of each tarball are
# pinned here; a tarball that does not match is refused. Nothing it
# installs is committed (see internal/console/vendor/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=internal/console/vendor

# name version integrity
pins=(
  "uplot 1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
  "world-atlas 2.0.2 sha512-IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ=="
)
stamp="$dest/.installed"
want=$(printf '%s\n' "${pins[@]}")
files=(uPlot.iife.min.js uPlot.min.css uPlot.LICENSE countries-110m.json world-atlas.LICENSE)
present=1
for f in "${files[@]}"; do [ -s "$dest/$f" ] || present=0; done
if [ "$present" = 1 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "console-assets: npm is missing; install it (Debian: apt-get install npm) or run make deps" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pin in "${pins[@]}"; do
  read -r name version integrity <<<"$pin"
  echo "console-assets: fetching $name@$version from npm" >&2
  npm pack --silent --pack-destination "$tmp" "$name@$version" >/dev/null
  tgz="$tmp/$name-$version.tgz"
  got=$(node -e 'const c = require("crypto"), fs = require("fs");
    process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
  if [ "$got" != "$integrity" ]; then
    echo "console-assets: $name@$version: integrity $got, want $integrity; refusing it" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  tar -xzf "$tgz" -C "$tmp/$name"
done
mkdir -p "$dest"
install -m 0644 "$tmp/uplot/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
install -m 0644 "$tmp/uplot/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
install -m 0644 "$tmp/uplot/package/LICENSE" "$dest/uPlot.LICENSE"
install -m 0644 "$tmp/world-atlas/package/countries-110m.json" "$dest/countries-110m.json"
install -m 0644 "$tmp/world-atlas/package/LICENSE" "$dest/world-atlas.LICENSE"
printf '%s\n' "$want" >"$stamp"
echo "console-assets: installed uPlot and world-atlas in $dest" >&2
