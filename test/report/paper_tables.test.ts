/**
 * The paper's published numbers (src/report/paper.ts) beside a study's: names match across
 * spellings, this study's R_o → R_-1 and FG come from its runs, and the report shows both with
 * the source labelled as secondary transcriptions of arXiv 2308.08747 v5.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeReport } from "../../src/report/index.js";
import { PAPER_MODELS, paperComparison, paperModel } from "../../src/report/paper.js";
import { loadRuns } from "../../src/report/runs.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-paper-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

test("study model names match the paper's models", () => {
  assert.equal(PAPER_MODELS.length, 9);
  for (const [name, paper] of [
    ["bloomz-1b1", "BLOOMZ-1.1b"],
    ["bigscience/bloomz-7b1", "BLOOMZ-7.1b"],
    ["BLOOMZ-1.7b", "BLOOMZ-1.7b"],
    ["bloom-7b1", "BLOOM-7.1b"],
    ["mt0-large", "mT0-1.2b"],
    ["mt0-xl", "mT0-3.7b"],
    ["llama-7b", "LLaMA-7b"],
    ["alpaca-7b", "Alpaca-7b"],
  ])
    assert.equal(paperModel(name)?.name, paper, name);
  assert.equal(paperModel("bloomz-560m"), null);
  assert.equal(paperModel("mt0-base"), null);
  // The published values, spot-checked against the transcription of arXiv 2308.08747 v5, Table 6.
  const mt0xl = paperModel("mt0-xl")!.cells;
  assert.deepEqual(mt0xl.reading_comprehension, { r0: 41.1, rLast: 30.45, fg: 28.42 });
  assert.deepEqual(paperModel("bloomz-3b")!.cells.bias, { r0: 63.9, rLast: 62.14, fg: 2.97 });
  assert.equal(paperModel("llama-7b")!.cells.bias, undefined, "no published bias row for LLaMA");
  // Each published FG is consistent in sign with its R_o → R_-1 drop.
  for (const m of PAPER_MODELS)
    for (const c of Object.values(m.cells)) assert.ok(c && c.r0 > c.rLast && c.fg > 0, m.name);
});

test("the report shows the paper's tables beside this study's for matching models", async () => {
  const study = join(tmp, "study");
  writeStudy(study, { methods: ["full"], seeds: [0, 1] });
  const runs = loadRuns(
    STUDY_MODELS.flatMap((m) => [0, 1].map((s) => join(study, "runs", `${m.name}-full-s${s}`))),
  );
  const rows = paperComparison(runs, "full");
  // bloomz-560m and mt0-base are not the paper's; the other six are.
  assert.deepEqual(rows.map((r) => r.model).sort(), [
    "alpaca-7b",
    "bloomz-1b1",
    "bloomz-3b",
    "llama-7b",
    "mt0-large",
    "mt0-xl",
  ]);
  const row = rows.find((r) => r.model === "bloomz-1b1")!;
  const rs = runs.filter((r) => r.model.name === "bloomz-1b1");
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const dk = row.ours.domain_knowledge!;
  assert.equal(dk.seeds, 2);
  assert.ok(
    Math.abs(dk.fg - mean(rs.map((r) => r.results.fg.perCategory.domain_knowledge))) < 1e-9,
  );
  // R_o: the category's primary metric at stage 0, in percent (mmlu is domain knowledge alone).
  assert.ok(
    Math.abs(dk.r0 - mean(rs.map((r) => r.results.stages[0].general.mmlu["acc,none"] * 100))) <
      1e-9,
  );
  assert.ok(dk.r0 > dk.rLast, "forgetting: the score fell");

  const { html } = await writeReport([study]);
  const text = readFileSync(html, "utf8");
  assert.match(text, /<section id="paper">/);
  assert.match(text, /arXiv 2308\.08747 v5/);
  assert.match(text, /secondary transcriptions/);
  assert.match(text, /mt0-xl <span class="ci">\(paper: mT0-3\.7b\)<\/span>/);
  assert.match(text, /<span class="v">28\.42<\/span><span class="ci">41\.10 → 30\.45<\/span>/);
  assert.doesNotMatch(text, /paper: .*bloomz-560m|bloomz-560m <span class="ci">\(paper/);
});

test("no matching model: no paper section", async () => {
  const study = join(tmp, "other");
  writeStudy(study, { models: [STUDY_MODELS[0]], methods: ["full"], seeds: [0] });
  const { html } = await writeReport([study]);
  assert.doesNotMatch(readFileSync(html, "utf8"), /<section id="paper">/);
});
