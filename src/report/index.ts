/**
 * The report of one run, a study (`runs/<name>/` folders) or several of either: a self-contained
 * `report.html` plus the FG table as `fg.md`, `fg.csv` and `fg.tex`, each written atomically
 * (temporary file, then rename); fg.md ends with the methods ranked. What the tables, charts,
 * findings and ranking contain, and the references they follow, is in tables.ts, charts.ts,
 * findings.ts and ranking.ts.
 */
import { mkdirSync } from "node:fs";
import { writeAtomic } from "../util/fs.js";
import { basename, join, resolve } from "node:path";
import {
  biasChart,
  curvesChart,
  heatmapChart,
  methodChart,
  renderSvg,
  scaleChart,
  type Chart,
} from "./charts.js";
import {
  defaultMethod,
  findings,
  summarize,
  type FindingsOptions,
  type RunSummary,
} from "./findings.js";
import { reportHtml, type Figure } from "./html.js";
import { rankMethods, rankingMarkdown } from "./ranking.js";
import { compareModels, loadRuns, unfinishedRuns, type Run } from "./runs.js";
import { fgTables, fgTableCsv, fgTableLatex, fgTableMarkdown, runsMarkdown } from "./tables.js";

export interface ReportFiles {
  html: string;
  md: string;
  csv: string;
  tex: string;
}

function summaries(runs: readonly Run[]): RunSummary[] {
  return runs.map(summarize); // with each run's items: the findings' item-level bootstrap
}

async function figure(chart: Chart | null): Promise<Figure | null> {
  return chart && { id: chart.id, title: chart.title, svg: await renderSvg(chart) };
}

async function figures(charts: (Chart | null)[]): Promise<Figure[]> {
  return (await Promise.all(charts.map(figure))).filter((f) => f !== null);
}

/**
 * Writes report.html, fg.md, fg.csv and fg.tex for the runs under `dirs` (run or study
 * directories) into `outDir` (default: the first directory). Returns the paths written.
 */
export async function writeReport(
  dirs: string[],
  outDir: string = dirs[0],
  options: FindingsOptions = {},
): Promise<ReportFiles> {
  const runs = loadRuns(dirs).sort(
    (a, b) =>
      compareModels(a.model, b.model) ||
      a.results.run.method.localeCompare(b.results.run.method) ||
      a.results.run.seed - b.results.run.seed,
  );
  const summary = summaries(runs);
  const method = options.method ?? defaultMethod(summary);
  const ranking = rankMethods(summary, options);
  const tables = fgTables(runs);
  const methods = tables.map((t) => t.method);
  const page = reportHtml({
    title:
      dirs.length === 1
        ? `lethe report: ${basename(resolve(dirs[0]))}`
        : `lethe report: ${dirs.length} directories`,
    source: dirs.map((d) => resolve(d)).join(" · "),
    runs,
    findings: findings(summary, { ...options, method }),
    ranking,
    fgTables: tables,
    scale: await figure(scaleChart(runs, method)),
    methods: await figure(methodChart(runs)),
    curves: await figures(methods.map((m) => curvesChart(runs, m))),
    bias: await figures(methods.map((m) => biasChart(runs, m))),
    matrices: await figures(runs.map((r, i) => heatmapChart(r, i))),
    unfinished: unfinishedRuns(dirs),
  });
  mkdirSync(outDir, { recursive: true });
  const files: ReportFiles = {
    html: join(outDir, "report.html"),
    md: join(outDir, "fg.md"),
    csv: join(outDir, "fg.csv"),
    tex: join(outDir, "fg.tex"),
  };
  writeAtomic(files.html, page);
  writeAtomic(
    files.md,
    [fgTableMarkdown(tables), rankingMarkdown(ranking)].filter(Boolean).join("\n"),
  );
  writeAtomic(files.csv, fgTableCsv(tables));
  writeAtomic(files.tex, fgTableLatex(tables));
  return files;
}

/** Runs side by side as a Markdown table: FG per category and the continual-task metrics. */
export function compareRuns(dirs: string[]): string {
  return runsMarkdown(loadRuns(dirs));
}
