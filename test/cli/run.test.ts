/**
 * `lethe run`, `lethe resume`, `lethe status` (src/cli/run.ts) on a study of two runs of one
 * stage each (examples/tiny-study.yaml reduced): resume finishes every cell of study.yaml's grid,
 * also one whose folder was never made (a kill before it started); status lists such a cell as
 * not started; resume exits 1 and names the run while one is still incomplete (here: held by a
 * live process), then 0 once all are done, with the same results.json bytes as the first run.
 * Stages count as the progress lines do: one task, so a complete run is at stage 1/1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../../src/cli/main.js";
import { resumeCommand, runCommand, statusCommand } from "../../src/cli/run.js";
import { loadStudy } from "../../src/continual/config.js";
import { acquireLock } from "../../src/continual/lock.js";
import { makeDir } from "../../src/util/fs.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";
import { capture } from "../helpers/capture.js";

const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const SEQ = "tiny-llama__sequential__order0__seed0";
const REPLAY = "tiny-llama__replay__order0__seed0";

test("resume finishes the whole grid of study.yaml; status lists runs not started", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-cli-run-"));
  const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), {
    ...process.env,
    LETHE_DATA: sharedDataRoot,
  }).config as unknown as Record<string, unknown>;
  raw.orders = [["haiku"]];
  raw.budget = { maxTrain: 16, maxTest: 2 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 8 };
  raw.train = { ...(raw.train as object), gradAccum: 1, checkpointEvery: 0 };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 4 }], maxLength: 256, bootstrapIters: 10 };
  const config = join(tmp, "study.json");
  writeFileSync(config, JSON.stringify(raw));
  const out = join(tmp, "out");

  const first = await capture(() => runCommand([config, "--out", out]));
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /2 run\(s\) complete/);
  const replay = join(out, "runs", REPLAY);
  const bytes = readFileSync(join(replay, "results.json"), "utf8");

  rmSync(replay, { recursive: true }); // the cell a kill kept from starting
  const status = await capture(() => statusCommand([out]));
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, /: 2 runs: 1 complete, 0 running, 0 failed, 0 stopped, 1 not started\n/);
  assert.match(status.out, new RegExp(`^${SEQ} +complete +1/1 `, "m"));
  assert.match(status.out, new RegExp(`^${REPLAY} +not started +-/1( +-)+$`, "m"));

  makeDir(replay);
  const lock = acquireLock(replay); // a live process holds it: resume cannot finish the study
  const held = await capture(() => resumeCommand([out]));
  lock.release();
  assert.equal(held.code, 1);
  assert.match(
    held.out,
    new RegExp(`\\[${REPLAY}\\] skipped: .* is in use by process ${process.pid}`),
  );
  assert.match(
    held.err,
    new RegExp(
      `${REPLAY}: incomplete \\(running, stage -/1\\), in use by process ${process.pid} on `,
    ),
  );

  const resumed = await capture(() => resumeCommand([out]));
  assert.equal(resumed.code, 0, resumed.err);
  assert.match(resumed.out, /2 run\(s\) complete/);
  assert.equal(readFileSync(join(replay, "results.json"), "utf8"), bytes);
  const after = await capture(() => statusCommand([out]));
  assert.match(after.out, /: 2 runs: 2 complete, 0 running, 0 failed, 0 stopped, 0 not started\n/);
  assert.equal(after.out.match(/^\S+ +complete +1\/1 /gm)?.length, 2, after.out);
  rmSync(tmp, { recursive: true, force: true });
});

test("a run that stops on an error is failed in status, with the error; run exits 1", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-cli-failed-"));
  try {
    const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), {
      ...process.env,
      LETHE_DATA: sharedDataRoot,
    }).config as unknown as Record<string, unknown>;
    raw.methods = [{ name: "sequential" }];
    raw.benchmarksDir = join(tmp, "no-benchmarks-here"); // the run fails when it evaluates stage 0
    const config = join(tmp, "study.json");
    writeFileSync(config, JSON.stringify(raw));
    const out = join(tmp, "out");
    const run = await capture(() => main(["run", config, "--out", out]));
    assert.equal(run.code, 1);
    assert.match(run.err, /no-benchmarks-here/);
    const status = await capture(() => statusCommand([out, "--json"]));
    const got = JSON.parse(status.out) as {
      summary: Record<string, number>;
      runs: { name: string; state: string; error: string | null }[];
    };
    assert.equal(got.summary.failed, 1);
    assert.equal(got.runs[0].name, SEQ);
    assert.equal(got.runs[0].state, "failed");
    assert.match(got.runs[0].error ?? "", /no-benchmarks-here/);
    const text = await capture(() => statusCommand([out]));
    assert.match(text.out, new RegExp(`^${SEQ} +failed +-/\\d`, "m"));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
