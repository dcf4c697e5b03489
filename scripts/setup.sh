#!/usr/bin/env bash
# Installs what lethe needs on Debian/Ubuntu (run as root, or with sudo available), and builds the
# native addon. Quick when everything is already there. `scripts/setup.sh test` also installs
# Chromium for the report's browser test; `scripts/setup.sh bench` installs Debian's
# python3-torch, the side-by-side reference for bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(g++ make python3 libtorch-dev libopenblas0-pthread libtcmalloc-minimal4)
# OpenBLAS (pthread) matters: without it libtorch falls back to reference BLAS, ~40x slower matmuls.
[[ "${1:-}" == test ]] && pkgs+=(chromium)
[[ "${1:-}" == bench ]] && pkgs+=(python3-torch python3-numpy)
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if (( node_major < 20 )); then pkgs+=(nodejs npm); fi

missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if (( ${#missing[@]} )); then
  echo "lethe setup: installing ${missing[*]}"
  sudo=""; (( EUID == 0 )) || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
  echo "lethe setup: Node.js >= 20 is required (found $(node --version)); install it from your distribution or nodejs.org" >&2
  exit 1
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
node scripts/build-native.mjs
