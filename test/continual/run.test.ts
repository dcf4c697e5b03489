/**
 * The study runner (src/continual/study.ts, run.ts, config.ts, lock.ts, runcard.ts, src/cli/run.ts):
 * examples/tiny-study.yaml end to end (every file of the run layout), config errors that name
 * the field and suggest the key, kill -9 at several points followed by resume giving the same
 * results.json bytes as the uninterrupted run (timings are in timings.json only), the lock
 * refusing a second process, the run card written once the data has loaded and again on resume,
 * every registered method running a stage through the runner, θ₀ held only for methods that read
 * it, and `keep: none` with 16-mixed (checkpoints removed once not needed, a resume without them,
 * skipped steps in timings.json, the same results.json as `keep: last`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { expandGrid, loadStudy, parseStudy } from "../../src/continual/config.js";
import { resumeRuns, runProgress, runStudy } from "../../src/continual/study.js";
import { dataFiles } from "../../src/continual/runcard.js";
import { methods } from "../../src/continual/methods/index.js";
import { savePretrained } from "../../src/io/pretrained.js";
import { llamaFamily } from "../../src/models/llama.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";

const TINY = join(repoRoot, "examples", "tiny-study.yaml");
const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const SEQ_RUN = "tiny-llama__sequential__order0__seed0";
const env = { ...process.env, LETHE_DATA: sharedDataRoot };

/** A study of one stage: one task, a few items, one benchmark (seconds, not a minute). */
const reduce = (raw: Record<string, unknown>) => {
  raw.orders = [["haiku"]];
  raw.budget = { maxTrain: 16, maxTest: 2 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 8 };
  raw.train = { ...(raw.train as object), gradAccum: 1, checkpointEvery: 0 };
  raw.general = { task: "alpaca", maxTrain: 16 };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 4 }], maxLength: 256, bootstrapIters: 10 };
};

