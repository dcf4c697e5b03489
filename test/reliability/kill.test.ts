/**
 * The standing kill check of issue #15 over examples/tiny-study.yaml, through the real command
 * (`node bin/lethe.js`), its PID signalled as a user or `timeout` would:
 *
 * - SIGTERM, SIGINT and SIGKILL to the PID `lethe run` was started as: that process is lethe
 *   itself (it starts no worker), the shell sees 128 + the signal's number, no process of the
 *   study survives, `lethe status` lists the grid cell not started yet, and `lethe resume`
 *   finishes the study with results.json byte-identical to an uninterrupted run's.
 * - A kill -9 loop: 6 seeded random kill points, each followed by `lethe resume`; then every
 *   results.json is byte-identical to the uninterrupted run's, no lethe process is left and no
 *   `*.tmp*` file or folder remains.
 *
 * A kill point is a moment of the uninterrupted run, one uniform in each sixth of its training
 * and evaluation: the progress line before it and the time since that line. The process gets
 * SIGKILL that long after its first progress line at or past that one (lines compared up to
 * "step k/n", without speeds). About 1½ minutes on 2 idle cores: the study takes ~16 s, a
 * restart ~2 s.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";
import { makeRng } from "../../src/continual/rng.js";

const LETHE = join(repoRoot, "bin", "lethe.js");
const TINY = join(repoRoot, "examples", "tiny-study.yaml");
const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const SEQ = "tiny-llama__sequential__order0__seed0";
const REPLAY = "tiny-llama__replay__order0__seed0";
const env = { ...process.env, LETHE_DATA: sharedDataRoot };
const tmp = mkdtempSync(join(tmpdir(), "lethe-kill-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

interface Ended {
  lines: string[];
  /** When each line came, in ms after the start. */
  times: number[];
  /** The lethe process's exit code and signal (via the shell: the status the shell saw). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the signal was sent (false: the process had ended first). */
  killed: boolean;
  stderr: string;
}

interface KillPlan {
  /** Sends the signal once a progress line satisfies this. */
  when: (line: string) => boolean;
  signal: NodeJS.Signals;
  delayMs?: number;
  /** Called with lethe's PID right before the signal is sent. */
  before?: (pid: number) => void;
}

/** PIDs of the processes whose parent is `pid` (from /proc/<pid>/stat). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The command line of a process, or nothing when it is gone. */
function commandLine(pid: number): string[] {
  try {
    return [readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ")];
  } catch {
    return [];
  }
}

const isLethe = (cmd: string) => cmd.includes(LETHE) || cmd.includes(tmp);

/** Live processes (not zombies) whose command line mentions `tag` (a study folder). */
function processesOf(tag: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    if (Number(name) === process.pid) continue;
    for (const cmd of commandLine(Number(name))) if (cmd.includes(tag)) out.push(`${name}: ${cmd}`);
  }
  return out;
}

/** Waits up to 3 s for the processes of `tag` to be gone; returns those still there. */
async function survivors(tag: string): Promise<string[]> {
  for (let i = 0; i < 30; i++) {
    if (processesOf(tag).length === 0) return [];
    await new Promise((r) => setTimeout(r, 100));
  }
  return processesOf(tag);
}

/** Every file or folder under `dir` whose name has ".tmp". */
function temporaries(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((p) =>
    p.split("/").some((n) => n.includes(".tmp")),
  );
}

/** results.json of every run of a study folder, by run name. */
function results(out: string): Record<string, string> {
  const runs = join(out, "runs");
  return Object.fromEntries(
    readdirSync(runs)
      .sort()
      .map((n) => [n, readFileSync(join(runs, n, "results.json"), "utf8")]),
  );
}

/**
 * Runs `node bin/lethe.js ...args`, directly or as a shell's command (`shell`: the shell reports
 * lethe's exit status), and sends `kill.signal` to lethe's PID when `kill.when` matches.
 */
function lethe(args: string[], o: { shell?: boolean; kill?: KillPlan } = {}): Promise<Ended> {
  const child = o.shell
    ? spawn(
        "bash",
        ["-c", '"$0" "$@"; echo "lethe exit status $?"', process.execPath, LETHE, ...args],
        { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] },
      )
    : spawn(process.execPath, [LETHE, ...args], {
        cwd: repoRoot,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
  const started = performance.now();
  const lines: string[] = [];
  const times: number[] = [];
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  let triggered = false;
  let killed = false;
  let ended = false;
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    times.push(performance.now() - started);
    const k = o.kill;
    if (!k || triggered || !k.when(line)) return;
    triggered = true;
    setTimeout(() => {
      if (ended) return;
      const pid = o.shell ? childrenOf(child.pid!)[0] : child.pid!;
      if (pid === undefined) return; // the shell's command has ended
      k.before?.(pid);
      process.kill(pid, k.signal);
      killed = true;
    }, k.delayMs ?? 0);
  });
  return new Promise((res) =>
    child.on("close", (code, signal) => {
      ended = true;
      const status = lines.map((l) => /^lethe exit status (\d+)$/.exec(l)).find((m) => m);
      res({
        lines: lines.filter((l) => !l.startsWith("lethe exit status")),
        times,
        code: status ? Number(status[1]) : code,
        signal,
        killed,
        stderr,
      });
    }),
  );
}

