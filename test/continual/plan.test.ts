/**
 * The memory planner (src/continual/plan.ts) and `lethe plan`: exact parameter counts against
 * lethe's own models and against transformers' counts of the paper's models, the estimate
 * against a real training process's peak RSS, `lethe run`'s refusal of a run that cannot fit,
 * and `lethe plan examples/luo2023.yaml` on an 80 GB and a 141 GB GPU.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { totalmem, tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createModel, parseModelConfig } from "../../src/models/index.js";
import { applyLora } from "../../src/models/lora.js";
import {
  parameterCount,
  parameterShapes,
  planMemory,
  type PlanInput,
} from "../../src/continual/plan.js";
import { main } from "../../src/cli/main.js";
import { writeTokenizer, SPECIAL_TOKENS } from "../../src/mini/tokenizer.js";
import { capture } from "../helpers/capture.js";
import { TINY_CONFIGS } from "../models/tiny.js";

const root = new URL("../../", import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), "lethe-plan-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Every family, and the variants whose parameter lists differ (biases, tying, GQA, gating). */
const VARIANTS: Record<string, Record<string, unknown>> = {
  ...TINY_CONFIGS,
  llama_tied_gqa: { ...TINY_CONFIGS.llama, tie_word_embeddings: true },
  llama_biases: { ...TINY_CONFIGS.llama, attention_bias: true, mlp_bias: true, head_dim: 16 },
  mistral: { ...TINY_CONFIGS.llama, model_type: "mistral" },
  qwen2: { ...TINY_CONFIGS.llama, model_type: "qwen2", tie_word_embeddings: true },
  bloom_untied: { ...TINY_CONFIGS.bloom, tie_word_embeddings: false },
  gpt_neox_tied_nobias: {
    ...TINY_CONFIGS.gpt_neox,
    tie_word_embeddings: true,
    attention_bias: false,
  },
  mt5: {
    ...TINY_CONFIGS.t5,
    model_type: "mt5",
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
    num_decoder_layers: 3,
  },
};

test("parameter names, shapes and counts equal lethe's models' for every family", () => {
  for (const [name, raw] of Object.entries(VARIANTS)) {
    const model = createModel(parseModelConfig(raw), { seed: 0 });
    try {
      const want = new Map(model.namedParameters().map(([n, p]) => [n, p.shape]));
      const got = new Map(parameterShapes(raw));
      assert.deepEqual(got, want, name);
      assert.equal(parameterCount(raw), model.numParameters(), name);
    } finally {
      model.dispose();
    }
  }
});

test("LoRA's trainable count equals the adapters applyLora adds", () => {
  for (const type of ["llama", "gpt_neox", "t5"]) {
    const raw = TINY_CONFIGS[type];
    const model = createModel(parseModelConfig(raw), { seed: 0 });
    try {
      applyLora(model, { r: 4 });
      const trained = model.parameters().filter((p) => p.requiresGrad);
      const plan = planMemory({ ...BASE, config: raw, tuning: { kind: "lora", r: 4, dropout: 0 } });
      assert.equal(
        plan.trainable,
        trained.reduce((n, p) => n + p.numel(), 0),
        type,
      );
      assert.equal(plan.params, parameterCount(raw), `${type}: the frozen base is all of it`);
    } finally {
      model.dispose();
    }
  }
});

/**
 * The paper's models' config.json fields (the hub's files, trimmed to what the models read) and
 * their parameter counts as transformers 4.57 counts them (`sum(p.numel() for p in
 * AutoModelFor…LM.from_config(cfg).parameters())` on the meta device).
 */
