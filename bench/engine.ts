/**
 * bench/engine: trains the same GPT-style model (vocab 8192, d_model 256, 4 layers, 4 heads, MLP 4×,
 * seq 128, batch 8, AdamW, cross-entropy, same initial weights and token batches) in lethe and in
 * Python PyTorch (the venv's torch 2.x, the same libtorch underneath; bench/engine_torch.py),
 * alternating rounds of steps in one invocation, and prints tokens/s, peak RSS and the largest
 * loss difference. Then the same alternation for bf16-mixed steps (forward and loss under
 * autocast on both sides), fp32 and bf16 matmul GFLOP/s on both sides, and per-op overhead.
 * Last line: one JSON object (see bench/RESULTS.md). Run: `npm run bench:engine`.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { gpt2Config, GPT2LMHeadModel } from "../src/models/gpt2.js";
import { flattenParameters } from "../src/nn/index.js";
import { AdamW } from "../src/optim/index.js";
import {
  autocast,
  crossEntropy,
  Generator,
  ones,
  randint,
  randn,
  tidy,
  build,
  type Tensor,
} from "../src/tensor/index.js";
import { PYTHON as python } from "../src/util/python.js";

const cfg = {
  vocab: 8192,
  d_model: 256,
  layers: 4,
  heads: 4,
  seq: 128,
  batch: 8,
  lr: 3e-4,
  threads: availableParallelism(),
};
const warmup = 3;
const rounds = Number(process.env.BENCH_ROUNDS ?? 4);
const perRound = Number(process.env.BENCH_STEPS ?? 6);

const dir = mkdtempSync(join(tmpdir(), "lethe-bench-"));
mkdirSync(join(dir, "w"));

// ---- lethe model, weights and data -------------------------------------------------------
const model = new GPT2LMHeadModel(
  gpt2Config({
    vocab_size: cfg.vocab,
    n_positions: cfg.seq,
    n_embd: cfg.d_model,
    n_layer: cfg.layers,
    n_head: cfg.heads,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
  }),
  { seed: 1234 },
);
const shapes: Record<string, number[]> = {};
for (const [name, t] of model.stateDict()) {
  shapes[name] = t.shape;
  writeFileSync(join(dir, "w", `${name}.bin`), t.toBytes());
}
writeFileSync(join(dir, "weights.json"), JSON.stringify(shapes));
writeFileSync(join(dir, "config.json"), JSON.stringify(cfg));
const nBatches = warmup + rounds * perRound;
const tokens = randint(0, cfg.vocab, [nBatches, cfg.batch, cfg.seq + 1], {
  generator: new Generator(99),
});
writeFileSync(join(dir, "tokens.bin"), tokens.toBytes());
const batches: Tensor[] = tokens.split(1, 0).map((b) => b.squeeze(0));

// LETHE_FLAT=1: parameters and gradients as views into one flat buffer (nn/flat.ts).
const params = process.env.LETHE_FLAT === "1" ? flattenParameters(model)[0] : model.parameters();
const opt = new AdamW([{ params }], {
  lr: cfg.lr,
  betas: [0.9, 0.95],
  eps: 1e-8,
  weightDecay: 0.1,
});
let step = 0;
function letheSteps(n: number, bf16 = false): { losses: number[]; seconds: number } {
  const losses: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const loss = tidy(() => {
      const b = batches[step % nBatches];
      const forward = () => {
        const { logits } = model.forward({ inputIds: b.slice(1, 0, -1) });
        return crossEntropy(logits.view(-1, cfg.vocab), b.slice(1, 1).reshape(-1));
      };
      const l = bf16 ? autocast("cpu", "bfloat16", forward) : forward();
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l.item();
    });
    losses.push(loss);
    step++;
  }
  return { losses, seconds: (performance.now() - t0) / 1000 };
}

// ---- python side ---------------------------------------------------------------------------
const py = spawn(python, [new URL("./engine_torch.py", import.meta.url).pathname, dir], {
  stdio: ["pipe", "pipe", "inherit"],
});
const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
async function ask<T>(cmd: string): Promise<T> {
  py.stdin.write(cmd + "\n");
  const { value, done } = await lines.next();
  if (done) throw new Error(`bench: python exited (run scripts/setup.sh bench; ${python})`);
  return JSON.parse(value) as T;
}

console.log(
  `lethe bench/engine — libtorch ${build.torch}, ${cfg.threads} threads, model ${(model.numParameters() / 1e6).toFixed(2)}M params`,
);
const letheLoss: number[] = [];
const torchLoss: number[] = [];
let letheTime = 0;
let torchTime = 0;
letheLoss.push(...letheSteps(warmup).losses);
torchLoss.push(...(await ask<{ losses: number[] }>(`steps ${warmup}`)).losses);
for (let r = 0; r < rounds; r++) {
  const a = letheSteps(perRound);
  const b = await ask<{ losses: number[]; seconds: number }>(`steps ${perRound}`);
  letheLoss.push(...a.losses);
  torchLoss.push(...b.losses);
  letheTime += a.seconds;
  torchTime += b.seconds;
  console.log(
    `round ${r + 1}/${rounds}: lethe ${((a.seconds / perRound) * 1000).toFixed(0)} ms/step, torch ${((b.seconds / perRound) * 1000).toFixed(0)} ms/step, loss ${a.losses.at(-1)!.toFixed(4)} vs ${b.losses.at(-1)!.toFixed(4)}`,
  );
}
const tokensPerStep = cfg.batch * cfg.seq;
const timed = rounds * perRound;
const maxDiff = Math.max(...letheLoss.map((l, i) => Math.abs(l - torchLoss[i])));

// ---- bf16-mixed steps, alternating the same way -------------------------------------------
let letheBf16 = 0;
let torchBf16 = 0;
let bf16Diff = 0;
letheSteps(1, true);
await ask(`steps 1 bf16`);
for (let r = 0; r < rounds; r++) {
  const a = letheSteps(perRound, true);
  const b = await ask<{ losses: number[]; seconds: number }>(`steps ${perRound} bf16`);
  letheBf16 += a.seconds;
  torchBf16 += b.seconds;
  bf16Diff = Math.max(bf16Diff, ...a.losses.map((l, i) => Math.abs(l - b.losses[i])));
  console.log(
    `bf16-mixed round ${r + 1}/${rounds}: lethe ${((a.seconds / perRound) * 1000).toFixed(0)} ms/step, torch ${((b.seconds / perRound) * 1000).toFixed(0)} ms/step`,
  );
}

// ---- matmul throughput (A B A B) and per-op overhead ---------------------------------------
const gflops: Record<string, number> = {};
for (const dtype of ["float32", "bfloat16"] as const) {
  for (const n of [1024, 2048]) {
    const [a, b] = [randn([n, n]).to(dtype), randn([n, n]).to(dtype)];
    tidy(() => a.mm(b));
    const reps = n >= 2048 ? 3 : 10;
    let ls = 0;
    let ts = 0;
    for (let r = 0; r < 2; r++) {
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) tidy(() => a.mm(b));
      ls += (performance.now() - t0) / 1000 / reps / 2;
      ts += (await ask<{ seconds: number }>(`matmul ${n} ${dtype} ${reps}`)).seconds / 2;
    }
    gflops[`lethe_${dtype}_${n}`] = (2 * n ** 3) / ls / 1e9;
    gflops[`torch_${dtype}_${n}`] = (2 * n ** 3) / ts / 1e9;
    console.log(
      `matmul ${dtype} ${n}: lethe ${gflops[`lethe_${dtype}_${n}`].toFixed(1)}, torch ${gflops[`torch_${dtype}_${n}`].toFixed(1)} GFLOP/s`,
    );
  }
}
const one = ones([1]);
const nOps = 20000;
const t0 = performance.now();
tidy(() => {
  for (let i = 0; i < nOps; i++) one.add(one).dispose();
});
const letheUs = ((performance.now() - t0) / nOps) * 1000;
const torchUs = (await ask<{ us_per_op: number }>("overhead")).us_per_op;
console.log(`per-op overhead: lethe ${letheUs.toFixed(2)} µs, torch ${torchUs.toFixed(2)} µs`);

const torchRss = (await ask<{ peak_rss_mb: number }>("rss")).peak_rss_mb;
py.stdin.write("quit\n");
const letheRss = process.resourceUsage().maxRSS / 1024;
rmSync(dir, { recursive: true, force: true });

const lethe_tokens_per_s = (tokensPerStep * timed) / letheTime;
const torch_tokens_per_s = (tokensPerStep * timed) / torchTime;
console.log(
  JSON.stringify({
    lethe_tokens_per_s: Math.round(lethe_tokens_per_s),
    torch_tokens_per_s: Math.round(torch_tokens_per_s),
    ratio: Number((lethe_tokens_per_s / torch_tokens_per_s).toFixed(3)),
    lethe_peak_rss_mb: Math.round(letheRss),
    torch_peak_rss_mb: Math.round(torchRss),
    rss_ratio: Number((letheRss / torchRss).toFixed(3)),
    max_abs_loss_diff: maxDiff,
    lethe_bf16_tokens_per_s: Math.round((tokensPerStep * timed) / letheBf16),
    torch_bf16_tokens_per_s: Math.round((tokensPerStep * timed) / torchBf16),
    bf16_ratio: Number((torchBf16 / letheBf16).toFixed(3)),
    max_abs_bf16_loss_diff: bf16Diff,
    matmul_gflops: Object.fromEntries(
      Object.entries(gflops).map(([k, v]) => [k, Number(v.toFixed(1))]),
    ),
    torch: build.torchLoaded,
    cpu: cpus()[0]?.model,
  }),
);
