/**
 * The paper's four findings, re-tested on a study's runs: pure functions from per-run FG values
 * to a verdict with the numbers behind it. Nothing here reads files or prints.
 *
 * Reference: Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language
 * Models During Continual Fine-tuning", arXiv 2308.08747, §4 (findings):
 *   1. scale: forgetting grows with model scale (BLOOMZ 1.1B → 7.1B);
 *   2. architecture: decoder-only BLOOMZ forgets less than encoder-decoder mT0 of similar size;
 *   3. instruction: a general instruction-tuned start (Alpaca) forgets less than its base (LLaMA);
 *   4. bias: bias (CrowS-Pairs `pct_stereotype`) falls during continual fine-tuning, FG_bias > 0.
 *
 * "General FG" of a run is the mean of its per-category FG over every category but `bias`.
 *
 * Statistics (STATS_METHOD says it in the report): the runs of one model form a two-level design,
 * seeds and, within each seed, the evaluated items. The interval of a statistic is a hierarchical
 * percentile bootstrap (Efron & Tibshirani 1993, §13.3; Davison & Hinkley 1997, §3.8): each
 * resample draws every model's seeds with replacement within each task order, then each drawn
 * run's items with replacement within each benchmark (from `stages/<m>/items/`), recomputes FG
 * from the resampled items, and averages. Task orders are a fixed factor, never pooled as seeds: a
 * model's value is the mean over its orders of the mean over seeds, and with several orders each
 * finding is also tested per order. A verdict is "confirmed" when the 95% interval lies above 0,
 * "contradicted" when it lies below 0, else "inconclusive". With fewer than 3 seeds in some
 * model × order cell the seed level cannot be resampled meaningfully: the verdict is
 * "inconclusive (n seeds)" unless the item-level interval alone (seeds fixed, items resampled)
 * excludes 0. "not testable" when the study lacks the models the comparison needs.
 */
import { fgBenchmark } from "../continual/metrics.js";
import { makeRng, randomInt, type Rng } from "../continual/rng.js";
import { expandTaskNames, getTask } from "../eval/tasks/index.js";
import { compareModels, type ModelFacts, type Run } from "./runs.js";

export const BIAS_CATEGORY = "bias";

/** Fewer seeds per model × order than this: the seed level of the bootstrap is not trusted. */
export const MIN_SEEDS = 3;

/** The statistical method, as the report states it. */
export const STATS_METHOD =
  "95% hierarchical percentile bootstrap: seeds resampled within each model and task order, then items within each benchmark of each drawn run, FG recomputed from the items; orders are a fixed factor (mean over orders), each also tested alone. Confirmed / contradicted: the interval lies above / below 0. With fewer than 3 seeds a verdict needs the item-level interval alone (seeds fixed) to exclude 0, else it is inconclusive.";

/** One benchmark of a run: its FG, and its items when the run kept them. */
export interface BenchmarkUnit {
  fg: number;
  /** Per item, a bit per stage: bit m set when the item scores 1 at stage m (primary metric). */
  items: Int32Array | null;
  stages: number;
}

/** What the findings see of one run. */
export interface RunSummary {
  model: ModelFacts;
  method: string;
  seed: number;
  /** The task order (runs of different orders are never treated as seeds). @default "" */
  order?: string;
  /** FG per category (results.json `fg.perCategory`). */
  fg: Record<string, number>;
  /** Per category, its benchmarks' FG and items, for the item level of the bootstrap. */
  benchmarks?: Record<string, BenchmarkUnit[]>;
  /** Backward transfer (results.json `bwt`; NaN while the run has too few stages). */
  bwt?: number;
}

export type Verdict = "confirmed" | "contradicted" | "inconclusive" | "not testable";

export interface Interval {
  estimate: number;
  /** null when there is nothing to resample (one seed and no items). */
  lo: number | null;
  hi: number | null;
}

export interface OrderFinding {
  order: string;
  verdict: Verdict;
  label: string;
  stat: Interval | null;
}

export interface Finding {
  id: "scale" | "architecture" | "instruction" | "bias";
  claim: string;
  verdict: Verdict;
  /** The verdict as shown: "inconclusive (2 seeds)" says why. */
  label: string;
  /** The numbers behind the verdict (or what the study lacks), as a sentence. */
  text: string;
  /** The tested statistic (null when not testable). */
  stat: Interval | null;
  /** With several task orders: the finding tested on each order alone. */
  perOrder: OrderFinding[];
}

