/**
 * The run lock (src/continual/lock.ts) under a race: 8 processes call acquireLock on the same
 * fresh run folder at the same instant (each spins to a shared start time), 12 rounds; half the
 * rounds start from a stale lock left by a process killed with SIGKILL. Every round has exactly
 * one winner, the lock names it, and every loser gets RunLockedError (never a half-written lock
 * read as free, never a second holder). It guards a real failure: 3 of 12 rounds had two holders
 * when the lock was created empty and written afterwards. Also: a live holder
 * refuses, release frees, and the plain-file lock of an older lethe is still understood.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { acquireLock, isLocked, readLock } from "../../src/continual/lock.js";
import { repoRoot } from "../helpers/data.js";

const LOCK = JSON.stringify(join(repoRoot, "src", "continual", "lock.ts"));
const WORKERS = 8;
const ROUNDS = 12;

/** Takes the lock of every folder named on the command line, then dies by SIGKILL. */
const STALE = `import { acquireLock } from ${LOCK};
for (const dir of process.argv.slice(1)) acquireLock(dir);
process.kill(process.pid, "SIGKILL");`;

/** Per stdin line [dir, startAt]: spins until startAt (epoch ms), tries the lock, says what happened. */
const WORKER = `import { acquireLock } from ${LOCK};
import { createInterface } from "node:readline";
const held = [];
process.stdout.write("ready\\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [dir, at] = JSON.parse(line);
  while (performance.timeOrigin + performance.now() < at);
  let r;
  try {
    const lock = acquireLock(dir);
    held.push(lock);
    r = { dir, pid: process.pid, won: true, tookOver: lock.tookOver?.pid ?? null };
  } catch (e) {
    r = { dir, pid: process.pid, won: false, error: e.name, message: e.message };
  }
  process.stdout.write(JSON.stringify(r) + "\\n");
}`;

interface Outcome {
  dir: string;
  pid: number;
  won: boolean;
  tookOver?: number | null;
  error?: string;
  message?: string;
}

function node(script: string, args: string[] = []): ChildProcess {
  return spawn(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script, ...args],
    { cwd: repoRoot, stdio: ["pipe", "pipe", "inherit"] },
  );
}

test("8 processes × 12 synchronized rounds: exactly one holder per round, stale locks taken over once", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "lethe-lock-race-"));
  const dirs = Array.from({ length: ROUNDS }, (_, r) => join(tmp, `run${r}`));
  for (const d of dirs) mkdirSync(d);
  // Odd rounds start from a stale lock: its holder was killed with SIGKILL.
  const stale = dirs.filter((_, r) => r % 2 === 1);
  const killed = node(STALE, stale);
  const [, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res) =>
    killed.on("exit", (c, s) => res([c, s])),
  );
  assert.equal(signal, "SIGKILL");
  for (const d of stale) {
    assert.equal(readLock(d)?.pid, killed.pid, `${d}: the killed process's lock is left behind`);
    assert.equal(isLocked(d), null, `${d}: a dead holder does not lock`);
  }

  const workers = Array.from({ length: WORKERS }, () => node(WORKER));
  const outcomes: Outcome[][] = workers.map(() => []);
  const waiting: (() => void)[] = [];
  let exited = 0;
  for (const w of workers)
    w.on("exit", () => {
      exited++;
      waiting.splice(0).forEach((f) => f());
    });
  const ready = workers.map(
    (w, i) =>
      new Promise<void>((res) => {
        createInterface({ input: w.stdout! }).on("line", (line) => {
          if (line === "ready") return res();
          outcomes[i].push(JSON.parse(line) as Outcome);
          waiting.splice(0).forEach((f) => f());
        });
      }),
  );
  try {
    await Promise.all(ready);
    for (const [r, dir] of dirs.entries()) {
      const at = Date.now() + 150;
      for (const w of workers) w.stdin!.write(JSON.stringify([dir, at]) + "\n");
      while (outcomes.some((o) => o.length <= r)) {
        assert.equal(exited, 0, "a worker exited early");
        await new Promise<void>((f) => waiting.push(f));
      }
      const round = outcomes.map((o) => o[r]);
      const winners = round.filter((o) => o.won);
      assert.equal(
        winners.length,
        1,
        `round ${r}: ${winners.length} holders: ${JSON.stringify(round)}`,
      );
      for (const o of round.filter((x) => !x.won))
        assert.equal(o.error, "RunLockedError", `round ${r}: ${o.message}`);
      assert.equal(readLock(dir)?.pid, winners[0].pid, `round ${r}: the lock names its holder`);
      // The winner may find the stale lock already cleared by a loser: tookOver is then null.
      assert.ok([null, ...(r % 2 === 1 ? [killed.pid] : [])].includes(winners[0].tookOver!));
    }
  } finally {
    for (const w of workers) w.stdin!.end();
    await Promise.all(workers.map((w) => new Promise((res) => w.on("exit", res))));
  }
  // Exiting released every lock; no temporary file is left beside them.
  for (const d of dirs) {
    assert.equal(readLock(d), null, `${d}: released at exit`);
    assert.deepEqual(
      readdirSync(d).filter((n) => n !== "lock"),
      [],
      `${d}: nothing left beside the lock`,
    );
  }
  rmSync(tmp, { recursive: true, force: true });
});

