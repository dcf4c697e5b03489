"""Python PyTorch side of bench/models.ts: an idiomatic LLaMA-style model for torch 2.x (RMSNorm,
rotate_half RoPE, SwiGLU, F.scaled_dot_product_attention), loading the weights lethe wrote (HF names),
timing forward and train steps on the same token batch when told (stdin), one JSON line each."""
import json, math, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

d = sys.argv[1]
cfg = json.load(open(f"{d}/config.json"))
torch.set_num_threads(cfg["threads"])
V, C, L, H, I = cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["intermediate_size"]
hd = C // H
eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = [nn.Linear(C, C, bias=False) for _ in range(4)]

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q, k, v = [p(x).view(b, t, H, hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj)]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, C))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(C, I, bias=False), nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm, self.self_attn = RMSNorm(), Attn()
        self.post_attention_layernorm, self.mlp = RMSNorm(), MLP()

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, C)
        self.layers = nn.ModuleList([Layer() for _ in range(L)])
        self.norm = RMSNorm()


class Llama(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Inner()
        self.lm_head = nn.Linear(C, V, bias=False)

    def forward(self, ids):
        t = ids.shape[1]
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2).float() / hd))
        freqs = torch.outer(torch.arange(t).float(), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))


model = Llama()
sd = model.state_dict()
with torch.no_grad():
    for name, shape in json.load(open(f"{d}/weights.json")).items():
        sd[name].copy_(torch.from_numpy(np.fromfile(f"{d}/w/{name}.bin", dtype=np.float32).reshape(shape)))
ids = torch.from_numpy(np.fromfile(f"{d}/tokens.bin", dtype=np.int64).reshape(cfg["batch"], -1))
x, y = ids[:, :-1], ids[:, 1:]
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
model.eval()
with torch.no_grad():
    sample = model(x)[0, :4, :4].flatten().tolist()
print(json.dumps({"logits_sample": sample}), flush=True)
# Driven over stdin, one timed repetition per command, so bench/models.ts can alternate A B A B:
# "forward" times one no-grad forward; "train" one training step; each prints {"seconds": s}.
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "quit":
        break
    t0 = time.perf_counter()
    if cmd == "forward":
        model.eval()
        with torch.no_grad():
            model(x)
    elif cmd == "train":
        model.train()
        loss = F.cross_entropy(model(x).view(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
