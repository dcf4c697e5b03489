/**
 * The five methods of src/continual/methods/{osf,ilora,sdft,lamol,ssr}.ts: their math on
 * hand-computed values, then for each a two-task run on a tiny LLaMA with the tests' word-level tokenizer
 * through the real trainer (same steps and seed as `sequential`, whose task-1 loss is printed
 * beside the method's), the method's mechanism checked on what it left behind, full fine-tuning
 * and LoRA where declared, and a kill in the middle of the second stage resumed by a fresh
 * plugin and a fresh model to the same weights, losses and plugin state; and, as in
 * methods_more.test.ts, a two-task run where task b gives task a's prompts other answers (so
 * sequential forgets), comparing each method's forgetting of task a with sequential's (both
 * printed) and asserting a reduction only where one holds.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crossEntropy, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import type { Tokenizer } from "../../src/io/tokenizer.js";
import { applyLora } from "../../src/models/lora.js";
import type { CausalLM, LanguageModel } from "../../src/models/index.js";
import { collate, tokenizeSft, type SftFeatures, type SftText } from "../../src/train/data.js";
import { trainStage } from "../../src/train/trainer.js";
import type { TrainContext, TrainPlugin, TuningKind } from "../../src/train/plugin.js";
import {
  combinationProblem,
  createMethod,
  methodOf,
  settingProblem,
  type MethodEnv,
} from "../../src/continual/methods/index.js";
import { snapshot } from "../../src/continual/methods/method.js";
import { makeRng } from "../../src/continual/rng.js";
import {
  frozenRank,
  isOsfTarget,
  projectComplement,
  restoreTop,
  topSubspace,
} from "../../src/continual/methods/osf.js";
import { consistency, slowUpdate } from "../../src/continual/methods/ilora.js";
import {
  distillPrompt,
  generateTexts,
  rewriteTarget,
  SDFT_TEMPLATE,
} from "../../src/continual/methods/sdft.js";
import {
  commonPrefix,
  commonSuffix,
  pseudoPrompt,
  taskCues,
} from "../../src/continual/methods/lamol.js";
import { kmeans, kmeansSelect, trigramFeatures } from "../../src/continual/methods/ssr.js";
import { BASE_CONFIG, examples, tinyLlama, trainStages, wordTokenizer } from "../train/helpers.js";

const t1 = (xs: number[] | number[][]) => tensor(xs);
const close = (a: number[], b: number[], tol = 1e-5) =>
  a.forEach((x, i) =>
    assert.ok(Math.abs(x - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${a} vs ${b}`),
  );

// ---------------------------------------------------------------------------------------------
// The math, by hand

test("OSF: the gradient projected onto the complement of U and V, and the frozen part restored", () => {
  tidy(() => {
    // U = e₁ (3×1), V = e₂ᵀ (1×2): (I − UUᵀ) zeroes row 1, (I − VᵀV) zeroes column 2.
    const G = t1([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const U = t1([[1], [0], [0]]);
    const V = t1([[0, 1]]);
    close(projectComplement(G, U, V).flatten().toNumbers(), [0, 0, 3, 0, 5, 0]);
    // U = (e₁ + e₂)/√2 takes out the rows' mean; V = e₂ᵀ leaves column 1 alone.
    const s = Math.SQRT1_2;
    const P = projectComplement(
      t1([
        [1, 0],
        [3, 0],
      ]),
      t1([[s], [s]]),
      V,
    );
    close(P.flatten().toNumbers(), [-1, 0, 1, 0]); // [1, 3] − mean 2
    // Restoration: Uᵀ W' = Uᵀ W₀, W' Vᵀ = W₀ Vᵀ, and W' = W₀ + P(W − W₀).
    const W0 = t1([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const W = t1([
      [2, 0],
      [1, 1],
      [0, 7],
    ]);
    const C = U.t().matmul(W0);
    const D = W0.matmul(V.t());
    const R = restoreTop(W, U, V, C, D);
    close(U.t().matmul(R).toNumbers(), C.toNumbers());
    close(R.matmul(V.t()).flatten().toNumbers(), D.flatten().toNumbers());
    close(
      R.flatten().toNumbers(),
      W0.add(projectComplement(W.sub(W0), U, V))
        .flatten()
        .toNumbers(),
    );
    // By hand: row 1 and column 2 from W₀, the rest from W.
    close(R.flatten().toNumbers(), [1, 2, 1, 4, 0, 6]);
    // The top singular pair of diag(3, 1) is e₁ (up to sign).
    const top = topSubspace(
      t1([
        [3, 0],
        [0, 1],
      ]),
      1,
    );
    close(top.U.abs().flatten().toNumbers(), [1, 0]);
    close(top.V.abs().flatten().toNumbers(), [1, 0]);
  });
  const o = { rank: 0.5, growth: 0.1, max_rank: 0.9 };
  assert.equal(frozenRank(64, 32, 0, o), 16);
  assert.equal(frozenRank(64, 32, 1, o), 19); // 0.6 · 32 = 19.2
  assert.equal(frozenRank(32, 64, 9, o), 29); // capped: 0.9 · 32 = 28.8
  const w = t1([[1, 2]]);
  assert.equal(isOsfTarget("model.layers.0.self_attn.q_proj.weight", w), true);
  assert.equal(isOsfTarget("model.embed_tokens.weight", w), false);
  assert.equal(isOsfTarget("lm_head.weight", w), false);
  assert.equal(isOsfTarget("model.norm.weight", t1([1, 2])), false);
  w.dispose();
  // Refused at config time where it cannot work: zero2 shards the gradient; LoRA is not declared.
  const setting = { kind: "full" as const, precision: undefined, distributed: "zero2" };
  assert.match(settingProblem({ name: "osf", options: {} }, setting) ?? "", /zero2/);
  assert.equal(
    settingProblem({ name: "osf", options: {} }, { ...setting, distributed: "ddp" }),
    null,
  );
  assert.match(
    settingProblem(
      { name: "osf", options: {} },
      { ...setting, kind: "lora", distributed: "ddp" },
    ) ?? "",
    /supports only full/,
  );
});

test("I-LoRA: the slow learner's EMA and the consistency term", () => {
  tidy(() => {
    close(slowUpdate(t1([1, 2]), t1([3, 4]), 0.9).toNumbers(), [1.2, 2.2]);
    close(slowUpdate(t1([1, 2]), t1([3, 4]), 1).toNumbers(), [1, 2]);
    // rows: mean of [1, 4] = 2.5 and mean of [0, 0] = 0 → 2.5
    close(
      [
        consistency(
          t1([
            [1, 2],
            [5, 5],
          ]),
          t1([
            [0, 0],
            [5, 5],
          ]),
        ).item(),
      ],
      [2.5],
    );
  });
});

test("SDFT: the distillation prompt and the blank-rewrite fallback", () => {
  const ex = { prompt: "Q: 2+2? {response}", response: " 4 $&" };
  // Placeholders are filled once each; "$&" in the text is not a replacement pattern.
  assert.equal(distillPrompt("[{prompt}] [{response}]", ex), "[Q: 2+2? {response}] [ 4 $&]");
  assert.ok(SDFT_TEMPLATE.includes("{prompt}") && SDFT_TEMPLATE.includes("{response}"));
  assert.equal(rewriteTarget(" 4", "  \n"), " 4");
  assert.equal(rewriteTarget(" 4", "four"), "four");
});

test("LAMOL: task cues from the prompts and the pseudo prompt cut at the answer cue", () => {
  assert.equal(commonPrefix(["Question: a?\nAnswer:", "Question: bb?\nAnswer:"]), "Question: ");
  assert.equal(commonSuffix(["Question: a?\nAnswer:", "Question: bb?\nAnswer:"]), "?\nAnswer:");
  assert.equal(commonPrefix([]), "");
  // A suffix may not eat into the prefix: "ab" and "ab" share both entirely.
  assert.deepEqual(taskCues(["ab", "ab"]), { prefix: "ab", marker: "" });
  assert.deepEqual(taskCues(["Say x:", "Say yy:"]), { prefix: "Say ", marker: ":" });
  const cues = { prefix: "Q: ", marker: "\nA:" };
  assert.equal(pseudoPrompt(cues.prefix, "who ran?\nA: Tom", cues.marker), "Q: who ran?\nA:");
  assert.equal(pseudoPrompt(cues.prefix, "who ran? Tom\nmore", cues.marker), "Q: who ran? Tom\nA:");
  assert.equal(pseudoPrompt(cues.prefix, "no cut", cues.marker), "Q: no cut\nA:");
});

test("SSR: k-means finds two obvious clusters and the selection keeps one of each", () => {
  const pts = [
    [0, 0],
    [0.1, 0],
    [0, 0.1],
    [5, 5],
    [5.2, 5],
    [5.1, 5.05],
  ];
  const { assign, centres } = kmeans(pts, 2, makeRng(3));
  assert.equal(assign[0], assign[1]);
  assert.equal(assign[1], assign[2]);
  assert.equal(assign[3], assign[4]);
  assert.equal(assign[4], assign[5]);
  assert.notEqual(assign[0], assign[3]);
  const c0 = centres[assign[0]];
  close(c0, [0.1 / 3, 0.1 / 3]);
  // The member nearest each centre: (0.1/3, 0.1/3) is nearest (0, 0), (5.1, 5.0167) nearest (5.1, 5.05).
  assert.deepEqual(kmeansSelect(pts, 2, makeRng(3)), [0, 5]);
  assert.deepEqual(kmeansSelect(pts, 9, makeRng(3)), [0, 1, 2, 3, 4, 5]);
  assert.throws(() => kmeans(pts, 0, makeRng(1)), /k must be in \[1, 6\]/);
  // Same seed, same clustering.
  assert.deepEqual(kmeans(pts, 3, makeRng(9)), kmeans(pts, 3, makeRng(9)));
  const f = trigramFeatures("Tom has the ball.");
  close([Math.hypot(...f)], [1]);
  assert.deepEqual(f, trigramFeatures("tom has the ball."), "case-folded");
  assert.notDeepEqual(f, trigramFeatures("Sue baked a cake."));
});

// ---------------------------------------------------------------------------------------------
// Two-task runs

const CONFIG = {
  ...BASE_CONFIG,
  steps: 6,
  batchSize: 2,
  gradAccum: 2,
  maxLength: 64,
  checkpointEvery: 2,
};
const TASK_A = examples(8);
const TASK_B: SftText[] = examples(8).map((e, i) => ({
  prompt: `Repeat the word ${i}:`,
  response: e.response.toUpperCase(),
}));
const STAGES = [
  { name: "a", examples: TASK_A },
  { name: "b", examples: TASK_B },
];
/** Options that keep generation short on the tiny model. */
const OPTIONS: Record<string, object> = {
  sequential: {},
  osf: {},
  ilora: { decay: 0.5, ratio: 0.5, gamma: 1 },
  sdft: { max_new_tokens: 16 },
  lamol: { ratio: 0.5, per_task: 8, max_new_tokens: 16 },
  ssr: { ratio: 0.5, synthesize: 8, keep: 4, max_new_tokens: 16, demos: 1 },
};

