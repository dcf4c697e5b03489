import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunSummary } from "../../src/report/findings.js";
import { writeReport } from "../../src/report/index.js";
import { rankMethods, rankingMarkdown, type ModelRanking } from "../../src/report/ranking.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-ranking-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

/** Runs of one model: per method, general FG per seed (domain_knowledge = reasoning) and BWT. */
function runs(
  model: string,
  methods: Record<string, { fg: number[]; bwt?: number[]; seeds?: number[] }>,
): RunSummary[] {
  return Object.entries(methods).flatMap(([method, m]) =>
    m.fg.map((g, i) => ({
      model: { name: model, params: 1e9, architecture: "decoder-only", base: null, family: "x" },
      method,
      seed: m.seeds?.[i] ?? i,
      fg: { domain_knowledge: g, reasoning: g, bias: 50 },
      bwt: m.bwt?.[i] ?? NaN,
    })),
  );
}

const method = (r: ModelRanking, name: string) => r.byFg.find((m) => m.method === name)!;

test("a clear effect over 4 seeds: less forgetting, ranked first; a null effect: inconclusive", () => {
  const [r] = rankMethods(
    runs("m", {
      sequential: { fg: [10, 11, 9, 10.5], bwt: [-0.2, -0.25, -0.18, -0.22] },
      replay: { fg: [2, 2.5, 1.5, 2.2], bwt: [-0.02, -0.03, -0.01, -0.02] },
      lwf: { fg: [11, 10, 9.5, 10], bwt: [-0.3, -0.1, -0.2, -0.25] },
      "replay+lwf": { fg: [20, 21, 19, 22], bwt: [-0.5, -0.45, -0.55, -0.5] },
    }),
  );
  assert.deepEqual(
    r.byFg.map((m) => m.method),
    ["replay", "lwf", "sequential", "replay+lwf"],
  );
  const replay = method(r, "replay");
  assert.equal(replay.seeds, 4);
  assert.ok(Math.abs(replay.fg!.estimate - 2.05) < 1e-12, "mean over seeds, bias left out");
  assert.ok(replay.fg!.lo! <= 2.05 && replay.fg!.hi! >= 2.05);
  assert.ok(Math.abs(replay.fgVsBaseline!.stat.estimate - (2.05 - 10.125)) < 1e-12);
  assert.equal(replay.fgVsBaseline!.paired, true);
  assert.equal(replay.fgVsBaseline!.label, "less forgetting");
  assert.equal(replay.bwtVsBaseline!.label, "less forgetting", "higher BWT: less forgetting");
  assert.equal(method(r, "lwf").fgVsBaseline!.label, "inconclusive");
  assert.equal(method(r, "replay+lwf").fgVsBaseline!.label, "more forgetting");
  assert.equal(method(r, "replay+lwf").bwtVsBaseline!.label, "more forgetting");
  assert.equal(method(r, "sequential").fgVsBaseline, null);
  console.log(
    "replay − sequential general FG:",
    replay.fgVsBaseline!.stat,
    "lwf:",
    method(r, "lwf").fgVsBaseline!.stat,
  );
});

test("ranking by BWT: highest first, methods without BWT last", () => {
  const [r] = rankMethods(
    runs("m", {
      sequential: { fg: [10, 10, 10], bwt: [-0.3, -0.3, -0.3] },
      ewc: { fg: [8, 8, 8], bwt: [-0.1, -0.12, -0.11] },
      lwf: { fg: [5, 5, 5], bwt: [-0.2, -0.2, -0.2] },
      ema: { fg: [9, 9, 9] },
    }),
  );
  assert.deepEqual(
    r.byBwt.map((m) => m.method),
    ["ewc", "lwf", "sequential", "ema"],
  );
  assert.deepEqual(
    r.byFg.map((m) => m.method),
    ["lwf", "ewc", "ema", "sequential"],
  );
  assert.equal(method(r, "ema").bwt, null);
  assert.equal(method(r, "ema").bwtVsBaseline, null);
});