const PAPER: Record<string, { ref: string; count: number; config: Record<string, unknown> }> = {
  "bloomz-1b1": {
    ref: "bigscience/bloomz-1b1",
    count: 1_065_314_304,
    config: { model_type: "bloom", hidden_size: 1536, n_layer: 24, n_head: 16, vocab_size: 250880 },
  },
  "bloomz-1b7": {
    ref: "bigscience/bloomz-1b7",
    count: 1_722_408_960,
    config: { model_type: "bloom", hidden_size: 2048, n_layer: 24, n_head: 16, vocab_size: 250880 },
  },
  "bloomz-3b": {
    ref: "bigscience/bloomz-3b",
    count: 3_002_557_440,
    config: {
      model_type: "bloom",
      n_embed: 2560,
      n_layer: 30,
      num_attention_heads: 32,
      vocab_size: 250880,
    },
  },
  "bloomz-7b1": {
    ref: "bigscience/bloomz-7b1",
    count: 7_069_016_064,
    config: {
      model_type: "bloom",
      n_embed: 4096,
      n_layer: 30,
      num_attention_heads: 32,
      vocab_size: 250880,
    },
  },
  "mt0-xl": {
    ref: "bigscience/mt0-xl",
    count: 3_742_619_648,
    config: {
      model_type: "mt5",
      d_model: 2048,
      d_ff: 5120,
      d_kv: 64,
      num_heads: 32,
      num_layers: 24,
      num_decoder_layers: 24,
      vocab_size: 250112,
      feed_forward_proj: "gated-gelu",
      tie_word_embeddings: false,
    },
  },
  "llama-7b": {
    ref: "huggyllama/llama-7b",
    count: 6_738_415_616,
    config: {
      model_type: "llama",
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      max_position_embeddings: 2048,
      vocab_size: 32000,
    },
  },
  "alpaca-7b": {
    ref: "chavinlo/alpaca-native",
    count: 6_738_423_808,
    config: {
      model_type: "llama",
      hidden_size: 4096,
      intermediate_size: 11008,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      max_position_embeddings: 2048,
      vocab_size: 32001,
    },
  },
};

test("the paper's models: counts equal transformers' (BLOOMZ 1.1B–7.1B, mT0-XL, LLaMA-7B, Alpaca-7B)", () => {
  for (const [name, m] of Object.entries(PAPER))
    assert.equal(parameterCount(m.config), m.count, name);
});

const BASE: PlanInput = {
  config: TINY_CONFIGS.llama,
  modelDtype: "float32",
  tuning: { kind: "full", r: 8, dropout: 0 },
  gradientCheckpointing: false,
  batchSize: 4,
  maxLength: 256,
  gradAccum: 1,
  method: { name: "sequential", options: {} },
  stages: 1,
  eval: { batchSize: 1, maxLength: 16, maxGenToks: 16 },
  device: "cpu",
};

test("the plan's arithmetic: 16 bytes a parameter for AdamW, checkpointing and LoRA cut, methods add", () => {
  const config = {
    ...TINY_CONFIGS.llama,
    hidden_size: 256,
    intermediate_size: 688,
    num_hidden_layers: 8,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    vocab_size: 2048,
  };
  const P = parameterCount(config);
  const plain = planMemory({ ...BASE, config });
  assert.equal(plain.bytes.weights + plain.bytes.gradients, 8 * P);
  assert.equal(plain.bytes.optimizer, 12 * P, "exp_avg, exp_avg_sq and the step's denom");
  const ckpt = planMemory({ ...BASE, config, gradientCheckpointing: true });
  assert.ok(ckpt.bytes.activations < plain.bytes.activations / 2, "checkpointing at 8 layers");
  assert.ok(ckpt.minimum.activations * 3 < plain.minimum.activations, "≥ 3× on the minimum");
  const lora = planMemory({ ...BASE, config, tuning: { kind: "lora", r: 8, dropout: 0 } });
  assert.ok(lora.bytes.optimizer < plain.bytes.optimizer / 50);
  const bf16 = planMemory({ ...BASE, config, precision: "bf16-mixed" });
  assert.ok(bf16.bytes.weightCopies > 0 && plain.bytes.weightCopies === 0);
  const l2sp = planMemory({ ...BASE, config, method: { name: "l2sp", options: {} } });
  assert.ok(l2sp.bytes.method >= 4 * P, "θ₀ is a second copy");
  const ewc = planMemory({ ...BASE, config, method: { name: "ewc", options: {} } });
  assert.ok(ewc.bytes.method >= 8 * P, "Fisher and θ*");
  const zero = planMemory({ ...BASE, config, device: "cuda", worldSize: 4, zero: "zero1" });
  assert.equal(zero.bytes.optimizer, 3 * P, "a quarter of AdamW's state and step");
});

