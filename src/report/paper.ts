/**
 * The paper's published numbers beside this study's: Luo et al. 2023, "An Empirical Study of
 * Catastrophic Forgetting in Large Language Models During Continual Fine-tuning", arXiv
 * 2308.08747 v5, Tables 4–6 (domain knowledge, reasoning, reading comprehension: the category's
 * score of the starting model R_o, after the last task R_-1, and FG in %) and its bias table
 * (CrowS-Pairs). The values come from secondary transcriptions of the v5 tables, not from the
 * PDF itself; the report labels them so.
 *
 * A study model matches a paper model by name: lowercase, punctuation dropped, the hub org
 * dropped, so "bloomz-1b1", "bigscience/bloomz-1b1" and "BLOOMZ-1.1b" are one model, and mT0's
 * hub sizes (large, xl) match the paper's parameter counts (1.2b, 3.7b).
 */
import { groupRuns, PAPER_CATEGORIES, type Run } from "./runs.js";
import { esc } from "./tables.js";

export const PAPER_SOURCE =
  "Luo et al. 2023, arXiv 2308.08747 v5, Tables 4–6 and the bias table (secondary transcriptions of the v5 tables)";

/** One category of one model in the paper: R_o → R_-1 (percent) and FG (percent). */
export interface PaperCell {
  r0: number;
  rLast: number;
  fg: number;
}

export interface PaperModel {
  /** The paper's name. */
  name: string;
  /** Other spellings (normalized by `normalize`) that name the same model. */
  aliases: string[];
  cells: Partial<Record<(typeof PAPER_CATEGORIES)[number], PaperCell>>;
}

const c = (r0: number, rLast: number, fg: number): PaperCell => ({ r0, rLast, fg });

/** Tables 4–6 (DK, Rs, RC) and the bias table, in the paper's order. */
export const PAPER_MODELS: readonly PaperModel[] = [
  {
    name: "mT0-1.2b",
    aliases: ["mt0large"],
    cells: {
      domain_knowledge: c(26.82, 22.47, 9.18),
      reasoning: c(45.43, 40.22, 7.75),
      reading_comprehension: c(35.06, 29.54, 17.45),
      bias: c(56.31, 53.46, 5.62),
    },
  },
  {
    name: "mT0-3.7b",
    aliases: ["mt0xl"],
    cells: {
      domain_knowledge: c(30.99, 20.14, 20.15),
      reasoning: c(48.61, 38.39, 16.73),
      reading_comprehension: c(41.1, 30.45, 28.42),
      bias: c(57.16, 50.59, 13.1),
    },
  },
  {
    name: "BLOOMZ-1.1b",
    aliases: ["bloomz1b1"],
    cells: {
      domain_knowledge: c(27.19, 23.84, 9.54),
      reasoning: c(47.37, 41.97, 6.73),
      reading_comprehension: c(36.77, 27.28, 18.04),
      bias: c(61.07, 58.65, 6.27),
    },
  },
  {
    name: "BLOOMZ-1.7b",
    aliases: ["bloomz1b7"],
    cells: {
      domain_knowledge: c(28.72, 24.52, 10.72),
      reasoning: c(48.3, 44.96, 6.48),
      reading_comprehension: c(42.65, 30.09, 24.29),
      bias: c(65.18, 56.48, 7.78),
    },
  },
  {
    name: "BLOOMZ-3b",
    aliases: ["bloomz3b"],
    cells: {
      domain_knowledge: c(30.04, 24.29, 14.63),
      reasoning: c(56.17, 47.03, 11.09),
      reading_comprehension: c(48.29, 31.38, 27.56),
      bias: c(63.9, 62.14, 2.97),
    },
  },
  {
    name: "BLOOMZ-7.1b",
    aliases: ["bloomz7b1"],
    cells: {
      domain_knowledge: c(33.08, 25.61, 18.37),
      reasoning: c(59.15, 49.24, 13.62),
      reading_comprehension: c(48.79, 33.05, 26.75),
      bias: c(65.82, 60.61, 7.15),
    },
  },
  {
    name: "BLOOM-7.1b",
    aliases: ["bloom7b1"],
    cells: {
      domain_knowledge: c(29.42, 24.83, 13.54),
      reasoning: c(52.79, 47.76, 6.67),
      reading_comprehension: c(38.25, 31.55, 12.0),
    },
  },
  {
    name: "LLaMA-7b",
    aliases: ["llama7b", "huggyllamallama7b"],
    cells: {
      domain_knowledge: c(37.27, 24.05, 34.57),
      reasoning: c(58.73, 40.38, 31.33),
      reading_comprehension: c(41.36, 27.62, 31.72),
    },
  },
  {
    name: "Alpaca-7b",
    aliases: ["alpaca7b", "alpacanative"],
    cells: {
      domain_knowledge: c(39.29, 29.88, 18.14),
      reasoning: c(60.11, 53.68, 7.56),
      reading_comprehension: c(44.47, 37.61, 10.31),
    },
  },
];

