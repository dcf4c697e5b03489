/**
 * The methods added after the paper's peers (src/continual/methods: agem, merge, sam, replay's
 * bounded memory), combinations of methods, and learning-rate control between stages:
 * - each method's math on hand-computed cases (A-GEM's projection, TIES' trim, sign election and
 *   disjoint mean, DARE's drop and rescale, SAM's perturbation, reservoir sampling);
 * - a two-task run on a tiny LLaMA (llama2.c's tok512) where task b rewrites task a's answers,
 *   comparing each method's forgetting of task a (its loss after b minus after a) with plain
 *   sequential fine-tuning at the same steps and seed (both printed);
 * - a stage interrupted after a checkpoint and resumed in a fresh model and plugins ends with
 *   the uninterrupted run's weights exactly;
 * - LoRA where a method declares it; combinations' config form and refusals; each stage's lr.
 */
import { test } from "node:test";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Generator, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { applyLora } from "../../src/models/lora.js";
import type { LanguageModel } from "../../src/models/index.js";
import { collate, tokenizeSft, type SftText } from "../../src/train/data.js";
import { tokenLossSum, trainStage } from "../../src/train/trainer.js";
import type { TrainPlugin, TuningKind } from "../../src/train/plugin.js";
import { parseStudy, runConfig, expandGrid } from "../../src/continual/config.js";
import {
  combinationProblem,
  createMethods,
  methods,
  parseOptions,
  settingProblem,
  type MethodPart,
} from "../../src/continual/methods/index.js";
import {
  randomSample,
  reservoirSample,
  snapshot,
  stageTrainConfig,
  taskMemory,
  type MethodEnv,
} from "../../src/continual/methods/method.js";
import { agemProject } from "../../src/continual/methods/agem.js";
import {
  dareDrop,
  disjointMerge,
  electSign,
  tiesMerge,
  trimToDensity,
} from "../../src/continual/methods/merge.js";
import { samPerturbation } from "../../src/continual/methods/sam.js";
import { makeRng } from "../../src/continual/rng.js";
import { freePort } from "../../src/util/net.js";
import {
  BASE_CONFIG,
  examples,
  TOK512,
  tok512Path,
  tinyLlama,
  trainStages,
} from "../train/helpers.js";
import { repoRoot, skipReason } from "../helpers/data.js";

const t1 = (xs: number[]) => tensor(xs);
const close = (a: number[], b: number[], tol = 1e-6) =>
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]) <= tol, `${a} vs ${b}`));

// ---------------------------------------------------------------------------------------------
// The math, by hand

test("A-GEM projects g onto g·g_ref ≥ 0 over all tensors at once, and leaves an agreeing g alone", () => {
  tidy(() => {
    // g = ([1], [2, 0]), g_ref = ([1], [−1, 3]): g·g_ref = 1 − 2 + 0 = −1, ‖g_ref‖² = 11, so
    // g − (−1/11)·g_ref = ([1 + 1/11], [2 − 1/11, 3/11]), whose dot with g_ref is 0.
    const ref = [t1([1]), t1([-1, 3])];
    const out = agemProject([t1([1]), t1([2, 0])], ref);
    assert.equal(out.projected, true);
    close(out.grads[0].toNumbers(), [1 + 1 / 11]);
    close(out.grads[1].toNumbers(), [2 - 1 / 11, 3 / 11]);
    const dot = out.grads.reduce((s, g, i) => s + g.mul(ref[i]).sum().item(), 0);
    close([dot], [0]);
    // g·g_ref = 1 + 2 ≥ 0: unchanged.
    const same = agemProject([t1([1]), t1([2, 0])], [t1([1]), t1([1, 0])]);
    assert.equal(same.projected, false);
    close(same.grads[1].toNumbers(), [2, 0]);
  });
});

