/**
 * Mitigation methods (src/continual/methods): each method's math on hand-computed values, the
 * registry's errors, and one battery over every registered method that trains a tiny LLaMA for
 * two stages through the real trainer with the tests' word-level tokenizer, checking finite losses, the
 * declared `supports`, the state round trip through a checkpoint, and the method's effect; and
 * that `needsStartWeights` is declared exactly where a method reads θ₀ (the runner holds that
 * second copy of the weights for those alone).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { noGrad, op, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import type { Tokenizer } from "../../src/io/tokenizer.js";
import { applyLora, loraLayers } from "../../src/models/lora.js";
import type { CausalLM, LanguageModel } from "../../src/models/index.js";
import { collate, tokenizeSft, type SftFeatures, type SftText } from "../../src/train/data.js";
import { trainStage } from "../../src/train/trainer.js";
import type { TrainPlugin, TuningKind } from "../../src/train/plugin.js";
import {
  createMethod,
  methodOf,
  methods,
  needsStartWeights,
  type MethodEnv,
} from "../../src/continual/methods/index.js";
import { mixCount, snapshot } from "../../src/continual/methods/method.js";
import { ewcPenalty, onlineFisher } from "../../src/continual/methods/ewc.js";
import { l2spPenalty } from "../../src/continual/methods/l2sp.js";
import { wiseFt } from "../../src/continual/methods/wise_ft.js";
import { emaUpdate } from "../../src/continual/methods/ema.js";
import { orthogonalityLoss } from "../../src/continual/methods/olora.js";
import { distillKl } from "../../src/continual/methods/lwf.js";
import { BASE_CONFIG, examples, tinyLlama, trainStages, wordTokenizer } from "../train/helpers.js";

const t1 = (xs: number[] | number[][]) => tensor(xs);
/** Relative to the magnitude (float32 kernels): |a − b| ≤ rtol·max(|a|, |b|, 1). */
const close = (a: number[], b: number[], rtol = 1e-5) =>
  a.forEach((x, i) =>
    assert.ok(
      Math.abs(x - b[i]) <= rtol * Math.max(Math.abs(x), Math.abs(b[i]), 1),
      `${a} vs ${b}`,
    ),
  );

// ---------------------------------------------------------------------------------------------
// The math, by hand

test("EWC penalty λ/2 Σ F(θ−θ*)² and the online Fisher γF + F_new", () => {
  tidy(() => {
    // diffs [1, −1, −2], squared [1, 1, 4], times F [1, 2, 3] → 1 + 2 + 12 = 15; λ = 2 → 15
    const p = ewcPenalty([{ fisher: t1([1, 2, 3]), theta: t1([1, 1, 1]), star: t1([0, 2, 3]) }], 2);
    close([p.item()], [15]);
    // a second tensor adds 0.5 · (4 − 2)² = 2 → 17
    const q = ewcPenalty(
      [
        { fisher: t1([1, 2, 3]), theta: t1([1, 1, 1]), star: t1([0, 2, 3]) },
        { fisher: t1([0.5]), theta: t1([4]), star: t1([2]) },
      ],
      2,
    );
    close([q.item()], [17]);
    close(onlineFisher(t1([1, 2]), t1([3, 4]), 0.5).toNumbers(), [3.5, 5]);
    close(onlineFisher(null, t1([3, 4]), 0.5).toNumbers(), [3, 4]);
  });
});

test("L2-SP α/2 ‖θ−θ₀‖², WiSE-FT (1−α)θ₀ + αθ, EMA βē + (1−β)θ", () => {
  tidy(() => {
    // (1−0)² + (2−1)² + 3² = 11; α = 0.5 → 2.75
    close(
      [
        l2spPenalty(
          [
            [t1([1, 2]), t1([0, 1])],
            [t1([3]), null],
          ],
          0.5,
        ).item(),
      ],
      [2.75],
    );
    close(wiseFt(t1([1, 2]), t1([3, 6]), 0.25).toNumbers(), [1.5, 3]);
    close(wiseFt(t1([1, 2]), t1([3, 6]), 0).toNumbers(), [1, 2]);
    close(wiseFt(null, t1([3, 6]), 0.5).toNumbers(), [1.5, 3]);
    close(emaUpdate(t1([1, 2]), t1([3, 4]), 0.9).toNumbers(), [1.2, 2.2]);
  });
});

