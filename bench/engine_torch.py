"""Python PyTorch side of bench/engine.ts: the idiomatic nanoGPT-style GPT for torch 2.x
(F.scaled_dot_product_attention, nn.Linear layers, torch.optim.AdamW), loading the exact initial
weights and token batches that lethe wrote. Driven over stdin: "steps N [bf16]" runs N training
steps (bf16: forward and loss under torch.autocast) and prints one JSON line {losses, seconds};
"matmul N DTYPE REPS" prints {seconds} per matmul; "rss" prints peak RSS in MB; "overhead" times
a tiny op."""
import json, math, resource, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
torch.set_num_threads(cfg["threads"])
V, C, L, H, T, B = cfg["vocab"], cfg["d_model"], cfg["layers"], cfg["heads"], cfg["seq"], cfg["batch"]


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = [z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v)]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block() for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1)).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))


model = GPT()
names = json.load(open(f"{d}/weights.json"))
sd = model.state_dict()
with torch.no_grad():
    for name, shape in names.items():
        w = torch.from_numpy(np.fromfile(f"{d}/w/{name}.bin", dtype=np.float32).reshape(shape))
        # lethe stores HF GPT-2 names and Conv1D (in, out) layout; map to this nn.Linear model.
        key = name.replace("transformer.", "").replace("mlp.c_fc", "c_fc").replace("mlp.c_proj", "c_proj")
        if w.dim() == 2 and key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            w = w.t()
        sd[key].copy_(w)
tokens = torch.from_numpy(np.fromfile(f"{d}/tokens.bin", dtype=np.int64).reshape(-1, B, T + 1))
opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
step = 0

for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "steps":
        losses, t0 = [], time.perf_counter()
        bf16 = len(cmd) > 2 and cmd[2] == "bf16"
        for _ in range(int(cmd[1])):
            batch = tokens[step % tokens.size(0)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(batch[:, :-1], batch[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        print(json.dumps({"losses": losses, "seconds": time.perf_counter() - t0}), flush=True)
    elif cmd[0] == "matmul":
        n, dt, reps = int(cmd[1]), getattr(torch, cmd[2]), int(cmd[3])
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        a @ b
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        print(json.dumps({"seconds": (time.perf_counter() - t0) / reps}), flush=True)
    elif cmd[0] == "rss":
        print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    elif cmd[0] == "overhead":
        a, b = torch.ones(1), torch.ones(1)
        n = 20000
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            torch.add(a, b)
        c1 = time.process_time()
        print(json.dumps({"us_per_op": (time.perf_counter() - t0) / n * 1e6, "cpu_us_per_op": (c1 - c0) / n * 1e6}), flush=True)
    elif cmd[0] == "quit":
        break