test("TIES: trim to density, elect the sign of the weighted sum, disjoint mean", () => {
  tidy(() => {
    close(trimToDensity(t1([3, -1, 0.5, -4]), 0.5).toNumbers(), [3, 0, 0, -4]);
    close(trimToDensity(t1([3, -1]), 1).toNumbers(), [3, -1]);
    // Σ ½τ = ½[−2, −1, 4] → signs [−1, −1, +1]
    const a = t1([1, -2, 3]);
    const b = t1([-3, 1, 1]);
    close(electSign([a, b], [0.5, 0.5]).toNumbers(), [-1, -1, 1]);
    // agreeing values: [−3], [−2], [3, 1] → [−3, −2, 2]
    close(disjointMerge([a, b], [0.5, 0.5], t1([-1, -1, 1])).toNumbers(), [-3, -2, 2]);
    // weights ¼, ¾: Σ = [−2, 0.25, 1.5] → [−1, +1, +1]; [−3], [1], (¼·3 + ¾·1)/1 = 1.5
    const s = electSign([a, b], [0.25, 0.75]);
    close(s.toNumbers(), [-1, 1, 1]);
    close(disjointMerge([a, b], [0.25, 0.75], s).toNumbers(), [-3, 1, 1.5]);
    // Whole: trim [1, −2, 3, 0.1] → [0, −2, 3, 0] and [−3, 1, 1.5, 0.2] → [−3, 0, 1.5, 0];
    // signs [−1, −1, +1, 0]; merged [−3, −2, (3 + 1.5)/2, 0]
    close(
      tiesMerge([t1([1, -2, 3, 0.1]), t1([-3, 1, 1.5, 0.2])], [0.5, 0.5], 0.5).toNumbers(),
      [-3, -2, 2.25, 0],
    );
  });
});

test("DARE keeps u < density, rescaled by 1/density: exact by hand, unbiased in expectation", () => {
  tidy(() => {
    close(dareDrop(t1([2, 4, 6, 8]), 0.5, t1([0.1, 0.6, 0.4, 0.9])).toNumbers(), [4, 0, 12, 0]);
    // 20000 ones at density 0.3: each becomes 0 or 1/0.3, mean 1, σ of the mean ≈ 0.011.
    const n = 20000;
    const ones = tensor(Array(n).fill(1));
    const u = (seed: number) => ones.mul(0).uniform_(0, 1, new Generator(seed));
    const mean = dareDrop(ones, 0.3, u(11)).mean().item();
    assert.ok(Math.abs(mean - 1) < 0.05, `DARE mean ${mean}`);
    // Same seed, same drop mask.
    assert.deepEqual(
      dareDrop(ones, 0.3, u(11)).toNumbers(),
      dareDrop(ones, 0.3, u(11)).toNumbers(),
    );
  });
});

test("SAM's perturbation is ρ·g/‖g‖ over all tensors; none for a zero gradient", () => {
  tidy(() => {
    const eps = samPerturbation([t1([3]), t1([0, 4])], 0.5)!;
    close(eps[0].toNumbers(), [0.3]);
    close(eps[1].toNumbers(), [0, 0.4]);
    assert.equal(samPerturbation([t1([0, 0])], 0.5), null);
  });
});

test("episodic memory: reservoir sampling by hand, random selection, deterministic by seed", () => {
  // n = 4, k = 2: items 0, 1 fill the reservoir; item 2 draws j = ⌊0.9·3⌋ = 2 (not kept);
  // item 3 draws j = ⌊0.1·4⌋ = 0 and replaces slot 0.
  const draws = [0.9, 0.1];
  assert.deepEqual(
    reservoirSample(4, 2, () => draws.shift()!),
    [3, 1],
  );
  assert.deepEqual(reservoirSample(3, 5, makeRng(1)), [0, 1, 2]);
  for (const pick of [reservoirSample, randomSample]) {
    const a = pick(50, 7, makeRng(3));
    assert.deepEqual(a, pick(50, 7, makeRng(3)));
    assert.equal(new Set(a).size, 7);
    assert.ok(a.every((i) => i >= 0 && i < 50));
  }
  const env: MethodEnv = {
    stages: [
      { name: "a", examples: examples(10) },
      { name: "b", examples: examples(3) },
      { name: "c", examples: examples(2) },
    ],
    general: null,
    startWeights: () => new Map(),
    seed: 4,
  };
  const m = taskMemory(env, "c", 2, "reservoir", "replay");
  assert.equal(m.length, 4, "2 of a, 2 of b");
  assert.deepEqual(m, taskMemory(env, "c", 2, "reservoir", "replay"));
  assert.equal(taskMemory(env, "c", null, "random", "replay").length, 13);
  assert.equal(taskMemory(env, "a", 2, "random", "replay").length, 0);
});