export interface FindingsOptions {
  /** The method whose runs are compared. @default the method with the most runs */
  method?: string;
  /** Bootstrap resamples. @default 2000 */
  iters?: number;
  /** PRNG seed of the bootstrap. @default 0 */
  seed?: number;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean FG over the non-bias categories, or null when the run has none. */
export function generalFg(fg: Record<string, number>): number | null {
  const vals = Object.entries(fg)
    .filter(([c, v]) => c !== BIAS_CATEGORY && Number.isFinite(v))
    .map(([, v]) => v);
  return vals.length ? mean(vals) : null;
}

/** Type-7 quantile of sorted values (numpy's default), as continual/metrics.ts. */
function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  return sorted[lo] + (sorted[Math.ceil(pos)] - sorted[lo]) * (pos - lo);
}

/**
 * Stratified percentile bootstrap: each resample draws every group's values with replacement
 * (group sizes kept), then `stat` sees the groups' means. 95% interval; no interval (lo = hi =
 * null) when a group has fewer than two values.
 */
export function groupBootstrap(
  groups: readonly (readonly number[])[],
  stat: (means: number[]) => number,
  { iters = 2000, seed = 0 }: { iters?: number; seed?: number } = {},
): Interval {
  if (groups.some((g) => g.length === 0)) throw new Error("bootstrap: a group has no values");
  const estimate = stat(groups.map(mean));
  if (groups.some((g) => g.length < 2)) return { estimate, lo: null, hi: null };
  const rng = makeRng(seed);
  const stats: number[] = [];
  for (let b = 0; b < iters; b++)
    stats.push(stat(groups.map((g) => mean(g.map(() => g[randomInt(rng, g.length)])))));
  stats.sort((a, b) => a - b);
  return { estimate, lo: quantile(stats, 0.025), hi: quantile(stats, 0.975) };
}

function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2 + 1; // ties share the mean rank
    i = j + 1;
  }
  return r;
}

