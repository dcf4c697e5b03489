/**
 * Assembles the self-contained HTML report: inline CSS, charts as inline SVG (charts.ts), the FG
 * table (tables.ts), the findings (findings.ts), a browser of forgotten items (a little inline
 * script over an inline JSON block) and each run's card. No external URL anywhere, so the file
 * opens offline and from file://.
 *
 * Layout follows the order a reader asks in: does the study back the paper's findings (Luo et
 * al. 2023, arXiv 2308.08747), how large is forgetting (its FG table), how do methods compare,
 * what happened stage by stage, which items were lost, and how the runs were made.
 */
import { STATS_METHOD, type Finding } from "./findings.js";
import { forgottenItems, type Run, type UnfinishedRun } from "./runs.js";
import { esc, fgTableHtml, metricsTableHtml, type FgTable } from "./tables.js";
import { PAPER_SOURCE, paperComparison, paperTableHtml } from "./paper.js";
import { RANKING_METHOD, rankingHtml, type ModelRanking } from "./ranking.js";

export interface Figure {
  id: string;
  title: string;
  svg: string;
}

export interface ReportPage {
  title: string;
  /** Where the runs came from (directories), shown under the title. */
  source: string;
  runs: Run[];
  findings: Finding[];
  /** Per model run with several methods: its methods ranked (ranking.ts). */
  ranking: ModelRanking[];
  fgTables: FgTable[];
  scale: Figure | null;
  methods: Figure | null;
  /** Per method. */
  curves: Figure[];
  bias: Figure[];
  matrices: Figure[];
  /** Runs of the studies that failed or have no results (their rows say why and where the log is). */
  unfinished: UnfinishedRun[];
}

const CSS = `
:root{--ink:#1f2630;--muted:#5d6775;--line:#e3e6ea;--bg:#f5f6f8;--card:#fff;--accent:#2f6fdf}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.5 Inter,system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
header{background:#18202b;color:#fff;padding:28px 0 22px}
header h1{margin:0;font-size:26px;letter-spacing:-.01em}
header .sub{color:#aeb8c6;margin-top:4px}
header .stats{display:flex;gap:10px;flex-wrap:wrap;margin-top:14px}
header .stat{background:#242f3d;border-radius:8px;padding:6px 12px;font-size:13px;color:#d7dee8}
header .stat b{color:#fff;font-size:15px;margin-right:4px}
nav{position:sticky;top:0;z-index:5;background:rgba(255,255,255,.94);border-bottom:1px solid var(--line);backdrop-filter:blur(6px)}
nav .wrap{display:flex;gap:4px;overflow-x:auto}
nav a{color:var(--muted);text-decoration:none;padding:10px 10px;font-weight:500;white-space:nowrap}
nav a:hover{color:var(--accent)}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
section{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:20px 22px;margin:22px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
h2{margin:0 0 4px;font-size:18px}
h3.method{margin:14px 0 4px;font-size:13px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.lead{color:var(--muted);margin:0 0 14px;max-width:900px}
.findings{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:14px;margin-bottom:8px}
.finding{border:1px solid var(--line);border-left:5px solid #9aa3ae;border-radius:10px;padding:12px 14px}
.finding h3{margin:0 0 6px;font-size:14px}
.finding p{margin:6px 0 0;color:#343c47;font-size:13px}
.badge{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600}
.v-confirmed{border-left-color:#2e9d5b}.v-confirmed .badge{background:#e3f5ea;color:#1d7a43}
.v-contradicted{border-left-color:#d64541}.v-contradicted .badge{background:#fbe6e5;color:#b0302c}
.v-inconclusive{border-left-color:#e0a526}.v-inconclusive .badge{background:#fdf3dc;color:#94680b}
.v-not-testable .badge{background:#eceef1;color:#5d6775}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{font-weight:600}thead th{color:var(--muted);font-size:12px;border-bottom:2px solid var(--line)}
th[scope=row],td.method,thead th:first-child{text-align:left}
td .v{font-weight:600}td .ci{display:block;color:var(--muted);font-size:11px}
td.na{color:#aab1bb}
.chart{margin:10px 0 4px}.chart svg{max-width:100%;height:auto}
.chart figcaption{font-weight:600;font-size:13px;margin-bottom:4px}
.grid{display:flex;flex-wrap:wrap;gap:18px 26px}
.grid .chart figcaption{font-size:12px;color:var(--muted)}
.controls{display:flex;gap:10px;flex-wrap:wrap;margin-bottom:10px}
.controls label{font-size:12px;color:var(--muted);display:flex;flex-direction:column;gap:2px}
select,input{font:inherit;padding:5px 8px;border:1px solid #cfd4db;border-radius:6px;background:#fff}
#items{width:100%}#items th,#items td{text-align:left;white-space:normal;vertical-align:top}
#items td.id{white-space:nowrap;font-family:ui-monospace,Menlo,monospace;font-size:12px}
.chip{display:inline-block;background:#fbe6e5;color:#b0302c;border-radius:4px;padding:0 6px;margin:1px 2px;font-size:11px;font-weight:600}
.count{color:var(--muted);font-size:12px;margin:4px 0 8px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:8px}
details{border:1px solid var(--line);border-radius:8px;padding:8px 12px}details[open]{grid-column:1/-1}
summary{cursor:pointer;font-weight:600}
.card{width:100%}.card th{text-align:left;vertical-align:top;color:var(--muted);font-weight:500}
.card td{text-align:left;white-space:normal}
pre{margin:0;font:12px/1.45 ui-monospace,Menlo,monospace;white-space:pre-wrap;word-break:break-word}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
`;

