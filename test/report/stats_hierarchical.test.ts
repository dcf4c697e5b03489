/**
 * The findings' statistics (src/report/findings.ts) on synthetic runs with items: a known effect
 * is confirmed and a null effect is not, at 3 seeds (hierarchical bootstrap); with fewer seeds
 * only a decisive item-level interval gives a verdict; task orders are never pooled as seeds; and
 * single-seed reports show item-level intervals in the FG table (results.json keys `fg.ci` by
 * benchmark, the table's rows are categories).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fgBenchmark } from "../../src/continual/metrics.js";
import { makeRng, type Rng } from "../../src/continual/rng.js";
import {
  findings,
  hierarchicalBootstrap,
  type BenchmarkUnit,
  type Finding,
  type RunSummary,
} from "../../src/report/findings.js";
import { loadRuns } from "../../src/report/runs.js";
import { fgTables } from "../../src/report/tables.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

const STAGES = 4;

/**
 * One benchmark's items over STAGES stages: right at stage 0 with probability 0.6; after that a
 * right item turns wrong with probability `rate` per stage, and a wrong one turns right with the
 * probability that keeps the expected score (so `rate` 0 and `churn` > 0 is a null effect).
 */
function benchmark(rng: Rng, n: number, rate: number, churn = 0.05): BenchmarkUnit {
  const items = new Int32Array(n);
  for (let k = 0; k < n; k++) {
    let right = rng() < 0.6;
    for (let m = 0; m < STAGES; m++) {
      if (m > 0) {
        const p0 = 0.6 * (1 - rate) ** (m - 1); // the expected score before this stage
        const down = rate + churn;
        const up = p0 < 1 ? (churn * p0) / (1 - p0) : 0;
        right = right ? rng() >= down : rng() < up;
      }
      if (right) items[k] |= 1 << m;
    }
  }
  const means = Array.from({ length: STAGES }, (_, m) => {
    let s = 0;
    for (const c of items) s += (c >> m) & 1;
    return s / n;
  });
  return { fg: fgBenchmark(means), items, stages: STAGES };
}

/** A run of a model whose bias items forget at `rate`; its general categories forget at 0.1. */
function run(rng: Rng, name: string, seed: number, rate: number, order = "a → b → c"): RunSummary {
  const bias = benchmark(rng, 300, rate);
  const dk = benchmark(rng, 300, 0.1);
  return {
    model: { name, params: 1e9, architecture: "decoder-only", base: null, family: "x" },
    method: "full",
    seed,
    order,
    fg: { bias: bias.fg, domain_knowledge: dk.fg },
    benchmarks: { bias: [bias], domain_knowledge: [dk] },
  };
}

const bias = (fs: Finding[]) => fs.find((f) => f.id === "bias")!;

test("a known effect is confirmed and a null effect is not (3 seeds, seeds and items)", () => {
  const rng = makeRng(7);
  const effect = ["m1", "m2"].flatMap((m) => [0, 1, 2].map((s) => run(rng, m, s, 0.1)));
  const yes = bias(findings(effect));
  assert.equal(yes.verdict, "confirmed");
  assert.ok(yes.stat!.lo! > 0, `interval ${yes.stat!.lo}..${yes.stat!.hi}`);
  assert.match(yes.text, /95% CI \[[\d.]+, [\d.]+\] \(seeds and items\)/);

  const none = ["m1", "m2"].flatMap((m) => [0, 1, 2].map((s) => run(rng, m, s, 0)));
  const no = bias(findings(none));
  assert.equal(no.verdict, "inconclusive");
  assert.ok(no.stat!.lo! < 0 && no.stat!.hi! > 0, `interval ${no.stat!.lo}..${no.stat!.hi}`);
  process.stdout.write(
    `effect: ${yes.stat!.estimate.toFixed(2)} [${yes.stat!.lo!.toFixed(2)}, ${yes.stat!.hi!.toFixed(2)}]; ` +
      `null: ${no.stat!.estimate.toFixed(2)} [${no.stat!.lo!.toFixed(2)}, ${no.stat!.hi!.toFixed(2)}]\n`,
  );
});