/** A progress line without what varies between runs (speed, ETA): the kill points' clock. */
const key = (line: string) => line.replace(/(step \d+\/\d+) .*$/, "$1");

let reference: {
  keys: string[];
  times: number[];
  results: Record<string, string>;
} | null = null;

test("reference: lethe run examples/tiny-study.yaml uninterrupted", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const out = join(tmp, "reference");
  const started = performance.now();
  const r = await lethe(["run", TINY, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  console.log(`# uninterrupted: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const res = results(out);
  assert.deepEqual(Object.keys(res), [REPLAY, SEQ]);
  for (const text of Object.values(res)) assert.doesNotMatch(text, /"seconds"/);
  reference = { keys: r.lines.map(key), times: r.times, results: res };
});

test("SIGTERM, SIGINT, kill -9 of the lethe PID: status 128+n, no survivor, resume gives the same results", async (t) => {
  if (!reference) return t.skip("needs the reference run");
  const out = join(tmp, "signals");
  const plans: [string[], RegExp, NodeJS.Signals][] = [
    [["run", TINY, "--out", out], /stage 1\/3 \[haiku\] step 3\/6/, "SIGTERM"],
    [["resume", out], new RegExp(`${SEQ}\\] stage 3/3: evaluating`), "SIGINT"],
    [["resume", out], new RegExp(`${REPLAY}\\] stage 1/3 \\(haiku\\): training`), "SIGKILL"],
  ];
  for (const [args, at, signal] of plans) {
    let workers: string[] = [];
    const r = await lethe(args, {
      shell: true,
      kill: {
        when: (l) => at.test(l),
        signal,
        // Children that are lethe (a re-executed worker); tsx's esbuild service is not.
        before: (pid) => (workers = childrenOf(pid).flatMap(commandLine).filter(isLethe)),
      },
    });
    assert.ok(r.killed, `${signal}: the kill point was reached\n${r.lines.join("\n")}`);
    assert.deepEqual(workers, [], `${signal}: lethe runs in the PID it was started as`);
    assert.equal(r.code, 128 + constants.signals[signal], `${signal}: the shell's $?`);
    assert.deepEqual(await survivors(out), [], `${signal}: no process of the study survives`);
    if (signal === "SIGTERM") {
      const status = await lethe(["status", out]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.lines.join("\n"), new RegExp(`^${REPLAY} +not started +-/3( +-)*$`, "m"));
    }
  }
  const done = await lethe(["resume", out]);
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(results(out), reference.results);
  assert.deepEqual(temporaries(out), []);
});

test("kill -9 loop: 6 seeded random kill points, each resumed; the same bytes, nothing left behind", async (t) => {
  if (!reference) return t.skip("needs the reference run");
  const out = join(tmp, "loop");
  const random = makeRng(15); // the kill points
  // Kill points: moments of the reference run, one uniform in each sixth of the time between its
  // first progress line and its last evaluation, as (the line before, ms after it); a kill comes
  // that long after the first line at or past that line.
  const { keys, times } = reference;
  const last = keys.map((k) => k.endsWith("stage 3/3: evaluating")).lastIndexOf(true);
  const span = (times[last] - times[1]) / 6;
  const moments = Array.from({ length: 6 }, (_, i) => times[1] + (i + random()) * span);
  for (const [i, moment] of moments.entries()) {
    const target = times.map((x) => x <= moment).lastIndexOf(true);
    const delayMs = Math.round(moment - times[target]);
    const args = i === 0 ? ["run", TINY, "--out", out] : ["resume", out];
    const r = await lethe(args, {
      kill: { when: (l) => keys.indexOf(key(l)) >= target, signal: "SIGKILL", delayMs },
    });
    console.log(`# kill ${i + 1}: ${delayMs} ms after "${keys[target]}"`);
    assert.ok(r.killed, `kill ${i + 1} happened\n${r.lines.join("\n")}\n${r.stderr}`);
    assert.equal(r.signal, "SIGKILL");
    assert.deepEqual(await survivors(out), [], `kill ${i + 1}: no process of the study survives`);
  }
  const done = await lethe(["resume", out]);
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(results(out), reference.results);
  assert.deepEqual(temporaries(out), [], "no temporary file or folder is left");
  for (const run of [SEQ, REPLAY]) assert.ok(!existsSync(join(out, "runs", run, "lock")), run);
  assert.deepEqual(await survivors(out), []);
});
