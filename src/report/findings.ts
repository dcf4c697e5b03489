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
 * Uncertainty: percentile bootstrap (Efron & Tibshirani 1993, §13.3) over seeds, resampled within
 * each model independently (a stratified bootstrap); a verdict is "confirmed" when the 95% interval
 * of the statistic lies above 0, "not confirmed" when it lies at or below 0, "inconclusive" when it
 * straddles 0 or a model has a single seed (no interval), "not testable" when the study lacks the
 * models the comparison needs.
 */
import { makeRng, randomInt } from "../continual/rng.js";
import { compareModels, type ModelFacts } from "./runs.js";

export const BIAS_CATEGORY = "bias";

/** What the findings see of one run. */
export interface RunSummary {
  model: ModelFacts;
  method: string;
  seed: number;
  /** FG per category (results.json `fg.perCategory`). */
  fg: Record<string, number>;
}

export type Verdict = "confirmed" | "not confirmed" | "inconclusive" | "not testable";

export interface Interval {
  estimate: number;
  /** null when some group has fewer than two seeds. */
  lo: number | null;
  hi: number | null;
}

export interface Finding {
  id: "scale" | "architecture" | "instruction" | "bias";
  claim: string;
  verdict: Verdict;
  /** The numbers behind the verdict (or what the study lacks), as a sentence. */
  text: string;
  /** The tested statistic (null when not testable). */
  stat: Interval | null;
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

function verdictOf(s: Interval): Verdict {
  if (s.lo === null || s.hi === null) return "inconclusive";
  if (s.lo > 0) return "confirmed";
  if (s.hi <= 0) return "not confirmed";
  return "inconclusive";
}

const f2 = (x: number) => x.toFixed(2);
function ciText(s: Interval): string {
  return s.lo === null || s.hi === null
    ? "no interval: a model has one seed"
    : `95% CI [${f2(s.lo)}, ${f2(s.hi)}]`;
}
/** Per model (in first-seen order): facts and general FG per seed, for one method. */
function byModel(runs: readonly RunSummary[], method: string) {
  const out = new Map<string, ModelEntry>();
  for (const r of runs) {
    if (r.method !== method) continue;
    const e = out.get(r.model.name) ?? { facts: r.model, fg: [], bias: [] };
    const g = generalFg(r.fg);
    if (g !== null) e.fg.push(g);
    if (Number.isFinite(r.fg[BIAS_CATEGORY])) e.bias.push(r.fg[BIAS_CATEGORY]);
    out.set(r.model.name, e);
  }
  return out;
}

type ModelEntry = { facts: ModelFacts; fg: number[]; bias: number[] };

/**
 * Models with a known size and general FG that are not the instruction-tuned member of a pair
 * present in the study (those are finding 3's subject and would confound 1 and 2).
 */
function independent(models: Map<string, ModelEntry>): ModelEntry[] {
  return [...models.values()].filter(
    (m) =>
      m.facts.params !== null &&
      m.fg.length &&
      !(m.facts.base !== null && models.has(m.facts.base)),
  );
}

const perSeed = (xs: readonly number[]) =>
  `${f2(mean(xs))} (${xs.length} seed${xs.length === 1 ? "" : "s"})`;

function notTestable(id: Finding["id"], claim: string, why: string): Finding {
  return { id, claim, verdict: "not testable", text: `Not testable: ${why}.`, stat: null };
}

function finding(id: Finding["id"], claim: string, stat: Interval, body: string): Finding {
  return { id, claim, verdict: verdictOf(stat), stat, text: body };
}

function scaleFinding(models: ReturnType<typeof byModel>, method: string, o: FindingsOptions) {
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
  const stat = groupBootstrap(
    dec.map((m) => m.fg),
    (means) => spearman(sizes, means),
    o,
  );
  const list = dec.map((m) => `${m.facts.name} ${perSeed(m.fg)}`).join(", ");
  return finding(
    "scale",
    claim,
    stat,
    `Spearman ρ between size and general FG is ${f2(stat.estimate)}, ${ciText(stat)} (method ${method}); mean FG from smallest to largest: ${list}.`,
  );
}

function architectureFinding(
  models: ReturnType<typeof byModel>,
  method: string,
  o: FindingsOptions,
) {
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
  const stat = groupBootstrap(
    pairs.flatMap(([e, d]) => [e.fg, d.fg]),
    (means) => mean(pairs.map((_, i) => means[2 * i] - means[2 * i + 1])),
    o,
  );
  const list = pairs
    .map(([e, d]) => `${e.facts.name} ${perSeed(e.fg)} vs ${d.facts.name} ${perSeed(d.fg)}`)
    .join("; ");
  return finding(
    "architecture",
    claim,
    stat,
    `Encoder-decoder minus decoder-only general FG, averaged over size-matched pairs: ${f2(stat.estimate)}, ${ciText(stat)} (method ${method}); ${list}.`,
  );
}

function instructionFinding(
  models: ReturnType<typeof byModel>,
  method: string,
  o: FindingsOptions,
) {
  const claim =
    "A general instruction-tuned start (e.g. Alpaca) forgets less than its base (e.g. LLaMA).";
  const pairs = [...models.values()]
    .filter((m) => m.facts.base !== null && m.fg.length && models.get(m.facts.base)?.fg.length)
    .map((m) => [models.get(m.facts.base!)!, m] as const);
  if (!pairs.length)
    return notTestable(
      "instruction",
      claim,
      `needs an instruction-tuned model and its base in the study (run card model.base; method ${method})`,
    );
  const stat = groupBootstrap(
    pairs.flatMap(([b, t]) => [b.fg, t.fg]),
    (means) => mean(pairs.map((_, i) => means[2 * i] - means[2 * i + 1])),
    o,
  );
  const list = pairs
    .map(([b, t]) => `${b.facts.name} ${perSeed(b.fg)} vs ${t.facts.name} ${perSeed(t.fg)}`)
    .join("; ");
  return finding(
    "instruction",
    claim,
    stat,
    `Base minus instruction-tuned general FG: ${f2(stat.estimate)}, ${ciText(stat)} (method ${method}); ${list}.`,
  );
}

function biasFinding(models: ReturnType<typeof byModel>, method: string, o: FindingsOptions) {
  const claim = "Bias falls during continual fine-tuning (FG on the bias category > 0).";
  const withBias = [...models.values()]
    .filter((m) => m.bias.length)
    .sort((a, b) => compareModels(a.facts, b.facts));
  if (!withBias.length)
    return notTestable(
      "bias",
      claim,
      `no run of method ${method} has a "${BIAS_CATEGORY}" category`,
    );
  const stat = groupBootstrap(
    withBias.map((m) => m.bias),
    mean,
    o,
  );
  const list = withBias.map((m) => `${m.facts.name} ${perSeed(m.bias)}`).join(", ");
  return finding(
    "bias",
    claim,
    stat,
    `Mean FG on bias (positive: pct_stereotype fell) over ${withBias.length} model${withBias.length === 1 ? "" : "s"}: ${f2(stat.estimate)}, ${ciText(stat)} (method ${method}); ${list}.`,
  );
}

/** The method compared by default: the one with the most runs (ties: alphabetical). */
export function defaultMethod(runs: readonly RunSummary[]): string {
  const counts = new Map<string, number>();
  for (const r of runs) counts.set(r.method, (counts.get(r.method) ?? 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (!sorted.length) throw new Error("findings: no runs");
  return sorted[0][0];
}

/** The four findings, in the paper's order. */
export function findings(runs: readonly RunSummary[], options: FindingsOptions = {}): Finding[] {
  const method = options.method ?? defaultMethod(runs);
  if (!runs.some((r) => r.method === method))
    throw new Error(`findings: no run uses method "${method}"`);
  const models = byModel(runs, method);
  return [
    scaleFinding(models, method, options),
    architectureFinding(models, method, options),
    instructionFinding(models, method, options),
    biasFinding(models, method, options),
  ];
}
