/**
 * A study's grid on a real one-node Slurm cluster (src/continual/slurm.ts, src/cli/submit.ts,
 * src/train/stop.ts; the cluster of scripts/slurm-local.sh, started here when none is up, skipped
 * with a printed reason only where slurm-wlm cannot be installed):
 *
 * - The config's `slurm:` section and the command line make the batch scripts (no cluster).
 * - `lethe run-one` told to stop mid-stage (SIGTERM, and the stop file the batch script's trap
 *   writes) checkpoints, releases the run and exits 143; run again, it ends as the uninterrupted
 *   run (no cluster).
 * - `lethe submit examples/tiny-study.yaml`: every element completes, the report job runs, and
 *   each run's results.json is byte for byte a local `lethe run`'s (results.json holds no timings).
 * - A running element stopped mid-stage twice, by SIGUSR1 to its batch script (`scancel --batch
 *   --signal=USR1`, what `--signal=B:USR1@120` sends before the time limit) and by `scontrol
 *   requeue` (SIGTERM): each time it checkpoints at the current step, is requeued, resumes from
 *   that checkpoint, and the results equal the uninterrupted run's.
 * - A run whose model path does not exist fails, is requeued `--max-retries` times, and shows as
 *   failed with its log in `lethe status`, the report job's status.txt and report.html, while the other
 *   runs finish; `lethe status` with finished, running and pending runs; `lethe resume --slurm`
 *   submits only the unfinished runs, and `lethe cancel` cancels them.
 *
 * The local references run with LETHE_THREADS=1, as the elements do (one CPU each). Slurm holds a
 * requeued job about two minutes before it may start again; the tests let it start at once
 * (helpers/slurm.ts `hurry`).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadStudy } from "../../src/continual/config.js";
import { prepareStudy } from "../../src/continual/study.js";
import {
  arrayScript,
  readJobs,
  readRecord,
  reportScript,
  slurmSettings,
  slurmStatus,
} from "../../src/continual/slurm.js";
import { formatStatus, statusRows } from "../../src/cli/run.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";
import {
  elementState,
  slurmCluster,
  slurmRun,
  stopCluster,
  waitFor,
  type Cluster,
} from "../helpers/slurm.js";

const TINY = join(repoRoot, "examples", "tiny-study.yaml");
const LETHE = join(repoRoot, "bin", "lethe.js");
const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const TEN_MINUTES = 600_000;

let cluster: Cluster | { skip: string } = { skip: "not started" };
const tmp = mkdtempSync(join(tmpdir(), "lethe-slurm-"));
before(() => {
  if (dataPath(...NEEDS)) cluster = slurmCluster();
});
after(() => {
  // Jobs a failed test left behind would start in a folder that is gone.
  for (const d of existsSync(tmp) ? readdirSync(tmp) : [])
    if (existsSync(join(tmp, d, "slurm", "jobs.json"))) lethe("cancel", join(tmp, d));
  if ("started" in cluster) stopCluster(cluster);
  rmSync(tmp, { recursive: true, force: true });
});

/** Why this test cannot run here (printed), or null. */
function skip(): string | null {
  if (!dataPath(...NEEDS)) return skipReason(...NEEDS);
  return "skip" in cluster ? cluster.skip : null;
}

const env = () => ({ ...process.env, LETHE_DATA: sharedDataRoot, LETHE_THREADS: "1" });