test("the hierarchical interval is wider than the item-level one when seeds disagree", () => {
  const rng = makeRng(3);
  // Three seeds with very different forgetting: the seed level carries most of the spread.
  const rs = [0.02, 0.1, 0.2].map((rate, s) => run(rng, "m", s, rate));
  const both = hierarchicalBootstrap([[rs]], "bias", (v) => v[0], { iters: 1000 });
  const items = hierarchicalBootstrap([[rs]], "bias", (v) => v[0], { iters: 1000, seeds: false });
  assert.ok(
    both.hi! - both.lo! > items.hi! - items.lo!,
    `seeds+items ${both.lo}..${both.hi}, items ${items.lo}..${items.hi}`,
  );
  assert.equal(both.estimate, items.estimate);
});

test("fewer than 3 seeds: inconclusive (n seeds) unless the item-level interval decides", () => {
  const rng = makeRng(14);
  const strong = bias(findings([0, 1].map((s) => run(rng, "m", s, 0.15))));
  assert.equal(strong.verdict, "confirmed", strong.text);
  assert.match(strong.text, /item-level 95% CI .* \(2 seeds: seeds not resampled\)/);
  const weak = bias(findings([0, 1].map((s) => run(rng, "m", s, 0))));
  assert.equal(weak.verdict, "inconclusive");
  assert.equal(weak.label, "inconclusive (2 seeds)");
  // Without items there is nothing to resample at 2 seeds: inconclusive, however clear.
  const bare = [0, 1].map((s) => {
    const r = run(rng, "m", s, 0.15);
    delete r.benchmarks;
    return r;
  });
  assert.equal(bias(findings(bare)).label, "inconclusive (2 seeds)");
});

test("orders are analysed apart from seeds, with a per-order view", () => {
  const rng = makeRng(5);
  // One seed in each of two orders: not two seeds.
  const rs = [run(rng, "m", 0, 0, "a → b"), run(rng, "m", 0, 0, "b → a")];
  const f = bias(findings(rs));
  assert.equal(f.label, "inconclusive (1 seed)");
  assert.match(f.text, /\(1 seed × 2 orders\)/);
  assert.deepEqual(
    f.perOrder.map((o) => o.order),
    ["a → b", "b → a"],
  );
  // Forgetting in one order only shows in that order's own verdict.
  const mixed = [
    ...[0, 1, 2].map((s) => run(rng, "m", s, 0.15, "a → b")),
    ...[0, 1, 2].map((s) => run(rng, "m", s, 0, "b → a")),
  ];
  const per = bias(findings(mixed)).perOrder;
  assert.equal(per.find((o) => o.order === "a → b")!.verdict, "confirmed");
  assert.equal(per.find((o) => o.order === "b → a")!.verdict, "inconclusive");
  // One order: no per-order view.
  assert.deepEqual(bias(findings(mixed.slice(0, 3))).perOrder, []);
});

test("single-seed FG table: item-level intervals per category (fg.ci is keyed by benchmark)", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-stats-"));
  try {
    writeStudy(dir, { models: STUDY_MODELS.slice(0, 2), methods: ["full"], seeds: [0] });
    const runs = loadRuns([dir]);
    const [t] = fgTables(runs);
    const row = (c: string) => t.cells[t.categories.indexOf(c)];
    // mmlu (domain knowledge) and piqa (reasoning) kept items: their cells get intervals.
    for (const c of ["domain_knowledge", "reasoning"])
      for (const cell of row(c)) {
        assert.equal(cell!.seeds, 1);
        assert.ok(cell!.lo !== null && cell!.hi !== null && cell!.lo < cell!.hi, c);
      }
    // Reading comprehension has two benchmarks and no items: no interval to show.
    for (const cell of row("reading_comprehension")) assert.equal(cell!.lo, null);
    // A run without items, its category one benchmark: results.json's fg.ci[benchmark] is used.
    const r = runs[0];
    r.items = {};
    r.results.categories = { mmlu: "domain_knowledge" };
    r.results.fg.ci = { mmlu: [1.5, 2.5] };
    const [t1] = fgTables([r]);
    const cell = t1.cells[t1.categories.indexOf("domain_knowledge")][0]!;
    assert.deepEqual([cell.lo, cell.hi], [1.5, 2.5]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
