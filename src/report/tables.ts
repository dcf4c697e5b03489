/**
 * Tables of a study: the FG table laid out like Luo et al. 2023 (arXiv 2308.08747, Tables 1–3:
 * one row per category, one column per model) with 95% CIs, written as HTML, Markdown, CSV and
 * LaTeX (booktabs); and the per-run metrics table that `lethe compare` prints.
 *
 * A cell is the mean FG over the seeds of one model × method (orders averaged). Its interval is
 * the hierarchical bootstrap of findings.ts (`cellInterval`: seeds, then items within each seed's
 * benchmarks) when the runs kept items or there are two or more seeds; else, for a single run
 * whose category holds one benchmark, that benchmark's item-bootstrap interval from results.json
 * `fg.ci`, which is keyed by benchmark (results.json `categories` maps it to its category).
 */
import { cellInterval, generalFg, groupBootstrap, summarize } from "./findings.js";
import { categoriesOf, groupRuns, type Run } from "./runs.js";

export interface Cell {
  mean: number;
  lo: number | null;
  hi: number | null;
  seeds: number;
}

/** The FG table of one method: one row per category, one column per model. */
export interface FgTable {
  method: string;
  categories: string[];
  models: string[];
  /** cells[category][model]; null where no run of the model has the category. */
  cells: (Cell | null)[][];
}

/**
 * Mean over seeds with a bootstrap interval (two or more values) or the given one; null when no
 * value is finite.
 */
export function seedCell(all: readonly number[], single?: [number, number]): Cell | null {
  const values = all.filter(Number.isFinite); // NaN: a partial run's metric not computable yet
  if (!values.length) return null;
  const s = groupBootstrap([values], (m) => m[0]);
  const [lo, hi] =
    s.lo !== null ? [s.lo, s.hi] : values.length === 1 && single ? single : [null, null];
  return { mean: s.estimate, lo, hi, seeds: values.length };
}

/**
 * One FG table per method, models in report order; the method run on the most models first (the
 * paper's table: sequential fine-tuning across the zoo), then by name.
 */
export function fgTables(runs: readonly Run[]): FgTable[] {
  const groups = groupRuns(runs);
  const categories = categoriesOf(runs);
  const models = (m: string) => groups.filter((g) => g.method === m).length;
  const methods = [...new Set(groups.map((g) => g.method))];
  methods.sort((a, b) => models(b) - models(a) || a.localeCompare(b));
  return methods.map((method) => {
    const gs = groups.filter((g) => g.method === method);
    return {
      method,
      categories,
      models: gs.map((g) => g.model.name),
      cells: categories.map((c) =>
        gs.map((g) => {
          const rs = g.runs.filter((r) => Number.isFinite(r.results.fg.perCategory[c]));
          if (!rs.length) return null;
          const s = cellInterval(rs.map(summarize), c);
          return {
            mean: s.estimate,
            ...(s.lo !== null || rs.length > 1 ? { lo: s.lo, hi: s.hi } : storedCi(rs[0], c)),
            seeds: rs.length,
          };
        }),
      ),
    };
  });
}

/** A run's own interval for a category of one benchmark: results.json `fg.ci[benchmark]`. */
function storedCi(run: Run, category: string): { lo: number | null; hi: number | null } {
  const r = run.results;
  const bs = Object.keys(r.categories).filter((b) => r.categories[b] === category);
  const ci = bs.length === 1 ? r.fg.ci?.[bs[0]] : undefined;
  return ci ? { lo: ci[0], hi: ci[1] } : { lo: null, hi: null };
}

const f2 = (x: number) => x.toFixed(2);
const hasCi = (c: Cell): c is Cell & { lo: number; hi: number } => c.lo !== null && c.hi !== null;

export function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );
}

