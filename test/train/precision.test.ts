/**
 * Precision policies (src/train/precision.ts) through the trainer, on a tiny LLaMA driven by
 * the tests' word-level tokenizer (test/train/helpers.ts; llama2.c's tok512 for the first test,
 * whose bf16-true count of unchanged weights is over tok512's embedding rows):
 * - at the paper's lr 2e-5 for 20 steps, bf16-mixed (float32 master weights and AdamW state,
 *   forward under bf16 autocast) moves every weight tensor and its loss curve stays within bf16
 *   tolerance of 32-true, while bf16-true leaves most weights exactly where they were (the count
 *   is printed and bounded below) and warns that updates round away;
 * - 16-mixed: an inf injected into the gradients skips exactly that step (weights and AdamW's
 *   step count unchanged) and halves the loss scale; the next steps train and the loss falls;
 *   the skip is counted in the result, the progress events and the checkpoint;
 * - evaluation: the policy's view of a model scores under autocast with float32 logits.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ModelLM } from "../../src/eval/model_lm.js";
import type { CausalLM, LanguageModel } from "../../src/models/types.js";
import { linear, randn, tensor, tidy } from "../../src/tensor/index.js";
import type { TrainPlugin } from "../../src/train/plugin.js";
import {
  applyPrecision,
  precisionView,
  roundingWarning,
  withPrecision,
  type Precision,
} from "../../src/train/precision.js";
import { formatProgress, type ProgressEvent } from "../../src/train/progress.js";
import { trainStage } from "../../src/train/trainer.js";
import { assertNear, type Tol } from "../helpers/close.js";
import { BASE_CONFIG, examples, tinyLlama, tok512, weights, wordTokenizer } from "./helpers.js";

const dirs: string[] = [];
const tmp = () => {
  dirs.push(mkdtempSync(join(tmpdir(), "lethe-precision-")));
  return dirs.at(-1)!;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Elements equal in both (per tensor and in all). */
function unchanged(a: Map<string, number[]>, b: Map<string, number[]>) {
  const perTensor = new Map<string, number>();
  let same = 0;
  let total = 0;
  for (const [n, x] of a) {
    const y = b.get(n)!;
    const k = x.filter((v, i) => v === y[i]).length;
    perTensor.set(n, k);
    same += k;
    total += x.length;
  }
  return { perTensor, same, total };
}

/**
 * A loss computed with bf16 matmuls vs float32 ones: logits carry bf16's relative error (2⁻⁸
 * per rounding, a few roundings deep), the mean over tokens averages it down; 2⁻⁷ relative is
 * two bf16 steps of the loss.
 */
const BF16_LOSS: Tol = { rtol: 2 ** -7 };

/** The paper's lr, constant, no decay: only the policy differs between runs. */
const PAPER = {
  ...BASE_CONFIG,
  lr: 2e-5,
  steps: 20,
  warmup: 0,
  schedule: "constant" as const,
  weightDecay: 0,
};

