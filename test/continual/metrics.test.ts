import { test } from "node:test";
import assert from "node:assert/strict";
import {
  avgAcc,
  avgAccCurve,
  bootstrapCI,
  bwt,
  fgBenchmark,
  fgByCategory,
  fgFromItems,
  finalAcc,
  forgetting,
  fwt,
  itemFlips,
  plasticity,
} from "../../src/continual/metrics.js";
import { makeRng, shuffled } from "../../src/continual/rng.js";

function close(actual: number, expected: number, eps = 1e-9): void {
  assert.ok(Math.abs(actual - expected) < eps, `expected ${expected}, got ${actual}`);
}

// Three tasks (N = 3), scores in percent. Row i = after stage i (row 0 = base model),
// column j = task j (trained at stage j + 1).
const R = [
  [20, 30, 10], // base
  [80, 40, 20], // after task 0
  [85, 90, 30], // after task 1
  [50, 70, 90], // after task 2
];

test("average accuracy curve, average and final accuracy on a hand-computed 3-task matrix", () => {
  // stage 1: R[1][0] = 80; stage 2: (85 + 90)/2 = 87.5; stage 3: (50 + 70 + 90)/3 = 70
  assert.deepEqual(avgAccCurve(R), [80, 87.5, 70]);
  close(avgAcc(R), 70);
  assert.deepEqual(finalAcc(R), [50, 70, 90]);
});

test("BWT, FWT, forgetting and plasticity on the same matrix", () => {
  // BWT = ((R[3][0] − R[1][0]) + (R[3][1] − R[2][1]))/2 = ((50 − 80) + (70 − 90))/2 = −25
  close(bwt(R), -25);
  // FWT = ((R[1][1] − R[0][1]) + (R[2][2] − R[0][2]))/2 = ((40 − 30) + (30 − 10))/2 = 15
  close(fwt(R), 15);
  // forgetting: task 0 max(R[1][0], R[2][0]) − R[3][0] = 85 − 50 = 35 (differs from BWT's 30);
  //             task 1 max(R[2][1]) − R[3][1] = 90 − 70 = 20; mean = 27.5
  close(forgetting(R), 27.5);
  // plasticity = (R[1][0] + R[2][1] + R[3][2])/3 = (80 + 90 + 90)/3
  close(plasticity(R), 260 / 3);
});

test("malformed matrices and single-task runs are rejected with the offending cell", () => {
  assert.throws(() => avgAcc([[1, 2], [3, 4], [5]]), /row 2 has 1 entries, expected 2/);
  assert.throws(() => avgAcc([[1], [NaN]]), /R\[1\]\[0\] is not a finite number/);
  assert.throws(() => bwt([[1], [2]]), /at least 3 rows/);
});

test("Luo et al. FG per benchmark and per category", () => {
  // A: (50−40)/50 = 20 %, (50−45)/50 = 10 %, (50−55)/50 = −10 % → mean 20/3
  close(fgBenchmark([50, 40, 45, 55]), 20 / 3);
  // B: 0 %, 10 %, 20 % → 10. CrowS-Pairs pct_stereotype 60 → 57, 54, 60: 5 %, 10 %, 0 % → 5
  // (positive: less bias).
  const { perBenchmark, perCategory } = fgByCategory([
    { benchmark: "A", category: "reasoning", scores: [50, 40, 45, 55] },
    { benchmark: "B", category: "reasoning", scores: [80, 80, 72, 64] },
    { benchmark: "crows_pairs_english", category: "bias", scores: [60, 57, 54, 60] },
  ]);
  close(perBenchmark.B, 10);
  close(perBenchmark.crows_pairs_english, 5);
  close(perCategory.reasoning, (20 / 3 + 10) / 2);
  close(perCategory.bias, 5);
  assert.deepEqual(Object.keys(perCategory), ["reasoning", "bias"]);
  assert.throws(() => fgBenchmark([0, 1]), /R_0 is 0/);
  assert.throws(
    () =>
      fgByCategory([
        { benchmark: "A", category: "x", scores: [1, 2] },
        { benchmark: "A", category: "y", scores: [1, 2] },
      ]),
    /"A" is listed twice/,
  );
});

test("FG from item-level scores averages items per stage first", () => {
  // 4 items × stages 0..2: stage means 0.75, 0.75, 0.5 → FG = (0 + 33.33…)/2 = 16.66…
  const items = [
    [1, 1, 0],
    [1, 0, 0],
    [0, 1, 1],
    [1, 1, 1],
  ];
  close(fgFromItems(items), 50 / 3);
});

test("percentile bootstrap: reproducible, degenerate on constants, about ±1.96·SE on a mean", () => {
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const constant = bootstrapCI([3, 3, 3, 3], mean, { iters: 200 });
  assert.deepEqual(constant, { estimate: 3, lo: 3, hi: 3 });

  // 400 coin flips, half ones: SE of the mean = sqrt(0.25/400) = 0.025, so the 95 % interval
  // is about 0.5 ± 0.049.
  const flips = shuffled(
    Array.from({ length: 400 }, (_, i) => (i < 200 ? 1 : 0)),
    makeRng(7),
  );
  const ci = bootstrapCI(flips, mean, { iters: 2000, seed: 1 });
  close(ci.estimate, 0.5);
  assert.ok(ci.lo > 0.43 && ci.lo < 0.47, `lo ${ci.lo}`);
  assert.ok(ci.hi > 0.53 && ci.hi < 0.57, `hi ${ci.hi}`);
  assert.deepEqual(bootstrapCI(flips, mean, { iters: 2000, seed: 1 }), ci);
  assert.notDeepEqual(bootstrapCI(flips, mean, { iters: 2000, seed: 2 }), ci);

  // Over items: an FG interval contains the point estimate.
  const items = Array.from({ length: 50 }, (_, k) => [1, k % 3 === 0 ? 0 : 1, k % 2]);
  const fgCi = bootstrapCI(items, fgFromItems, { iters: 300 });
  assert.ok(fgCi.lo <= fgCi.estimate && fgCi.estimate <= fgCi.hi);
  assert.throws(() => bootstrapCI([], mean), /no items/);
});

test("item flips per stage relative to the base model", () => {
  const T = true;
  const F = false;
  const flips = itemFlips([
    [T, T, F, F], // base
    [T, F, T, F], // item 1 forgotten, item 2 learned
    [F, F, T, T], // items 0, 1 forgotten; 2, 3 learned
  ]);
  assert.deepEqual(flips, [
    { stage: 1, forgotten: [1], learned: [2] },
    { stage: 2, forgotten: [0, 1], learned: [2, 3] },
  ]);
  assert.throws(() => itemFlips([[T], [T, F]]), /stage 1 has 2 items, stage 0 has 1/);
});

test("seeded PRNG is deterministic and in [0, 1)", () => {
  const a = makeRng(42);
  const b = makeRng(42);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.deepEqual(
    xs,
    Array.from({ length: 1000 }, () => b()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(m - 0.5) < 0.05, `mean ${m}`);
  assert.notDeepEqual(Array.from({ length: 5 }, makeRng(43)), xs.slice(0, 5));
  assert.deepEqual(shuffled([1, 2, 3, 4, 5], makeRng(1)).sort(), [1, 2, 3, 4, 5]);
});
