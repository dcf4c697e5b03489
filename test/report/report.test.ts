import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { compareCommand, reportCommand } from "../../src/cli/report.js";
import { compareRuns, writeReport } from "../../src/report/index.js";
import { forgottenItems, loadRun, loadRuns } from "../../src/report/runs.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-report-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

test("a study report: self-contained HTML plus the FG table in three formats", async () => {
  const study = join(tmp, "study");
  const runDirs = writeStudy(study, {
    models: STUDY_MODELS.slice(0, 4),
    methods: ["full", "replay"],
    seeds: [0, 1],
  });
  const files = await writeReport([study]);
  assert.deepEqual(files, {
    html: join(study, "report.html"),
    md: join(study, "fg.md"),
    csv: join(study, "fg.csv"),
    tex: join(study, "fg.tex"),
  });
  const html = readFileSync(files.html, "utf8");
  assert.doesNotMatch(html, /https?:\/\//i, "no external URL");
  assert.doesNotMatch(html, /<(link|img|iframe)\b|\bsrc=/i, "nothing loaded from elsewhere");
  for (const id of [
    "findings",
    "fg",
    "methods",
    "curves",
    "bias",
    "matrices",
    "forgotten",
    "cards",
  ])
    assert.match(html, new RegExp(`<section id="${id}">`));
  // One heatmap per run, curves and bias per method, scale and method charts.
  const charts = [...html.matchAll(/data-chart="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(charts.filter((c) => c.startsWith("matrix-")).length, runDirs.length);
  for (const c of ["scale", "methods", "curves-full", "curves-replay", "bias-full", "bias-replay"])
    assert.ok(charts.includes(c), c);
  assert.equal((html.match(/data-finding=/g) ?? []).length, 4);
  // Each run's card is shown.
  assert.equal((html.match(/<details/g) ?? []).length, runDirs.length);
  // 4 categories × 4 models × 2 methods, plus the header.
  assert.equal(readFileSync(files.csv, "utf8").trim().split("\n").length, 1 + 4 * 4 * 2);
  assert.match(
    readFileSync(files.md, "utf8"),
    /^FG, method full\n\n\| category \| bloomz-560m \| bloomz-1b1 \| bloomz-3b \| mt0-base \|/,
  );
  assert.match(readFileSync(files.tex, "utf8"), /\\begin\{tabular\}\{lrrrr\}/);
  assert.ok(!readdirSync(study).some((f) => f.includes(".tmp-")), "no temporary file left");
  assert.doesNotMatch(html, /<section id="unfinished">/, "every run finished");
});

test("runs that failed or have no results are listed as unfinished", async () => {
  const study = join(tmp, "unfinished");
  const [done, failed] = writeStudy(study, {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full", "replay"],
    seeds: [0],
  });
  writeFileSync(join(failed, "failed.json"), JSON.stringify({ error: "stage 2: out of <memory>" }));
  mkdirSync(join(study, "runs", "never-started"));
  const html = readFileSync((await writeReport([study])).html, "utf8");
  assert.match(html, /<section id="unfinished"><h2>Unfinished runs<\/h2>/);
  const row = (name: string, state: string, error: string) =>
    `<tr><td>${name}</td><td class="${state}">${state}</td><td>${error}</td><td></td></tr>`;
  assert.ok(html.includes(row(basename(failed), "failed", "stage 2: out of &lt;memory&gt;")));
  assert.ok(html.includes(row("never-started", "incomplete", "")));
  assert.ok(!html.includes(`<tr><td>${basename(done)}</td>`));
});

test("a single run directory, written elsewhere; compare prints runs side by side", async () => {
  const [a, b] = writeStudy(join(tmp, "two"), {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full"],
    seeds: [0, 1],
  });
  const out = join(tmp, "out");
  const files = await writeReport([a], out);
  assert.equal(files.html, join(out, "report.html"));
  assert.match(readFileSync(files.html, "utf8"), /<b>1<\/b>runs/);
  const table = compareRuns([a, b]);
  assert.match(table, /^\| metric \| bloomz-560m-full-s0 \| bloomz-560m-full-s1 \|/);
  assert.match(table, /\n\| FG domain_knowledge \| \d+\.\d\d \| \d+\.\d\d \|\n/);
});

test("forgotten items: right at stage 0, wrong later, from stages/<m>/items/ files", () => {
  const dir = writeStudy(join(tmp, "items"), {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full"],
    seeds: [0],
  })[0];
  const run = loadRun(dir);
  const lines = (stage: number) =>
    readFileSync(join(dir, "stages", String(stage), "items", "mmlu.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  const base = lines(0);
  const later = [1, 2, 3, 4].map(lines);
  const expected = base
    .filter((r) => r.correct)
    .map((r) => ({
      doc_id: r.doc_id,
      text: r.text,
      wrong: [1, 2, 3, 4].filter((s) => !later[s - 1].find((x) => x.doc_id === r.doc_id).correct),
    }))
    .filter((r) => r.wrong.length);
  assert.ok(expected.length > 0);
  assert.deepEqual(forgottenItems(run).mmlu, expected);
});

test("bad input names the file, line and field", () => {
  const dir = writeStudy(join(tmp, "bad"), {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full"],
    seeds: [0],
  })[0];
  const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8"));
  results.fg.perCategory.reasoning = "high";
  writeFileSync(join(dir, "results.json"), JSON.stringify(results));
  assert.throws(
    () => loadRun(dir),
    (e: Error) =>
      e.message.startsWith(join(dir, "results.json")) &&
      e.message.includes('field "fg.perCategory.reasoning"'),
  );
  results.fg.perCategory.reasoning = 1;
  results.format.version = 99;
  writeFileSync(join(dir, "results.json"), JSON.stringify(results));
  assert.throws(() => loadRun(dir), /field "format.version"/);
  results.format.version = 2;
  writeFileSync(join(dir, "results.json"), JSON.stringify(results));
  writeFileSync(
    join(dir, "stages", "2", "items", "piqa.jsonl"),
    '{"doc_id": 1, "correct": true}\n{"doc_id": 2, "correct": "yes"}\n',
  );
  assert.throws(() => loadRun(dir), new RegExp(`piqa\\.jsonl:2: field "correct"`));
  assert.throws(
    () => loadRuns([join(tmp, "nowhere")]),
    /neither a run \(no results\.json\) nor a study/,
  );
});

test("lethe report / lethe compare commands", async () => {
  const [a, b] = writeStudy(join(tmp, "cli"), {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full"],
    seeds: [0, 1],
  });
  const out = join(tmp, "cli-out");
  assert.equal(await reportCommand([a, "--out", out]), 0);
  assert.deepEqual(readdirSync(out).sort(), ["fg.csv", "fg.md", "fg.tex", "report.html"]);
  await assert.rejects(reportCommand([a, "--outt", out]), /Did you mean "--out"\?/);
  await assert.rejects(reportCommand([a, b]), /expected one RUN_DIR, got 2/);
  assert.equal(await compareCommand([a, b, "--out", join(tmp, "cmp")]), 0);
  assert.ok(readdirSync(join(tmp, "cmp")).includes("report.html"));
});

test("a partial run: metrics null in results.json read as NaN and show as –", () => {
  const dir = writeStudy(join(tmp, "partial"), {
    models: STUDY_MODELS.slice(0, 1),
    methods: ["full"],
    seeds: [0],
  })[0];
  const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8"));
  results.bwt = null;
  results.progress = { stagesDone: 2, totalStages: 5 };
  writeFileSync(join(dir, "results.json"), JSON.stringify(results));
  const run = loadRun(dir);
  assert.ok(Number.isNaN(run.results.bwt));
  assert.deepEqual(run.results.progress, { stagesDone: 2, totalStages: 5 });
  assert.match(compareRuns([dir]), /\n\| bwt \| – \|\n/);
});