test("bf16-mixed moves every weight at lr 2e-5 and tracks 32-true; bf16-true leaves most unchanged", async (t) => {
  const tokenizer = await tok512(t);
  if (!tokenizer) return;
  const run = (precision: Precision) => {
    const model = tinyLlama(0);
    applyPrecision(model, precision); // bf16-true starts from the bf16-rounded weights
    const init = weights(model);
    const dtypes = { params: new Set<string>(), state: new Set<string>() };
    const probe: TrainPlugin = {
      name: "probe",
      supports: ["full"],
      afterStep: (ctx) => {
        for (const [, p] of ctx.model.namedParameters()) dtypes.params.add(p.dtype);
        for (const s of ctx.optimizer.stateDict().tensors.values()) dtypes.state.add(s.dtype);
      },
    };
    const r = trainStage({
      stage: "paper-lr",
      model,
      kind: "full",
      examples: examples(16),
      tokenizer,
      config: { ...PAPER, precision },
      plugins: [probe],
      dir: tmp(),
      onProgress: () => {}, // warnings are asserted from the result, not printed
    });
    return { r, init, after: weights(model), dtypes };
  };
  const f32 = run("32-true");
  const mixed = run("bf16-mixed");
  const btrue = run("bf16-true");

  // Master weights and optimizer state: float32 in the mixed mode, bf16 in bf16-true.
  assert.deepEqual([...mixed.dtypes.params], ["float32"]);
  assert.deepEqual([...mixed.dtypes.state], ["float32"]);
  assert.deepEqual([...btrue.dtypes.params], ["bfloat16"]);
  assert.deepEqual([...btrue.dtypes.state], ["bfloat16"]);

  // bf16-mixed: every weight tensor moved.
  const m = unchanged(mixed.init, mixed.after);
  for (const [n, k] of m.perTensor)
    assert.ok(k < mixed.init.get(n)!.length, `bf16-mixed left all of ${n} unchanged`);

  // Its loss curve is 32-true's within bf16 tolerance, and not bit-identical (bf16 matmuls ran).
  let worst = 0;
  mixed.r.losses.forEach((l, i) => {
    const ref = f32.r.losses[i];
    worst = Math.max(worst, Math.abs(l - ref) / Math.abs(ref));
    assertNear(l, ref, BF16_LOSS, `step ${i + 1} loss, bf16-mixed vs 32-true`);
  });
  assert.ok(
    mixed.r.losses.some((l, i) => l !== f32.r.losses[i]),
    "bf16-mixed computed in bf16",
  );

  // bf16-true: most weights never moved; it says why.
  const b = unchanged(btrue.init, btrue.after);
  const share = (u: { same: number; total: number }) => ((100 * u.same) / u.total).toFixed(1);
  console.log(
    `# lr 2e-5, 20 steps: bf16-true left ${b.same} of ${b.total} weights unchanged (${share(b)}%); ` +
      `bf16-mixed ${m.same} (${share(m)}%, rows of tokens never seen); ` +
      `loss bf16-mixed vs 32-true max rel diff ${worst.toExponential(2)}; ` +
      `losses 32-true ${f32.r.losses[0].toFixed(4)} → ${f32.r.losses.at(-1)!.toFixed(4)}`,
  );
  // Measured 78.8% (40,481 of 51,360): every weight above ~2⁹·lr ≈ 0.01 in size, and the norms.
  assert.ok(b.same >= 0.7 * b.total, `bf16-true left only ${b.same} of ${b.total} unchanged`);
  assert.ok(b.same > 2 * m.same, `bf16-true ${b.same} vs bf16-mixed ${m.same} unchanged`);
  // (At lr 2e-5 a random tiny model's loss also stays near ln(vocab): every run has that warning.)
  assert.ok(!mixed.r.warnings.some((w) => /round away/.test(w)), mixed.r.warnings.join("\n"));
  assert.equal(btrue.r.warnings.length, 2);
  assert.match(
    btrue.r.warnings[0],
    /^stage "paper-lr": precision bf16-true: lr 0\.00002 is below half a bfloat16 step of a typical weight .*use precision bf16-mixed/,
  );
});

test("roundingWarning: only for a 16-bit true policy whose lr is below half a step", () => {
  const model = tinyLlama(0);
  assert.equal(roundingWarning("s", "32-true", 2e-5, model), null);
  assert.equal(roundingWarning("s", "bf16-mixed", 2e-5, model), null);
  applyPrecision(model, "bf16-true");
  assert.match(roundingWarning("s", "bf16-true", 2e-5, model) ?? "", /round away/);
  assert.equal(roundingWarning("s", "bf16-true", 1e-3, model), null, "lr 1e-3 is a step");
});