test("O-LoRA orthogonality Σ‖A_i A_tᵀ‖² on 2×2 matrices", () => {
  tidy(() => {
    const At = t1([
      [1, 2],
      [3, 4],
    ]);
    // I · A_tᵀ = A_tᵀ: 1 + 4 + 9 + 16 = 30
    close(
      [
        orthogonalityLoss(
          [
            t1([
              [1, 0],
              [0, 1],
            ]),
          ],
          At,
        ).item(),
      ],
      [30],
    );
    // [[0,1],[0,0]] · A_tᵀ = [[2, 4], [0, 0]]: 4 + 16 = 20; both: 50
    close(
      [
        orthogonalityLoss(
          [
            t1([
              [1, 0],
              [0, 1],
            ]),
            t1([
              [0, 1],
              [0, 0],
            ]),
          ],
          At,
        ).item(),
      ],
      [50],
    );
    // orthogonal rows give 0
    close([orthogonalityLoss([t1([[1, 0]])], t1([[0, 5]])).item()], [0]);
  });
});

test("LwF: T² · KL(teacher ‖ student) at temperature T", () => {
  tidy(() => {
    // T = 1: p = [1/4, 3/4], q = [1/2, 1/2]; KL = ¼ ln ½ + ¾ ln 1.5 = 0.1308120
    const kl1 = 0.25 * Math.log(0.5) + 0.75 * Math.log(1.5);
    close([distillKl(t1([[0, Math.log(3)]]), t1([[0, 0]]), 1).item()], [kl1]);
    // T = 2 with teacher logits doubled gives the same distributions, times T² = 4; a row where
    // teacher and student agree adds nothing
    const kl2 = distillKl(
      t1([
        [0, 2 * Math.log(3)],
        [1, 2],
      ]),
      t1([
        [0, 0],
        [1, 2],
      ]),
      2,
    ).item();
    close([kl2], [4 * kl1]);
  });
});

test("mixing adds rows so they make up the ratio", () => {
  assert.equal(mixCount(2, 0.5, 0.99), 2); // 2 of 4
  assert.equal(mixCount(3, 0.25, 0.99), 1); // 1 of 4
  assert.equal(mixCount(2, 0.2, 0.3), 1); // k = 0.5: up when u < 0.5
  assert.equal(mixCount(2, 0.2, 0.7), 0);
  assert.equal(mixCount(5, 0, 0), 0);
  assert.throws(() => mixCount(2, 1, 0), /ratio must be in \[0, 1\)/);
});

// ---------------------------------------------------------------------------------------------
// Registry

const noEnv: MethodEnv = {
  stages: [],
  general: null,
  startWeights: () => new Map(),
  seed: 0,
};

test("registry: names, 'Did you mean', option errors and defaults", () => {
  for (const [key, m] of Object.entries(methods)) {
    assert.equal(m.name, key);
    assert.ok(m.supports.length > 0);
    assert.ok(m.options.safeParse({}).success, `${key}: every option has a default`);
  }
  assert.throws(() => methodOf("wise-ft"), /unknown method "wise-ft"\. Did you mean "wise_ft"/);
  assert.throws(() => createMethod("ewc", { lamda: 3 }, noEnv), /"lamda"\. Did you mean "lambda"/);
  assert.throws(
    () => createMethod("replay", { ratio: 1 }, noEnv),
    /method "replay": option "ratio"/,
  );
  assert.throws(() => createMethod("mix_general", {}, noEnv), /needs the general instruction set/);
  const p = createMethod("olora", {}, noEnv);
  assert.deepEqual(p.supports, ["lora"]);
  assert.equal(p.name, "olora");
});

// ---------------------------------------------------------------------------------------------
// The battery

const CONFIG = { ...BASE_CONFIG, steps: 4, batchSize: 2, gradAccum: 2, maxLength: 48 };
const TASK_A = examples(8);
const TASK_B: SftText[] = examples(8).map((e, i) => ({
  prompt: `Repeat the word ${i}:`,
  response: e.response.toUpperCase(),
}));
const GENERAL: SftText[] = examples(6).map((e) => ({
  prompt: `Instruction: ${e.prompt}`,
  response: " Yes.",
}));
const STAGES = [
  { name: "a", examples: TASK_A },
  { name: "b", examples: TASK_B },
];