/** The tiny study with a few fields replaced, written as a config in `dir`. */
function variant(dir: string, change: (raw: Record<string, unknown>) => void): string {
  const raw = loadStudy(TINY, env).config as unknown as Record<string, unknown>;
  change(raw);
  const file = join(dir, "study.json");
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

let reference: string | null = null; // the uninterrupted sequential run's folder

test("tiny-study end to end: every file of the run layout", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const out = mkdtempSync(join(tmpdir(), "lethe-study-"));
  process.on("exit", () => rmSync(out, { recursive: true, force: true })); // after the kill test
  const study = loadStudy(TINY, env);
  const dirs = await runStudy(study, out);
  assert.deepEqual(
    dirs.map((d) => d.split("/").at(-1)),
    [SEQ_RUN, "tiny-llama__replay__order0__seed0"],
  );
  assert.ok(existsSync(join(out, "study.yaml")));
  for (const dir of dirs) {
    for (const f of ["config.yaml", "run-card.json", "results.json", "timings.json"])
      assert.ok(existsSync(join(dir, f)), `${dir}/${f}`);
    const timings = JSON.parse(readFileSync(join(dir, "timings.json"), "utf8"));
    assert.deepEqual(
      timings.stages.map((s: { stage: number }) => s.stage),
      [0, 1, 2, 3],
    );
    assert.ok(!existsSync(join(dir, "lock")), "the lock is released");
    for (let m = 0; m <= 3; m++) {
      const s = join(dir, "stages", String(m));
      for (const f of ["general.json", "tasks.json"]) assert.ok(existsSync(join(s, f)));
      const items = readdirSync(join(s, "items")).sort();
      assert.deepEqual(
        items,
        [
          ...["asset", "boolq", "crows_pairs_english", "esnli", "haiku", "hellaswag", "mmlu"],
          "piqa",
        ].map((n) => `${n}.jsonl`),
      );
      const piqa = readFileSync(join(s, "items", "piqa.jsonl"), "utf8")
        .trim()
        .split("\n");
      assert.equal(piqa.length, 24);
      assert.equal(typeof JSON.parse(piqa[0]).correct, "boolean");
      const general = JSON.parse(readFileSync(join(s, "general.json"), "utf8"));
      assert.ok("acc,none" in general.results.mmlu && "mmlu_anatomy" in general.results);
    }
    for (let m = 1; m <= 3; m++) {
      const ck = readdirSync(join(dir, "checkpoints"))
        .sort()
        .filter((n) => n.startsWith(`${m}-`));
      assert.equal(ck.length, 1);
      assert.deepEqual(readdirSync(join(dir, "checkpoints", ck[0])), ["ckpt-6"]);
    }
    const r = JSON.parse(readFileSync(join(dir, "results.json"), "utf8"));
    assert.deepEqual(r.progress, { stagesDone: 4, totalStages: 4 });
    assert.deepEqual(r.format, { name: "lethe-results", version: 2 });
    for (const s of r.stages)
      assert.deepEqual(Object.keys(s), ["stage", "task", "general", "tasks"], "no wall clock");
    assert.equal(r.matrix.length, 4);
    for (const row of r.matrix) assert.equal(row.length, 3);
    assert.deepEqual(Object.keys(r.fg.perCategory).sort(), [
      "bias",
      "domain_knowledge",
      "reasoning",
    ]);
    for (const k of ["avg_acc", "bwt", "fwt", "forgetting", "plasticity"])
      assert.ok(Number.isFinite(r[k]), k);
    assert.equal(r.final_acc.length, 3);
    assert.equal(r.curves.piqa.length, 4);
    assert.equal(r.flips.piqa.length, 3);
    // FG of piqa recomputed by hand from the curve.
    const c = r.curves.piqa as number[];
    const fg = c.slice(1).reduce((a, x) => a + ((c[0] - x) / c[0]) * 100, 0) / 3;
    assert.ok(Math.abs(r.fg.perBenchmark.piqa - fg) < 1e-9);
    const card = JSON.parse(readFileSync(join(dir, "run-card.json"), "utf8"));
    assert.equal(card.format.name, "lethe-run-card");
    assert.match(card.git.commit ?? "", /^[0-9a-f]{40}$/);
    assert.ok(card.versions.libtorch && card.versions.node);
    assert.ok(card.model.params > 0 && card.model.architecture === "decoder-only");
    const tok = Object.keys(card.data).find((p) => p.endsWith("tok512.bin"))!;
    assert.match(card.data[tok], /^[0-9a-f]{64}$/);
    assert.ok(Object.keys(card.data).some((p) => p.includes("/piqa/")));
  }
  // Stage 0 is the same model in both runs: the second one scored it from the shared cache.
  const [a, b] = dirs.map((d) => JSON.parse(readFileSync(join(d, "results.json"), "utf8")));
  assert.deepEqual(a.stages[0].general, b.stages[0].general);
  assert.ok(runProgress(dirs[0]).complete);
  reference = dirs[0];
});

test("config errors name the field and suggest the key", () => {
  const good = {
    name: "s",
    dataDir: "/data",
    models: [{ name: "m", ref: "hf:org/m" }],
    methods: ["sequential"],
    orders: [["haiku"]],
  };
  const bad = (change: object, re: RegExp) =>
    assert.throws(() => parseStudy({ ...good, ...change }, "s.yaml", "/"), re);
  assert.equal(parseStudy(good, "s.yaml", "/").config.train.lr, 2e-5);
  bad({ seed: [1] }, /s\.yaml: field "seed": unknown field\. Did you mean "seeds"/);
  bad({ train: { lrr: 1 } }, /field "train\.lrr": unknown field\. Did you mean "lr"/);
  bad({ train: { lr: -1 } }, /field "train\.lr"/);
  bad(
    { methods: ["replai"] },
    /field "methods\.0\.name": unknown method "replai"\. Did you mean "replay"/,
  );
  bad(
    { methods: [{ name: "ewc", options: { lamda: 1 } }] },
    /field "methods\.0\.options\.lamda".*Did you mean "lambda"/,
  );
  bad({ methods: ["olora"] }, /methods\.0.*supports only lora/);
  bad({ orders: [["haiku", "asets"]] }, /field "orders\.0".*Did you mean "asset"/);
  bad({ orders: ["luo2024"] }, /Did you mean "luo2023"/);
  bad(
    { eval: { benchmarks: ["hellaswg"] } },
    /field "eval\.benchmarks\.0\.name".*Did you mean "hellaswag"/,
  );
  bad(
    { models: [{ name: "m", ref: "x", build: { config: {}, tokenizer: "t" } }] },
    /exactly one of "ref" and "build"/,
  );
  bad(
    { models: [{ name: "m", ref: "x", dtyp: "float16" }] },
    /field "models\.0\.dtyp".*Did you mean "dtype"/,
  );
  // The paper's setup states 7 models × 2 methods over the luo2023 sequence.
  const luo = loadStudy(join(repoRoot, "examples", "luo2023.yaml"), env);
  assert.equal(luo.config.train.lr, 2e-5);
  assert.equal(luo.benchmarks.find((b) => b.name === "mmlu_stem")?.shots, 5);
  assert.equal(luo.benchmarks.find((b) => b.name === "race")?.category, "reading_comprehension");
  assert.deepEqual(luo.orders[0].tasks, [
    "wiki_auto",
    "empathetic_dialogues",
    "eli5",
    "esnli_ct0",
    "gigaword_ct0",
  ]);
  assert.equal(luo.config.tasks.template, "luo2023");
  assert.throws(
    () => parseStudy({ ...good, dataDir: "${NOPE_UNSET}" }, "s.yaml", "/", {}),
    /environment variable NOPE_UNSET is not set/,
  );
  assert.equal(
    parseStudy({ ...good, dataDir: "${NOPE_UNSET:-rel/d}" }, "s.yaml", "/base", {}).config.dataDir,
    "/base/rel/d",
  );
});

