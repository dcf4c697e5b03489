#!/usr/bin/env bash
# Installs what lethe needs on Debian/Ubuntu (run as root, or with sudo available) and builds the
# native addon against PyTorch 2.x's own libtorch. Quick when everything is already there.
#
#   scripts/setup.sh          build tools, Gloo's headers, Node >= 20, npm packages, the project venv (.venv) with
#                             the pinned torch, and the addon (build/lethe.node)
#   scripts/setup.sh test     the same, plus Chromium for the report's browser test
#   scripts/setup.sh bench    the same, plus the pinned Python references of bench/ (transformers,
#                             peft, lm-evaluation-harness) in the same venv
#
# On a machine that already has PyTorch 2.11–2.15 (a GPU box), `LETHE_PYTHON=/path/to/python` or
# `LIBTORCH_USE_PYTORCH=1` (python3 on the PATH) builds against that install and no venv is made.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.13.0 # the CPU libtorch every test and benchmark here runs on
BENCH_PY=(transformers==4.57.6 peft==0.17.1 lm-eval==0.4.7 numpy)

pkgs=(g++ make python3 python3-venv libgloo-dev) # libgloo-dev: the Gloo headers c10d's ProcessGroupGloo needs (its code is in libtorch)
[[ "${1:-}" == test ]] && pkgs+=(chromium)
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then pkgs+=(nodejs npm); fi

missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "lethe setup: installing ${missing[*]}"
  sudo=""
  ((EUID == 0)) || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "lethe setup: Node.js >= 20 is required (found $(node --version)); install it from your distribution or nodejs.org" >&2
  exit 1
fi

# The Python side: torch (whose libtorch the addon links) and the references of tests and benches.
if [[ -n "${LETHE_PYTHON:-}" || "${LIBTORCH_USE_PYTORCH:-}" == 1 ]]; then
  py="${LETHE_PYTHON:-python3}"
  "$py" -c 'import torch' 2>/dev/null || {
    echo "lethe setup: $py cannot import torch (LETHE_PYTHON / LIBTORCH_USE_PYTORCH name an existing PyTorch 2.x install)" >&2
    exit 1
  }
else
  py=.venv/bin/python
  [[ -x $py ]] || python3 -m venv .venv
  if [[ "$($py -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" != "$TORCH" ]]; then
    echo "lethe setup: installing torch==$TORCH into .venv"
    $py -m pip install -q --disable-pip-version-check "torch==$TORCH"
  fi
fi
if [[ "${1:-}" == bench ]] && ! "$py" -c 'import transformers, peft, lm_eval, numpy' 2>/dev/null; then
  echo "lethe setup: installing ${BENCH_PY[*]} for bench/"
  pin=()
  [[ $py == .venv/bin/python ]] && pin=("torch==$TORCH") # a reference must not move torch
  "$py" -m pip install -q --disable-pip-version-check "${BENCH_PY[@]}" "${pin[@]}"
fi

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
node scripts/build-native.mjs