/** `lethe ARGS` as a child process of this checkout. */
function lethe(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [LETHE, ...args], { env: env(), encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs `lethe ARGS`, asserting exit status 0; its stdout. */
function ok(...args: string[]): string {
  const r = lethe(...args);
  assert.equal(r.code, 0, `lethe ${args.join(" ")}: exit ${r.code}\n${r.err}${r.out}`);
  return r.out;
}

/** The tiny study with fields replaced, written as a JSON config. */
function variant(name: string, change: (raw: Record<string, unknown>) => void): string {
  const raw = loadStudy(TINY, env()).config as unknown as Record<string, unknown>;
  raw.name = name;
  change(raw);
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

/** One short stage: one task, two test items, one benchmark. */
const oneStage = (raw: Record<string, unknown>, steps: number) => {
  raw.methods = ["sequential"];
  raw.orders = [["haiku"]];
  raw.budget = { maxTrain: 16, maxTest: 2 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 8 };
  raw.train = { ...(raw.train as object), steps, gradAccum: 1, checkpointEvery: 100, keep: "all" };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 4 }], maxLength: 256, bootstrapIters: 10 };
};

test(
  "a run of 2 ranks (--ranks-per-node 2) starts them with srun; its results equal one process's",
  { timeout: TEN_MINUTES },
  async (t) => {
    const why = skip();
    if (why) return t.skip(why);
    const config = variant("ranks", (raw) => {
      oneStage(raw, 4);
      raw.train = { ...(raw.train as object), gradAccum: 2, checkpointEvery: 2 };
    });
    const local = join(tmp, "ranks-local");
    const dir = join(tmp, "ranks-slurm");
    ok("run", config, "--out", local);
    ok("submit", config, "--out", dir, "--ranks-per-node", "2", "--cpus-per-run", "2");
    const [s] = readJobs(dir);
    const script = read(join(dir, "slurm", "array.sbatch"));
    for (const line of ["#SBATCH --ntasks-per-node=2", "#SBATCH --cpus-per-task=1", "srun "])
      assert.ok(script.includes(line), line);
    const [name] = Object.values(s.runs);
    const runDir = join(dir, "runs", name);
    await waitFor(
      "the element",
      () => ["COMPLETED", "FAILED"].includes(elementState(`${s.arrayJob}_0`)?.state ?? ""),
      {
        timeoutMs: TEN_MINUTES - 60_000,
        onTimeout: () => `${slurmRun("squeue")}\n${logs(runDir)}`,
      },
    );
    assert.equal(readRecord(runDir)?.state, "completed", logs(runDir));
    assert.equal(
      (logs(runDir).match(/stage 1\/1: results written/g) ?? []).length,
      1,
      "rank 0 logs",
    );
    assert.equal(
      read(join(runDir, "results.json")),
      read(join(local, "runs", name, "results.json")),
      "2 ranks under srun give one process's results.json",
    );
  },
);

/** Every log of a run folder, oldest job first (a requeued element appends to its own). */
function logs(runDir: string): string {
  if (!existsSync(runDir)) return "";
  return readdirSync(runDir)
    .filter((f) => /^slurm-\d+\.out$/.test(f))
    .sort()
    .map((f) => readFileSync(join(runDir, f), "utf8"))
    .join("");
}

const read = (file: string) => readFileSync(file, "utf8");