/** HTML table; cells are shaded by FG (red: forgetting, blue: gain) relative to the largest |FG|. */
export function fgTableHtml(t: FgTable): string {
  const max = Math.max(1e-9, ...t.cells.flat().map((c) => (c ? Math.abs(c.mean) : 0)));
  const head = t.models.map((m) => `<th>${esc(m)}</th>`).join("");
  const rows = t.categories.map((cat, i) => {
    const tds = t.cells[i].map((c) => {
      if (!c) return `<td class="na">–</td>`;
      const a = ((Math.abs(c.mean) / max) * 0.45).toFixed(3);
      const bg = c.mean >= 0 ? `rgba(214,69,65,${a})` : `rgba(52,120,198,${a})`;
      const ci = hasCi(c) ? `<span class="ci">[${f2(c.lo)}, ${f2(c.hi)}]</span>` : "";
      return `<td style="background:${bg}"><span class="v">${f2(c.mean)}</span>${ci}</td>`;
    });
    return `<tr><th scope="row">${esc(cat)}</th>${tds.join("")}</tr>`;
  });
  return `<table class="fg"><thead><tr><th>category</th>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** Markdown: per method, a heading line and the table. */
export function fgTableMarkdown(tables: readonly FgTable[]): string {
  return tables.map((t) => `FG, method ${t.method}\n\n${markdownTable(t)}`).join("\n");
}

function markdownTable(t: FgTable): string {
  const cell = (c: Cell | null) =>
    !c ? "–" : hasCi(c) ? `${f2(c.mean)} [${f2(c.lo)}, ${f2(c.hi)}]` : f2(c.mean);
  const lines = [
    `| category | ${t.models.join(" | ")} |`,
    `| --- | ${t.models.map(() => "---:").join(" | ")} |`,
    ...t.categories.map((cat, i) => `| ${cat} | ${t.cells[i].map(cell).join(" | ")} |`),
  ];
  return lines.join("\n") + "\n";
}

/** Long format, one row per category × column; numbers rounded to 6 decimals. */
export function fgTableCsv(tables: readonly FgTable[]): string {
  const num = (x: number | null) => (x === null ? "" : String(+x.toFixed(6)));
  const field = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = ["category,model,method,fg,ci_lo,ci_hi,seeds"];
  for (const t of tables)
    t.categories.forEach((cat, i) =>
      t.models.forEach((model, j) => {
        const c = t.cells[i][j];
        if (c)
          lines.push(
            [cat, model, t.method].map(field).join(",") +
              `,${num(c.mean)},${num(c.lo)},${num(c.hi)},${c.seeds}`,
          );
      }),
    );
  return lines.join("\n") + "\n";
}

function texEscape(s: string): string {
  return s.replace(/[\\&%$#_{}]/g, (ch) => (ch === "\\" ? "\\textbackslash{}" : `\\${ch}`));
}

/** One booktabs tabular per method (needs \usepackage{booktabs}), each after a comment line. */
export function fgTableLatex(tables: readonly FgTable[]): string {
  return tables.map((t) => `% FG, method ${t.method}\n${latexTable(t)}`).join("\n");
}

function latexTable(t: FgTable): string {
  const cell = (c: Cell | null) =>
    !c ? "--" : hasCi(c) ? `${f2(c.mean)} {\\scriptsize [${f2(c.lo)}, ${f2(c.hi)}]}` : f2(c.mean);
  return (
    [
      `\\begin{tabular}{l${"r".repeat(t.models.length)}}`,
      "\\toprule",
      `category & ${t.models.map(texEscape).join(" & ")} \\\\`,
      "\\midrule",
      ...t.categories.map(
        (cat, i) => `${texEscape(cat)} & ${t.cells[i].map(cell).join(" & ")} \\\\`,
      ),
      "\\bottomrule",
      "\\end{tabular}",
    ].join("\n") + "\n"
  );
}

const RUN_METRICS = ["avg_acc", "bwt", "fwt", "forgetting", "plasticity"] as const;

/** Continual-task metrics per model × method, mean over seeds with CIs, as HTML. */
export function metricsTableHtml(runs: readonly Run[]): string {
  const groups = groupRuns(runs);
  const rows = groups.map((g) => {
    const gen = g.runs.map((r) => generalFg(r.results.fg.perCategory)).filter((x) => x !== null);
    const cells = [
      seedCell(gen),
      ...RUN_METRICS.map((m) => seedCell(g.runs.map((r) => r.results[m]))),
    ].map((c) =>
      !c
        ? `<td class="na">–</td>`
        : `<td><span class="v">${f2(c.mean)}</span>${hasCi(c) ? `<span class="ci">[${f2(c.lo)}, ${f2(c.hi)}]</span>` : ""}</td>`,
    );
    return `<tr><th scope="row">${esc(g.model.name)}</th><td class="method">${esc(g.method)}</td><td>${g.runs.length}</td>${cells.join("")}</tr>`;
  });
  const head = ["model", "method", "seeds", "general FG", ...RUN_METRICS].map(
    (h) => `<th>${h}</th>`,
  );
  return `<table class="metrics"><thead><tr>${head.join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

/** Runs side by side (`lethe compare`): one row per FG category and metric, one column per run. */
export function runsMarkdown(runs: readonly Run[]): string {
  const cats = categoriesOf(runs);
  const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "–" : f2(x));
  const rows: [string, (r: Run) => number | undefined][] = [
    ...cats.map((c): [string, (r: Run) => number | undefined] => [
      `FG ${c}`,
      (r) => r.results.fg.perCategory[c],
    ]),
    ...RUN_METRICS.map((m): [string, (r: Run) => number | undefined] => [m, (r) => r.results[m]]),
  ];
  return (
    [
      `| metric | ${runs.map((r) => r.results.run.name).join(" | ")} |`,
      `| --- | ${runs.map(() => "---:").join(" | ")} |`,
      ...rows.map(([name, get]) => `| ${name} | ${runs.map((r) => fmt(get(r))).join(" | ")} |`),
    ].join("\n") + "\n"
  );
}