interface Run {
  model: LanguageModel;
  plugin: TrainPlugin;
  start: Map<string, Tensor>;
  after: Map<string, Tensor>[];
  rows: SftFeatures[][][];
  losses: number[][];
  /** Mean response-token NLL of task a after each stage. */
  nllA: number[];
  dirs: string[];
}

function makeModel(kind: TuningKind): LanguageModel {
  const model = tinyLlama(0);
  if (kind === "lora") applyLora(model, { r: 4, alpha: 8, seed: 1 });
  return model;
}

function env(tok: Tokenizer, start: Map<string, Tensor>): MethodEnv {
  return { stages: STAGES, general: null, startWeights: () => start, seed: 5, tokenizer: tok };
}

/** Mean NLL of the responses of `exs` under `model`. */
function nll(tok: Tokenizer, model: LanguageModel, exs: SftText[]): number {
  const rows = exs.map((e) => tokenizeSft(tok, e, { kind: "causal", maxLength: 64 }));
  return noGrad(() =>
    tidy(() => {
      const wasTraining = model.training;
      model.eval();
      const b = collate(rows, { kind: "causal", padId: 0 });
      const logits = (model as CausalLM).forward({
        inputIds: b.inputIds,
        attentionMask: b.attentionMask,
      }).logits;
      const V = logits.size(-1);
      const loss = crossEntropy(
        logits.slice(1, 0, -1).reshape(-1, V),
        b.labels.slice(1, 1).reshape(-1),
      ).item();
      model.train(wasTraining);
      return loss;
    }),
  );
}