/** Browser of forgotten items: fills #items from the JSON block, filtered by the controls. */
const SCRIPT = `
const data = JSON.parse(document.getElementById("forgotten-data").textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
const LIMIT = 300;
function fill(select, options) {
  select.innerHTML = options.map(([v, label]) => '<option value="' + esc(v) + '">' + esc(label) + "</option>").join("");
}
function benchmarks() {
  const b = data.runs[+$("f-run").value].benchmarks;
  fill($("f-bench"), Object.keys(b).map((k) => [k, k + " (" + b[k].length + ")"]));
}
function show() {
  const run = data.runs[+$("f-run").value];
  const items = run.benchmarks[$("f-bench").value] || [];
  const stage = $("f-stage").value;
  const q = $("f-q").value.toLowerCase();
  const texts = data.texts[$("f-bench").value] || {};
  const hits = items.filter((it) => (stage === "" || it.wrong.includes(+stage)) &&
    (q === "" || it.id.toLowerCase().includes(q) || (texts[it.id] || "").toLowerCase().includes(q)));
  $("f-count").textContent = hits.length + " of " + items.length + " forgotten items" + (hits.length > LIMIT ? " (first " + LIMIT + " shown)" : "");
  $("items").querySelector("tbody").innerHTML = hits.slice(0, LIMIT).map((it) =>
    '<tr><td class="id">' + esc(it.id) + "</td><td>" + it.wrong.map((s) => '<span class="chip">' + s + "</span>").join("") +
    "</td><td>" + esc(texts[it.id] || "") + "</td></tr>").join("");
}
if (data.runs.length) {
  fill($("f-run"), data.runs.map((r, i) => [i, r.name]));
  fill($("f-stage"), [["", "any stage"]].concat(data.stages.map((s) => [s, "stage " + s])));
  benchmarks();
  $("f-run").addEventListener("change", () => { benchmarks(); show(); });
  for (const id of ["f-bench", "f-stage"]) $(id).addEventListener("change", show);
  $("f-q").addEventListener("input", show);
  show();
}
`;

function figure(f: Figure | null, lead = ""): string {
  if (!f) return "";
  return `<figure class="chart" data-chart="${esc(f.id)}"><figcaption>${esc(f.title)}</figcaption>${f.svg}</figure>${lead}`;
}

function findingsHtml(fs: Finding[]): string {
  return fs
    .map(
      (f) =>
        `<div class="finding v-${f.verdict.replace(" ", "-")}" data-finding="${f.id}"><h3>${esc(f.claim)}</h3><span class="badge">${esc(f.label)}</span><p>${esc(f.text)}</p>${perOrderHtml(f)}</div>`,
    )
    .join("");
}