interface Run {
  model: LanguageModel;
  plugin: TrainPlugin;
  start: Map<string, Tensor>;
  /** All parameters after each stage. */
  after: Map<string, Tensor>[];
  /** Rows of every micro-batch, per stage, as the method left them. */
  rows: SftFeatures[][][];
  /** The plugin's state tensors after each stage (copies). */
  states: Map<string, Tensor>[];
  dirs: string[];
}

function makeModel(kind: TuningKind): LanguageModel {
  const model = tinyLlama(0);
  if (kind === "lora") applyLora(model, { r: 4, alpha: 8, seed: 1 });
  return model;
}

function env(start: Map<string, Tensor>, tokenizer?: Tokenizer): MethodEnv {
  return { stages: STAGES, general: GENERAL, startWeights: () => start, seed: 5, tokenizer };
}

function twoStages(tok: Tokenizer, name: string, options: unknown, kind: TuningKind): Run {
  const model = makeModel(kind);
  const start = snapshot(model.namedParameters());
  const plugin = createMethod(name, options, env(start, tok));
  const after: Map<string, Tensor>[] = [];
  const states: Map<string, Tensor>[] = [];
  const runs = trainStages({
    model,
    kind,
    tokenizer: tok,
    config: CONFIG,
    stages: STAGES,
    plugins: [plugin],
    label: `methods-${name}`,
    afterStage: (run) => {
      assert.equal(run.losses.length, CONFIG.steps);
      after.push(snapshot(model.namedParameters()));
      states.push(snapshot(plugin.state?.().tensors ?? []));
    },
  });
  const rows = runs.map((r) => r.rows);
  return { model, plugin, start, after, rows, states, dirs: runs.map((r) => r.dir) };
}

function dispose(r: Run): void {
  r.model.dispose();
  for (const m of [r.start, ...r.after, ...r.states]) for (const t of m.values()) t.dispose();
  for (const d of r.dirs) rmSync(d, { recursive: true, force: true });
}

/** √Σ ‖a − b‖² over the tensors of `a` (all of them, or those whose name passes `only`). */
function distance(
  a: Map<string, Tensor>,
  b: Map<string, Tensor>,
  only = (_: string) => true,
): number {
  return tidy(() => {
    let s = 0;
    for (const [n, t] of a) if (only(n)) s += t.sub(b.get(n)!).pow(2).sum().item();
    return Math.sqrt(s);
  });
}

function maxAbsDiff(a: Map<string, Tensor>, b: Map<string, Tensor>): number {
  return tidy(() => Math.max(...[...a].map(([n, t]) => t.sub(b.get(n)!).abs().max().item())));
}

/** Mean KL(teacher ‖ model) per response token of `examples` (teacher: the given weights). */
function klTo(
  tok: Tokenizer,
  model: CausalLM,
  teacher: Map<string, Tensor>,
  exs: SftText[],
): number {
  const rows = exs.map((e) => tokenizeSft(tok, e, { kind: "causal", maxLength: 48 }));
  return noGrad(() =>
    tidy(() => {
      const batch = collate(rows, { kind: "causal", padId: 0 });
      const mask = batch.labels.slice(1, 1).ne(-100);
      const pick = (l: Tensor) => op("aten::index.Tensor", [l.slice(1, 0, -1), [mask]]); // (N, V)
      const forward = (b: typeof batch) =>
        model.forward({ inputIds: b.inputIds, attentionMask: b.attentionMask });
      const student = pick(forward(batch).logits);
      const own = snapshot(model.namedParameters());
      model.loadStateDict(teacher, { strict: false });
      const t = pick(forward(batch).logits);
      model.loadStateDict(own, { strict: false });
      for (const x of own.values()) x.dispose();
      return distillKl(t, student, 1).item() / student.size(0);
    }),
  );
}

