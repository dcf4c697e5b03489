/**
 * The built-in miniature study (src/mini/data.ts, study.ts, src/cli/study.ts, and the registered
 * mini tasks in src/eval/tasks/mini.ts and src/continual/tasks/mini.ts): the world's data files
 * load through the ordinary registries and score as the in-memory tasks do; a preset's grid is
 * the paper's comparisons plus the mitigations on one model; and `lethe study --preset quick`
 * runs from nothing to a report, then a second call finds everything done.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expandGrid, parseStudy } from "../../src/continual/config.js";
import { loadTask } from "../../src/continual/tasks/index.js";
import { evaluate } from "../../src/eval/evaluate.js";
import type { LM } from "../../src/eval/lm.js";
import { evaluateMini, MINI_TASK_NAMES } from "../../src/mini/benchmarks.js";
import { writeWorldData } from "../../src/mini/data.js";
import { continualTasks, generalInstructions } from "../../src/mini/instructions.js";
import { PRESETS, studyConfig } from "../../src/mini/study.js";
import { generateWorld } from "../../src/mini/world.js";
import { browserMissing, chartStats, screenshot, withReport } from "../helpers/browser.js";
import { repoRoot } from "../helpers/data.js";
import type { RunResults } from "../../src/continual/results.js";

const tmp = () => mkdtempSync(join(tmpdir(), "lethe-mini-study-"));
const small = { people: 24, stories: 40, general: 60, taskTrain: 20, taskTest: 5 };

/** An LM whose log-likelihood is a fixed function of the text: deterministic, not constant. */
const lengthLM: LM = {
  loglikelihood: async (reqs) =>
    reqs.map((r) => ({ logprob: -((r.continuation.length * 7) % 11), isGreedy: false })),
  loglikelihoodRolling: async (reqs) => reqs.map((r) => -r.length),
  generateUntil: async (reqs) => reqs.map(() => ""),
};