/** Spawns `lethe run|resume` in a child and SIGKILLs it when a progress line matches `killAt`. */
function runChild(
  args: string[],
  killAt: RegExp | null,
  onLine: (line: string, pid: number) => Promise<void> | void = () => {},
): Promise<{ killed: boolean; lines: string[] }> {
  const cmd = args[0] === "run" ? "runCommand" : "resumeCommand";
  const script = `import { ${cmd} } from ${JSON.stringify(join(repoRoot, "src/cli/run.ts"))};
process.exitCode = await ${cmd}(${JSON.stringify(args.slice(1))});`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let killed = false;
  const rl = createInterface({ input: child.stdout! });
  rl.on("line", async (line) => {
    lines.push(line);
    await onLine(line, child.pid!);
    if (!killed && killAt?.test(line)) {
      killed = true;
      child.kill("SIGKILL");
    }
  });
  return new Promise((res, rej) =>
    child.on("exit", (code, signal) => {
      if (killed && signal === "SIGKILL") res({ killed, lines });
      else if (code === 0) res({ killed, lines });
      else rej(new Error(`child exited with ${code ?? signal}:\n${lines.join("\n")}`));
    }),
  );
}

test("kill -9 at several points, then resume: the same results.json; a second process refuses", async (t) => {
  if (!reference) return t.skip("needs the end-to-end run");
  const tmp = mkdtempSync(join(tmpdir(), "lethe-kill-"));
  const config = variant(tmp, (raw) => {
    raw.methods = ["sequential"];
  });
  const out = join(tmp, "out");
  const run = join(out, "runs", SEQ_RUN);
  let refused: Error | null = null;
  // 1: during stage 1's training, after its step-2 checkpoint; meanwhile a second process tries.
  const first = await runChild(
    ["run", config, "--out", out],
    /stage 1\/3 \[haiku\] step 3\/6 /,
    async (line) => {
      if (/stage 0\/3: evaluating/.test(line))
        refused = await resumeRuns(run).then(
          () => null,
          (e: Error) => e,
        );
    },
  );
  assert.ok(first.killed);
  assert.match(String(refused), new RegExp(`${SEQ_RUN} is in use by process \\d+ on `));
  assert.ok(existsSync(join(run, "lock")), "kill -9 leaves the lock behind");
  assert.equal(runProgress(run).stagesDone, 1);
  // 2: right after stage 1's results are written.
  const second = await runChild(["resume", out], /stage 1\/3: results written/);
  assert.ok(second.killed);
  assert.match(second.lines.join("\n"), /took over the lock of process \d+/);
  // 3: during stage 2's evaluation.
  assert.ok((await runChild(["resume", run], /stage 2\/3: evaluating/)).killed);
  assert.equal(runProgress(run).stagesDone, 2);
  await resumeRuns(out);
  assert.equal(
    readFileSync(join(run, "results.json"), "utf8"),
    readFileSync(join(reference, "results.json"), "utf8"),
  );
  for (let m = 0; m <= 3; m++)
    for (const f of ["general.json", "tasks.json"])
      assert.equal(
        readFileSync(join(run, "stages", String(m), f), "utf8"),
        readFileSync(join(reference, "stages", String(m), f), "utf8"),
        `stages/${m}/${f}`,
      );
  rmSync(tmp, { recursive: true, force: true });
});