/** Spearman's rank correlation (Pearson on mean ranks); 0 when either side is constant. */
export function spearman(x: readonly number[], y: readonly number[]): number {
  const rx = ranks(x);
  const ry = ranks(y);
  const mx = mean(rx);
  const my = mean(ry);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  rx.forEach((v, i) => {
    sxy += (v - mx) * (ry[i] - my);
    sxx += (v - mx) ** 2;
    syy += (ry[i] - my) ** 2;
  });
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

// ---------------------------------------------------------------------------------------------
// The item level: a run's FG recomputed from resampled items

/** Whether a benchmark's primary metric grows with quality (lm-eval's higher_is_better). */
function higherIsBetter(benchmark: string, metric: string): boolean {
  const key = metric.split(",")[0];
  let leaf: string;
  try {
    leaf = expandTaskNames(benchmark)[0];
  } catch {
    return true; // not a registered lm-eval benchmark: its items' `correct` is the score
  }
  return getTask(leaf).metrics.find((m) => m.metric === key)?.higher_is_better ?? true;
}

/** Stages an item matrix can hold: one bit each in an Int32. */
const MAX_ITEM_STAGES = 31;

/**
 * A run's benchmarks per category, with each one's items as stage bit-sets when the run kept
 * items at every stage (the item score is `correct`, or its negation for a lower-is-better metric
 * such as CrowS-Pairs' pct_stereotype). Benchmarks without items keep their FG fixed.
 */
export function runBenchmarks(run: Run): Record<string, BenchmarkUnit[]> {
  const r = run.results;
  const stages = r.stages.length;
  const out: Record<string, BenchmarkUnit[]> = {};
  for (const [b, fg] of Object.entries(r.fg.perBenchmark)) {
    const cat = r.categories[b];
    if (cat === undefined || !Number.isFinite(fg)) continue;
    const byStage = run.items[b];
    let items: Int32Array | null = null;
    const recs = Array.from({ length: stages }, (_, m) => byStage?.[m]);
    if (stages <= MAX_ITEM_STAGES && recs.every((x) => x !== undefined && x.length > 0)) {
      const higher = higherIsBetter(b, r.primaryMetric[b] ?? "acc,none");
      const index = new Map(recs[0]!.map((x, k) => [x.doc_id, k]));
      items = new Int32Array(index.size);
      recs.forEach((st, m) =>
        st!.forEach((x) => {
          const k = index.get(x.doc_id);
          if (k === undefined)
            throw new Error(`${run.dir}: item ${x.doc_id} of ${b} at stage ${m} is not at stage 0`);
          if (x.correct === higher) items![k] |= 1 << m;
        }),
      );
    }
    (out[cat] ??= []).push({ fg, items, stages });
  }
  return out;
}

/** What the findings see of a run: its model, method, seed, order, FG and items. */
export function summarize(run: Run): RunSummary {
  return {
    model: run.model,
    method: run.results.run.method,
    seed: run.results.run.seed,
    order: run.results.run.order.join(" → "),
    fg: run.results.fg.perCategory,
    benchmarks: runBenchmarks(run),
    bwt: run.results.bwt,
  };
}

/** FG of a benchmark on a resample of its items (`fgBenchmark` of the stage means). */
function itemFg(u: BenchmarkUnit, rng: Rng): number {
  if (u.items === null) return u.fg;
  const n = u.items.length;
  const sums = new Float64Array(u.stages);
  for (let i = 0; i < n; i++) {
    const code = u.items[randomInt(rng, n)];
    for (let m = 0; m < u.stages; m++) if ((code >> m) & 1) sums[m]++;
  }
  return sums[0] === 0 ? NaN : fgBenchmark([...sums].map((x) => x / n));
}

/** What a statistic reads of a run: general FG, BWT (no items), or one category's FG. */
export type Measure = typeof GENERAL | typeof BWT | string;
export const GENERAL = "(general)";
export const BWT = "(bwt)";

/** The run's measure; with `rng`, recomputed on resampled items (benchmarks without items fixed). */
export function measure(r: RunSummary, what: Measure, rng: Rng | null): number {
  if (what === BWT) return r.bwt ?? NaN;
  if (rng === null || r.benchmarks === undefined)
    return what === GENERAL ? (generalFg(r.fg) ?? NaN) : (r.fg[what] ?? NaN);
  const cat = (c: string) => {
    const us = r.benchmarks![c];
    return us?.length ? mean(us.map((u) => itemFg(u, rng))) : r.fg[c];
  };
  if (what !== GENERAL) return cat(what);
  return generalFg(Object.fromEntries(Object.keys(r.fg).map((c) => [c, cat(c)]))) ?? NaN;
}

const hasItems = (r: RunSummary, what: Measure) =>
  Object.entries(r.benchmarks ?? {}).some(
    ([c, us]) => (what === GENERAL ? c !== BIAS_CATEGORY : c === what) && us.some((u) => u.items),
  );

/** A model's runs: per task order, its seeds. */
type Cells = RunSummary[][];

/** Bootstrap options: `seeds: false` fixes the seed level; `paired` draws one seed index per cell. */
export type BootstrapOptions = FindingsOptions & { seeds?: boolean; paired?: boolean };

/**
 * Hierarchical percentile bootstrap of `stat` over groups (models) of cells (orders) of runs
 * (seeds). A group's value is the mean over cells of the mean over runs of `what`. Each resample
 * draws each cell's runs with replacement (`seeds: true`), then each run's items within each
 * benchmark. With `paired` (every group holds the same cells, runs aligned by seed) one draw of
 * seed indices per cell serves every group. 95% interval; none (lo = hi = null) when nothing
 * varies: no items and a cell with fewer than two runs, or `seeds: false` and no items.
 */
export function hierarchicalBootstrap(
  groups: readonly Cells[],
  what: Measure,
  stat: (values: number[]) => number,
  { iters = 2000, seed = 0, seeds = true, paired = false }: BootstrapOptions = {},
): Interval {
  const value = (cells: Cells, pick: (runs: RunSummary[], c: number) => number) =>
    mean(cells.map((runs, c) => pick(runs, c)));
  const estimate = stat(
    groups.map((g) => value(g, (rs) => mean(rs.map((r) => measure(r, what, null))))),
  );
  const items = groups.some((g) => g.some((rs) => rs.some((r) => hasItems(r, what))));
  const seedsVary = seeds && groups.every((g) => g.every((rs) => rs.length >= 2));
  if (!items && !seedsVary) return { estimate, lo: null, hi: null };
  const rng = makeRng(seed);
  const stats: number[] = [];
  for (let b = 0; b < iters; b++) {
    const draw = paired ? groups[0].map((rs) => rs.map(() => randomInt(rng, rs.length))) : null;
    const v = stat(
      groups.map((g) =>
        value(g, (rs, c) =>
          mean(
            rs.map((_, i) =>
              measure(
                seeds ? rs[draw ? draw[c][i] : randomInt(rng, rs.length)] : rs[i],
                what,
                items ? rng : null,
              ),
            ),
          ),
        ),
      ),
    );
    if (Number.isFinite(v)) stats.push(v);
  }
  if (!stats.length) return { estimate, lo: null, hi: null };
  stats.sort((a, b) => a - b);
  return { estimate, lo: quantile(stats, 0.025), hi: quantile(stats, 0.975) };
}

/** The interval of a table cell (one model × method × category): seeds and items, as above. */
export function cellInterval(
  runs: readonly RunSummary[],
  category: string,
  o: FindingsOptions = {},
): Interval {
  const cells = [...byOrder(runs).values()];
  return hierarchicalBootstrap([cells], category, (v) => v[0], o);
}

/** Runs per task order, in first-seen order. */
export function byOrder(runs: readonly RunSummary[]): Map<string, RunSummary[]> {
  const out = new Map<string, RunSummary[]>();
  for (const r of runs) out.set(r.order ?? "", [...(out.get(r.order ?? "") ?? []), r]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Verdicts

function verdictOf(s: Interval): Verdict {
  if (s.lo === null || s.hi === null) return "inconclusive";
  if (s.lo > 0) return "confirmed";
  if (s.hi < 0) return "contradicted";
  return "inconclusive";
}

const f2 = (x: number) => x.toFixed(2);
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? "" : "s"}`;

/** A model's runs of the compared method, per order, and its facts. */
type ModelEntry = { facts: ModelFacts; cells: Cells };

/** Per model (in first-seen order), its runs of one method grouped by order. */
function byModel(runs: readonly RunSummary[], method: string): Map<string, ModelEntry> {
  const out = new Map<string, ModelEntry>();
  for (const r of runs) {
    if (r.method !== method) continue;
    const e = out.get(r.model.name) ?? { facts: r.model, cells: [] };
    out.set(r.model.name, e);
  }
  for (const [name, e] of out)
    e.cells = [
      ...byOrder(runs.filter((r) => r.method === method && r.model.name === name)).values(),
    ];
  return out;
}

/** The model's runs that have `what`, per order; empty when none. */
function cellsOf(e: ModelEntry, what: Measure): Cells {
  return e.cells
    .map((rs) => rs.filter((r) => Number.isFinite(measure(r, what, null))))
    .filter((rs) => rs.length);
}

/**
 * The test of one comparison: the hierarchical interval with 3 or more seeds in every cell, else
 * the item-level interval alone, decisive or "inconclusive (n seeds)".
 */
export function decide(
  groups: Cells[],
  what: Measure,
  stat: (values: number[]) => number,
  o: BootstrapOptions,
): { stat: Interval; verdict: Verdict; label: string; how: string } {
  const n = Math.min(...groups.flatMap((g) => g.map((rs) => rs.length)));
  if (n >= MIN_SEEDS) {
    const s = hierarchicalBootstrap(groups, what, stat, o);
    const v = verdictOf(s);
    return {
      stat: s,
      verdict: v,
      label: v,
      how: `95% CI [${f2(s.lo!)}, ${f2(s.hi!)}] (seeds and items)`,
    };
  }
  const s = hierarchicalBootstrap(groups, what, stat, { ...o, seeds: false });
  const v = verdictOf(s);
  const seeds = plural(n, "seed");
  if (s.lo === null || s.hi === null)
    return {
      stat: s,
      verdict: "inconclusive",
      label: `inconclusive (${seeds})`,
      how: `no interval: ${seeds} and no items`,
    };
  const how = `item-level 95% CI [${f2(s.lo)}, ${f2(s.hi)}] (${seeds}: seeds not resampled)`;
  return v === "inconclusive"
    ? { stat: s, verdict: v, label: `inconclusive (${seeds})`, how }
    : { stat: s, verdict: v, label: v, how };
}

/** Per model entry: its measure averaged over orders and seeds, and its seed count. */
function perSeed(e: ModelEntry, what: Measure): string {
  const cells = cellsOf(e, what);
  const v = mean(cells.map((rs) => mean(rs.map((r) => measure(r, what, null)))));
  const seeds = Math.min(...cells.map((rs) => rs.length));
  return `${f2(v)} (${plural(seeds, "seed")}${cells.length > 1 ? ` × ${cells.length} orders` : ""})`;
}

type FindingCore = Omit<Finding, "perOrder">;

function notTestable(id: Finding["id"], claim: string, why: string): FindingCore {
  return {
    id,
    claim,
    verdict: "not testable",
    label: "not testable",
    text: `Not testable: ${why}.`,
    stat: null,
  };
}

/**
 * Models with a known size and general FG that are not the base of an instruction-tuned model in
 * the study (BLOOM under BLOOMZ, LLaMA under Alpaca): the paper's scale and architecture findings
 * are about the instruction-tuned zoo, and a pair is finding 3's subject.
 */
function independent(models: Map<string, ModelEntry>): ModelEntry[] {
  const bases = new Set([...models.values()].map((m) => m.facts.base).filter((b) => b !== null));
  return [...models.values()].filter(
    (m) => m.facts.params !== null && cellsOf(m, GENERAL).length && !bases.has(m.facts.name),
  );
}

function scaleFinding(
  models: Map<string, ModelEntry>,
  method: string,
  o: FindingsOptions,
): FindingCore {
  const claim = "Forgetting grows with model scale (decoder-only models of one family).";
  // The family with the most sizes; models without a family form one family.
  const families = new Map<string, ModelEntry[]>();
  for (const m of independent(models).filter((m) => m.facts.architecture === "decoder-only"))
    families.set(m.facts.family ?? "", [...(families.get(m.facts.family ?? "") ?? []), m]);
  const sizeCount = (ms: ModelEntry[]) => new Set(ms.map((m) => m.facts.params)).size;
  const dec = [...families.values()]
    .reduce<ModelEntry[]>((best, ms) => (sizeCount(ms) > sizeCount(best) ? ms : best), [])
    .sort((a, b) => a.facts.params! - b.facts.params!);
  if (sizeCount(dec) < 2)
    return notTestable(
      "scale",
      claim,
      `needs decoder-only models of one family in at least two sizes (method ${method})`,
    );
  const sizes = dec.map((m) => Math.log(m.facts.params!));
  const t = decide(
    dec.map((m) => cellsOf(m, GENERAL)),
    GENERAL,
    (means) => spearman(sizes, means),
    o,
  );
  const list = dec.map((m) => `${m.facts.name} ${perSeed(m, GENERAL)}`).join(", ");
  return {
    id: "scale",
    claim,
    ...t,
    text: `Spearman ρ between size and general FG is ${f2(t.stat.estimate)}, ${t.how} (method ${method}); mean FG from smallest to largest: ${list}.`,
  };
}

function architectureFinding(
  models: Map<string, ModelEntry>,
  method: string,
  o: FindingsOptions,
): FindingCore {
  const claim = "Decoder-only models forget less than encoder-decoder models of similar size.";
  const all = independent(models);
  const dec = all.filter((m) => m.facts.architecture === "decoder-only");
  const encdec = all.filter((m) => m.facts.architecture === "encoder-decoder");
  if (!dec.length || !encdec.length)
    return notTestable(
      "architecture",
      claim,
      `needs decoder-only and encoder-decoder models with known sizes (method ${method})`,
    );
  // Each encoder-decoder model is paired with the decoder-only model closest in log size.
  const pairs = encdec.map((e) => {
    const d = dec.reduce((best, m) =>
      Math.abs(Math.log(m.facts.params! / e.facts.params!)) <
      Math.abs(Math.log(best.facts.params! / e.facts.params!))
        ? m
        : best,
    );
    return [e, d] as const;
  });
  const t = decide(
    pairs.flatMap(([e, d]) => [cellsOf(e, GENERAL), cellsOf(d, GENERAL)]),
    GENERAL,
    (means) => mean(pairs.map((_, i) => means[2 * i] - means[2 * i + 1])),
    o,
  );
  const list = pairs
    .map(
      ([e, d]) =>
        `${e.facts.name} ${perSeed(e, GENERAL)} vs ${d.facts.name} ${perSeed(d, GENERAL)}`,
    )
    .join("; ");
  return {
    id: "architecture",
    claim,
    ...t,
    text: `Encoder-decoder minus decoder-only general FG, averaged over size-matched pairs: ${f2(t.stat.estimate)}, ${t.how} (method ${method}); ${list}.`,
  };
}

function instructionFinding(
  models: Map<string, ModelEntry>,
  method: string,
  o: FindingsOptions,
): FindingCore {
  const claim =
    "A general instruction-tuned start (e.g. Alpaca) forgets less than its base (e.g. LLaMA).";
  const pairs = [...models.values()]
    .filter(
      (m) =>
        m.facts.base !== null &&
        cellsOf(m, GENERAL).length &&
        models.has(m.facts.base) &&
        cellsOf(models.get(m.facts.base)!, GENERAL).length,
    )
    .map((m) => [models.get(m.facts.base!)!, m] as const);
  if (!pairs.length)
    return notTestable(
      "instruction",
      claim,
      `needs an instruction-tuned model and its base in the study (run card model.base; method ${method})`,
    );
  const t = decide(
    pairs.flatMap(([b, tuned]) => [cellsOf(b, GENERAL), cellsOf(tuned, GENERAL)]),
    GENERAL,
    (means) => mean(pairs.map((_, i) => means[2 * i] - means[2 * i + 1])),
    o,
  );
  const list = pairs
    .map(
      ([b, tuned]) =>
        `${b.facts.name} ${perSeed(b, GENERAL)} vs ${tuned.facts.name} ${perSeed(tuned, GENERAL)}`,
    )
    .join("; ");
  return {
    id: "instruction",
    claim,
    ...t,
    text: `Base minus instruction-tuned general FG: ${f2(t.stat.estimate)}, ${t.how} (method ${method}); ${list}.`,
  };
}

function biasFinding(
  models: Map<string, ModelEntry>,
  method: string,
  o: FindingsOptions,
): FindingCore {
  const claim = "Bias falls during continual fine-tuning (FG on the bias category > 0).";
  const withBias = [...models.values()]
    .filter((m) => cellsOf(m, BIAS_CATEGORY).length)
    .sort((a, b) => compareModels(a.facts, b.facts));
  if (!withBias.length)
    return notTestable(
      "bias",
      claim,
      `no run of method ${method} has a "${BIAS_CATEGORY}" category`,
    );
  const t = decide(
    withBias.map((m) => cellsOf(m, BIAS_CATEGORY)),
    BIAS_CATEGORY,
    mean,
    o,
  );
  const list = withBias.map((m) => `${m.facts.name} ${perSeed(m, BIAS_CATEGORY)}`).join(", ");
  return {
    id: "bias",
    claim,
    ...t,
    text: `Mean FG on bias (positive: pct_stereotype fell) over ${plural(withBias.length, "model")}: ${f2(t.stat.estimate)}, ${t.how} (method ${method}); ${list}.`,
  };
}

/** The method compared by default: the one with the most runs (ties: alphabetical). */
export function defaultMethod(runs: readonly RunSummary[]): string {
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(r.method, (counts.get(r.method) ?? 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!sorted.length) throw new Error("findings: no runs");
  return sorted[0][0];
}

const FINDINGS = [scaleFinding, architectureFinding, instructionFinding, biasFinding];

/** The four findings, in the paper's order; with several task orders, each also per order. */
export function findings(runs: readonly RunSummary[], options: FindingsOptions = {}): Finding[] {
  const method = options.method ?? defaultMethod(runs);
  if (!runs.some((r) => r.method === method))
    throw new Error(`findings: no run uses method "${method}"`);
  const orders = [...byOrder(runs.filter((r) => r.method === method)).keys()];
  const models = byModel(runs, method);
  const perOrder =
    orders.length < 2
      ? []
      : orders.map((order) => ({
          order,
          models: byModel(
            runs.filter((r) => (r.order ?? "") === order),
            method,
          ),
        }));
  return FINDINGS.map((f) => ({
    ...f(models, method, options),
    perOrder: perOrder.map((p) => {
      const x = f(p.models, method, options);
      return { order: p.order, verdict: x.verdict, label: x.label, stat: x.stat };
    }),
  }));
}
