/**
 * The method comparison ranked: per model run with several methods (a combination such as
 * `replay+lwf` counts as one method), its methods ordered by general FG (lower is better) and by
 * BWT (higher is better), each with its 95% interval, and each method's difference to
 * `sequential` with a verdict. Pure functions from run summaries to rankings and their Markdown
 * and HTML tables; nothing here reads files.
 *
 * Reference: Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language
 * Models During Continual Fine-tuning", arXiv 2308.08747, §5 (what mitigates forgetting); BWT as
 * Lopez-Paz & Ranzato 2017 (src/continual/metrics.ts).
 *
 * Statistics are findings.ts's, not a second bootstrap: a method's value is the mean over task
 * orders (a fixed factor) of the mean over seeds; its interval is `cellInterval` (seeds, then
 * items within each benchmark; BWT has no items). The difference to `sequential` is `decide` over
 * the two methods' runs on the orders both ran, paired by seed when both ran the same seeds in
 * every order: "less forgetting" / "more forgetting" when the 95% interval excludes 0, else
 * "inconclusive"; with fewer than 3 seeds, "inconclusive (n seeds)" unless the item-level interval
 * alone (seeds fixed) excludes 0.
 */
import {
  BWT,
  GENERAL,
  byOrder,
  cellInterval,
  decide,
  type FindingsOptions,
  type Interval,
  measure,
  type Measure,
  type RunSummary,
} from "./findings.js";
import { compareModels, type ModelFacts } from "./runs.js";
import { esc } from "./tables.js";

/** The method every other one is compared with. */
export const BASELINE = "sequential";

/** The ranking's statistical method, as the report states it. */
export const RANKING_METHOD = `Per model, methods ordered by general FG (lower is better) and by BWT (higher is better): mean over seeds, task orders a fixed factor, 95% hierarchical percentile bootstrap intervals (seeds, then items within each benchmark; BWT has no items). Each difference to ${BASELINE} is bootstrapped the same way over the orders both ran, paired by seed when the seeds match; less / more forgetting: its 95% interval excludes 0; with fewer than 3 seeds a verdict needs the item-level interval alone (seeds fixed) to exclude 0, else it is inconclusive (n seeds).`;

export type RankVerdict = "less forgetting" | "more forgetting" | "inconclusive";

/** A method minus `sequential` on one measure. */
export interface Difference {
  stat: Interval;
  verdict: RankVerdict;
  /** As shown: "inconclusive (2 seeds)" says why. */
  label: string;
  /** Whether the seeds were resampled in pairs (same seeds in every order). */
  paired: boolean;
}

/** One method of one model. */
export interface RankedMethod {
  method: string;
  /** Fewest seeds in any of its task orders. */
  seeds: number;
  /** General FG: mean over orders of the mean over seeds, with its interval; null if none. */
  fg: Interval | null;
  bwt: Interval | null;
  /** Minus `sequential`; null for `sequential` itself, or when either side lacks the measure. */
  fgVsBaseline: Difference | null;
  bwtVsBaseline: Difference | null;
}

export interface ModelRanking {
  model: ModelFacts;
  /** Lowest general FG first (methods without one last). */
  byFg: RankedMethod[];
  /** Highest BWT first (methods without one last). */
  byBwt: RankedMethod[];
}

const finite = (r: RunSummary, what: Measure) => Number.isFinite(measure(r, what, null));

/** The runs with `what`, per order. */
function cellsOf(runs: readonly RunSummary[], what: Measure): Map<string, RunSummary[]> {
  const out = new Map<string, RunSummary[]>();
  for (const [o, rs] of byOrder(runs)) {
    const kept = rs.filter((r) => finite(r, what)).sort((a, b) => a.seed - b.seed);
    if (kept.length) out.set(o, kept);
  }
  return out;
}

function interval(runs: readonly RunSummary[], what: Measure, o: FindingsOptions): Interval | null {
  const kept = [...cellsOf(runs, what).values()].flat();
  return kept.length ? cellInterval(kept, what, o) : null;
}

/**
 * `method − sequential` on `what`, over the orders both ran; `better` says which sign of the
 * difference means less forgetting.
 */
function difference(
  method: readonly RunSummary[],
  base: readonly RunSummary[],
  what: Measure,
  better: 1 | -1,
  o: FindingsOptions,
): Difference | null {
  const m = cellsOf(method, what);
  const b = cellsOf(base, what);
  const orders = [...m.keys()].filter((k) => b.has(k));
  if (!orders.length) return null;
  const seedsOf = (rs: RunSummary[]) => rs.map((r) => r.seed).join(",");
  const paired = orders.every((k) => seedsOf(m.get(k)!) === seedsOf(b.get(k)!));
  const t = decide(
    [orders.map((k) => m.get(k)!), orders.map((k) => b.get(k)!)],
    what,
    (v) => v[0] - v[1],
    { ...o, paired },
  );
  const verdict: RankVerdict =
    t.verdict === "confirmed"
      ? better > 0
        ? "less forgetting"
        : "more forgetting"
      : t.verdict === "contradicted"
        ? better > 0
          ? "more forgetting"
          : "less forgetting"
        : "inconclusive";
  return { stat: t.stat, verdict, label: verdict === "inconclusive" ? t.label : verdict, paired };
}