// ---------------------------------------------------------------------------------------------
// Options, combinations, settings, lr control

test("options are checked once, in one format; combinations are refused with the reason", () => {
  assert.throws(
    () => parseOptions("agem", { memory_batchh: 2 }),
    /method "agem": unknown option "memory_batchh"\. Did you mean "memory_batch"/,
  );
  assert.throws(() => parseOptions("merge", { density: 0 }), /method "merge": option "density"/);
  assert.deepEqual(parseOptions("sam", {}), { rho: 0.05 });
  assert.equal(combinationProblem(["replay", "lwf"]), null);
  assert.match(combinationProblem(["agem", "sam"])!, /both rewrite the step's gradient/);
  assert.match(combinationProblem(["lwf", "replay"])!, /list "replay" before "lwf"/);
  assert.match(combinationProblem(["ewc", "ewc"])!, /listed twice/);
  const full = { kind: "full", precision: undefined, distributed: undefined } as const;
  assert.equal(settingProblem({ name: "sam", options: {} }, full), null);
  assert.match(
    settingProblem({ name: "agem", options: {} }, { ...full, distributed: "zero2" })!,
    /zero2 leaves each rank a shard/,
  );
  assert.match(
    settingProblem({ name: "merge", options: { mode: "ties" } }, { ...full, kind: "lora" })!,
    /use mode: average with LoRA/,
  );
  assert.match(settingProblem({ name: "olora", options: {} }, full)!, /supports only lora tuning/);
});

test("config: a combination is one method entry; its label, run name and run config show it", () => {
  const good = {
    name: "s",
    dataDir: "/data",
    models: [{ name: "m", ref: "hf:org/m" }],
    methods: [
      "sequential",
      {
        name: ["replay", "lwf"],
        options: { replay: { ratio: 0.2 }, lwf: { lambda: 2 } },
        lr: { lr_decay_per_stage: 0.5 },
      },
    ],
    orders: [["haiku"]],
  };
  const study = parseStudy(good, "s.yaml", "/");
  const m = study.methods[1];
  assert.equal(m.label, "replay+lwf");
  assert.deepEqual(
    m.parts.map((p) => [p.name, p.options]),
    [
      ["replay", { ratio: 0.2 }],
      ["lwf", { lambda: 2 }],
    ],
  );
  assert.deepEqual(m.lr, { lr_decay_per_stage: 0.5, rewarm: true, lr_per_stage: null });
  const run = expandGrid(study)[1];
  assert.equal(run.name, "m__replay+lwf__order0__seed0");
  // A run's own config reads back as the same method.
  const again = parseStudy(runConfig(study, run), "run.yaml", "/").methods[0];
  assert.deepEqual(again, m);
  const bad = (methods: unknown[], re: RegExp) =>
    assert.throws(() => parseStudy({ ...good, methods }, "s.yaml", "/"), re);
  bad([{ name: ["replay", "lwff"] }], /field "methods\.0\.name\.1": unknown method "lwff"/);
  bad([{ name: ["agem", "sam"] }], /field "methods\.0\.name": "agem" and "sam" both rewrite/);
  bad([{ name: ["lwf", "replay"] }], /field "methods\.0\.name".*list "replay" before "lwf"/);
  bad(
    [{ name: ["replay", "lwf"], options: { replay: { ratoi: 0.1 } } }],
    /field "methods\.0\.options\.replay\.ratoi": method "replay": unknown option "ratoi"\. Did you mean "ratio"/,
  );
  bad(
    [{ name: ["replay", "lwf"], options: { replya: {} } }],
    /field "methods\.0\.options\.replya": a combination's options are keyed by its methods.*Did you mean "replay"/,
  );
  bad([{ name: "sam", lr: { decay: 0.5 } }], /field "methods\.0\.lr\.decay": unknown field/);
  bad(
    [{ name: "sam", lr: { lr_per_stage: [1e-4, 1e-5] } }],
    /field "methods\.0\.lr\.lr_per_stage": 2 rates, but order "order0" trains 1 stages/,
  );
  assert.throws(
    () =>
      parseStudy({ ...good, methods: ["agem"], train: { distributed: "zero2" } }, "s.yaml", "/"),
    /field "methods\.0": .*zero2/,
  );
});

test("lr control: stage k's lr and warmup are what the options say, in the trainer too", async (t) => {
  const train = { lr: 1e-3, warmup: 0.1 };
  const lr = { lr_decay_per_stage: 0.5, rewarm: true, lr_per_stage: null };
  assert.equal(stageTrainConfig(train, null, 2, 3), train);
  assert.deepEqual(stageTrainConfig(train, lr, 0, 3), { lr: 1e-3, warmup: 0.1 });
  assert.deepEqual(stageTrainConfig(train, lr, 2, 3), { lr: 2.5e-4, warmup: 0.1 });
  assert.deepEqual(stageTrainConfig(train, { ...lr, rewarm: false }, 1, 3), {
    lr: 5e-4,
    warmup: 0,
  });
  assert.deepEqual(stageTrainConfig(train, { ...lr, rewarm: false }, 0, 3).warmup, 0.1);
  const list = { ...lr, lr_per_stage: [3e-4, 2e-4, 1e-4] };
  assert.equal(stageTrainConfig(train, list, 1, 3).lr, 2e-4);
  assert.throws(() => stageTrainConfig(train, list, 1, 2), /lr\.lr_per_stage": 3 rates for 2/);

  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  // Through trainStage: the first step's lr, warmed up (rewarm) or not.
  const firstLr = (stage: number, control: typeof lr) => {
    const model = tinyLlama(0);
    const dir = mkdtempSync(join(tmpdir(), "lethe-lr-"));
    let seen = NaN;
    const base = { ...BASE_CONFIG, steps: 4, warmup: 0.5, schedule: "constant" as const };
    trainStage({
      stage: `s${stage}`,
      model,
      kind: "full",
      examples: examples(4),
      tokenizer: tok,
      config: stageTrainConfig({ ...base, lr: 1e-3 }, control, stage, 2),
      dir,
      onProgress: (e) => void (e.step === 1 && (seen = e.lr)),
    });
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
    return seen;
  };
  // warmup 0.5 of 4 steps = 2 warmup steps: the first step runs at lr · 0/2 (HF's linear warmup).
  const warmFirst = firstLr(1, lr);
  const noWarm = firstLr(1, { ...lr, rewarm: false });
  t.diagnostic(`stage 1 first-step lr: rewarm ${warmFirst}, no rewarm ${noWarm}`);
  assert.ok(warmFirst < 5e-4, `rewarmed stage starts below its rate: ${warmFirst}`);
  assert.equal(noWarm, 5e-4);
});

// ---------------------------------------------------------------------------------------------
// Forgetting on a tiny model: task b gives task a's prompts other answers

const TASK_A = examples(8);
const TASK_B: SftText[] = TASK_A.map((e, i) => ({
  prompt: e.prompt,
  response: ` Nobody knows ${i}.`,
}));
const STAGES = [
  { name: "a", examples: TASK_A },
  { name: "b", examples: TASK_B },
];
const CONFIG = { ...BASE_CONFIG, lr: 1e-2, steps: 24, batchSize: 4, gradAccum: 1, maxLength: 48 };

/** Mean token loss of `exs` (eval mode, no grad). */
function lossOn(tok: Tokenizer, model: LanguageModel, exs: SftText[]): number {
  return noGrad(() =>
    tidy(() => {
      const rows = exs.map((e) => tokenizeSft(tok, e, { kind: "causal", maxLength: 48 }));
      const b = collate(rows, { kind: "causal", padId: 0 });
      const n = b.labels.slice(1, 1).ne(-100).sum().item();
      return tokenLossSum(model, b).sum.item() / n;
    }),
  );
}

interface Outcome {
  /** Task a's loss after stage a and after stage b. */
  lossA: [number, number];
  forgetting: number;
  weights: Map<string, Tensor>;
}

function makeModel(kind: TuningKind): LanguageModel {
  const model = tinyLlama(0);
  if (kind === "lora") applyLora(model, { r: 4, alpha: 8, seed: 1 });
  return model;
}

/**
 * Two stages with the methods `parts`; `stopAt` throws from a batch hook at that step of stage
 * b (after a checkpoint), as a killed process would leave the folder; `dirs` reuses folders.
 */
function twoTasks(
  tok: Tokenizer,
  parts: MethodPart[],
  o: {
    kind?: TuningKind;
    config?: object;
    dirs?: string[];
    stopAt?: number;
    model?: LanguageModel;
  } = {},
): Outcome {
  const kind = o.kind ?? "full";
  const model = o.model ?? makeModel(kind);
  const start = snapshot(model.namedParameters());
  const plugins = createMethods(parts, {
    stages: STAGES,
    general: null,
    startWeights: () => start,
    seed: 3,
  });
  const stopper: TrainPlugin = {
    name: "stopper",
    supports: ["full", "lora"],
    batch: (ctx) => {
      if (ctx.stage === "b" && ctx.step === o.stopAt) throw new Error("stopped");
    },
  };
  const lossA: number[] = [];
  try {
    trainStages({
      model,
      kind,
      tokenizer: tok,
      config: { ...CONFIG, ...o.config },
      stages: STAGES,
      plugins: [...plugins, stopper],
      label: "more",
      dirs: o.dirs,
      afterStage: () => void lossA.push(lossOn(tok, model, TASK_A)),
    });
    return {
      lossA: [lossA[0], lossA[1]],
      forgetting: lossA[1] - lossA[0],
      weights: snapshot(model.namedParameters()),
    };
  } finally {
    if (!o.model) model.dispose();
    for (const x of start.values()) x.dispose();
  }
}

const maxAbsDiff = (a: Map<string, Tensor>, b: Map<string, Tensor>) =>
  tidy(() => Math.max(...[...a].map(([n, x]) => x.sub(b.get(n)!).abs().max().item())));
const fmt = (r: Outcome) =>
  `forgetting ${r.forgetting.toFixed(3)} (task a loss ${r.lossA[0].toFixed(3)} → ${r.lossA[1].toFixed(3)})`;

test("each new method forgets task a less than sequential at the same steps and seed", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const seq = twoTasks(tok, [{ name: "sequential", options: {} }]);
  t.diagnostic(`sequential: ${fmt(seq)}`);
  assert.ok(seq.forgetting > 0.5, `task b should overwrite task a: ${fmt(seq)}`);
  const cases: [string, MethodPart[]][] = [
    [
      "replay (memory_per_task 4)",
      [{ name: "replay", options: { ratio: 0.5, memory_per_task: 4 } }],
    ],
    ["agem (memory_per_task 4)", [{ name: "agem", options: { memory_per_task: 4 } }]],
    ["merge average", [{ name: "merge", options: {} }]],
    ["merge ties", [{ name: "merge", options: { mode: "ties", density: 0.5 } }]],
    ["sam ρ 0.05", [{ name: "sam", options: { rho: 0.05 } }]],
  ];
  const failures: string[] = [];
  for (const [label, parts] of cases) {
    const r = twoTasks(tok, parts);
    t.diagnostic(`${label}: ${fmt(r)} vs sequential ${seq.forgetting.toFixed(3)}`);
    if (!(r.forgetting < seq.forgetting)) failures.push(`${label}: ${fmt(r)}`);
    for (const x of r.weights.values()) x.dispose();
  }
  assert.deepEqual(failures, [], `should forget less than sequential (${fmt(seq)})`);
  for (const x of seq.weights.values()) x.dispose();
});

test("interrupted mid-stage and resumed in a fresh model, a run ends with the same weights", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const config = { steps: 8, checkpointEvery: 3 };
  for (const parts of [
    [
      { name: "replay", options: { ratio: 0.5, memory_per_task: 4 } },
      { name: "agem", options: { memory_per_task: 4 } },
      { name: "merge", options: { mode: "dare" } },
    ],
    [{ name: "sam", options: {} }],
  ]) {
    const label = parts.map((p) => p.name).join("+");
    const whole = twoTasks(tok, parts, { config });
    const dirs = STAGES.map(() => mkdtempSync(join(tmpdir(), "lethe-more-resume-")));
    assert.throws(() => twoTasks(tok, parts, { config, dirs, stopAt: 5 }), /stopped/);
    // A fresh process: new model and plugins; stage a is found complete, stage b resumes at 3.
    const resumed = twoTasks(tok, parts, { config, dirs });
    const diff = maxAbsDiff(resumed.weights, whole.weights);
    t.diagnostic(`${label}: resumed vs uninterrupted max |Δw| ${diff}`);
    assert.equal(diff, 0, label);
    for (const r of [whole, resumed]) for (const x of r.weights.values()) x.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test("LoRA: replay, agem, merge (average) and sam train adapters; TIES is refused", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const config = { steps: 4 };
  const start = makeModel("lora");
  const before = snapshot(start.namedParameters());
  start.dispose();
  for (const parts of [
    [{ name: "replay", options: { memory_per_task: 2 } }],
    [{ name: "agem", options: { memory_per_task: 2 } }],
    [{ name: "merge", options: {} }],
    [{ name: "sam", options: {} }],
  ]) {
    const r = twoTasks(tok, parts, { kind: "lora", config });
    assert.ok(Number.isFinite(r.lossA[1]), parts[0].name);
    // Only adapters moved.
    for (const [n, w] of r.weights) {
      const moved = tidy(() => w.sub(before.get(n)!).abs().max().item()) > 0;
      assert.equal(moved, n.includes("lora_"), `${parts[0].name}: ${n} moved ${moved}`);
    }
    for (const x of r.weights.values()) x.dispose();
  }
  assert.throws(
    () => twoTasks(tok, [{ name: "merge", options: { mode: "ties" } }], { kind: "lora", config }),
    /merge: mode "ties" needs full fine-tuning/,
  );
  for (const x of before.values()) x.dispose();
});

test("the README's method table lists every registered method, its FT/LoRA support and options", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const rows = new Map(
    [...readme.matchAll(/^\| `([a-z0-9_]+)` *\|([^|]*)\|([^|]*)\|([^|]*)\|(.*)\|$/gm)].map((m) => [
      m[1],
      { paper: m[2].trim(), ft: m[3].trim(), lora: m[4].trim(), options: m[5] },
    ]),
  );
  for (const [name, def] of Object.entries(methods)) {
    const row = rows.get(name);
    assert.ok(row, `README: no row for method "${name}"`);
    assert.ok(row.paper.length > 0, `${name}: paper`);
    assert.equal(row.ft === "✓", def.supports.includes("full"), `${name}: FT column`);
    assert.equal(row.lora === "✓", def.supports.includes("lora"), `${name}: LoRA column`);
    for (const key of Object.keys((def.options as { shape?: object }).shape ?? {}))
      assert.ok(row.options.includes(`\`${key}\``), `${name}: option "${key}" not in the README`);
  }
});

/** Two stages with `parts` at `world` ranks (real Gloo ranks on 127.0.0.1); rank 0's result. */
async function ranksTrain(
  world: number,
  parts: MethodPart[],
  cfg: object,
): Promise<{ losses: number[]; weights: [string, number[]][] }> {
  const src = (p: string) => JSON.stringify(join(repoRoot, "src", p));
  const helpers = JSON.stringify(join(repoRoot, "test/train/helpers.ts"));
  const code = `
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { currentDist } from ${src("dist/index.ts")};
import { trainStage } from ${src("train/trainer.ts")};
import { loadTokenizer } from ${src("io/tokenizer.ts")};
import { createMethods } from ${src("continual/methods/index.ts")};
import { snapshot } from ${src("continual/methods/method.ts")};
import { BASE_CONFIG, examples, tinyLlama } from ${helpers};
const dist = currentDist();
const tok = await loadTokenizer(${JSON.stringify(tok512Path())});
const A = examples(8);
const stages = [{ name: "a", examples: A }, { name: "b", examples: A.map((e, i) => ({ prompt: e.prompt, response: " Nobody knows " + i + "." })) }];
const model = tinyLlama(0);
const start = snapshot(model.namedParameters());
const plugins = createMethods(${JSON.stringify(parts)}, { stages, general: null, startWeights: () => start, seed: 3 });
const root = process.env.ROOT;
const losses = [];
for (const s of stages) {
  const r = trainStage({ stage: s.name, model, kind: "full", examples: s.examples, tokenizer: tok,
    config: { ...BASE_CONFIG, ...${JSON.stringify(cfg)} }, plugins, dir: join(root, s.name), dist });
  losses.push(...r.losses);
}
if (!dist || dist.isMain)
  console.log(JSON.stringify({ losses, weights: model.namedParameters().map(([n, p]) => [n, p.toNumbers()]) }));`;
  const port = await freePort();
  const root = mkdtempSync(join(tmpdir(), "lethe-more-ddp-"));
  const outs = await Promise.all(
    Array.from(
      { length: world },
      (_, r) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
          const child = spawn(
            process.execPath,
            ["--import", "tsx", "--input-type=module", "-e", code],
            {
              cwd: repoRoot,
              env: {
                ...process.env,
                LETHE_THREADS: "1",
                ROOT: root,
                RANK: String(r),
                LOCAL_RANK: String(r),
                WORLD_SIZE: String(world),
                LOCAL_WORLD_SIZE: String(world),
                MASTER_ADDR: "127.0.0.1",
                MASTER_PORT: String(port),
              },
            },
          );
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (d) => (stdout += d));
          child.stderr.on("data", (d) => (stderr += d));
          child.on("close", (code) => done({ code, stdout, stderr }));
        }),
    ),
  );
  rmSync(root, { recursive: true, force: true });
  for (const o of outs) assert.equal(o.code, 0, o.stderr);
  // In a group, only rank 0 prints: the ranks did form one.
  outs.slice(1).forEach((o) => assert.equal(o.stdout, "", "rank 1 prints nothing"));
  return JSON.parse(outs[0].stdout);
}