test("battery: every registered method trains two stages and does what it says", async (t) => {
  const tok = await wordTokenizer();
  const key = (f: SftFeatures) => f.inputIds.join(",");
  const keysOf = (exs: SftText[]) =>
    new Set(exs.map((e) => key(tokenizeSft(tok, e, { kind: "causal", maxLength: 48 }))));

  const baseline = twoStages(tok, "sequential", {}, "full");

  /** The options that make each method's effect visible, and the check of that effect. */
  const effects: Record<string, { options: object; check(r: Run): void }> = {
    sequential: {
      options: {},
      check: (r) => assert.ok(distance(r.after[1], r.start) > 0, "the weights moved"),
    },
    replay: {
      options: { ratio: 0.5 },
      check: (r) => {
        const a = keysOf(TASK_A);
        for (const b of r.rows[0]) assert.equal(b.length, 2, "stage a has nothing to replay");
        for (const b of r.rows[1]) {
          assert.equal(b.length, 4, "2 rows + 2 replayed = ratio 0.5");
          assert.equal(b.filter((f) => a.has(key(f))).length, 2);
        }
      },
    },
    mix_general: {
      options: { ratio: 0.5 },
      check: (r) => {
        const g = keysOf(GENERAL);
        for (const stage of r.rows)
          for (const b of stage) {
            assert.equal(b.length, 4);
            assert.equal(b.filter((f) => g.has(key(f))).length, 2);
          }
      },
    },
    ewc: {
      options: { lambda: 1e4, samples: 4 },
      check: (r) => {
        const s = r.states[0]; // F and θ* of task a
        // Stage a has no penalty, so it matches sequential; stage b stays nearer θ* where F is large.
        assert.equal(maxAbsDiff(r.after[0], baseline.after[0]), 0);
        const fisherWeighted = (after: Map<string, Tensor>) =>
          tidy(() => {
            const terms = [...s]
              .filter(([k]) => k.startsWith("fisher."))
              .map(([k, fisher]) => {
                const n = k.slice("fisher.".length);
                assert.equal(maxAbsDiff(new Map([[n, s.get(`star.${n}`)!]]), r.after[0]), 0);
                return { fisher, theta: after.get(n)!, star: r.after[0].get(n)! };
              });
            assert.equal(terms.length, r.model.namedParameters().length);
            return ewcPenalty(terms, 2).item();
          });
        const [p, pSeq] = [fisherWeighted(r.after[1]), fisherWeighted(baseline.after[1])];
        t.diagnostic(
          `ewc Σ F(θ_b − θ*)² ${p.toExponential(3)} vs sequential ${pSeq.toExponential(3)}`,
        );
        assert.ok(
          p < pSeq / 2,
          `ewc Σ F(θ_b − θ*)² = ${p} should be well below sequential's ${pSeq}`,
        );
      },
    },
    l2sp: {
      options: { alpha: 1e3 },
      check: (r) => {
        const d = distance(r.after[1], r.start);
        const dSeq = distance(baseline.after[1], baseline.start);
        t.diagnostic(`l2sp ‖θ − θ₀‖ ${d.toFixed(4)} vs sequential ${dSeq.toFixed(4)}`);
        assert.ok(d < dSeq, `l2sp ‖θ − θ₀‖ = ${d} should be < sequential's ${dSeq}`);
      },
    },
    lwf: {
      options: { lambda: 50, teacher: "previous" },
      check: (r) => {
        const kl = klTo(tok, r.model as CausalLM, r.after[0], TASK_A);
        const klSeq = klTo(tok, baseline.model as CausalLM, baseline.after[0], TASK_A);
        t.diagnostic(
          `lwf KL to the stage-a model ${kl.toExponential(3)} vs sequential ${klSeq.toExponential(3)}`,
        );
        assert.ok(
          kl < klSeq,
          `lwf KL to the stage-a model ${kl} should be < sequential's ${klSeq}`,
        );
      },
    },
    olora: {
      options: { lambda1: 100 },
      check: (r) => {
        const s = r.plugin.state!();
        const frozenA = [...s.tensors].filter(
          ([k]) => k.startsWith("0.") && k.endsWith("lora_A.weight"),
        );
        assert.equal(
          frozenA.length,
          loraLayers(r.model).length,
          "one frozen A per layer for task a",
        );
        // Task a's adapter now lives in the base weights: W = W₀ + (alpha / r) · B_a A_a.
        for (const [path, l] of loraLayers(r.model)) {
          // Relative to the weights' size: the merge is a matmul, whose last bits differ by CPU.
          const [merged, scale] = tidy(() => {
            const [A, B] = ["A", "B"].map((x) => s.tensors.get(`0.${path}.lora_${x}.weight`)!);
            const want = r.start.get(`${path}.weight`)!.add(B.matmul(A).mul(l.scaling));
            const diff = want
              .sub(r.after[1].get(`${path}.weight`)!)
              .abs()
              .max()
              .item();
            return [diff, want.abs().max().item()];
          });
          assert.ok(
            merged <= 1e-6 * scale,
            `${path}: base weight off by ${merged} (max |w| ${scale})`,
          );
        }
        // The frozen A is task a's final A; task b's adapter is another one.
        for (const [k, A] of frozenA)
          assert.equal(
            maxAbsDiff(new Map([["x", A]]), new Map([["x", r.after[0].get(k.slice(2))!]])),
            0,
          );
        // Orthogonality is far lower than when the same fresh adapters train without it.
        const orth = (run: Run, frozen: [string, Tensor][]) =>
          tidy(() =>
            frozen.reduce(
              (s2, [k, A]) => s2 + orthogonalityLoss([A], run.after[1].get(k.slice(2))!).item(),
              0,
            ),
          );
        const free = twoStages(tok, "olora", { lambda1: 0 }, "lora");
        const freeA = [...free.plugin.state!().tensors].filter(
          ([k]) => k.startsWith("0.") && k.endsWith("lora_A.weight"),
        );
        const [o, oFree] = [orth(r, frozenA), orth(free, freeA)];
        dispose(free);
        t.diagnostic(
          `O-LoRA Σ‖A_a A_bᵀ‖² ${o.toExponential(3)} vs λ₁ = 0: ${oFree.toExponential(3)}`,
        );
        assert.ok(o < oFree, `O-LoRA orthogonality ${o} should be < ${oFree} with λ₁ = 0`);
      },
    },
    wise_ft: {
      options: { alpha: 0 },
      check: (r) => {
        for (const a of r.after)
          assert.equal(maxAbsDiff(a, r.start), 0, "α = 0 returns θ₀ exactly");
      },
    },
    ema: {
      options: { decay: 1 },
      check: (r) =>
        assert.equal(maxAbsDiff(r.after[1], r.start), 0, "β = 1 keeps the stage's start weights"),
    },
    // Forgetting against sequential is in test/continual/methods_more.test.ts.
    agem: {
      options: { memory_per_task: 4 },
      check: (r) =>
        assert.equal(maxAbsDiff(r.after[0], baseline.after[0]), 0, "stage a has no memory"),
    },
    merge: {
      options: { ratio: 0 },
      check: (r) => {
        assert.equal(maxAbsDiff(r.after[0], baseline.after[0]), 0, "stage a is not merged");
        assert.equal(maxAbsDiff(r.after[1], r.after[0]), 0, "ratio 0 keeps the previous stage");
      },
    },
    sam: {
      options: { rho: 0.05 },
      check: (r) => assert.ok(maxAbsDiff(r.after[0], baseline.after[0]) > 0, "SAM's steps differ"),
    },
    // Forgetting against sequential, and resuming, are in test/continual/methods_gen.test.ts.
    osf: {
      options: {},
      check: (r) => {
        const frozen = (n: string) => new Map([[n, r.start.get(n)!]]);
        for (const n of ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"])
          assert.equal(maxAbsDiff(new Map([[n, r.after[1].get(n)!]]), frozen(n)), 0, `${n} frozen`);
        assert.ok(r.states[1].has("U.model.layers.0.self_attn.q_proj.weight"));
      },
    },
    ilora: {
      options: { decay: 0.5, ratio: 0.5 },
      check: (r) => {
        const adapters = new Map([...r.after[1]].filter(([n]) => r.states[1].has(n)));
        assert.equal(maxAbsDiff(adapters, r.states[1]), 0, "the slow learner is what remains");
        for (const b of r.rows[1]) assert.equal(b.length, 4);
      },
    },
    sdft: {
      options: { max_new_tokens: 8 },
      check: (r) => {
        const { rewrites } = r.plugin.state!().meta as { rewrites: Record<string, string[]> };
        assert.deepEqual([rewrites.a.length, rewrites.b.length], [8, 8]);
      },
    },
    lamol: {
      options: { ratio: 0.5, per_task: 4, max_new_tokens: 8 },
      check: (r) => {
        const b = keysOf(TASK_B);
        for (const rows of r.rows[1]) assert.equal(rows.filter((f) => !b.has(key(f))).length, 2);
      },
    },
    ssr: {
      options: { ratio: 0.5, demos: 1, synthesize: 4, keep: 2, max_new_tokens: 8 },
      check: (r) => {
        const b = keysOf(TASK_B);
        for (const rows of r.rows[1]) assert.equal(rows.filter((f) => !b.has(key(f))).length, 2);
      },
    },
  };

  for (const [name, def] of Object.entries(methods)) {
    const effect = effects[name];
    assert.ok(effect, `method "${name}" needs an effect check in this battery`);
    const kind: TuningKind = def.supports.includes("full") ? "full" : "lora";
    const r = twoStages(tok, name, effect.options, kind);

    // A kind the method does not support is refused by name.
    for (const other of ["full", "lora"] as const) {
      if (def.supports.includes(other)) continue;
      const m = makeModel(other);
      const p = createMethod(name, effect.options, env(new Map()));
      assert.throws(
        () =>
          trainStage({
            stage: "a",
            model: m,
            kind: other,
            examples: TASK_A,
            tokenizer: tok,
            config: CONFIG,
            plugins: [p],
            dir: r.dirs[0],
          }),
        new RegExp(`plugin "${name}" does not support ${other} fine-tuning`),
      );
      m.dispose();
    }

    // State round trip through the real checkpoint: a fresh plugin on the completed stage b.
    const s = r.plugin.state?.();
    assert.equal(
      s === undefined,
      r.plugin.loadState === undefined,
      `${name}: state and loadState go together`,
    );
    if (s) {
      const fresh = createMethod(name, effect.options, env(r.start, tok));
      trainStage({
        stage: "b",
        model: r.model,
        kind,
        examples: TASK_B,
        tokenizer: tok,
        config: CONFIG,
        plugins: [fresh],
        dir: r.dirs[1],
      });
      const s2 = fresh.state!();
      assert.deepEqual(JSON.parse(JSON.stringify(s2.meta)), JSON.parse(JSON.stringify(s.meta)));
      assert.deepEqual([...s2.tensors.keys()].sort(), [...s.tensors.keys()].sort());
      assert.equal(maxAbsDiff(s2.tensors, s.tensors), s.tensors.size ? 0 : -Infinity);
    }

    effect.check(r);
    dispose(r);
  }
  dispose(baseline);
});

test("needsStartWeights is declared exactly where a method reads θ₀", async (t) => {
  const tok = await wordTokenizer();
  const variants: [string, Record<string, unknown>][] = [
    ...Object.keys(methods).map((n): [string, Record<string, unknown>] => [n, {}]),
    ["lwf", { teacher: "start" }],
  ];
  const readers: string[] = [];
  for (const [name, options] of variants)
    for (const kind of methodOf(name).supports) {
      const model = makeModel(kind);
      const start = snapshot(model.namedParameters());
      let reads = 0;
      const plugin = createMethod(name, options, {
        stages: STAGES,
        general: GENERAL,
        seed: 5,
        tokenizer: tok,
        startWeights: () => (reads++, start),
      });
      const dir = mkdtempSync(join(tmpdir(), `lethe-theta0-${name}-`));
      trainStage({
        stage: "a",
        model,
        kind,
        examples: TASK_A,
        tokenizer: tok,
        config: { ...CONFIG, steps: 2 },
        plugins: [plugin],
        dir,
      });
      const label = `${name} ${JSON.stringify(options)} ${kind}`;
      assert.equal(
        needsStartWeights(name, options, kind),
        reads > 0,
        `${label}: read θ₀ ${reads}×`,
      );
      if (reads > 0) readers.push(label);
      model.dispose();
      for (const x of start.values()) x.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  console.log(`# θ₀ readers: ${readers.join("; ")}`);
  assert.deepEqual(readers, [
    "l2sp {} full",
    "wise_ft {} full",
    "ssr {} full",
    'lwf {"teacher":"start"} full',
  ]);
});