/** With several task orders: the finding's verdict on each order alone. */
function perOrderHtml(f: Finding): string {
  if (!f.perOrder.length) return "";
  const row = (o: Finding["perOrder"][number]) =>
    `<li>${esc(o.order)}: <b>${esc(o.label)}</b>${o.stat ? ` (${o.stat.estimate.toFixed(2)}${o.stat.lo !== null && o.stat.hi !== null ? ` [${o.stat.lo.toFixed(2)}, ${o.stat.hi.toFixed(2)}]` : ""})` : ""}</li>`;
  return `<p>Per task order:</p><ul class="per-order">${f.perOrder.map(row).join("")}</ul>`;
}

function cardValue(v: unknown): string {
  return v !== null && typeof v === "object"
    ? `<pre>${esc(JSON.stringify(v, null, 2))}</pre>`
    : esc(String(v));
}

function cardsHtml(runs: Run[]): string {
  return runs
    .map((r, i) => {
      const rows = Object.entries(r.card)
        .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${cardValue(v)}</td></tr>`)
        .join("");
      const body = rows
        ? `<table class="card">${rows}</table>`
        : `<p class="lead">No run-card.json in ${esc(r.dir)}.</p>`;
      return `<details${i === 0 ? " open" : ""}><summary>${esc(r.results.run.name)}</summary>${body}</details>`;
    })
    .join("");
}

/** The browser's data: per run, per benchmark, forgotten items; texts shared across runs. */
function forgottenJson(runs: Run[]): string {
  const texts: Record<string, Record<string, string>> = {};
  const stages = new Set<number>();
  const out = runs.map((r) => {
    const benchmarks: Record<string, { id: string; wrong: number[] }[]> = {};
    for (const [b, items] of Object.entries(forgottenItems(r))) {
      benchmarks[b] = items.map((it) => {
        if (it.text !== undefined) (texts[b] ??= {})[it.doc_id] = it.text;
        it.wrong.forEach((s) => stages.add(s));
        return { id: it.doc_id, wrong: it.wrong };
      });
    }
    return { name: r.results.run.name, benchmarks };
  });
  const data = {
    runs: out.filter((r) => Object.keys(r.benchmarks).length),
    texts,
    stages: [...stages].sort((a, b) => a - b),
  };
  return JSON.stringify(data).replace(/</g, "\\u003c");
}

/** The paper's published Tables 4–6 beside this study's, for models whose names match; or nothing. */
function paperHtml(p: ReportPage): string {
  const method = p.fgTables[0]?.method;
  const rows = method === undefined ? [] : paperComparison(p.runs, method);
  if (!rows.length) return "";
  return `<section id="paper"><h2>The paper's numbers beside this study's</h2><p class="lead">Published values: ${esc(PAPER_SOURCE)}. Each cell: FG (%), under it R<sub>o</sub> → R<sub>-1</sub> (the category's score before the first task and after the last, %). This study: method ${esc(method!)}, finished runs, mean over seeds.</p><div class="scroll">${paperTableHtml(rows)}</div></section>
`;
}

/** The "Unfinished runs" section, or nothing when every run finished. */
function unfinishedHtml(runs: readonly UnfinishedRun[]): string {
  if (runs.length === 0) return "";
  const rows = runs
    .map(
      (r) =>
        `<tr><td>${esc(r.name)}</td><td class="${r.state}">${r.state}</td><td>${esc(r.error ?? "")}</td><td>${r.log ? `<code>${esc(r.log)}</code>` : ""}</td></tr>`,
    )
    .join("");
  return `<section id="unfinished"><h2>Unfinished runs</h2><p class="lead">Runs that failed (their results, if any, stop at the last stage done) or have no results yet; the tables and charts above leave out what they lack.</p><table><thead><tr><th>run</th><th>state</th><th>error</th><th>log</th></tr></thead><tbody>${rows}</tbody></table></section>
`;
}

export function reportHtml(p: ReportPage): string {
  const models = new Set(p.runs.map((r) => r.model.name));
  const methods = new Set(p.runs.map((r) => r.results.run.method));
  const seeds = new Set(p.runs.map((r) => r.results.run.seed));
  const stages = Math.max(...p.runs.map((r) => r.results.stages.length)) - 1;
  const stat = (n: number, what: string) => `<span class="stat"><b>${n}</b>${what}</span>`;
  const nav = [
    ["findings", "Findings"],
    ["fg", "FG table"],
    ["methods", "Methods"],
    ["ranking", "Methods ranked"],
    ["curves", "Benchmarks"],
    ["bias", "Bias"],
    ["matrices", "Accuracy matrices"],
    ["forgotten", "Forgotten items"],
    ["cards", "Run cards"],
  ]
    .map(([id, label]) => `<a href="#${id}">${label}</a>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(p.title)}</title><style>${CSS}</style></head>
<body>
<header><div class="wrap"><h1>${esc(p.title)}</h1><div class="sub">${esc(p.source)}</div>
<div class="stats">${stat(p.runs.length, "runs")}${stat(models.size, "models")}${stat(methods.size, "methods")}${stat(seeds.size, "seeds")}${stat(stages, "stages")}</div></div></header>
<nav><div class="wrap">${nav}</div></nav>
<main class="wrap">
<section id="findings"><h2>The paper's findings, re-tested</h2>
<p class="lead">Luo et al. (2023) report four findings. Each verdict below comes from this study's runs. Method: ${esc(STATS_METHOD)}</p>
<div class="findings">${findingsHtml(p.findings)}</div>${figure(p.scale)}</section>
<section id="fg"><h2>Forgetting (FG) per category</h2>
<p class="lead">FG = mean over stages of the relative drop from the starting score, in percent (positive = forgotten; for bias, positive = less stereotyped). Mean over seeds, 95% CI below. Also written as fg.md, fg.csv and fg.tex.</p>
${p.fgTables.map((t) => `<h3 class="method">method ${esc(t.method)}</h3><div class="scroll">${fgTableHtml(t)}</div>`).join("")}</section>
${paperHtml(p)}<section id="methods"><h2>Method comparison</h2>
<p class="lead">General FG (mean of the non-bias categories) and the continual-task metrics of each model and method: mean over seeds, 95% CI below.</p>
${figure(p.methods)}<div class="scroll">${metricsTableHtml(p.runs)}</div></section>
<section id="ranking"><h2>Methods ranked</h2>
<p class="lead">${esc(RANKING_METHOD)}</p>
${rankingHtml(p.ranking) || `<p class="lead">No model was run with more than one method.</p>`}</section>
<section id="curves"><h2>General benchmarks over stages</h2>
<p class="lead">Primary score of each benchmark after each stage (stage 0 is the starting model); line: mean over seeds, band: range over seeds.</p>
${p.curves.map((f) => figure(f)).join("") || `<p class="lead">No benchmark curves in these runs.</p>`}</section>
<section id="bias"><h2>Bias over stages</h2>
<p class="lead">CrowS-Pairs share of pairs where the model prefers the stereotyped sentence (pct_stereotype, lower is less biased), per bias category.</p>
${p.bias.map((f) => figure(f)).join("") || `<p class="lead">No bias benchmarks in these runs.</p>`}</section>
<section id="matrices"><h2>Accuracy matrices</h2>
<p class="lead">R[stage][task]: score on each continual task after each stage, one matrix per run.</p>
<div class="grid">${p.matrices.map((f) => figure(f)).join("")}</div></section>
<section id="forgotten"><h2>Forgotten items</h2>
<p class="lead">Items answered right by the starting model and wrong after a later stage; the red chips are the stages at which each was wrong.</p>
<div class="controls"><label>run<select id="f-run"></select></label><label>benchmark<select id="f-bench"></select></label><label>wrong at<select id="f-stage"></select></label><label>search<input id="f-q" type="search" placeholder="id or text"></label></div>
<div class="count" id="f-count">No item records in these runs (items/&lt;stage&gt;/&lt;benchmark&gt;.jsonl or results.json flips).</div>
<div class="scroll"><table id="items"><thead><tr><th>doc_id</th><th>wrong at stage</th><th>text</th></tr></thead><tbody></tbody></table></div></section>
${unfinishedHtml(p.unfinished)}<section id="cards"><h2>Run cards</h2><p class="lead">Each run's run-card.json: configuration, seeds, code and library versions, hardware, data checksums.</p><div class="cards">${cardsHtml(p.runs)}</div></section>
</main>
<footer>lethe report · ${p.runs.length} run${p.runs.length === 1 ? "" : "s"}</footer>
<script type="application/json" id="forgotten-data">${forgottenJson(p.runs)}</script>
<script>${SCRIPT}</script>
</body></html>
`;
}
