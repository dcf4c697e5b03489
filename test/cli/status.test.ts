/**
 * `lethe status` (src/cli/run.ts) on a study folder laid out as the runner writes it
 * (src/continual/run.ts: study.yaml, runs/<name>/config.yaml, stages/<m>/tasks.json,
 * results.json, lock/<pid>-<nonce>.json): a run complete, one held by a live process, one stopped
 * with a dead process's lock left behind, one not started. The table names runs by folder,
 * counts stages as the progress lines do (0 = the base evaluation, 2 tasks: "2/2" when done), and
 * a summary heads it; --json says the same. No model runs: the files are written directly.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { main } from "../../src/cli/main.js";
import { expandGrid, parseStudy, runConfig } from "../../src/continual/config.js";
import { acquireLock } from "../../src/continual/lock.js";
import { makeDir } from "../../src/util/fs.js";
import { capture } from "../helpers/capture.js";

const NAMES = [0, 1, 2, 3].map((s) => `m__sequential__order0__seed${s}`);

/** A study of 4 runs (seeds 0-3) of 2 tasks, in the states above; returns its folder. */
function makeStudy(tmp: string): string {
  const dir = join(tmp, "study");
  const raw = {
    name: "st",
    dataDir: tmp,
    models: [{ name: "m", ref: join(tmp, "model") }],
    methods: ["sequential"],
    orders: [["haiku", "asset"]],
    seeds: [0, 1, 2, 3],
    eval: { benchmarks: ["piqa", "crows_pairs_english"] },
  };
  const study = parseStudy(raw, "study.yaml", tmp);
  makeDir(dir);
  writeFileSync(join(dir, "study.yaml"), toYaml(study.config));
  const grid = expandGrid(study);
  assert.deepEqual(
    grid.map((s) => s.name),
    NAMES,
  );
  const stages = (run: string, n: number) => {
    for (let m = 0; m < n; m++) {
      makeDir(join(run, "stages", String(m)));
      writeFileSync(join(run, "stages", String(m), "tasks.json"), "{}\n");
    }
  };
  const results = (run: string, perCategory: Record<string, number>) =>
    writeFileSync(join(run, "results.json"), JSON.stringify({ fg: { perCategory } }));
  // seeds 0, 1, 2 started (config.yaml written), seed 3 never made.
  for (const spec of grid.slice(0, 3)) {
    makeDir(join(dir, "runs", spec.name));
    writeFileSync(join(dir, "runs", spec.name, "config.yaml"), toYaml(runConfig(study, spec)));
  }
  const [done, live, stopped] = NAMES.map((n) => join(dir, "runs", n));
  stages(done, 3);
  results(done, { reasoning: 1.5, bias: -2.25 });
  stages(live, 1);
  results(live, {});
  stages(stopped, 2);
  results(stopped, { reasoning: 0.5 });
  // A dead process's lock: the process exited, so its pid is not alive.
  const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
  makeDir(join(stopped, "lock"));
  writeFileSync(
    join(stopped, "lock", `${dead}-000000000000.json`),
    JSON.stringify({ pid: dead, host: hostname(), since: "2026-01-01T00:00:00.000Z" }),
  );
  return dir;
}

test("lethe status: a summary line, then runs by name, state, stage m/N, FG and process", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "lethe-cli-status-"));
  const dir = makeStudy(tmp);
  const lock = acquireLock(join(dir, "runs", NAMES[1])); // a live process: this one
  try {
    const r = await capture(() => main(["status", dir]));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, "");
    const want = [
      `${dir}: 4 runs: 1 complete, 1 running, 0 failed, 1 stopped, 1 not started`,
      "run                           state        stage  FG reasoning  FG bias  process",
      "m__sequential__order0__seed0  complete       2/2          1.50    -2.25",
      `m__sequential__order0__seed1  running        0/2             -        -  pid ${process.pid} on ${hostname()}`,
      "m__sequential__order0__seed2  stopped        1/2          0.50        -",
      "m__sequential__order0__seed3  not started    -/2             -        -",
      "",
    ].join("\n");
    assert.equal(r.out, want);

    const j = await capture(() => main(["status", dir, "--json"]));
    assert.equal(j.code, 0, j.err);
    const got = JSON.parse(j.out) as {
      dir: string;
      summary: Record<string, number>;
      runs: { process: { pid: number; host: string; since: string } | null }[];
    };
    const since = got.runs[1].process?.since;
    assert.match(String(since), /^\d{4}-\d\d-\d\dT/);
    const run = (i: number) => join(dir, "runs", NAMES[i]);
    assert.deepEqual(got, {
      dir,
      summary: { runs: 4, complete: 1, running: 1, failed: 0, stopped: 1, "not started": 1 },
      runs: [
        {
          name: NAMES[0],
          dir: run(0),
          state: "complete",
          stage: 2,
          stages: 2,
          fg: { reasoning: 1.5, bias: -2.25 },
          process: null,
          error: null,
        },
        {
          name: NAMES[1],
          dir: run(1),
          state: "running",
          stage: 0,
          stages: 2,
          fg: null,
          process: { pid: process.pid, host: hostname(), since },
          error: null,
        },
        {
          name: NAMES[2],
          dir: run(2),
          state: "stopped",
          stage: 1,
          stages: 2,
          fg: { reasoning: 0.5 },
          process: null,
          error: null,
        },
        {
          name: NAMES[3],
          dir: run(3),
          state: "not started",
          stage: null,
          stages: 2,
          fg: null,
          process: null,
          error: null,
        },
      ],
    });
  } finally {
    lock.release();
  }

  // Released: the run is stopped now; from inside the study folder it is shown as ".".
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const r = await capture(() => main(["status"]));
    assert.equal(r.code, 0, r.err);
    assert.equal(
      r.out.split("\n")[0],
      ".: 4 runs: 1 complete, 0 running, 0 failed, 2 stopped, 1 not started",
    );
    assert.match(r.out, /^m__sequential__order0__seed1 {2}stopped {8}0\/2 +- +-$/m);
  } finally {
    process.chdir(cwd);
  }

  // One run folder: that run alone, by its folder name.
  const one = await capture(() => main(["status", join(dir, "runs", NAMES[0])]));
  assert.equal(one.code, 0, one.err);
  assert.equal(
    one.out.split("\n").slice(0, 3).join("\n"),
    [
      `${join(dir, "runs", NAMES[0])}: 1 run: 1 complete, 0 running, 0 failed, 0 stopped, 0 not started`,
      "run                           state     stage  FG reasoning  FG bias  process",
      "m__sequential__order0__seed0  complete    2/2          1.50    -2.25",
    ].join("\n"),
  );
  rmSync(tmp, { recursive: true, force: true });
});
