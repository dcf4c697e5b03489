"""Python PyTorch side of bench/memory.ts (and bench/gpu.sh): one measurement per process.

Argument: the same JSON spec lethe's child takes ({config, precision, checkpointing, batch, seq,
steps, device, baseline}). Builds transformers' LlamaForCausalLM from the config.json fields
(random weights, float32, SDPA attention), trains `steps` AdamW steps on random token rows of
`seq` tokens (labels = inputs, the loss shifted inside as transformers does), under
torch.autocast(bfloat16) for "bf16-mixed", with `gradient_checkpointing_enable(use_reentrant=False)`
when asked: the idiomatic way to fine-tune it in PyTorch. A baseline imports the same modules and
runs one warm-up step of a width-16 model but trains nothing.

Prints one JSON line: {"peak": peak RSS bytes (VmHWM), "params": …, "tokens_per_s": steady-state
tokens/s (steps after the first three), "cuda_max_allocated": …, "cuda_max_reserved": … (CUDA)}.
"""
import json, os, sys, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

spec = json.loads(sys.argv[1])
device = spec.get("device", "cpu")
torch.set_num_threads(int(os.environ.get("LETHE_THREADS", os.cpu_count())))


def vm_hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def step(model, ids, bf16):
    with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss


torch.manual_seed(0)
micro = LlamaForCausalLM(
    LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
).to(device)
step(micro, torch.randint(0, 64, (2, 16), device=device), False)
del micro
if spec.get("baseline"):
    print(json.dumps({"peak": vm_hwm()}), flush=True)
    sys.exit(0)

cfg = {k: v for k, v in spec["config"].items() if k != "model_type"}
with torch.device(device):  # initialised where it trains (a 1B model's CPU init takes a while)
    model = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="sdpa"))
if spec["checkpointing"]:
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
model.config.use_cache = False
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
bf16 = spec["precision"] == "bf16-mixed"
if spec["precision"] not in ("32-true", "bf16-mixed"):
    sys.exit(f"memory_torch.py: precision {spec['precision']} is not measured here")
g = torch.Generator().manual_seed(1)
B, T, V = spec["batch"], spec["seq"], spec["config"]["vocab_size"]
times = []
for s in range(spec["steps"]):
    ids = torch.randint(0, min(V, 2000), (B, T), generator=g).to(device)
    step(model, ids, bf16)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # as lethe's trainer (clip 1)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times.append(time.perf_counter())
skip = 3 if spec["steps"] >= 5 else 0
t0 = times[skip - 1] if skip else times[0] - (times[1] - times[0] if len(times) > 1 else 0)
out = {
    "peak": vm_hwm(),
    "params": sum(p.numel() for p in model.parameters()),
    "tokens_per_s": (spec["steps"] - skip) * B * T / max(times[-1] - t0, 1e-9),
}
if device.startswith("cuda"):
    out["cuda_max_allocated"] = torch.cuda.max_memory_allocated()
    out["cuda_max_reserved"] = torch.cuda.max_memory_reserved()
print(json.dumps(out), flush=True)