test("data parallel: A-GEM's reference gradient and SAM's second pass are reduced across 2 ranks as in 1 process", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  // Each rank runs 1 of the 2 micro-batches of every step (A-GEM's memory batch: rank 0 alone).
  const cfg = { steps: 4, batchSize: 2, gradAccum: 2, lr: 1e-2, warmup: 0 };
  for (const parts of [
    [{ name: "agem", options: { memory_per_task: 4 } }],
    [{ name: "sam", options: {} }],
  ]) {
    const [one, two] = [await ranksTrain(1, parts, cfg), await ranksTrain(2, parts, cfg)];
    const scale = Math.max(...one.weights.flatMap(([, w]) => w.map(Math.abs)));
    let worst = 0;
    one.weights.forEach(([, w], i) =>
      w.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - two.weights[i][1][j])))),
    );
    const lossDiff = Math.max(...one.losses.map((l, i) => Math.abs(l - two.losses[i]) / l));
    t.diagnostic(
      `${parts[0].name}: 2 ranks vs 1: max |Δw| ${worst.toExponential(2)} of ${scale.toFixed(3)}, loss rel ${lossDiff.toExponential(2)}`,
    );
    assert.ok(lossDiff <= 1e-5, `${parts[0].name}: losses differ by ${lossDiff}`);
    assert.ok(worst <= 1e-5 * scale, `${parts[0].name}: weights differ by ${worst}`);
  }
});
