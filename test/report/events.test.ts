/**
 * The run event log (src/continual/events.ts): a writer killed with SIGKILL in the middle of its
 * appends leaves a log whose reader loses at most the torn last line; a bad line elsewhere is an
 * error naming file:line; reopening cuts the torn tail. Then the runner's events for a reduced
 * examples/tiny-study.yaml: stage boundaries, steps, checkpoint, evaluation, run_end, in order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  EventLog,
  globalSteps,
  parseEvents,
  readEvents,
  type RunEvent,
} from "../../src/continual/events.js";
import { loadStudy } from "../../src/continual/config.js";
import { runStudy } from "../../src/continual/study.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-events-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

const step = (i: number) => ({
  type: "step" as const,
  stage: 1,
  step: i,
  totalSteps: 1e9,
  loss: 2 + Math.sin(i),
  lr: 1e-3,
  tokensPerSecond: 1234.5,
  etaSeconds: null,
  skippedSteps: 0,
  rss: 1 << 30,
});

test("kill -9 mid-write: every line but a torn last one reads back; reopening cuts it", async () => {
  const dir = join(tmp, "killed");
  const file = join(tmp, "killed.jsonl");
  const script = join(tmp, "writer.ts");
  const mod = pathToFileURL(join(repoRoot, "src/continual/events.ts")).href;
  writeFileSync(
    script,
    `import { EventLog } from ${JSON.stringify(mod)};
     const log = new EventLog(${JSON.stringify(file)});
     const pad = "x".repeat(3000); // lines of several KiB: a write can be cut inside one
     for (let i = 1; ; i++) log.emit({ type: "step", stage: 1, step: i, note: pad });`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", script], { cwd: repoRoot });
  // Let it write, then SIGKILL it while it is appending.
  await new Promise<void>((res, rej) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      let size = 0;
      try {
        size = statSync(file).size;
      } catch {}
      if (size > 2_000_000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        res();
      } else if (Date.now() - t0 > 60_000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        rej(new Error("the writer wrote too little in 60 s"));
      }
    }, 20);
  });
  await new Promise((res) => child.on("close", res));
  assert.deepEqual(readEvents(dir), [], "a run folder without a log has no events");
  const text = readFileSync(file, "utf8");
  const read = parseEvents(text, file);
  assert.ok(read.length > 100, `${read.length} events`);
  assert.deepEqual(
    read.map((e) => (e as unknown as { step: number }).step),
    read.map((_, i) => i + 1),
    "every complete line, in order",
  );
  console.log(`# killed after ${read.length} events; torn tail: ${!text.endsWith("\n")}`);

  // A torn last line (what a kill inside a write leaves) is skipped, not fatal.
  appendFileSync(file, '{"type":"step","stage":1,"st');
  assert.equal(parseEvents(readFileSync(file, "utf8"), file).length, read.length);
  // Reopening cuts it, so the next event starts on its own line.
  const log = new EventLog(file);
  log.emit(step(read.length + 1));
  log.close();
  const again = parseEvents(readFileSync(file, "utf8"), file);
  assert.equal(again.length, read.length + 1);
  assert.equal((again.at(-1) as { step: number }).step, read.length + 1);

  // Any other bad line is an error naming the file and line.
  const bad = join(tmp, "bad.jsonl");
  writeFileSync(bad, `${JSON.stringify(step(1))}\n{"type":\n${JSON.stringify(step(2))}\n`);
  assert.throws(
    () => parseEvents(readFileSync(bad, "utf8"), bad),
    new RegExp(`${bad}:2: not JSON`),
  );
  writeFileSync(bad, `[1]\n`);
  assert.throws(() => parseEvents(readFileSync(bad, "utf8"), bad), /bad\.jsonl:1: not an event/);
});

test("globalSteps: a stage's steps follow the earlier stages'", () => {
  const ev = (stage: number, s: number, total: number): RunEvent => ({
    ...step(s),
    stage,
    totalSteps: total,
    time: 0,
  });
  const g = globalSteps([ev(1, 1, 3), ev(1, 3, 3), ev(2, 1, 4), ev(2, 4, 4), ev(3, 2, 2)]);
  assert.deepEqual(
    g.map((x) => x.global),
    [1, 3, 4, 7, 9],
  );
});

const NEEDS = ["models", "stories260K", "tok512.bin"] as const;

test("the runner's events for a reduced tiny study, in order", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), {
    ...process.env,
    LETHE_DATA: sharedDataRoot,
  }).config as unknown as Record<string, unknown>;
  raw.methods = ["sequential"];
  raw.orders = [["haiku"]];
  raw.budget = { maxTrain: 16, maxTest: 2 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 8 };
  raw.train = { ...(raw.train as object), gradAccum: 1, checkpointEvery: 0 };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 4 }], maxLength: 256, bootstrapIters: 10 };
  const config = join(tmp, "study.json");
  writeFileSync(config, JSON.stringify(raw));
  const out = join(tmp, "study");
  const seen: string[] = [];
  const lines: string[] = [];
  const [dir] = await runStudy(loadStudy(config), out, {
    log: (l) => lines.push(l),
    onEvent: (_, e) => seen.push(e.type),
  });
  const events = readEvents(dir);
  assert.deepEqual(
    events.map((e) => e.type),
    seen,
    "onEvent sees what the log holds",
  );
  const kinds = events.map((e) => e.type).filter((k, i, a) => k !== "step" || a[i - 1] !== "step");
  assert.deepEqual(kinds, [
    "stage_start",
    "eval",
    "stage_end",
    "stage_start",
    "step",
    "checkpoint",
    "eval",
    "stage_end",
    "run_end",
  ]);
  const steps = events.filter((e) => e.type === "step");
  assert.equal(steps.length, 4, "16 examples, batch 4: one event per optimizer step");
  for (const s of steps) {
    assert.ok(Number.isFinite(s.loss) && s.loss > 0 && s.lr >= 0 && s.rss > 0, JSON.stringify(s));
    assert.equal(s.totalSteps, 4);
  }
  const evals = events.filter((e) => e.type === "eval");
  assert.deepEqual(Object.keys(evals[1].scores), ["piqa"]);
  assert.deepEqual(Object.keys(evals[1].tasks), ["haiku"]);
  // Off a TTY the progress lines are bounded per stage (a tenth at most, plus the last).
  const progress = lines.filter((l) => / step +\d+\/\d+ /.test(l));
  assert.ok(progress.length >= 2 && progress.length <= 11, progress.join("\n"));
  assert.match(progress[0], /stage 1\/1 \[haiku\] step 1\/4 /);
  // A second run over a complete run: only run_end is added.
  await runStudy(loadStudy(config), out);
  assert.deepEqual(
    readEvents(dir)
      .slice(events.length)
      .map((e) => e.type),
    ["run_end"],
  );
});

test("progress under a pseudo-terminal (script(1)) redraws one line in place; piped it is bounded", async (t) => {
  const script = join(tmp, "progress.mts"); // an ES module (top-level await) outside the package
  const mod = pathToFileURL(join(repoRoot, "src/train/progress.ts")).href;
  writeFileSync(
    script,
    `import { progressPrinter } from ${JSON.stringify(mod)};
     const print = progressPrinter({ stream: process.stdout });
     const wait = () => new Promise((r) => setTimeout(r, 5));
     for (let step = 1; step <= 200; step++) {
       print({ stage: "haiku", step, totalSteps: 200, loss: 2, lr: 1e-3, tokensPerSecond: 1, etaSeconds: 1 });
       await wait();
     }`,
  );
  const cmd = `${process.execPath} --import tsx ${script}`;
  const run = (argv: string[]) =>
    new Promise<string>((res, rej) => {
      const c = spawn(argv[0], argv.slice(1), { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      c.stdout.on("data", (d: Buffer) => (out += d.toString()));
      c.on("close", (code) => (code === 0 ? res(out) : rej(new Error(`exit ${code}: ${out}`))));
    });
  if (!existsSync("/usr/bin/script")) return t.skip("script(1) from util-linux not installed");
  const tty = await run(["/usr/bin/script", "-qfc", cmd, "/dev/null"]);
  const redraws = (tty.match(/\r\[haiku\] step +\d+\/200 /g) ?? []).length;
  assert.ok(redraws >= 3 && redraws < 200, `redrawn in place every 100 ms: ${redraws}`);
  assert.equal(tty.trimEnd().split("\n").length, 1, "one line, ended once at the last step");
  assert.match(tty, /step 200\/200 [^\n]*\x1b\[K\r?\n/);
  // Piped: a plain line at each tenth of the stage (and the first), none redrawn.
  const piped = await run([process.execPath, "--import", "tsx", script]);
  const lines = piped.trimEnd().split("\n");
  assert.equal(lines.length, 11, piped);
  assert.ok(!piped.includes("\r"));
});
