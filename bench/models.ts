/**
 * bench/models: forward and train-step tokens/s of a ~100M-parameter LLaMA-style model in lethe
 * next to the same model in Python PyTorch (bench/models_torch.py, the venv's torch 2.x, same
 * libtorch), alternating one repetition of each side at a time (A B A B; medians, and the
 * per-pair ratio's min–max), and generation tokens/s with and without the KV cache (128 new
 * tokens).
 * Last line: one JSON object. Run: `npm run bench:models`.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { createModel, parseModelConfig, type CausalLM } from "../src/models/index.js";
import { generate } from "../src/models/generate.js";
import { AdamW } from "../src/optim/index.js";
import { crossEntropy, Generator, noGrad, randint, tidy, build } from "../src/tensor/index.js";
import { PYTHON as python } from "../src/util/python.js";

const small = process.env.BENCH_SMALL === "1";
const cfg = {
  model_type: "llama",
  vocab_size: 8192,
  hidden_size: small ? 256 : 768,
  intermediate_size: small ? 688 : 2048,
  num_hidden_layers: small ? 2 : 12,
  num_attention_heads: small ? 4 : 12,
  num_key_value_heads: small ? 4 : 12,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
};
const batch = 4;
const seq = 128;
const reps = Number(process.env.BENCH_REPS ?? 5);
const threads = availableParallelism();

const model = createModel(parseModelConfig(cfg), { seed: 7 }) as CausalLM;
const params = model.numParameters();
console.log(
  `lethe bench/models — libtorch ${build.torch}, ${threads} threads, LLaMA-style ${(params / 1e6).toFixed(1)}M params, batch ${batch} × seq ${seq}`,
);

const dir = mkdtempSync(join(tmpdir(), "lethe-bench-models-"));
mkdirSync(join(dir, "w"));
const shapes: Record<string, number[]> = {};
for (const [name, t] of model.stateDict()) {
  shapes[name] = t.shape;
  writeFileSync(join(dir, "w", `${name}.bin`), t.toBytes());
}
const ids = randint(0, cfg.vocab_size, [batch, seq + 1], { generator: new Generator(3) });
writeFileSync(join(dir, "weights.json"), JSON.stringify(shapes));
writeFileSync(join(dir, "tokens.bin"), ids.toBytes());
writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, batch, reps, threads }));
const x = ids.slice(1, 0, seq);
const y = ids.slice(1, 1).reshape(-1);

// The Python side stays up and takes one timed repetition per command, so the two alternate
// A B A B (machine drift hits both alike); each figure is the median of `reps` repetitions.
const py = spawn(python, [new URL("./models_torch.py", import.meta.url).pathname, dir], {
  stdio: ["pipe", "pipe", "inherit"],
});
const lines = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
async function ask<T>(cmd: string | null): Promise<T> {
  if (cmd) py.stdin.write(cmd + "\n");
  const { value, done } = await lines.next();
  if (done) throw new Error(`bench: python exited (run scripts/setup.sh bench; ${python})`);
  return JSON.parse(value) as T;
}
const torchSample = (await ask<{ logits_sample: number[] }>(null)).logits_sample;

const model_ = model;
model_.eval();
const sample = noGrad(() =>
  tidy(() =>
    model_
      .forward({ inputIds: x })
      .logits.slice(0, 0, 1)
      .slice(1, 0, 4)
      .slice(2, 0, 4)
      .reshape(-1)
      .toNumbers(),
  ),
);
const maxLogitDiff = Math.max(...sample.map((v, i) => Math.abs(v - torchSample[i])));

const opt = new AdamW([{ params: model_.parameters() }], { lr: 1e-4 });
const letheOnce = (what: "forward" | "train"): number => {
  const t0 = performance.now();
  if (what === "forward") {
    model_.eval();
    noGrad(() => tidy(() => void model_.forward({ inputIds: x })));
  } else {
    model_.train();
    tidy(() => {
      const loss = crossEntropy(model_.forward({ inputIds: x }).logits.view(-1, cfg.vocab_size), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  }
  return (performance.now() - t0) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const timings: Record<string, { lethe: number[]; torch: number[] }> = {};
for (const what of ["forward", "train"] as const) {
  letheOnce(what); // warm-up, both sides
  await ask(what);
  const t = { lethe: [] as number[], torch: [] as number[] };
  for (let i = 0; i < reps; i++) {
    t.lethe.push(letheOnce(what));
    t.torch.push((await ask<{ seconds: number }>(what)).seconds);
  }
  timings[what] = t;
}
py.stdin.write("quit\n");
opt.dispose();
const forwardS = median(timings.forward.lethe);
const trainS = median(timings.train.lethe);
const torch = { forward_s: median(timings.forward.torch), train_s: median(timings.train.torch) };
const ratios = (w: string) =>
  timings[w].lethe.map((l, i) => timings[w].torch[i] / l).sort((a, b) => a - b);

// Generation: 128 new tokens from a 16-token prompt, batch 1, greedy.
model_.eval();
const prompt = ids.slice(0, 0, 1).slice(1, 0, 16);
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 128);
const genRate = (useCache: boolean): number => {
  const t = performance.now();
  const out = generate(model_, { inputIds: prompt, maxNewTokens: newTokens, useCache });
  return out[0].length / ((performance.now() - t) / 1000);
};
const cached = genRate(true);
const uncached = genRate(false);
rmSync(dir, { recursive: true, force: true });

const tokens = batch * seq;
const r = (v: number) => Number(v.toFixed(3));
console.log(
  `forward: lethe ${(tokens / forwardS).toFixed(0)} tok/s, torch ${(tokens / torch.forward_s).toFixed(0)} tok/s`,
);
console.log(
  `train step: lethe ${(tokens / trainS).toFixed(0)} tok/s, torch ${(tokens / torch.train_s).toFixed(0)} tok/s`,
);
console.log(
  `generate ${newTokens} tokens: cached ${cached.toFixed(1)} tok/s, uncached ${uncached.toFixed(1)} tok/s`,
);
console.log(
  JSON.stringify({
    params,
    lethe_forward_tokens_per_s: Math.round(tokens / forwardS),
    torch_forward_tokens_per_s: Math.round(tokens / torch.forward_s),
    forward_ratio: r(torch.forward_s / forwardS),
    forward_ratio_min_max: [r(ratios("forward")[0]), r(ratios("forward").at(-1)!)],
    lethe_train_tokens_per_s: Math.round(tokens / trainS),
    torch_train_tokens_per_s: Math.round(tokens / torch.train_s),
    train_ratio: r(torch.train_s / trainS),
    train_ratio_min_max: [r(ratios("train")[0]), r(ratios("train").at(-1)!)],
    generate_cached_tokens_per_s: r(cached),
    generate_uncached_tokens_per_s: r(uncached),
    cache_speedup: r(cached / uncached),
    max_abs_logit_diff_vs_torch: maxLogitDiff,
  }),
);
