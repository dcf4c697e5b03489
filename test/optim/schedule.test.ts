/**
 * Learning-rate multipliers against transformers' optimization.py (get_constant_schedule_with_warmup,
 * get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup with num_cycles 0.5), with
 * values worked out by hand; and gradient clipping as torch.nn.utils.clip_grad_norm_.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { tensor, tidy } from "../../src/tensor/index.js";
import { clipGradNorm, lrFactor, type ScheduleName } from "../../src/optim/index.js";

test("lrFactor: warmup then constant, linear or cosine decay, as transformers computes it", () => {
  const s = (name: ScheduleName) => ({ name, warmupSteps: 10, totalSteps: 110 });
  // Warmup is the same for all three: step / warmup.
  for (const name of ["constant", "linear", "cosine"] as const) {
    assert.equal(lrFactor(s(name), 0), 0, name);
    assert.equal(lrFactor(s(name), 5), 0.5, name);
    assert.equal(lrFactor(s(name), 10), 1, name);
  }
  assert.equal(lrFactor(s("constant"), 60), 1);
  assert.equal(lrFactor(s("constant"), 500), 1);
  // linear: (total − step) / (total − warmup), floored at 0.
  assert.equal(lrFactor(s("linear"), 60), 0.5);
  assert.equal(lrFactor(s("linear"), 85), 0.25);
  assert.equal(lrFactor(s("linear"), 110), 0);
  assert.equal(lrFactor(s("linear"), 130), 0);
  // cosine: ½(1 + cos(π · progress)), progress = (step − warmup) / (total − warmup).
  assert.ok(Math.abs(lrFactor(s("cosine"), 60) - 0.5) < 1e-15);
  assert.ok(Math.abs(lrFactor(s("cosine"), 35) - (1 + Math.SQRT1_2) / 2) < 1e-15);
  assert.ok(Math.abs(lrFactor(s("cosine"), 85) - (1 - Math.SQRT1_2) / 2) < 1e-15);
  assert.ok(Math.abs(lrFactor(s("cosine"), 110)) < 1e-15);
  // Past the end transformers' cosine rises again (only max(0, ·) bounds it): progress 1.2
  // gives ½(1 + cos 1.2π).
  assert.ok(Math.abs(lrFactor(s("cosine"), 130) - 0.5 * (1 + Math.cos(1.2 * Math.PI))) < 1e-15);
  // No warmup: the first step already has the full rate.
  assert.equal(lrFactor({ name: "linear", warmupSteps: 0, totalSteps: 4 }, 0), 1);
  assert.equal(lrFactor({ name: "linear", warmupSteps: 0, totalSteps: 4 }, 3), 0.25);
  assert.equal(lrFactor({ name: "cosine", warmupSteps: 0, totalSteps: 4 }, 0), 1);
  assert.equal(lrFactor({ name: "constant", warmupSteps: 0, totalSteps: 4 }, 0), 1);
});

test("clipGradNorm scales by maxNorm/(norm + 1e-6) only when the total norm exceeds maxNorm", () => {
  tidy(() => {
    const g1 = tensor([3, 4]);
    const g2 = tensor([[12]]);
    assert.equal(clipGradNorm([g1, g2], 20), 13); // √(9 + 16 + 144)
    assert.deepEqual(g1.toNumbers(), [3, 4], "below the limit: untouched");
    assert.equal(clipGradNorm([g1, g2], 6.5), 13);
    const coef = 6.5 / (13 + 1e-6);
    assert.deepEqual(g1.toNumbers(), [
      Math.fround(3 * Math.fround(coef)),
      Math.fround(4 * Math.fround(coef)),
    ]);
    assert.deepEqual(g2.toNumbers(), [Math.fround(12 * Math.fround(coef))]);
    const after = Math.hypot(...g1.toNumbers(), ...g2.toNumbers());
    assert.ok(Math.abs(after - 6.5) < 1e-5, `norm after clipping ${after}`);
    const single = tensor([6, 8]);
    assert.ok(Math.abs(clipGradNorm([single], 1) - 10) < 1e-6);
    assert.ok(Math.abs(Math.hypot(...single.toNumbers()) - 1) < 1e-6);
    assert.equal(clipGradNorm([], 1), 0);
  });
});