/** Peak RSS (bytes) of bench/memory.ts's child: a real lethe training process. */
function measure(spec: Record<string, unknown>): { peak: number; params?: number } {
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", join(root, "bench", "memory.ts"), "--child", JSON.stringify(spec)],
    { encoding: "utf8", cwd: root, env: { ...process.env, LETHE_THREADS: "2" } },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { peak: number; params?: number };
}

test("the estimate is within 15% of a tiny LLaMA's measured peak RSS (plain fp32; bf16-mixed with checkpointing)", () => {
  // Measured: the peak RSS of a process that trains 3 steps, minus that of a process that loaded
  // the same code, built the tokenizer and ran one warm-up step of a width-16 model (libtorch's
  // autograd and kernels loaded) but trained nothing: the run's own memory. Compared with the
  // plan's training peak less its runtime allowance (the baseline's counterpart).
  const config = {
    model_type: "llama",
    vocab_size: 8192,
    hidden_size: 512,
    intermediate_size: 1376,
    num_hidden_layers: 4,
    num_attention_heads: 8,
    max_position_embeddings: 1024,
  };
  const shape = { batch: 4, seq: 256, steps: 3 };
  const base = measure({
    config,
    precision: "32-true",
    checkpointing: false,
    ...shape,
    baseline: true,
  });
  for (const [precision, checkpointing] of [
    ["32-true", false],
    ["bf16-mixed", true],
  ] as const) {
    const run = measure({ config, precision, checkpointing, ...shape });
    assert.equal(run.params, parameterCount(config));
    const plan = planMemory({
      ...BASE,
      config,
      precision,
      gradientCheckpointing: checkpointing,
      batchSize: shape.batch,
      maxLength: shape.seq,
    });
    const measured = run.peak - base.peak;
    const estimate = plan.train - plan.bytes.runtime;
    const ratio = estimate / measured;
    console.log(
      `${precision}${checkpointing ? " + checkpointing" : ""}: measured ${(measured / 2 ** 20).toFixed(0)} MiB, ` +
        `estimated ${(estimate / 2 ** 20).toFixed(0)} MiB (${ratio.toFixed(3)}×)`,
    );
    assert.ok(Math.abs(ratio - 1) <= 0.15, `${precision}: estimate/measured = ${ratio.toFixed(3)}`);
  }
});