test(
  "lethe submit examples/tiny-study.yaml: every element completes, the report job runs, results equal a local run",
  { timeout: 2 * TEN_MINUTES },
  async (t) => {
    const why = skip();
    if (why) return t.skip(why);
    const local = join(tmp, "tiny-local");
    const dir = join(tmp, "tiny-slurm");
    ok("run", TINY, "--out", local);
    const out = ok("submit", TINY, "--out", dir);
    const [s] = readJobs(dir);
    assert.match(out, new RegExp(`job array ${s.arrayJob}: 2 run\\(s\\)`));
    assert.match(out, new RegExp(`report job ${s.reportJob}`));
    const names = Object.values(s.runs);
    assert.deepEqual(names, [
      "tiny-llama__sequential__order0__seed0",
      "tiny-llama__replay__order0__seed0",
    ]);
    const script = read(join(dir, "slurm", "array.sbatch"));
    for (const line of [
      "#SBATCH --requeue",
      "#SBATCH --signal=B:USR1@120",
      `'${LETHE}' run-one "$DIR"`,
    ])
      assert.ok(script.includes(line), line);

    await waitFor(
      "the report job",
      () =>
        existsSync(join(dir, "report.html")) && elementState(s.reportJob)?.state === "COMPLETED",
      {
        timeoutMs: 2 * TEN_MINUTES - 60_000,
        onTimeout: () =>
          `${slurmRun("squeue")}\n${names.map((n) => logs(join(dir, "runs", n))).join("\n")}`,
      },
    );
    for (const name of names) {
      const runDir = join(dir, "runs", name);
      assert.equal(readRecord(runDir)?.state, "completed", name);
      assert.equal(elementState(`${s.arrayJob}_${names.indexOf(name)}`)?.state, "COMPLETED");
      assert.match(logs(runDir), /stage 3\/3: results written/);
      assert.equal(
        read(join(runDir, "results.json")),
        read(join(local, "runs", name, "results.json")),
        `${name}: results.json differs from the local run's`,
      );
    }
    const status = read(join(dir, "status.txt"));
    console.log(status);
    assert.match(status, /2 runs: 2 complete, 0 running, 0 failed/);
    for (const name of names)
      assert.match(status, new RegExp(`${name}\\s+complete\\s+3/3 .*completed`));
    assert.match(ok("cancel", dir), /nothing left to cancel/);
    assert.match(ok("resume", dir, "--slurm"), /nothing submitted: every run .* is complete/);
  },
);

/** A stage of seconds (a stop asked for at step 30 lands mid-stage), and its uninterrupted run. */
const steps = 600;
let longStageRun: { config: string; local: string } | null = null;
function longStage(): { config: string; local: string } {
  if (longStageRun) return longStageRun;
  const config = variant("long-stage", (raw) => oneStage(raw, steps));
  const local = join(tmp, "long-stage-local");
  ok("run", config, "--out", local);
  return (longStageRun = { config, local });
}