function twoStages(tok: Tokenizer, name: string, kind: TuningKind): Run {
  const model = makeModel(kind);
  const start = snapshot(model.namedParameters());
  const plugin = createMethod(name, OPTIONS[name], env(tok, start));
  const run: Run = { model, plugin, start, after: [], rows: [], losses: [], nllA: [], dirs: [] };
  trainStages({
    model,
    kind,
    tokenizer: tok,
    config: CONFIG,
    stages: STAGES,
    plugins: [plugin],
    label: `gen-${name}`,
    afterStage: (stage) => {
      run.losses.push(stage.losses);
      run.rows.push(stage.rows);
      run.after.push(snapshot(model.namedParameters()));
      run.nllA.push(nll(tok, model, TASK_A));
      run.dirs.push(stage.dir);
    },
  });
  return run;
}

function dispose(r: Run): void {
  r.model.dispose();
  for (const m of [r.start, ...r.after]) for (const t of m.values()) t.dispose();
  for (const d of r.dirs) rmSync(d, { recursive: true, force: true });
}

function maxAbsDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  return tidy(() => Math.max(0, ...[...a].map(([n, t]) => t.sub(b.get(n)!).abs().max().item())));
}

/**
 * Stage b killed after its checkpoint at step 2 (in step 3), then resumed by a fresh plugin on a
 * fresh model: the final weights, losses and plugin state must equal the uninterrupted run's.
 * Stage a is not retrained: its completed folder hands the weights and plugin state over.
 */
