#!/usr/bin/env bash
# The CUDA compile check: builds the addon against the CUDA build of PyTorch and shows what it
# links. Nothing CUDA runs on a machine without a GPU, but a break on the CUDA path (an API that
# only the CUDA headers or libraries have, a missing library) shows here, before anyone rents a
# GPU. The CUDA torch goes into its own venv (.venv-cuda, ~5.5 GB); the CPU build is untouched.
# Output: build/lethe-cuda.node, linked to libtorch_cuda.so and libc10_cuda.so. Load it on a GPU
# machine with LETHE_ADDON=build/lethe-cuda.node.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_CUDA=2.14.1

py=.venv-cuda/bin/python
[[ -x $py ]] || python3 -m venv .venv-cuda
if [[ "$($py -c 'import torch; print(torch.__version__)' 2>/dev/null)" != "$TORCH_CUDA" ]]; then
  echo "check-cuda-build: installing torch==$TORCH_CUDA (CUDA) into .venv-cuda"
  $py -m pip install -q --disable-pip-version-check "torch==$TORCH_CUDA"
fi
LETHE_PYTHON="$PWD/$py" node scripts/build-native.mjs --out build/lethe-cuda.node

echo "== build/lethe-cuda.node links:"
readelf -d build/lethe-cuda.node | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  \1/p'
echo "== resolved:"
ldd build/lethe-cuda.node | grep -E 'torch|c10|cuda|nccl' | sed 's/^\s*/  /'
for lib in libtorch_cuda.so libc10_cuda.so; do
  readelf -d build/lethe-cuda.node | grep -q "\[$lib\]" || { echo "check-cuda-build: $lib is not linked" >&2; exit 1; }
done
# It loads without a GPU too (libtorch runs on the CPU then): the version line must say so.
echo "== LETHE_ADDON=build/lethe-cuda.node lethe --version"
v=$(LETHE_ADDON="$PWD/build/lethe-cuda.node" node bin/lethe.js --version)
echo "$v" | sed 's/^/  /'
grep -q "libtorch ${TORCH_CUDA} (built against), ${TORCH_CUDA}+" <<<"$v" && grep -q "CUDA compiled in" <<<"$v" || {
  echo "check-cuda-build: the CUDA addon does not report torch $TORCH_CUDA with CUDA compiled in" >&2
  exit 1
}
# Its process groups: NCCL (CUDA ranks) and Gloo (CPU ranks), from c10d in the same libtorch.
LETHE_ADDON="$PWD/build/lethe-cuda.node" node bin/lethe.js --version --verbose | grep -q "process groups: gloo yes.*nccl yes" || {
  echo "check-cuda-build: the CUDA addon was built without ProcessGroupNCCL or ProcessGroupGloo" >&2
  exit 1
}
echo "check-cuda-build: ok (torch $TORCH_CUDA, CUDA compiled in, NCCL and Gloo process groups)"
