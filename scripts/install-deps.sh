#!/usr/bin/env bash
# Installs the Debian packages named as "package:command" arguments whose
# command is missing. As root it uses apt-get; otherwise it says what to
# install and fails, so a test never runs without the peer it needs.
set -euo pipefail
missing=()
for spec in "$@"; do
  pkg=${spec%%:*} cmd=${spec#*:}
  # An absolute path is a glob that must match a file (for programs
  # outside PATH, such as /usr/lib/postgresql/*/bin/initdb).
  if [[ $cmd == /* ]]; then
    compgen -G "$cmd" >/dev/null || missing+=("$pkg")
    continue
  fi
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/lib/frr/$cmd" ]; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