test("run-card.json: written once the data has loaded, again on resume; every data file hashed", async (t) => {
  const needs = ["instructions", "benchmarks"];
  if (!dataPath(...NEEDS) || !dataPath(needs[0]) || !dataPath(needs[1]))
    return t.skip(skipReason(...NEEDS, "|", ...needs));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-card-"));
  const data = join(tmp, "data"); // filled in step by step, as a user would fix a wrong data dir
  mkdirSync(data);
  const file = variant(tmp, (raw) => {
    reduce(raw);
    raw.methods = ["sequential"];
    raw.dataDir = data;
  });
  const out = join(tmp, "out");
  const study = loadStudy(file, env);
  const card = join(out, "runs", expandGrid(study)[0].name, "run-card.json");
  const hashed = () => Object.keys(JSON.parse(readFileSync(card, "utf8")).data as object);
  // 1: no task data: the run fails before it knows its data, so there is no card yet.
  await assert.rejects(runStudy(study, out));
  assert.ok(!existsSync(card), "no card before the data has loaded");
  // 2: the tasks load, the benchmarks are missing: a card without them, then the failure.
  symlinkSync(join(sharedDataRoot, "instructions"), join(data, "instructions"));
  await assert.rejects(runStudy(study, out));
  assert.ok(!hashed().some((f) => f.includes("/piqa/")));
  // 3: resumed with everything there: the card is written again and hashes every file.
  symlinkSync(join(sharedDataRoot, "benchmarks"), join(data, "benchmarks"));
  await resumeRuns(out);
  assert.ok(runProgress(join(card, "..")).complete);
  const want = dataFiles(study, expandGrid(study)[0], null);
  assert.ok(want.length > 100, `${want.length} data files`);
  assert.deepEqual(hashed(), want);
  assert.ok(want.some((f) => f.includes("/piqa/")) && want.some((f) => f.includes("/haiku")));
  rmSync(tmp, { recursive: true, force: true });
});

test("every registered method runs a stage through the runner", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-methods-run-"));
  const names = Object.keys(methods);
  const lora = names.filter((n) => !methods[n as keyof typeof methods].supports.includes("full"));
  const full = names.filter((n) => !lora.includes(n));
  const cases = [
    { methods: full, tuning: { kind: "full" } },
    { methods: lora, tuning: { kind: "lora", lora: { r: 4, alpha: 8, dropout: 0 } } },
  ];
  const ran = new Set<string>();
  for (const [i, c] of cases.entries()) {
    const file = variant(tmp, (raw) => {
      reduce(raw);
      raw.methods = c.methods;
      raw.tuning = c.tuning;
    });
    const study = loadStudy(file, env);
    for (const dir of await runStudy(study, join(tmp, `out${i}`))) {
      const r = JSON.parse(readFileSync(join(dir, "results.json"), "utf8"));
      assert.deepEqual(r.progress, { stagesDone: 2, totalStages: 2 }, dir);
      assert.equal(r.matrix.length, 2);
      ran.add(r.run.method);
    }
  }
  assert.deepEqual([...ran].sort(), [...names].sort());
  rmSync(tmp, { recursive: true, force: true });
});

