#!/usr/bin/env bash
# bench/gpu.sh: lethe on one NVIDIA GPU, unattended, in under 10 minutes. On a Linux machine with
# a PyTorch 2.x CUDA install (LIBTORCH = that torch's folder; `python3` with torch and
# transformers) it
#   1. builds the addon against that torch (build/lethe-gpu.node; the CPU build is untouched),
#   2. checks lethe's logits on CUDA against transformers' for the six architectures (gpt2,
#      llama, bloom, gpt_neox, t5, mt5; plus mistral and qwen2 through llama's file): tiny random
#      models saved by transformers, `lethe logits --device cuda`, max |diff| / max |ref|,
#   3. trains a ~1.1B-parameter LLaMA-shaped model (TinyLlama's shape, random weights) for 30
#      steps in bf16-mixed with gradient checkpointing (bench/memory.ts's child: the trainer's own
#      loop), printing tokens/s, peak GPU memory (nvidia-smi, both sides alike) and MFU,
#   4. does the same in PyTorch + transformers (bench/memory_torch.py) for the ratio,
#   5. prints one JSON line, last: {"gpu", "torch", "logits": {type: rel diff}, "train": {…}}.
#
# It needs a C++17 compiler for the addon (g++), nvidia-smi, and ~40 GB of GPU memory (lethe plan
# puts the training step at 34 GiB: 1.1B parameters × 16 bytes plus the checkpointed activations).
# Machines without Node: the script unpacks a carried Node (a `node-v20*-linux-x64.tar.*` in
# $LETHE_CARRY, default .carry/) and, when node_modules is missing, a carried
# `node_modules.tar.*` there (`npm ci`, then `tar caf .carry/node_modules.tar.xz
# --exclude=node_modules/{typescript,prettier,playwright-core} node_modules`).
#
#   bash bench/gpu.sh                 the run (needs a GPU)
#   bash bench/gpu.sh --cpu-dry-run   the same steps on the CPU with the existing addon, a tiny
#                                     model and 6 steps: checks the script's logic anywhere
# Exit status: 0 when every step ran and every logits check passed; the JSON line is printed in
# every case where the script got that far (a failed step is named in "errors").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DRY=0
[[ "${1:-}" == "--cpu-dry-run" ]] && DRY=1
[[ $# -gt 0 && $DRY -eq 0 ]] && { echo "usage: bash bench/gpu.sh [--cpu-dry-run]" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lethe-gpu-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ERRORS=()
log() { echo "[gpu.sh $(date +%H:%M:%S)] $*" >&2; }
fail() { ERRORS+=("$1"); log "FAILED: $1"; }

# ---- Node: the PATH's, else the carried one --------------------------------------------------
CARRY=${LETHE_CARRY:-$ROOT/.carry}
if ! command -v node >/dev/null 2>&1; then
  tarball=$(ls "$CARRY"/node-v*-linux-x64.tar.* 2>/dev/null | head -n1 || true)
  [[ -n $tarball ]] || { echo "gpu.sh: no node on PATH and no $CARRY/node-v*-linux-x64.tar.*" >&2; exit 1; }
  mkdir -p "$WORK/node"
  tar -xf "$tarball" -C "$WORK/node" --strip-components=1
  export PATH="$WORK/node/bin:$PATH"
  log "node $(node --version) from $tarball"
fi
if [[ ! -d node_modules/tsx ]]; then
  mods=$(ls "$CARRY"/node_modules.tar.* 2>/dev/null | head -n1 || true)
  [[ -n $mods ]] || { echo "gpu.sh: node_modules is missing and no $CARRY/node_modules.tar.*" >&2; exit 1; }
  tar -xf "$mods" -C "$ROOT"
  log "node_modules from $mods"
fi

PY=${LETHE_PYTHON:-python3}
if [[ $DRY -eq 1 ]]; then
  DEVICE=cpu
  PY=${LETHE_PYTHON:-$ROOT/.venv/bin/python}
  export LETHE_PYTHON=$PY
else
  DEVICE=cuda
  command -v nvidia-smi >/dev/null || { echo "gpu.sh: nvidia-smi not found (is this a GPU machine?)" >&2; exit 1; }
  export LETHE_PYTHON=$PY
fi
"$PY" -c "import torch, transformers" || { echo "gpu.sh: $PY cannot import torch and transformers" >&2; exit 1; }
TORCH=$("$PY" -c "import torch; print(torch.__version__)")
GPU=$([[ $DEVICE == cuda ]] && nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 || echo "none (CPU dry run)")
log "torch $TORCH, GPU: $GPU"

# ---- 1. the addon against this torch ---------------------------------------------------------
if [[ $DRY -eq 0 ]]; then
  export LIBTORCH=${LIBTORCH:-$("$PY" -c "import os, torch; print(os.path.dirname(torch.__file__))")}
  log "building build/lethe-gpu.node against $LIBTORCH"
  timeout 300 node scripts/build-native.mjs --out build/lethe-gpu.node >&2 || { echo "gpu.sh: the addon build failed" >&2; exit 1; }
  export LETHE_ADDON=$ROOT/build/lethe-gpu.node
  export LD_LIBRARY_PATH="$LIBTORCH/lib:${LD_LIBRARY_PATH:-}"
fi
timeout 60 node bin/lethe.js --version >&2
if [[ $DEVICE == cuda ]] && ! node bin/lethe.js --version | grep -q "CUDA compiled in, available"; then
  echo "gpu.sh: the addon does not see CUDA" >&2
  exit 1
fi

# ---- 2. logits on the device against transformers --------------------------------------------
cat >"$WORK/refs.py" <<'EOF'
"""Tiny random models of every architecture saved by transformers, their inputs, their logits."""
import json, sys, os
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM
out, device = sys.argv[1], sys.argv[2]
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
C = {
  "gpt2": dict(model_type="gpt2", vocab_size=96, n_positions=64, n_embd=64, n_layer=2, n_head=4),
  "llama": dict(model_type="llama", vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
  "mistral": dict(model_type="mistral", vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, sliding_window=8),
  "qwen2": dict(model_type="qwen2", vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
  "bloom": dict(model_type="bloom", vocab_size=96, hidden_size=64, n_layer=2, n_head=4),
  "gpt_neox": dict(model_type="gpt_neox", vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
  "t5": dict(model_type="t5", vocab_size=96, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20),
  "mt5": dict(model_type="mt5", vocab_size=96, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
g = torch.Generator().manual_seed(0)
for name, c in C.items():
    torch.manual_seed(0)
    seq2seq = c["model_type"] in ("t5", "mt5")
    cfg = AutoConfig.for_model(**c)
    if not seq2seq:
        cfg._attn_implementation = "eager"
    model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_config(cfg).eval()
    d = os.path.join(out, name)
    model.save_pretrained(d, safe_serialization=True)
    ids = torch.randint(3, 96, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, -4:] = 0  # row 2 right-padded (GPT-2's learned positions make left padding a
    # question of position ids, which transformers' plain forward takes as 0..T-1 regardless)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if seq2seq:
        inputs = {"input_ids": ids, "attention_mask": torch.ones(2, 12, dtype=torch.long),
                  "decoder_input_ids": torch.randint(3, 96, (2, 7), generator=g)}
    save_file(inputs, os.path.join(d, "inputs.safetensors"))
    model.to(device)
    with torch.no_grad():
        logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits.float().cpu()
    if not seq2seq:
        logits = logits * mask.unsqueeze(-1)  # padded positions are not compared
    save_file({"logits": logits.contiguous()}, os.path.join(d, "ref.safetensors"))
print(json.dumps(list(C)))
EOF
cat >"$WORK/compare.py" <<'EOF'
import json, sys
from safetensors.torch import load_file
ref = load_file(sys.argv[1])["logits"]
got = load_file(sys.argv[2])["logits"]
inputs = load_file(sys.argv[3])
if "decoder_input_ids" not in inputs:
    got = got * inputs["attention_mask"].unsqueeze(-1)
print(json.dumps(float((got - ref).abs().max() / ref.abs().max())))
EOF
LOGITS="{}"
if types=$(timeout 300 "$PY" "$WORK/refs.py" "$WORK/models" "$DEVICE" 2>"$WORK/refs.err"); then
  parts=()
  for t in $(echo "$types" | tr -d '[]",'); do
    d=$WORK/models/$t
    if timeout 120 node bin/lethe.js logits --model "$d" --inputs "$d/inputs.safetensors" --out "$d/lethe.safetensors" --device "$DEVICE" >&2 \
      && rel=$("$PY" "$WORK/compare.py" "$d/ref.safetensors" "$d/lethe.safetensors" "$d/inputs.safetensors"); then
      log "logits $t on $DEVICE: max |diff| / max |ref| = $rel"
      parts+=("\"$t\": $rel")
      "$PY" -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1e-4 else 1)" "$rel" || fail "logits $t: relative diff $rel > 1e-4"
    else
      fail "logits $t did not run"
      parts+=("\"$t\": null")
    fi
  done
  LOGITS="{$(IFS=,; echo "${parts[*]}")}"
else
  cat "$WORK/refs.err" >&2
  fail "transformers' reference models"
fi

# ---- 3-4. a ~1.1B LLaMA: 30 steps of bf16-mixed with checkpointing, lethe then PyTorch ---------
if [[ $DRY -eq 1 ]]; then
  CONFIG='{"model_type":"llama","vocab_size":2048,"hidden_size":128,"intermediate_size":344,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":2048}'
  SPEC="{\"config\":$CONFIG,\"precision\":\"bf16-mixed\",\"checkpointing\":true,\"batch\":2,\"seq\":128,\"steps\":6,\"device\":\"cpu\"}"
else
  # TinyLlama-1.1B's shape: 22 layers of width 2048, 32 heads (4 key/value), SwiGLU 5632.
  CONFIG='{"model_type":"llama","vocab_size":32000,"hidden_size":2048,"intermediate_size":5632,"num_hidden_layers":22,"num_attention_heads":32,"num_key_value_heads":4,"max_position_embeddings":2048,"tie_word_embeddings":false}'
  SPEC="{\"config\":$CONFIG,\"precision\":\"bf16-mixed\",\"checkpointing\":true,\"batch\":8,\"seq\":2048,\"steps\":30,\"device\":\"cuda\"}"
fi
LETHE_TRAIN=null
TORCH_TRAIN=null
log "training: lethe"
LETHE_TRAIN=$(timeout 240 node --import tsx bench/memory.ts --one lethe "$SPEC" | tail -n1) || { fail "lethe training"; LETHE_TRAIN=null; }
log "lethe: $LETHE_TRAIN"
log "training: PyTorch + transformers"
TORCH_TRAIN=$(timeout 240 node --import tsx bench/memory.ts --one torch "$SPEC" | tail -n1) || { fail "torch training"; TORCH_TRAIN=null; }
log "torch: $TORCH_TRAIN"

# ---- 5. the JSON line ------------------------------------------------------------------------
ERRS=$(printf '%s\n' "${ERRORS[@]+"${ERRORS[@]}"}" | "$PY" -c "import json, sys; print(json.dumps([l for l in sys.stdin.read().splitlines() if l]))")
"$PY" - "$GPU" "$TORCH" "$LOGITS" "$LETHE_TRAIN" "$TORCH_TRAIN" "$SPEC" "$ERRS" <<'EOF'
import json, sys
gpu, torch_v, logits, lethe, torch_r, spec, errors = sys.argv[1:8]
lethe, torch_r, spec = json.loads(lethe), json.loads(torch_r), json.loads(spec)
c = spec["config"]
L, h, T = c["num_hidden_layers"], c["hidden_size"], spec["seq"]
# Model FLOPs per token (PaLM's MFU): 6N plus attention's 12·L·h·T; recomputation not counted.
peaks = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12}
peak = next((v for k, v in peaks.items() if k in gpu), None)
if "PCIe" in gpu and peak == 989e12:
    peak = 756e12
def side(r):
    if r is None:
        return None
    out = {"tokens_per_s": round(r["tokens_per_s"], 1), "peak_gpu_mb": round(r["peak"] / 2**20),
           "params": r.get("params")}
    if "cuda_max_reserved" in r:  # torch's own allocator figures, beside nvidia-smi's
        out["cuda_max_reserved_mb"] = round(r["cuda_max_reserved"] / 2**20)
        out["cuda_max_allocated_mb"] = round(r["cuda_max_allocated"] / 2**20)
    if peak and r.get("params"):
        out["mfu"] = round((6 * r["params"] + 12 * L * h * T) * r["tokens_per_s"] / peak, 4)
    return out
train = {"model": "llama", "precision": spec["precision"], "checkpointing": spec["checkpointing"],
         "batch": spec["batch"], "seq": T, "steps": spec["steps"], "lethe": side(lethe), "torch": side(torch_r)}
if lethe and torch_r:
    train["tokens_per_s_ratio"] = round(lethe["tokens_per_s"] / torch_r["tokens_per_s"], 3)
    train["peak_memory_ratio"] = round(lethe["peak"] / torch_r["peak"], 3)
print(json.dumps({"gpu": gpu, "torch": torch_v, "device": spec["device"], "logits": json.loads(logits),
                  "train": train, "errors": json.loads(errors)}))
EOF
[[ ${#ERRORS[@]} -eq 0 ]]