test(
  "lethe run-one, told to stop mid-stage (SIGTERM and its stop file), checkpoints, releases the run, exits 143; run again it ends as the uninterrupted run",
  { timeout: TEN_MINUTES },
  async (t) => {
    if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
    const { config, local } = longStage();
    const dir = join(tmp, "run-one");
    prepareStudy(loadStudy(config), dir);
    const stopFile = join(tmp, "run-one-stop");
    const child = spawn(process.execPath, [LETHE, "run-one", dir, "0"], {
      env: { ...env(), LETHE_STOP_FILE: stopFile },
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    await waitFor("training", () => / step +\d+\/600/.test(out), { timeoutMs: 5 * 60_000 });
    // The signal itself reaches lethe's handler only between stages (a stage is one synchronous
    // loop); the file the batch script's trap writes is seen after the next step.
    child.kill("SIGTERM");
    writeFileSync(stopFile, "SIGTERM\n");
    assert.equal(await exited, 143, out);
    const [, k] = /stopped on SIGTERM in stage "haiku" at step (\d+)\/600/.exec(out) ?? [];
    assert.ok(k !== undefined && Number(k) < steps, out);
    const runDir = join(dir, "runs", readdirSync(join(dir, "runs"))[0]);
    assert.ok(existsSync(join(runDir, "checkpoints", "1-haiku", `ckpt-${k}`)));
    assert.equal(existsSync(join(runDir, "lock")), false, "the lock is released");
    assert.equal(existsSync(join(runDir, "failed.json")), false, "a stop is no failure");
    rmSync(stopFile);
    const again = ok("run-one", dir, "0");
    assert.match(again, new RegExp(`stage 1/1: resumed from ckpt-${k}\\b`));
    const name = readdirSync(join(dir, "runs"))[0];
    assert.equal(
      read(join(runDir, "results.json")),
      read(join(local, "runs", name, "results.json")),
      "results.json differs from the uninterrupted run's",
    );
    console.log(`stopped at step ${k} of ${steps}; resumed; results.json identical`);
  },
);

test(
  "a running element stopped by SIGUSR1 and by scontrol requeue checkpoints, is requeued, resumes, and ends as the uninterrupted run",
  { timeout: 2 * TEN_MINUTES },
  async (t) => {
    const why = skip();
    if (why) return t.skip(why);
    const { config, local } = longStage();
    const dir = join(tmp, "requeue-slurm");
    ok("submit", config, "--out", dir);
    const [s] = readJobs(dir);
    const element = `${s.arrayJob}_0`;
    const name = s.runs[0];
    const runDir = join(dir, "runs", name);
    const o = { timeoutMs: 5 * 60_000, onTimeout: () => `${slurmRun("squeue")}\n${logs(runDir)}` };
    const progress = new RegExp(`stage 1/1 \\[haiku\\] step +\\d+/${steps}`);
    const stopped = (signal: string) =>
      new RegExp(`stopped on ${signal} in stage "haiku" at step (\\d+)/${steps}: \\S+/ckpt-(\\d+)`);

    // 1. SIGUSR1 to the batch script, as 120 s before the time limit.
    await waitFor("training", () => progress.test(logs(runDir)), o);
    slurmRun("scancel", "--batch", "--signal=USR1", element);
    const [, k1, c1] = await waitFor(
      "the SIGUSR1 stop",
      () => stopped("SIGUSR1").exec(logs(runDir)),
      o,
    );
    assert.equal(c1, k1, "the checkpoint is the step it stopped at");
    assert.ok(Number(k1) < steps, `stopped mid-stage, at step ${k1}`);
    // lethe asked for the requeue (exit status 75): Slurm holds it pending for its begin time.
    await waitFor("the requeued element", () => elementState(element)?.state === "PENDING", o);
    assert.equal(readRecord(runDir)?.state, "requeued");
    assert.equal(existsSync(join(runDir, "lock")), false, "the lock is released");
    const pending = slurmStatus(dir)!.runs.get(name)!;
    assert.equal(pending.text, "pending, requeued 1×");
    const rows = statusRows(dir);
    assert.equal(rows[0].state, "stopped");
    console.log(formatStatus(dir, rows, slurmStatus(dir)));

    // 2. scontrol requeue (SIGTERM to every process of the job) once it trains again.
    await waitFor(
      "training after the requeue",
      () => {
        const after = logs(runDir).split(/restart 1\)/)[1] ?? "";
        return progress.test(after);
      },
      { ...o, arrayJob: s.arrayJob },
    );
    slurmRun("scontrol", "requeue", element);
    const [, k2] = await waitFor(
      "the SIGTERM stop",
      () => stopped("SIGTERM").exec(logs(runDir)),
      o,
    );
    assert.ok(
      Number(k1) < Number(k2) && Number(k2) < steps,
      `second stop at step ${k2}, after ${k1}`,
    );

    // 3. It runs to the end from that checkpoint.
    await waitFor("the run's end", () => readRecord(runDir)?.state === "completed", {
      ...o,
      arrayJob: s.arrayJob,
    });
    const log = logs(runDir);
    assert.match(log, new RegExp(`stage 1/1: resumed from ckpt-${k2}\\b`));
    assert.ok(
      existsSync(join(runDir, "checkpoints", "1-haiku", `ckpt-${k1}`)),
      "keep: all keeps the stop's checkpoints",
    );
    assert.equal(existsSync(join(runDir, "failed.json")), false);
    assert.equal(elementState(element)?.restarts, 2);
    assert.equal(
      read(join(runDir, "results.json")),
      read(join(local, "runs", name, "results.json")),
      "results.json differs from the uninterrupted run's",
    );
    console.log(
      `stopped at steps ${k1} (SIGUSR1) and ${k2} (SIGTERM) of ${steps}; results.json identical`,
    );
  },
);

test(
  "a failing run shows as failed with its log while the others finish; status with finished, running and pending runs; resume --slurm and cancel",
  { timeout: 2 * TEN_MINUTES },
  async (t) => {
    const why = skip();
    if (why) return t.skip(why);
    const config = variant("slurm-fail", (raw) => {
      oneStage(raw, 12);
      const [tiny] = raw.models as object[];
      raw.models = [tiny, { name: "missing", ref: join(tmp, "no-such-model") }];
      raw.seeds = [0, 1];
    });
    const dir = join(tmp, "fail-slurm");
    // One element at a time: a run finishes while the next runs and the rest wait.
    const cpus = slurmRun("sinfo", "--noheader", "--format=%c").trim().split("\n")[0];
    ok("submit", config, "--out", dir, "--cpus-per-run", cpus, "--max-retries", "1");
    const [s] = readJobs(dir);
    const names = Object.values(s.runs);
    assert.equal(names.length, 4);
    const o = {
      timeoutMs: 5 * 60_000,
      onTimeout: () =>
        `${slurmRun("squeue")}\n${names.map((n) => logs(join(dir, "runs", n))).join("\n")}`,
    };

    const snapshot = await waitFor(
      "a finished, a running and a pending run at once",
      () => {
        const rows = statusRows(dir);
        const slurm = slurmStatus(dir)!;
        const text = (i: number) => slurm.runs.get(rows[i].name)?.text ?? "";
        const seen =
          rows[0].state === "complete" &&
          text(0) === "completed" &&
          rows[1].state === "running" &&
          /^running on \S+$/.test(text(1)) &&
          rows[2].state === "not started" &&
          text(2) === "pending";
        return seen && formatStatus(dir, rows, slurm);
      },
      o,
    );
    console.log(snapshot);
    assert.match(snapshot, /4 runs: 1 complete, 1 running, 0 failed, 0 stopped, 2 not started/);
    assert.match(snapshot, /tiny-llama__sequential__order0__seed0 +complete +1\/1 .* completed/);
    assert.match(
      snapshot,
      /tiny-llama__sequential__order0__seed1 +running +\S+\/1 .* running on \S+ +pid \d+ on \S+/,
    );
    assert.match(snapshot, /missing__sequential__order0__seed0 +not started +-\/1 .* pending/);
    assert.match(snapshot, new RegExp(`slurm: report job ${s.reportJob} pending \\(Dependency\\)`));

    await waitFor(
      "the report job",
      () => existsSync(join(dir, "status.txt")) && elementState(s.reportJob)?.state === "COMPLETED",
      { ...o, arrayJob: s.arrayJob },
    );
    const status = read(join(dir, "status.txt"));
    console.log(status);
    assert.match(status, /4 runs: 2 complete, 0 running, 2 failed/);
    for (const name of names.slice(0, 2))
      assert.match(status, new RegExp(`${name} +complete .* completed`));
    for (const name of names.slice(2)) {
      const runDir = join(dir, "runs", name);
      const record = readRecord(runDir)!;
      assert.equal(record.state, "failed");
      assert.equal(record.failures, 2, "the first attempt and one retry");
      const log = `runs/${name}/slurm-${record.job}.out`;
      assert.match(
        status,
        new RegExp(
          `${name} +failed +-/1 .* failed, requeued 1×, log ${log.replace(/[.]/g, "\\.")}`,
        ),
      );
      const text = read(join(dir, log));
      assert.match(text, /no-such-model/);
      assert.match(text, /attempt 1 of 2.*requeueing/);
      assert.match(read(join(runDir, "failed.json")), /no-such-model/);
    }
    assert.ok(existsSync(join(dir, "report.html")), "the report of the runs that finished");
    const html = read(join(dir, "report.html"));
    assert.match(html, /<section id="unfinished"><h2>Unfinished runs<\/h2>/);
    for (const name of names.slice(2)) {
      const row = new RegExp(
        `<tr><td>${name}</td><td class="failed">failed</td><td>[^<]*no-such-model[^<]*</td><td><code>[^<]*slurm-\\d+\\.out</code>`,
      );
      assert.match(html, row, `${name} is marked failed in report.html`);
    }
    for (const name of names.slice(0, 2))
      assert.doesNotMatch(html, new RegExp(`<tr><td>${name}</td>`));
    assert.match(read(join(dir, "slurm", `report-${s.reportJob}.out`)), /fail-slurm\/report\.html/);

    // Only the failed runs go again; cancel takes them back.
    const again = ok("resume", dir, "--slurm");
    const second = readJobs(dir)[1];
    assert.deepEqual(second.runs, { 2: names[2], 3: names[3] });
    assert.match(again, new RegExp(`job array ${second.arrayJob}: 2 run\\(s\\)`));
    const cancelled = ok("cancel", dir);
    assert.match(cancelled, new RegExp(`cancelled: .*${second.reportJob}`));
    // slurmctld records a cancelled element a moment after scancel returns (an element between
    // its requeue and its next start shows "pending" until then): poll for up to 20 s.
    const isCancelled = (text: string) =>
      names.slice(2).every((name) => new RegExp(`${name} +\\S+ .* cancelled`).test(text));
    let final = ok("status", dir);
    for (let i = 0; i < 40 && !isCancelled(final); i++) {
      await new Promise((r) => setTimeout(r, 500));
      final = ok("status", dir);
    }
    console.log(final);
    for (const name of names.slice(2))
      assert.match(final, new RegExp(`${name} +\\S+ .* cancelled`));
    assert.match(ok("cancel", dir), /nothing left to cancel/);
    assert.equal(
      slurmRun("squeue", "--noheader", `--jobs=${second.arrayJob},${second.reportJob}`).trim(),
      "",
    );
  },
);

test("the config's slurm: section and the command line make the batch scripts; mistakes name the field", (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const config = variant("slurm-settings", (raw) => {
    raw.slurm = { partition: "gpu", time: "1:00:00", sbatchArgs: ["--qos=high"], maxRetries: 3 };
  });
  const study = loadStudy(config);
  const settings = slurmSettings(study, { time: "2:00:00", cpusPerRun: 4, gpusPerRun: 1 });
  const cmd = { node: "/opt/node bin/node", lethe: "/src/it's/bin/lethe.js" };
  const script = arrayScript("/data/study", study, settings, cmd);
  for (const line of [
    "#SBATCH --partition=gpu",
    "#SBATCH --time=2:00:00",
    "#SBATCH --cpus-per-task=4",
    "#SBATCH --gpus-per-node=1",
    "#SBATCH --qos=high",
    "#SBATCH --requeue",
    "#SBATCH --signal=B:USR1@120",
    `RUNS=('tiny-llama__sequential__order0__seed0' 'tiny-llama__replay__order0__seed0')`,
    `'/opt/node bin/node' '/src/it'\\''s/bin/lethe.js' run-one "$DIR" "$SLURM_ARRAY_TASK_ID" --max-retries 3 &`,
    `scontrol requeue "\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"`,
  ])
    assert.ok(script.includes(line), `${line}\n${script}`);
  // bash parses it (paths are quoted words)
  const syntax = spawnSync("bash", ["-n"], { input: script, encoding: "utf8" });
  assert.equal(syntax.status, 0, syntax.stderr);
  const report = reportScript("/data/study", study, settings, cmd);
  assert.ok(report.includes("#SBATCH --partition=gpu") && !report.includes("--gpus"), report);

  assert.throws(
    () => slurmSettings(study, { time: "soon" }),
    /command line: field "time": use sbatch's --time format/,
  );
  assert.throws(
    () => slurmSettings(study, { sbatchArgs: ["--comment=a b"] }),
    /sbatch argument "--comment=a b": no whitespace/,
  );
  const bad = variant("slurm-bad", (raw) => (raw.slurm = { partiton: "gpu" }));
  assert.throws(() => loadStudy(bad), /slurm.*partiton.*partition/s);
});