test("world data: the files load through the registries and score as the in-memory tasks", async () => {
  const dir = tmp();
  try {
    const world = generateWorld(5, small);
    const data = writeWorldData(world, join(dir, "world"));
    const fromFiles = await evaluate(lengthLM, [...MINI_TASK_NAMES], {
      dataDir: join(data, "benchmarks"),
    });
    const inMemory = await evaluateMini(lengthLM, world);
    for (const name of MINI_TASK_NAMES) {
      assert.deepEqual(fromFiles.results[name], inMemory.results[name], name);
      assert.ok(fromFiles["n-samples"][name].effective > 0, `${name}: docs read`);
    }
    const tasks = continualTasks(world);
    for (const t of tasks) {
      const loaded = await loadTask(`mini_${t.name}`, data);
      assert.deepEqual(
        loaded.train.map((e) => [e.instruction, e.input, e.output]),
        t.train.map((e) => [e.instruction, e.input, e.output]),
      );
      assert.equal(loaded.test.length, t.test.length);
    }
    const general = await loadTask("mini_general", data);
    assert.equal(general.train.length, generalInstructions(world).length);
    assert.equal(general.test.length, 0);

    // The same world keeps the folder; another world replaces it whole.
    const marker = join(data, "world.json");
    const before = statSync(marker).mtimeMs;
    writeWorldData(world, data);
    assert.equal(statSync(marker).mtimeMs, before, "same world: nothing rewritten");
    // A folder written by other generator code (another content hash) is rewritten.
    const stale = JSON.parse(readFileSync(marker, "utf8"));
    writeFileSync(marker, JSON.stringify({ ...stale, sha256: "0".repeat(64) }));
    writeWorldData(world, data);
    assert.equal(JSON.parse(readFileSync(marker, "utf8")).sha256, stale.sha256);
    writeWorldData(generateWorld(6, small), data);
    assert.equal(JSON.parse(readFileSync(marker, "utf8")).seed, 6);
    assert.deepEqual(readdirSync(dir), ["world"], "no temporary folder left behind");
    await assert.rejects(loadTask("mini_simplification", dir), /world.*not found|not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("presets: sequential on every zoo model, the mitigations on one, instruct paired with base", () => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    const zoo = new Map(Object.keys(preset.zoo).map((m) => [m, `/zoo/${m}`]));
    const study = parseStudy(studyConfig(name, preset, "/data", zoo), name, "/out");
    const runs = expandGrid(study).map((r) => `${r.model.name}/${r.method.label}/${r.seed}`);
    const want: string[] = [];
    for (const m of zoo.keys()) {
      const methods =
        m === preset.methodsModel
          ? ["sequential", ...study.methods.slice(1).map((x) => x.label)]
          : ["sequential"];
      for (const x of methods) for (const s of preset.seeds) want.push(`${m}/${x}/${s}`);
    }
    assert.deepEqual(runs, want, name);
    assert.ok(preset.seeds.length >= 2, `${name}: at least two seeds`);
    assert.deepEqual(study.orders[0].tasks.length, 5, `${name}: five stages`);
    const labels = study.methods.map((m) => m.label);
    assert.ok(labels.includes("replay") && labels.includes("mix_general"), name);
    const instruct = study.config.models.filter((m) => m.base !== undefined);
    assert.equal(instruct.length, 1);
    assert.ok(
      zoo.has(instruct[0].base!),
      `${name}: the instruction-tuned model's base is in the zoo`,
    );
  }
  const preset = PRESETS.quick;
  const zoo = new Map(Object.keys(preset.zoo).map((m) => [m, `/zoo/${m}`]));
  const raw = studyConfig("q", preset, "/data", zoo) as { models: { methods: string[] }[] };
  raw.models[0].methods = ["sequental"];
  assert.throws(
    () => parseStudy(raw, "q.yaml", "/out"),
    /q\.yaml: field "models\.0\.methods\.0": no method labelled "sequental". Did you mean "sequential"/,
  );
});

test("lethe study --preset quick: world, zoo, 5 stages × 2 seeds, report; a rerun trains nothing", async () => {
  const dir = tmp();
  try {
    const out = join(dir, "study");
    const args = [join(repoRoot, "bin", "lethe.js"), "study", "--preset", "quick"];
    const flags = ["--out", out, "--zoo-dir", join(dir, "zoo")];
    const started = performance.now();
    const first = spawnSync(process.execPath, [...args, ...flags], { encoding: "utf8" });
    const seconds = (performance.now() - started) / 1000;
    console.log(`# lethe study --preset quick: ${seconds.toFixed(1)} s`);
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /\[dec-s\] step +\d+\/\d+ loss/, "pretraining progress");
    assert.match(first.stdout, /stage 5\/5 .*step/, "fine-tuning progress");
    assert.match(first.stdout, /FG, method sequential\n\n\| category \| dec-s \|/);
    assert.match(first.stdout, /\| domain_knowledge \|/);
    assert.match(first.stdout, new RegExp(`report: ${join(out, "report.html")}`));

    const runs = readdirSync(join(out, "runs")).sort();
    const models = Object.keys(PRESETS.quick.zoo);
    assert.equal(runs.length, (models.length + 2) * 2, runs.join(", "));
    for (const r of runs) {
      const res = JSON.parse(
        readFileSync(join(out, "runs", r, "results.json"), "utf8"),
      ) as RunResults;
      assert.equal(res.progress?.stagesDone, 6, r);
      assert.deepEqual(Object.keys(res.fg.perCategory).sort(), [
        "bias",
        "domain_knowledge",
        "reading_comprehension",
        "reasoning",
      ]);
    }
    const html = readFileSync(join(out, "report.html"), "utf8");
    for (const id of ["scale", "architecture", "instruction", "bias"])
      assert.match(html, new RegExp(`data-finding="${id}"`), id);
    if (!browserMissing())
      await withReport(join(out, "report.html"), async (page, errors) => {
        const charts = await chartStats(page);
        console.log(`# charts: ${charts.map((c) => `${c.id}=${c.marks}`).join(" ")}`);
        const ids = charts.map((c) => c.id ?? "");
        for (const id of ["scale", "methods", "curves-sequential", "bias-sequential"])
          assert.ok(ids.includes(id), `chart ${id} in [${ids.join(", ")}]`);
        assert.equal(ids.filter((i) => i.startsWith("matrix")).length, runs.length);
        for (const c of charts) assert.ok(c.svgs === 1 && c.marks > 0 && c.width > 50, c.id!);
        assert.deepEqual(errors, []);
        await screenshot(page, join(repoRoot, "test", "mini", "__output__", "report.png"));
      });
    const phases = JSON.parse(readFileSync(join(out, "phases.json"), "utf8"));
    assert.ok(phases.pretrain > 0 && phases.runs > 0 && phases.total >= phases.runs);
    const results = readFileSync(join(out, "runs", runs[0], "results.json"), "utf8");

    const again = spawnSync(process.execPath, [...args, ...flags], { encoding: "utf8" });
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /step +\d+\/\d+ loss/, "nothing is trained again");
    assert.match(again.stdout, /already complete/);
    assert.equal(readFileSync(join(out, "runs", runs[0], "results.json"), "utf8"), results);
    assert.ok(existsSync(join(out, "world", "world.json")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
