import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModelFacts, Run } from "../../src/report/runs.js";
import {
  fgTableCsv,
  fgTableLatex,
  fgTableMarkdown,
  fgTables,
  runsMarkdown,
} from "../../src/report/tables.js";
import { resultsWithFg } from "./synthetic.js";

function run(
  model: string,
  params: number,
  method: string,
  seed: number,
  fg: Record<string, number>,
  ci?: Record<string, [number, number]>,
): Run {
  const facts: ModelFacts = {
    name: model,
    params,
    architecture: "decoder-only",
    base: null,
    family: "x",
  };
  return {
    dir: `/runs/${model}-${seed}`,
    // results.json keys fg.ci by benchmark; `categories` maps each to its category.
    results: {
      ...resultsWithFg({ model, method, seed }, fg, ci),
      categories: { mmlu: "domain_knowledge", crows_pairs_english: "bias" },
    },
    card: {},
    model: facts,
    items: {},
  };
}

// Two seeds give a bootstrap interval of [min, max]: the 2.5% and 97.5% quantiles of 2000
// resampled means from {a, (a+b)/2, b} are a and b. One seed keeps results.json's own interval
// of its category's one benchmark (fg.ci is keyed by benchmark).
const runs = [
  run("b_big", 1e9, "full", 0, { domain_knowledge: 10.5, bias: -1 }, { mmlu: [9, 12] }),
  run("a-small", 1e8, "full", 0, { domain_knowledge: 2, bias: 1 }),
  run("a-small", 1e8, "full", 1, { domain_knowledge: 4, bias: 3 }),
];

test("FG table as Markdown: categories × models, mean [CI]", () => {
  assert.equal(
    fgTableMarkdown(fgTables(runs)),
    `FG, method full

| category | a-small | b_big |
| --- | ---: | ---: |
| domain_knowledge | 3.00 [2.00, 4.00] | 10.50 [9.00, 12.00] |
| bias | 2.00 [1.00, 3.00] | -1.00 |
`,
  );
});

test("FG table as CSV: long format, empty CI fields where there is none", () => {
  assert.equal(
    fgTableCsv(fgTables(runs)),
    `category,model,method,fg,ci_lo,ci_hi,seeds
domain_knowledge,a-small,full,3,2,4,2
domain_knowledge,b_big,full,10.5,9,12,1
bias,a-small,full,2,1,3,2
bias,b_big,full,-1,,,1
`,
  );
});

test("FG table as LaTeX: booktabs, escaped underscores", () => {
  assert.equal(
    fgTableLatex(fgTables(runs)),
    `% FG, method full
\\begin{tabular}{lrr}
\\toprule
category & a-small & b\\_big \\\\
\\midrule
domain\\_knowledge & 3.00 {\\scriptsize [2.00, 4.00]} & 10.50 {\\scriptsize [9.00, 12.00]} \\\\
bias & 2.00 {\\scriptsize [1.00, 3.00]} & -1.00 \\\\
\\bottomrule
\\end{tabular}
`,
  );
});

test("one FG table per method: the method on most models first, then by name", () => {
  const ewc = run("a-small", 1e8, "ewc", 0, { reasoning: 5 });
  const tables = fgTables([...runs, ewc, run("a-small", 1e8, "anil", 0, { reasoning: 1 })]);
  assert.deepEqual(
    tables.map((t) => t.method),
    ["full", "anil", "ewc"],
  );
  assert.deepEqual(tables[2].models, ["a-small"]);
  assert.deepEqual(tables[2].categories, ["domain_knowledge", "reasoning", "bias"]);
  assert.equal(tables[2].cells[0][0], null); // ewc run has no domain_knowledge
  assert.equal(tables[2].cells[1][0]?.mean, 5);
});

test("runs side by side: FG per category, then the matrix metrics", () => {
  // Matrix [[.2,.2],[.6,.25],[.5,.7]]: avg_acc (.5+.7)/2, bwt .5-.6, fwt .25-.2,
  // forgetting .6-.5, plasticity (.6+.7)/2.
  assert.equal(
    runsMarkdown(runs.slice(0, 2)),
    `| metric | b_big-full-s0 | a-small-full-s0 |
| --- | ---: | ---: |
| FG domain_knowledge | 10.50 | 2.00 |
| FG bias | -1.00 | 1.00 |
| avg_acc | 0.60 | 0.60 |
| bwt | -0.10 | -0.10 |
| fwt | 0.05 | 0.05 |
| forgetting | 0.10 | 0.10 |
| plasticity | 0.65 | 0.65 |
`,
  );
});
