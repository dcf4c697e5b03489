/**
 * bench/engine: trains the same GPT-style model (vocab 8192, d_model 256, 4 layers, 4 heads, MLP 4×,
 * seq 128, batch 8, AdamW, cross-entropy, same initial weights and token batches) in lethe and in
 * Python PyTorch (the venv's torch 2.x, the same libtorch underneath; bench/engine_torch.py),
 * alternating rounds of steps in one invocation, and prints tokens/s, peak RSS and the largest
 * loss difference. Then the same alternation for bf16-mixed steps (forward and loss under
 * autocast on both sides), fp32 and bf16 matmul GFLOP/s on both sides, and per-op overhead.
 * Every comparison alternates the two sides (A B A B) and reports the median ratio of the rounds
 * with its min–max, since this VM's speed drifts from minute to minute. Per-op overhead is CPU
 * time (user + system) per call, so that other processes on the machine do not inflate it.
 * `BENCH_ONLY=matmul` runs only the matmul part: whether bf16 beats fp32 through this libtorch on
 * this CPU (e.g. AVX512_BF16 / AMX on Intel Sapphire Rapids).
 * Last line: one JSON object (see bench/RESULTS.md). Run: `npm run bench:engine`.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
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
const matmulOnly = process.env.BENCH_ONLY === "matmul";
/** The middle value; for an even count, the mean of the two middle ones. */
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Median, min and max of per-round ratios, rounded for the JSON line. */
const spread = (xs: number[]) => ({
  median: Number(median(xs).toFixed(3)),
  min: Number(Math.min(...xs).toFixed(3)),
  max: Number(Math.max(...xs).toFixed(3)),
});
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
// V8's garbage-collection pauses during lethe's timed fp32 steps: native memory is reported to
// V8 once per storage (native/lethe.cc), so views and `.grad` handles do not bring on major GCs.
const gcPauses: { start: number; ms: number }[] = [];
const gcWindows: [number, number][] = []; // performance.now() spans of the timed fp32 rounds
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, ms: e.duration });
}).observe({ entryTypes: ["gc"] });
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
const stepRatios: number[] = []; // lethe tokens/s over torch tokens/s, per round
const bf16Ratios: number[] = [];
const tokensPerStep = cfg.batch * cfg.seq;
const timed = rounds * perRound;
let maxDiff = 0;
let letheBf16 = 0;
let torchBf16 = 0;
let bf16Diff = 0;
if (!matmulOnly) {
  letheLoss.push(...letheSteps(warmup).losses);
  torchLoss.push(...(await ask<{ losses: number[] }>(`steps ${warmup}`)).losses);
  for (let r = 0; r < rounds; r++) {
    const w0 = performance.now();
    const a = letheSteps(perRound);
    gcWindows.push([w0, performance.now()]);
    const b = await ask<{ losses: number[]; seconds: number }>(`steps ${perRound}`);
    letheLoss.push(...a.losses);
    torchLoss.push(...b.losses);
    letheTime += a.seconds;
    torchTime += b.seconds;
    stepRatios.push(b.seconds / a.seconds);
    console.log(
      `round ${r + 1}/${rounds}: lethe ${((a.seconds / perRound) * 1000).toFixed(0)} ms/step, torch ${((b.seconds / perRound) * 1000).toFixed(0)} ms/step, loss ${a.losses.at(-1)!.toFixed(4)} vs ${b.losses.at(-1)!.toFixed(4)}`,
    );
  }
  maxDiff = Math.max(...letheLoss.map((l, i) => Math.abs(l - torchLoss[i])));

  // ---- bf16-mixed steps, alternating the same way -------------------------------------------
  letheSteps(1, true);
  await ask(`steps 1 bf16`);
  for (let r = 0; r < rounds; r++) {
    const a = letheSteps(perRound, true);
    const b = await ask<{ losses: number[]; seconds: number }>(`steps ${perRound} bf16`);
    letheBf16 += a.seconds;
    torchBf16 += b.seconds;
    bf16Ratios.push(b.seconds / a.seconds);
    bf16Diff = Math.max(bf16Diff, ...a.losses.map((l, i) => Math.abs(l - b.losses[i])));
    console.log(
      `bf16-mixed round ${r + 1}/${rounds}: lethe ${((a.seconds / perRound) * 1000).toFixed(0)} ms/step, torch ${((b.seconds / perRound) * 1000).toFixed(0)} ms/step`,
    );
  }
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
// Per-op overhead: CPU time of a 1-element add (the tensor API's `add` + `dispose`, and
// torch.add), alternating 5 rounds.
const one = ones([1]);
const nOps = 20000;
const letheOp: number[] = [];
const torchOp: number[] = [];
for (let r = 0; r < (matmulOnly ? 0 : 5); r++) {
  const c0 = process.cpuUsage();
  tidy(() => {
    for (let i = 0; i < nOps; i++) one.add(one).dispose();
  });
  const c = process.cpuUsage(c0);
  letheOp.push((c.user + c.system) / nOps);
  torchOp.push((await ask<{ cpu_us_per_op: number }>("overhead")).cpu_us_per_op);
}
const letheUs = matmulOnly ? NaN : median(letheOp);
const torchUs = matmulOnly ? NaN : median(torchOp);
if (!matmulOnly)
  console.log(
    `per-op overhead (CPU time, median of 5): lethe ${letheUs.toFixed(2)} µs, torch ${torchUs.toFixed(2)} µs`,
  );

const torchRss = (await ask<{ peak_rss_mb: number }>("rss")).peak_rss_mb;
py.stdin.write("quit\n");
const letheRss = process.resourceUsage().maxRSS / 1024;
rmSync(dir, { recursive: true, force: true });

const lethe_tokens_per_s = (tokensPerStep * timed) / letheTime;
const torch_tokens_per_s = (tokensPerStep * timed) / torchTime;
await new Promise((r) => setTimeout(r, 10)); // let the observer deliver the last entries
const gcMs = gcPauses
  .filter((p) => gcWindows.some(([a, b]) => p.start >= a && p.start <= b))
  .reduce((a, p) => a + p.ms, 0);
const bf16OverFp32 = Object.fromEntries(
  [1024, 2048].flatMap((n) =>
    ["lethe", "torch"].map((side) => [
      `${side}_${n}`,
      Number((gflops[`${side}_bfloat16_${n}`] / gflops[`${side}_float32_${n}`]).toFixed(2)),
    ]),
  ),
);
console.log(`bf16 / fp32 matmul speed: ${JSON.stringify(bf16OverFp32)} (${cpus()[0]?.model})`);
if (matmulOnly) {
  console.log(
    JSON.stringify({
      bf16_over_fp32: bf16OverFp32,
      torch: build.torchLoaded,
      cpu: cpus()[0]?.model,
    }),
  );
  process.exit(0);
}
console.log(
  JSON.stringify({
    ratio_rounds: spread(stepRatios),
    bf16_ratio_rounds: spread(bf16Ratios),
    lethe_us_per_op: Number(letheUs.toFixed(3)),
    lethe_gc_ms_per_step: Number((gcMs / timed).toFixed(2)),
    torch_us_per_op: Number(torchUs.toFixed(3)),
    bf16_over_fp32: bf16OverFp32,
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