/** Lowercase, hub org dropped, only letters and digits: "bigscience/BLOOMZ-1.1b" → "bloomz11b". */
export function normalize(name: string): string {
  return (name.split("/").pop() ?? name).toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** The paper's model a study model name stands for, or null. */
export function paperModel(name: string): PaperModel | null {
  const n = normalize(name);
  return PAPER_MODELS.find((m) => normalize(m.name) === n || m.aliases.includes(n)) ?? null;
}

/** This study's side of one cell: mean over seeds of the category's R_o, R_-1 (percent) and FG. */
export interface OursCell {
  r0: number;
  rLast: number;
  fg: number;
  seeds: number;
}

export interface PaperRow {
  model: string;
  paper: PaperModel;
  /** ours[category]; null where no finished run of the model has the category. */
  ours: Record<string, OursCell | null>;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A category's score at a stage, as the paper's R: the mean over its benchmarks of the primary
 * metric, in percent (CrowS-Pairs' pct_stereotype included, as its bias table).
 */
function categoryScore(run: Run, category: string, stage: number): number {
  const r = run.results;
  const names = Object.keys(r.categories).filter((b) => r.categories[b] === category);
  const vals = names
    .map((b) => r.stages[stage]?.general[b]?.[r.primaryMetric[b]])
    .filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  return vals.length ? mean(vals) * 100 : NaN;
}

/**
 * The rows of the comparison for one method: every model of the study whose name matches one of
 * the paper's, in report order, with this study's R_o → R_-1 and FG per category beside the
 * paper's. Only runs that finished every stage count.
 */
export function paperComparison(runs: readonly Run[], method: string): PaperRow[] {
  const rows: PaperRow[] = [];
  for (const g of groupRuns(runs)) {
    if (g.method !== method) continue;
    const paper = paperModel(g.model.name);
    if (!paper) continue;
    const done = g.runs.filter((r) => r.results.stages.length === r.results.run.order.length + 1);
    const ours: PaperRow["ours"] = {};
    for (const cat of PAPER_CATEGORIES) {
      const rs = done.filter((r) => Number.isFinite(r.results.fg.perCategory[cat]));
      ours[cat] = rs.length
        ? {
            r0: mean(rs.map((r) => categoryScore(r, cat, 0))),
            rLast: mean(rs.map((r) => categoryScore(r, cat, r.results.stages.length - 1))),
            fg: mean(rs.map((r) => r.results.fg.perCategory[cat])),
            seeds: rs.length,
          }
        : null;
    }
    rows.push({ model: g.model.name, paper, ours });
  }
  return rows;
}

const f2 = (x: number) => x.toFixed(2);
const LABEL: Record<string, string> = {
  domain_knowledge: "DK (Table 4)",
  reasoning: "Rs (Table 5)",
  reading_comprehension: "RC (Table 6)",
  bias: "bias (CrowS-Pairs)",
};

/** HTML: one row per matched model; per category the paper's and this study's R_o → R_-1, FG. */
export function paperTableHtml(rows: readonly PaperRow[]): string {
  if (!rows.length) return "";
  const cell = (x: { r0: number; rLast: number; fg: number } | null | undefined) =>
    !x
      ? `<td class="na">–</td>`
      : `<td><span class="v">${f2(x.fg)}</span><span class="ci">${f2(x.r0)} → ${f2(x.rLast)}</span></td>`;
  const head = PAPER_CATEGORIES.map((c) => `<th colspan="2">${esc(LABEL[c] ?? c)}</th>`).join("");
  const sub = PAPER_CATEGORIES.map(() => `<th>paper</th><th>this study</th>`).join("");
  const body = rows
    .map(
      (r) =>
        `<tr><th scope="row">${esc(r.model)} <span class="ci">(paper: ${esc(r.paper.name)})</span></th>` +
        PAPER_CATEGORIES.map((c) => cell(r.paper.cells[c]) + cell(r.ours[c])).join("") +
        `</tr>`,
    )
    .join("");
  return `<table class="paper"><thead><tr><th rowspan="2">model</th>${head}</tr><tr>${sub}</tr></thead><tbody>${body}</tbody></table>`;
}