/** A study config over a `build` LLaMA of this config, tokenizer made here. */
async function studyFile(
  name: string,
  config: Record<string, unknown>,
  extra = "",
): Promise<string> {
  const tok = join(tmp, "tok");
  if (!existsSync(tok)) await writeTokenizer(tok, [...SPECIAL_TOKENS, "a", "b"], "causal");
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
dataDir: ${tmp}
models:
  - name: big
    build: { config: ${JSON.stringify(config)}, tokenizer: ${tok} }
methods: [sequential]
orders: [[haiku]]
train: { batchSize: 1, maxLength: 128 }
${extra}`,
  );
  return file;
}

test("lethe run refuses up front a run that cannot fit, naming the knobs that would make it fit", async () => {
  // A LLaMA whose full fine-tuning (16 bytes a parameter) needs about 1.6× this machine's RAM
  // while its LoRA run needs well under it.
  const P = totalmem() / 10;
  const h = 4096;
  const layers = Math.max(1, Math.round(P / (12 * h * h)));
  const config = {
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: h,
    intermediate_size: 4 * h,
    num_hidden_layers: layers,
    num_attention_heads: 32,
  };
  const file = await studyFile("too-big", config, "eval: { batchSize: 1, maxLength: 256 }\n");
  const out = join(tmp, "too-big-out");
  const t0 = performance.now();
  const r = await capture(() => main(["run", file, "--out", out]));
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.code, 1, r.err);
  console.log(r.err);
  assert.match(r.err, /big__sequential__order0__seed0 on cpu: does not fit/);
  assert.match(
    r.err,
    /fits with: (.*; or )?tuning\.kind: lora \(r 8\) \(\d+\.\d+ GiB\)/,
    "LoRA alone",
  );
  for (const knob of ["tuning.kind: lora", "lethe plan", "--ignore-plan"])
    assert.ok(r.err.includes(knob), `the message names ${knob}:\n${r.err}`);
  assert.ok(!existsSync(out), "nothing was made: the study folder does not exist");
  assert.ok(seconds < 10, `refused in ${seconds.toFixed(1)} s, before any weights were built`);
});

test("lethe plan examples/luo2023.yaml: 1B–7B models on an 80 GB and a 141 GB GPU", async () => {
  // config.json of each model in a hub cache of this test's own (the files a real cache holds).
  const hub = join(tmp, "hub");
  for (const m of Object.values(PAPER)) {
    const repo = join(hub, `models--${m.ref.replace("/", "--")}`);
    const snap = join(repo, "snapshots", "a".repeat(40));
    mkdirSync(snap, { recursive: true });
    mkdirSync(join(repo, "refs"), { recursive: true });
    writeFileSync(join(snap, "config.json"), JSON.stringify(m.config));
    writeFileSync(join(repo, "refs", "main"), "a".repeat(40));
  }
  const env = { HF_HUB_CACHE: process.env.HF_HUB_CACHE, LETHE_DATA: process.env.LETHE_DATA };
  process.env.HF_HUB_CACHE = hub;
  process.env.LETHE_DATA ??= tmp;
  const plan = (gb: string, ...more: string[]) =>
    capture(() =>
      main(["plan", join(root, "examples", "luo2023.yaml"), "--memory-gb", gb, ...more]),
    );
  try {
    const r80 = await plan("80");
    assert.equal(r80.code, 0, r80.err);
    process.stdout.write(r80.out);
    assert.match(r80.out, /device cuda: 80\.0 GiB \(--memory-gb\)/);
    for (const name of Object.keys(PAPER)) {
      assert.ok(r80.out.includes(`${name}__sequential__luo2023__seed0`), name);
      assert.ok(
        r80.out.includes(`${name} (`) &&
          r80.out.includes(PAPER[name].count.toLocaleString("en-US")),
        name,
      );
    }
    const row = (out: string, run: string) => out.split("\n").find((l) => l.startsWith(run))!;
    assert.match(row(r80.out, "bloomz-1b1__sequential"), /fits in 80\.0/);
    assert.match(row(r80.out, "llama-7b__sequential"), /does not fit in 80\.0/);
    // Full fine-tuning of 6.7B parameters with AdamW is 16 bytes a parameter: never 80 GiB.
    assert.match(
      r80.out,
      /llama-7b__sequential__luo2023__seed0: does not fit \(\d+\.\d GiB > 80\.0 GiB\); fits with: .*tuning\.kind: lora/,
    );
    const json = await plan("141", "--json");
    const runs = (
      JSON.parse(json.out) as {
        runs: { run: string; plan: { peak: number; params: number }; verdict: { fits: boolean } }[];
      }
    ).runs;
    assert.equal(runs.length, 9); // 9 models × sequential
    const by = new Map(runs.map((x) => [x.run, x]));
    const small = by.get("bloomz-1b1__sequential__luo2023__seed0")!;
    const large = by.get("bloomz-7b1__sequential__luo2023__seed0")!;
    assert.equal(large.plan.params, PAPER["bloomz-7b1"].count);
    assert.ok(small.verdict.fits && small.plan.peak < large.plan.peak);
    assert.ok(large.plan.peak > 16 * large.plan.params, "at least 16 bytes a parameter");
    const r141 = await plan("141");
    assert.match(row(r141.out, "llama-7b__sequential"), /fits in 141\.0/);
    // Not cached: the row says so, the command still succeeds.
    process.env.HF_HUB_CACHE = join(tmp, "empty-hub");
    const none = await plan("80");
    assert.equal(none.code, 0, none.err);
    assert.match(
      none.out,
      /unknown: config\.json of hf:bigscience\/bloomz-1b1 is not in the hub cache \(--fetch downloads it\)/,
    );
  } finally {
    for (const [k, v] of Object.entries(env))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
});

test("lethe plan: usage errors name the flag", async () => {
  const file = await studyFile("tiny", { ...TINY_CONFIGS.llama });
  const bad = await capture(() => main(["plan", file, "--memory-gb", "lots"]));
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--memory-gb must be a number, got "lots"/);
  const dev = await capture(() => main(["plan", file, "--device", "tpu"]));
  assert.equal(dev.code, 2);
  assert.match(dev.err, /--device must be cpu, cuda or cuda:N, got "tpu"/);
  const ok = await capture(() => main(["plan", file]));
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /big__sequential__order0__seed0 .* fits in /);
});