test("2 seeds: inconclusive (2 seeds) however clear the means, when no items decide", () => {
  const [r] = rankMethods(
    runs("m", {
      sequential: { fg: [10, 11], bwt: [-0.3, -0.31] },
      replay: { fg: [1, 1.5], bwt: [-0.01, -0.02] },
    }),
  );
  assert.equal(r.byFg[0].method, "replay");
  assert.equal(method(r, "replay").seeds, 2);
  assert.equal(method(r, "replay").fgVsBaseline!.label, "inconclusive (2 seeds)");
  assert.equal(method(r, "replay").fgVsBaseline!.verdict, "inconclusive");
  assert.equal(method(r, "replay").bwtVsBaseline!.label, "inconclusive (2 seeds)");
});

test("paired by seed: a shared seed effect cancels; unmatched seeds resample apart", () => {
  const seq = { fg: [5, 15, 25] };
  const [paired] = rankMethods(runs("m", { sequential: seq, replay: { fg: [3, 13, 23] } }));
  const d = method(paired, "replay").fgVsBaseline!;
  assert.equal(d.paired, true);
  for (const x of [d.stat.lo!, d.stat.hi!]) assert.ok(Math.abs(x + 2) < 1e-9, `${x}`);
  assert.equal(d.label, "less forgetting");
  const [apart] = rankMethods(
    runs("m", { sequential: seq, replay: { fg: [3, 13, 23], seeds: [7, 8, 9] } }),
  );
  const u = method(apart, "replay").fgVsBaseline!;
  assert.equal(u.paired, false);
  assert.equal(u.label, "inconclusive");
});

test("only models run with several methods are ranked; no sequential: no differences", () => {
  const rs = [
    ...runs("solo", { sequential: { fg: [1, 2, 3] } }),
    ...runs("pair", { ewc: { fg: [1, 2, 3] }, lwf: { fg: [4, 5, 6] } }),
  ];
  const rankings = rankMethods(rs);
  assert.deepEqual(
    rankings.map((r) => r.model.name),
    ["pair"],
  );
  assert.equal(rankings[0].byFg[0].fgVsBaseline, null);
  assert.match(
    rankingMarkdown(rankings),
    /^Methods ranked\n\n.*bootstrap.*\n\nModel pair, by general FG/,
  );
  assert.equal(rankingMarkdown([]), "");
});

test("the report ranks the methods in fg.md and report.html", async () => {
  const study = join(tmp, "study");
  writeStudy(study, {
    models: STUDY_MODELS.slice(0, 2),
    methods: ["sequential", "replay"],
    seeds: [0, 1, 2],
  });
  const files = await writeReport([study], study, { iters: 500 });
  const md = readFileSync(files.md, "utf8");
  assert.match(md, /^FG, method replay/, "the FG tables still come first");
  assert.match(md, /\nMethods ranked\n\nPer model, methods ordered by general FG/);
  for (const m of STUDY_MODELS.slice(0, 2))
    for (const by of ["by general FG (lower is better)", "by BWT (higher is better)"])
      assert.ok(md.includes(`Model ${m.name}, ${by}`), `${m.name} ${by}`);
  // replay forgets at 0.45 × the rate: ranked first by general FG for each model.
  const firstRows = [...md.matchAll(/by general FG.*\n\n.*\n.*\n\| 1 \| (\S+) \| 3 \|/g)].map(
    (x) => x[1],
  );
  assert.deepEqual(firstRows, ["replay", "replay"]);
  const html = readFileSync(files.html, "utf8");
  assert.match(html, /<section id="ranking"><h2>Methods ranked<\/h2>/);
  assert.equal((html.match(/data-rank="fg"/g) ?? []).length, 2);
  assert.equal((html.match(/data-rank="bwt"/g) ?? []).length, 2);
  assert.match(html, /<a href="#ranking">/);
  console.log(md.slice(md.indexOf("Methods ranked")));
});