test("16-mixed: an injected inf gradient skips exactly that step and halves the scale; training recovers", async (t) => {
  const tokenizer = await wordTokenizer();
  const BAD = 3;
  const snapshots: { step: number; optSteps: number; w: number[] }[] = [];
  const inject: TrainPlugin = {
    name: "inject",
    supports: ["full"],
    afterBackward: (ctx) => {
      if (ctx.step === BAD) tidy(() => ctx.optimizer.grads()[0].narrow(0, 5, 1).fill_(Infinity));
    },
    afterStep: (ctx) => {
      const [, p] = ctx.model
        .namedParameters()
        .find(([n]) => n === "model.layers.0.mlp.up_proj.weight")!;
      snapshots.push({ step: ctx.step, optSteps: ctx.optimizer.stepCount, w: p.toNumbers() });
    },
  };
  const events: ProgressEvent[] = [];
  const dir = tmp();
  const r = trainStage({
    stage: "fp16",
    model: tinyLlama(0),
    kind: "full",
    examples: examples(16),
    tokenizer,
    config: { ...BASE_CONFIG, lr: 1e-2, steps: 10, precision: "16-mixed" },
    plugins: [inject],
    dir,
    onProgress: (e) => void events.push(e),
  });
  console.log(
    `# 16-mixed: skipped ${JSON.stringify(r.skippedSteps)}; scales ${events.map((e) => e.lossScale).join(" ")}; ` +
      `loss ${r.losses[0].toFixed(4)} → ${r.losses.at(-1)!.toFixed(4)}`,
  );
  assert.deepEqual(r.skippedSteps, [BAD]);
  assert.deepEqual(
    events.map((e) => e.lossScale),
    events.map((e) => (e.step < BAD ? 65536 : 32768)),
  );
  assert.deepEqual(
    events.map((e) => e.skippedSteps),
    events.map((e) => (e.step < BAD ? 0 : 1)),
  );
  assert.match(formatProgress(events.at(-1)!), / scale 32768 skipped 1 /);
  // The skipped step changed nothing; every other step moved the weights and AdamW's count.
  const at = (s: number) => snapshots.find((x) => x.step === s)!;
  assert.deepEqual(at(BAD).w, at(BAD - 1).w, "the skipped step left the weights");
  assert.equal(at(BAD).optSteps, BAD - 1);
  for (let s = 2; s <= 10; s++)
    if (s !== BAD) assert.notDeepEqual(at(s).w, at(s - 1).w, `step ${s} moved the weights`);
  assert.equal(at(10).optSteps, 9);
  assert.ok(r.losses.every(Number.isFinite));
  assert.ok(r.losses.at(-1)! < 0.9 * r.losses[0], `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
  // The checkpoint carries the scaler and the skipped steps, for an exact resume.
  const state = JSON.parse(readFileSync(join(r.checkpoint, "trainer_state.json"), "utf8"));
  assert.deepEqual(state.scaler, { scale: 32768, growthTracker: 10 - BAD });
  assert.deepEqual(state.skippedSteps, [BAD]);
});

test("evaluation under a policy: autocast matmuls, float32 logits; the true policies are the model", async (t) => {
  const x = randn([3, 8]);
  const w = randn([4, 8]);
  assert.equal(withPrecision("bf16-mixed", "cpu", () => linear(x, w)).dtype, "bfloat16");
  assert.equal(withPrecision("32-true", "cpu", () => linear(x, w)).dtype, "float32");
  const model = tinyLlama(0).eval() as CausalLM;
  assert.equal(precisionView(model, "32-true"), model);
  assert.equal(precisionView(model, "bf16-true"), model);
  const view = precisionView(model, "bf16-mixed");
  assert.equal(view.namedParameters().length, model.namedParameters().length);
  const [plain, mixed, dtype] = tidy(() => {
    const inputIds = tensor([[1, 45, 300, 7, 99]], { dtype: "int64" });
    const a = model.forward({ inputIds }).logits;
    const b = view.forward({ inputIds }).logits;
    return [a.toNumbers(), b.toNumbers(), b.dtype];
  });
  assert.equal(dtype, "float32");
  const scale = Math.max(...plain.map(Math.abs));
  const diff = Math.max(...plain.map((v, i) => Math.abs(v - mixed[i])));
  console.log(
    `# bf16-mixed logits vs float32: max diff ${diff.toExponential(2)} of max ${scale.toExponential(2)}`,
  );
  assert.ok(diff > 0, "the view ran its matmuls in bf16");
  assert.ok(diff <= 2 ** -5 * scale, `max diff ${diff}, max |logit| ${scale}`);

  const tokenizer = await wordTokenizer();
  const reqs = [
    { context: "Lily played with a ball.", continuation: " She was happy." },
    { context: "Tom has a dog", continuation: " and a cat." },
  ];
  const want = await new ModelLM(model, tokenizer).loglikelihood(reqs);
  const got = await new ModelLM(view, tokenizer).loglikelihood(reqs);
  got.forEach((g, i) => assertNear(g.logprob, want[i].logprob, { rtol: 2 ** -6 }, `request ${i}`));
  assert.ok(
    got.some((g, i) => g.logprob !== want[i].logprob),
    "scored under autocast",
  );
  assert.equal(model.training, false);
});
