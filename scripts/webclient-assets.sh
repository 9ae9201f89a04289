#!/usr/bin/env bash
# Installs the browser pages' player library from npm into
# internal/webclient/vendor/, where `go build` embeds it: hls.js, the
# maintained HLS client for Media Source Extensions. The version and the
# registry's sha512 integrity of the tarball are pinned here; a tarball
# that does not match is refused. Nothing it installs is committed (see
# internal/webclient/vendor/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=internal/webclient/vendor
name=hls.js
version=1.7.4
integrity=sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==
stamp="$dest/.installed"
want="$name $version $integrity"
if [ -s "$dest/hls.min.js" ] && [ -s "$dest/hls.js.LICENSE" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "webclient-assets: npm is missing; install it (Debian: apt-get install npm) or run make deps" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "webclient-assets: fetching $name@$version from npm" >&2
npm pack --silent --pack-destination "$tmp" "$name@$version" >/dev/null
tgz="$tmp/$name-$version.tgz"
got=$(node -e 'const c = require("crypto"), fs = require("fs");
  process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$tgz")
if [ "$got" != "$integrity" ]; then
  echo "webclient-assets: $name@$version: integrity $got, want $integrity; refusing it" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp"
mkdir -p "$dest"
install -m 0644 "$tmp/package/dist/hls.min.js" "$dest/hls.min.js"
install -m 0644 "$tmp/package/LICENSE" "$dest/hls.js.LICENSE"
printf '%s\n' "$want" >"$stamp"
echo "webclient-assets: installed $name $version in $dest" >&2