function checkResume(tok: Tokenizer, name: string, kind: TuningKind, r: Run): void {
  const stop: TrainPlugin = {
    name: "stop",
    supports: ["full", "lora"],
    afterStep: (ctx) => {
      if (ctx.stage === "b" && ctx.step === 3) throw new Error("killed");
    },
  };
  const idle: TrainPlugin = { name: "stop", supports: ["full", "lora"] };
  const dir = mkdtempSync(join(tmpdir(), `lethe-gen-kill-${name}-`));
  const stageB = (model: LanguageModel, plugin: TrainPlugin, guard: TrainPlugin) =>
    trainStage({
      stage: "b",
      model,
      kind,
      examples: TASK_B,
      tokenizer: tok,
      config: CONFIG,
      plugins: [plugin, guard],
      dir,
    });
  const stageA = (model: LanguageModel, plugin: TrainPlugin) =>
    trainStage({
      stage: "a",
      model,
      kind,
      examples: TASK_A,
      tokenizer: tok,
      config: CONFIG,
      plugins: [plugin, { name: "recorder", supports: ["full", "lora"] }],
      dir: r.dirs[0],
    });
  try {
    const m1 = makeModel(kind);
    const p1 = createMethod(name, OPTIONS[name], env(tok, r.start));
    assert.equal(stageA(m1, p1).resumedFrom, join(r.dirs[0], "ckpt-6"));
    assert.throws(() => stageB(m1, p1, stop), /killed/);
    m1.dispose();
    const m2 = makeModel(kind);
    const p2 = createMethod(name, OPTIONS[name], env(tok, r.start));
    const res = stageB(m2, p2, idle);
    assert.equal(res.resumedFrom, join(dir, "ckpt-2"), `${name} ${kind}: resumed mid-stage`);
    assert.deepEqual(res.losses, r.losses[1], `${name} ${kind}: the same losses`);
    const after = snapshot(m2.namedParameters());
    assert.equal(maxAbsDiff(after, r.after[1]), 0, `${name} ${kind}: the same weights`);
    const [s, s2] = [r.plugin.state?.(), p2.state?.()];
    if (s && s2) {
      assert.deepEqual(JSON.parse(JSON.stringify(s2.meta)), JSON.parse(JSON.stringify(s.meta)));
      assert.deepEqual([...s2.tensors.keys()].sort(), [...s.tensors.keys()].sort());
      assert.equal(maxAbsDiff(s2.tensors, s.tensors), 0, `${name} ${kind}: the same state`);
    }
    for (const t of after.values()) t.dispose();
    m2.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const keyOf = (f: SftFeatures) => f.inputIds.join(",");

test("two tasks: each method against sequential, its mechanism, and a resume after a kill", async (t) => {
  const tok = await wordTokenizer();
  const tokB = new Set(
    TASK_B.map((e) => keyOf(tokenizeSft(tok, e, { kind: "causal", maxLength: 64 }))),
  );
  const baselines = new Map<TuningKind, Run>();
  const baseline = (kind: TuningKind) => {
    if (!baselines.has(kind)) baselines.set(kind, twoStages(tok, "sequential", kind));
    return baselines.get(kind)!;
  };
  const report = (name: string, kind: TuningKind, r: Run) => {
    const seq = baseline(kind);
    const f = r.nllA[1] - r.nllA[0];
    const fSeq = seq.nllA[1] - seq.nllA[0];
    t.diagnostic(
      `${name} ${kind}: task-a NLL after a ${r.nllA[0].toFixed(4)}, after b ${r.nllA[1].toFixed(4)} ` +
        `(forgetting ${f.toFixed(4)}); sequential ${seq.nllA[0].toFixed(4)} → ${seq.nllA[1].toFixed(4)} ` +
        `(forgetting ${fSeq.toFixed(4)})`,
    );
    return { f, fSeq, seq };
  };

  /** Each method's mechanism, checked on its run. */
  const checks: Record<string, (r: Run, kind: TuningKind) => void> = {
    osf: (r) => {
      const s = r.plugin.state!().tensors;
      // Stage b's frozen subspace was left untouched: Uᵀ(W_b − W_a) = 0 and (W_b − W_a)Vᵀ = 0.
      let worst = 0;
      let targets = 0;
      tidy(() => {
        for (const [n, Wb] of r.after[1]) {
          const U = s.get(`U.${n}`);
          if (!U) {
            // Not a target: frozen, as PEFT freezes every non-adapter weight.
            assert.equal(maxAbsDiff(new Map([[n, Wb]]), new Map([[n, r.after[0].get(n)!]])), 0, n);
            continue;
          }
          targets++;
          const d = Wb.sub(r.after[0].get(n)!);
          const scale = d.abs().max().item();
          assert.ok(scale > 0, `${n} moved in its complement`);
          const V = s.get(`V.${n}`)!;
          worst = Math.max(
            worst,
            U.t().matmul(d).abs().max().item() / scale,
            d.matmul(V.t()).abs().max().item() / scale,
          );
          // Task b (index 1) freezes 0.6 of min(out, in).
          assert.equal(
            U.size(1),
            frozenRank(Wb.size(0), Wb.size(1), 1, { rank: 0.5, growth: 0.1, max_rank: 0.9 }),
          );
        }
      });
      assert.equal(targets, 14, "7 linear weights in each of 2 layers");
      t.diagnostic(
        `osf: largest component of the stage-b update in the frozen subspace ${worst.toExponential(2)} (relative)`,
      );
      assert.ok(worst < 1e-4, `osf: the update leaks ${worst} into the frozen subspace`);
    },
    ilora: (r) => {
      // The slow learner is what the model holds after each stage, and it moved less than the fast one would.
      const slow = r.plugin.state!().tensors;
      const adapters = new Map([...r.after[1]].filter(([n]) => slow.has(n)));
      assert.equal(adapters.size, slow.size);
      assert.equal(maxAbsDiff(adapters, slow), 0);
      // Stage b replayed task a at ratio 0.5: 2 own rows + 2 replayed.
      for (const b of r.rows[1]) assert.equal(b.length, 4);
      for (const b of r.rows[0]) assert.equal(b.length, 2, "nothing to replay in stage a");
    },
    sdft: (r) => {
      const meta = r.plugin.state!().meta as { rewrites: Record<string, string[]> };
      assert.deepEqual(Object.keys(meta.rewrites).sort(), ["a", "b"]);
      for (const [stage, i] of [
        ["a", 0],
        ["b", 1],
      ] as const) {
        assert.equal(meta.rewrites[stage].length, 8);
        // Every row trained on is (prompt, rewrite), not the original example.
        const want = new Set(
          STAGES[i].examples.map((e, j) =>
            keyOf(
              tokenizeSft(
                tok,
                { prompt: e.prompt, response: meta.rewrites[stage][j] },
                { kind: "causal", maxLength: 64 },
              ),
            ),
          ),
        );
        for (const b of r.rows[i])
          for (const f of b) assert.ok(want.has(keyOf(f)), `sdft ${stage}: a row not rewritten`);
      }
      const changed = meta.rewrites.b.filter((w, j) => w !== TASK_B[j].response).length;
      t.diagnostic(
        `sdft: ${changed} of 8 task-b targets rewritten; first: ${JSON.stringify(meta.rewrites.b[0])}`,
      );
      assert.ok(changed > 0);
    },
    lamol: (r) => {
      const meta = r.plugin.state!().meta as { pseudo: Record<string, SftText[]> };
      assert.equal(meta.pseudo.a.length, 0, "stage a has no earlier task");
      assert.equal(meta.pseudo.b.length, 8);
      const { prefix, marker } = taskCues(TASK_A.map((e) => e.prompt));
      for (const ex of meta.pseudo.b)
        assert.ok(ex.prompt.startsWith(prefix) && ex.prompt.endsWith(marker), ex.prompt);
      t.diagnostic(`lamol: first pseudo example ${JSON.stringify(meta.pseudo.b[0])}`);
      for (const b of r.rows[1]) {
        assert.equal(b.length, 4);
        assert.equal(b.filter((f) => !tokB.has(keyOf(f))).length, 2, "2 pseudo rows of 4");
      }
    },
    ssr: (r) => {
      const meta = r.plugin.state!().meta as { rehearsal: Record<string, SftText[]> };
      assert.equal(meta.rehearsal.b.length, 4, "keep 4 of 8 candidates");
      const { prefix, marker } = taskCues(TASK_A.map((e) => e.prompt));
      for (const ex of meta.rehearsal.b)
        assert.ok(ex.prompt.startsWith(prefix) && ex.prompt.endsWith(marker), ex.prompt);
      t.diagnostic(`ssr: first rehearsed example ${JSON.stringify(meta.rehearsal.b[0])}`);
      for (const b of r.rows[1]) assert.equal(b.filter((f) => !tokB.has(keyOf(f))).length, 2);
    },
  };

  for (const name of ["osf", "ilora", "sdft", "lamol", "ssr"]) {
    const def = methodOf(name);
    for (const kind of def.supports) {
      const r = twoStages(tok, name, kind);
      checks[name](r, kind);
      const { seq } = report(name, kind, r);
      // Here sequential does not forget (six steps teach the tiny model little beyond the words
      // both tasks share, so task a's NLL falls during stage b too): forgetting is compared in
      // the conflicting-tasks test below. What holds here, with a wide margin (≈ 0.2 nats), is
      // that rehearsing pseudo examples of task a in full fine-tuning leaves its NLL below
      // sequential's after stage b.
      if ((name === "lamol" || name === "ssr") && kind === "full")
        assert.ok(
          r.nllA[1] < seq.nllA[1] - 0.05,
          `${name}: task-a NLL after b ${r.nllA[1]} should be below sequential's ${seq.nllA[1]}`,
        );
      // Resume in the first declared kind (enough for the plugin state's round trip).
      if (kind === def.supports[0]) checkResume(tok, name, kind, r);
      dispose(r);
    }
    for (const other of ["full", "lora"] as const) {
      if (def.supports.includes(other)) continue;
      const m = makeModel(other);
      const dir = mkdtempSync(join(tmpdir(), `lethe-gen-refuse-`));
      assert.throws(
        () =>
          trainStage({
            stage: "a",
            model: m,
            kind: other,
            examples: TASK_A,
            tokenizer: tok,
            config: CONFIG,
            plugins: [createMethod(name, OPTIONS[name], env(tok, new Map()))],
            dir,
          }),
        new RegExp(`plugin "${name}" does not support ${other} fine-tuning`),
      );
      m.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const b of baselines.values()) dispose(b);
});

test("the generating methods refuse a run without a tokenizer, and packing", async (t) => {
  const tok = await wordTokenizer();
  for (const name of ["sdft", "lamol", "ssr"]) {
    const model = makeModel("full");
    const start = snapshot(model.namedParameters());
    const dir = mkdtempSync(join(tmpdir(), `lethe-gen-refuse-`));
    const run = (e: MethodEnv, packing: boolean, stage: string) =>
      trainStage({
        stage,
        model,
        kind: "full",
        examples: stage === "a" ? TASK_A : TASK_B,
        tokenizer: tok,
        config: { ...CONFIG, packing },
        plugins: [createMethod(name, OPTIONS[name], e)],
        dir,
      });
    // sdft generates in every stage; lamol and ssr from the second on.
    const stage = name === "sdft" ? "a" : "b";
    assert.throws(
      () => run({ ...env(tok, start), tokenizer: undefined }, false, stage),
      new RegExp(`method "${name}" generates text and needs the tokenizer`),
    );
    rmSync(dir, { recursive: true, force: true });
    assert.throws(
      () => run(env(tok, start), true, stage),
      new RegExp(`method "${name}" .*packing`),
    );
    model.dispose();
    for (const x of start.values()) x.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("generateTexts: greedy text is the same twice, seeded samples follow the seed, an empty prompt starts", async () => {
  const tok = await wordTokenizer();
  const model = tinyLlama(0); // 512 ids, more than the tokenizer has: those are dropped
  const ctx = {
    model,
    tokenize: (ex: SftText) => tokenizeSft(tok, ex, { kind: "causal", maxLength: 64 }),
    config: { ...CONFIG, maxLength: 64, batchSize: 2 },
  } as unknown as TrainContext;
  const prompts = ["Question: Tom played with a ball.", "", "Repeat the word 3:"];
  const greedy = generateTexts(ctx, tok, prompts, { maxNewTokens: 6 });
  assert.equal(greedy.length, 3);
  assert.deepEqual(generateTexts(ctx, tok, prompts, { maxNewTokens: 6 }), greedy);
  const sample = (seed: number) =>
    generateTexts(ctx, tok, prompts, {
      maxNewTokens: 6,
      sample: { seed, temperature: 1, topK: 20 },
    });
  assert.deepEqual(sample(4), sample(4));
  assert.notDeepEqual(sample(4), sample(5));
  for (const text of [...greedy, ...sample(4)])
    for (const word of text.split(/\s+/).filter(Boolean))
      assert.notEqual(tok.encode(word, { addSpecialTokens: false }).length, 0, word);
  model.dispose();
});

test("combinations: what these methods rewrite decides where they may be listed", () => {
  // ilora and sdft score or rewrite rows in their batch hooks: methods adding rows come first.
  assert.equal(combinationProblem(["replay", "ilora"]), null);
  assert.match(combinationProblem(["ilora", "replay"]) ?? "", /list "replay" before "ilora"/);
  assert.match(combinationProblem(["lwf", "sdft"]) ?? "", /list "sdft" before "lwf"/);
  assert.equal(combinationProblem(["lamol", "lwf"]), null);
  assert.match(combinationProblem(["osf", "sam"]) ?? "", /both rewrite the step's gradient/);
});

// ---------------------------------------------------------------------------------------------
// Forgetting on a tiny model: task b gives task a's prompts other answers (as methods_more's)

const CONFLICT_A = examples(8);
/** Task a's prompts answered in capitals (other words, other ids): sequential overwrites task a. */
const CONFLICT_B: SftText[] = CONFLICT_A.map((e) => ({
  prompt: e.prompt,
  response: e.response.toUpperCase(),
}));
const CONFLICT_STAGES = [
  { name: "a", examples: CONFLICT_A },
  { name: "b", examples: CONFLICT_B },
];
const CONFLICT_CONFIG = {
  ...BASE_CONFIG,
  lr: 1e-2,
  steps: 24,
  batchSize: 4,
  gradAccum: 1,
  maxLength: 64,
};

/**
 * LoRA runs at a higher rate: rank-4 adapters on a random tiny model barely learn task a in 24
 * steps (its NLL stays near ln 512 at 1e-2, and near 6.07 at 5e-2 or 2e-1 alike).
 */
const CONFLICT_LR: Record<TuningKind, number> = { full: 1e-2, lora: 5e-2 };

interface Forgetting {
  /** Task a's response NLL after stage a and after stage b. */
  lossA: [number, number];
  forgetting: number;
  plugin: TrainPlugin;
}

function conflictRun(tok: Tokenizer, name: string, kind: TuningKind, options: object): Forgetting {
  const model = makeModel(kind);
  const start = snapshot(model.namedParameters());
  const plugin = createMethod(name, options, {
    stages: CONFLICT_STAGES,
    general: null,
    startWeights: () => start,
    seed: 3,
    tokenizer: tok,
  });
  const lossA: number[] = [];
  const dirs: string[] = [];
  try {
    for (const s of CONFLICT_STAGES) {
      const dir = mkdtempSync(join(tmpdir(), `lethe-gen-forget-${name}-`));
      dirs.push(dir);
      trainStage({
        stage: s.name,
        model,
        kind,
        examples: s.examples,
        tokenizer: tok,
        config: { ...CONFLICT_CONFIG, lr: CONFLICT_LR[kind] },
        plugins: [plugin],
        dir,
      });
      lossA.push(nll(tok, model, CONFLICT_A));
    }
    return { lossA: [lossA[0], lossA[1]], forgetting: lossA[1] - lossA[0], plugin };
  } finally {
    model.dispose();
    for (const x of start.values()) x.dispose();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const fmtF = (r: Forgetting) =>
  `forgetting ${r.forgetting.toFixed(3)} (task a NLL ${r.lossA[0].toFixed(3)} → ${r.lossA[1].toFixed(3)})`;

test("conflicting tasks: each method's forgetting of task a against sequential, same steps and seed", async (t) => {
  const tok = await wordTokenizer();
  const seq = {
    full: conflictRun(tok, "sequential", "full", {}),
    lora: conflictRun(tok, "sequential", "lora", {}),
  };
  for (const kind of ["full", "lora"] as const)
    t.diagnostic(`sequential ${kind}: ${fmtF(seq[kind])}`);
  assert.ok(seq.full.forgetting > 0.5, `task b should overwrite task a: ${fmtF(seq.full)}`);
  assert.ok(seq.lora.forgetting > 0, `task b should move task a: ${fmtF(seq.lora)}`);
  const rehearse = { ratio: 0.5, max_new_tokens: 16 };
  const cases: [name: string, kind: TuningKind, options: object, reduces: boolean][] = [
    // OSF freezes the embeddings, the head and the top half of each linear weight's spectrum:
    // it forgets far less, but it also learns task a far less (its NLL after a stays near 5.7).
    ["osf", "full", {}, true],
    // I-LoRA replays task a at ratio 0.5 and pulls toward the slow learner.
    ["ilora", "lora", { decay: 0.5, ratio: 0.5, gamma: 1 }, true],
    // SDFT rewrites task a's targets too, with the untrained model's own text, so it never
    // learns task a, and in stage b its rewrites of task b are no closer to task a's answers:
    // it does not reduce forgetting here; only that it ran and is deterministic is asserted.
    ["sdft", "full", { max_new_tokens: 16 }, false],
    ["sdft", "lora", { max_new_tokens: 16 }, false],
    // LAMOL and SSR rehearse task a's pseudo examples in half of each stage-b batch.
    ["lamol", "full", { ...rehearse, per_task: 8 }, true],
    ["ssr", "full", { ...rehearse, synthesize: 8, keep: 4, demos: 1 }, true],
    // In LoRA these are within noise of sequential's small forgetting: printed only.
    ["ssr", "lora", { ...rehearse, synthesize: 8, keep: 4, demos: 1 }, false],
  ];
  const failures: string[] = [];
  for (const [name, kind, options, reduces] of cases) {
    const r = conflictRun(tok, name, kind, options);
    const s = seq[kind];
    t.diagnostic(`${name} ${kind}: ${fmtF(r)} vs sequential ${s.forgetting.toFixed(3)}`);
    for (const l of r.lossA) assert.ok(Number.isFinite(l), `${name} ${kind}: ${l}`);
    if (reduces && !(r.forgetting < s.forgetting - 0.1))
      failures.push(`${name} ${kind}: ${fmtF(r)} vs sequential ${fmtF(s)}`);
    // Rehearsal keeps task a better than sequential after stage b, not only relatively.
    if (reduces && (name === "lamol" || name === "ssr") && !(r.lossA[1] < s.lossA[1] - 0.5))
      failures.push(`${name} ${kind}: task a NLL after b ${r.lossA[1]} vs ${s.lossA[1]}`);
    if (name === "sdft") {
      const meta = r.plugin.state!().meta as { rewrites: Record<string, string[]> };
      const changed = meta.rewrites.b.filter((w, j) => w !== CONFLICT_B[j].response).length;
      t.diagnostic(`sdft ${kind}: ${changed} of 8 task-b targets rewritten`);
      assert.ok(changed > 0, `sdft ${kind}: no target rewritten`);
      if (kind === "full") {
        const again = conflictRun(tok, name, kind, options);
        assert.deepEqual(again.lossA, r.lossA, "sdft: the same run twice");
      }
    }
  }
  assert.deepEqual(failures, [], "should forget task a less than sequential");
});