test("θ₀ is held only for a method that reads it: a sequential full run of a model folder holds one copy", async (t) => {
  const tokFile = dataPath(...NEEDS);
  if (!tokFile) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-theta0-"));
  // A pretrained-style folder: before, every full fine-tuning run of a `ref` model loaded θ₀.
  const tokDir = join(tmp, "tok");
  mkdirSync(tokDir);
  copyFileSync(tokFile, join(tokDir, "tokenizer.bin"));
  const model = llamaFamily.create(
    llamaFamily.parseConfig({
      model_type: "llama",
      vocab_size: 512,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
    }),
    { seed: 0 },
  );
  const paramBytes = model.numParameters() * 4;
  await savePretrained(model, join(tmp, "model"), { tokenizerDir: tokDir });
  model.dispose();
  const file = variant(tmp, (raw) => {
    reduce(raw);
    raw.models = [{ name: "tiny-ref", ref: join(tmp, "model") }];
    raw.methods = ["sequential", "l2sp"];
  });
  const lines: string[] = [];
  const dirs = await runStudy(loadStudy(file, env), join(tmp, "out"), {
    log: (l) => void lines.push(l),
  });
  assert.equal(dirs.length, 2);
  const held = (method: string) => {
    const line = lines.find((l) => l.includes(`__${method}__`) && l.includes("weights held:"));
    assert.ok(line, `${method}: no "weights held" line in\n${lines.join("\n")}`);
    console.log(`# ${line}`);
    const n = (s: string) => Number(s.replaceAll(",", ""));
    const m =
      /weights held: ([\d,]+) bytes of parameters \(32-true\); (?:no θ₀ copy|θ₀ copy ([\d,]+) bytes)/.exec(
        line,
      );
    assert.ok(m, line);
    return { model: n(m[1]), start: m[2] === undefined ? 0 : n(m[2]) };
  };
  assert.deepEqual(held("sequential"), { model: paramBytes, start: 0 });
  assert.deepEqual(held("l2sp"), { model: paramBytes, start: paramBytes });
  rmSync(tmp, { recursive: true, force: true });
});

test("keep: none removes finished stages' checkpoints, resumes without them, equals keep: last (16-mixed)", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-keep-"));
  const config = (keep: string) =>
    variant(mkdtempSync(join(tmp, `${keep}-`)), (raw) => {
      reduce(raw);
      raw.orders = [["haiku", "asset", "esnli"]];
      raw.methods = ["sequential"];
      raw.train = { ...(raw.train as object), precision: "16-mixed", keep };
    });
  const ckpts = (run: string) =>
    existsSync(join(run, "checkpoints")) ? readdirSync(join(run, "checkpoints")).sort() : [];

  // keep: last, uninterrupted: the reference.
  const lastOut = join(tmp, "last-out");
  const [lastRun] = await runStudy(loadStudy(config("last"), env), lastOut);
  assert.deepEqual(ckpts(lastRun), ["1-haiku", "2-asset", "3-esnli"]);

  // keep: none, stopped as stage 3 starts training, then resumed.
  const noneOut = join(tmp, "none-out");
  const seen: Record<string, string[]> = {};
  let run = "";
  const stop = new Error("stopped before stage 3");
  const log = (line: string) => {
    const name = /^\[([^\]]+)\]/.exec(line)?.[1];
    if (name) run = join(noneOut, "runs", name);
    const m = /stage (\d)\/3: evaluating|stage 3\/3 \(esnli\): training/.exec(line);
    if (m) seen[m[1] ?? "3-training"] = ckpts(run);
    if (/stage 3\/3 \(esnli\): training/.test(line) && !seen.resumed) throw stop;
  };
  const study = loadStudy(config("none"), env);
  await assert.rejects(runStudy(study, noneOut, { log }), stop);
  assert.deepEqual(seen["1"], ["1-haiku"]);
  assert.deepEqual(seen["2"], ["1-haiku", "2-asset"], "stage 1's stays until stage 2 is done");
  assert.deepEqual(seen["3-training"], ["2-asset"], "the stage a resume starts from");
  seen.resumed = [];
  await resumeRuns(noneOut, { log });
  assert.deepEqual(seen["3"], ["2-asset", "3-esnli"]);
  assert.deepEqual(ckpts(run), [], "a complete run keeps none");
  await resumeRuns(noneOut); // already complete, nothing to load

  assert.equal(
    readFileSync(join(run, "results.json"), "utf8"),
    readFileSync(join(lastRun, "results.json"), "utf8"),
  );
  for (let m = 0; m <= 3; m++) {
    const fp = (r: string) => readFileSync(join(r, "stages", String(m), "model.sha256"), "utf8");
    assert.match(fp(run), /^[0-9a-f]{64}\n$/);
    assert.equal(fp(run), fp(lastRun), `stage ${m}: the same model fingerprint`);
  }
  const timings = JSON.parse(readFileSync(join(run, "timings.json"), "utf8"));
  assert.deepEqual(
    timings.stages.map((s: { skippedSteps?: number }) => typeof s.skippedSteps),
    ["undefined", "number", "number", "number"],
    "16-mixed counts skipped steps per trained stage",
  );
  rmSync(tmp, { recursive: true, force: true });
});