/** Sorts by `key` (`sign` 1: ascending), entries without a value last, ties by method name. */
function rankBy(ms: RankedMethod[], key: (m: RankedMethod) => Interval | null, sign: 1 | -1) {
  const v = (m: RankedMethod) => key(m)?.estimate ?? NaN;
  return [...ms].sort((a, b) => {
    const [x, y] = [v(a), v(b)];
    if (Number.isNaN(x) !== Number.isNaN(y)) return Number.isNaN(x) ? 1 : -1;
    return (Number.isNaN(x) ? 0 : sign * (x - y)) || a.method.localeCompare(b.method);
  });
}

/** Per model with two or more methods (report order), its methods ranked by general FG and BWT. */
export function rankMethods(
  runs: readonly RunSummary[],
  options: FindingsOptions = {},
): ModelRanking[] {
  const models = new Map<string, { facts: ModelFacts; methods: Map<string, RunSummary[]> }>();
  for (const r of runs) {
    const e = models.get(r.model.name) ?? { facts: r.model, methods: new Map() };
    e.methods.set(r.method, [...(e.methods.get(r.method) ?? []), r]);
    models.set(r.model.name, e);
  }
  return [...models.values()]
    .filter((e) => e.methods.size >= 2)
    .sort((a, b) => compareModels(a.facts, b.facts))
    .map(({ facts, methods }) => {
      const base = methods.get(BASELINE);
      const ranked = [...methods].map(([method, rs]): RankedMethod => {
        const vs = (what: Measure, better: 1 | -1) =>
          base && method !== BASELINE ? difference(rs, base, what, better, options) : null;
        return {
          method,
          seeds: Math.min(...[...byOrder(rs).values()].map((c) => c.length)),
          fg: interval(rs, GENERAL, options),
          bwt: interval(rs, BWT, options),
          fgVsBaseline: vs(GENERAL, -1),
          bwtVsBaseline: vs(BWT, 1),
        };
      });
      return {
        model: facts,
        byFg: rankBy(ranked, (m) => m.fg, 1),
        byBwt: rankBy(ranked, (m) => m.bwt, -1),
      };
    });
}

// ---------------------------------------------------------------------------------------------
// Tables

const f2 = (x: number) => x.toFixed(2);
const sign2 = (x: number) => (x > 0 ? "+" : "") + f2(x);

function ci(s: Interval | null, fmt = f2): string {
  if (!s || !Number.isFinite(s.estimate)) return "–";
  return s.lo === null || s.hi === null
    ? fmt(s.estimate)
    : `${fmt(s.estimate)} [${fmt(s.lo)}, ${fmt(s.hi)}]`;
}

const diffText = (d: Difference | null) => (d ? ci(d.stat, sign2) : "–");

type Column = "fg" | "bwt";
const TITLE: Record<Column, string> = {
  fg: "by general FG (lower is better)",
  bwt: "by BWT (higher is better)",
};

function rows(r: ModelRanking, col: Column): string[][] {
  return (col === "fg" ? r.byFg : r.byBwt).map((m, i) => {
    const d = col === "fg" ? m.fgVsBaseline : m.bwtVsBaseline;
    return [
      String(i + 1),
      m.method,
      String(m.seeds),
      ci(col === "fg" ? m.fg : m.bwt),
      diffText(d),
      m.method === BASELINE ? "(baseline)" : (d?.label ?? "–"),
    ];
  });
}

const head = (col: Column) => [
  "rank",
  "method",
  "seeds",
  col === "fg" ? "general FG [95% CI]" : "BWT [95% CI]",
  `− ${BASELINE} [95% CI]`,
  "verdict",
];

/** Markdown: the method line, then per model two tables (by general FG, by BWT); "" if none. */
export function rankingMarkdown(rankings: readonly ModelRanking[]): string {
  if (!rankings.length) return "";
  const table = (r: ModelRanking, col: Column) =>
    [
      `| ${head(col).join(" | ")} |`,
      `| ${head(col)
        .map((_, i) => (i === 1 || i === 5 ? "---" : "---:"))
        .join(" | ")} |`,
      ...rows(r, col).map((cells) => `| ${cells.join(" | ")} |`),
    ].join("\n") + "\n";
  const parts = rankings.flatMap((r) =>
    (["fg", "bwt"] as const).map(
      (col) => `Model ${r.model.name}, ${TITLE[col]}\n\n${table(r, col)}`,
    ),
  );
  return [`Methods ranked\n\n${RANKING_METHOD}\n`, ...parts].join("\n");
}

/** HTML: per model, the two tables side by side. */
export function rankingHtml(rankings: readonly ModelRanking[]): string {
  const table = (r: ModelRanking, col: Column) => {
    const th = head(col)
      .map((h) => `<th>${esc(h)}</th>`)
      .join("");
    const trs = rows(r, col)
      .map(
        (cells) =>
          `<tr>${cells.map((c, i) => (i === 1 || i === 5 ? `<td class="method">${esc(c)}</td>` : `<td>${esc(c)}</td>`)).join("")}</tr>`,
      )
      .join("");
    return `<div class="scroll"><table class="ranking" data-rank="${col}"><caption>${esc(TITLE[col])}</caption><thead><tr>${th}</tr></thead><tbody>${trs}</tbody></table></div>`;
  };
  return rankings
    .map(
      (r) =>
        `<h3 class="method" data-model="${esc(r.model.name)}">model ${esc(r.model.name)}</h3>${table(r, "fg")}${table(r, "bwt")}`,
    )
    .join("");
}