test("a live holder refuses a second acquirer with its pid; release frees the folder", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-lock-"));
  const lock = acquireLock(dir);
  assert.equal(lock.tookOver, null);
  assert.throws(() => acquireLock(dir), new RegExp(`in use by process ${process.pid} on `));
  assert.equal(isLocked(dir)?.pid, process.pid);
  lock.release();
  assert.equal(isLocked(dir), null);
  assert.ok(!existsSync(join(dir, "lock")), "release removes the lock");
  acquireLock(dir).release();
  rmSync(dir, { recursive: true, force: true });
});

test("an older lethe's plain-file lock: taken over when its process is gone, refused when alive", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-lock-file-"));
  const gone = spawnSync(process.execPath, ["-e", "0"]).pid!;
  const since = new Date().toISOString();
  writeFileSync(join(dir, "lock"), JSON.stringify({ pid: gone, host: hostname(), since }));
  assert.equal(isLocked(dir), null);
  const lock = acquireLock(dir);
  assert.equal(lock.tookOver?.pid, gone);
  assert.equal(readLock(dir)?.pid, process.pid);
  lock.release();
  writeFileSync(join(dir, "lock"), JSON.stringify({ pid: process.pid, host: hostname(), since }));
  assert.throws(() => acquireLock(dir), /in use by process/);
  rmSync(dir, { recursive: true, force: true });
});

test("under Slurm, a lock of the same job from another node (its earlier run) is taken over; another job's is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-lock-job-"));
  const since = new Date().toISOString();
  const other = { pid: 4242, host: "node-that-died", since };
  const writeHolder = (info: object) => {
    mkdirSync(join(dir, "lock"), { recursive: true });
    writeFileSync(join(dir, "lock", "4242-abc.json"), JSON.stringify(info));
  };
  const saved = process.env.SLURM_JOB_ID;
  try {
    process.env.SLURM_JOB_ID = "77";
    writeHolder({ ...other, job: "76" });
    assert.throws(() => acquireLock(dir), /in use by process 4242 on node-that-died/);
    rmSync(join(dir, "lock"), { recursive: true });
    writeHolder({ ...other, job: "77" });
    const lock = acquireLock(dir);
    assert.equal(lock.tookOver?.host, "node-that-died");
    assert.equal(readLock(dir)?.job, "77");
    lock.release();
  } finally {
    if (saved === undefined) delete process.env.SLURM_JOB_ID;
    else process.env.SLURM_JOB_ID = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
