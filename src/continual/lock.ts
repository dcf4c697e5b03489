/**
 * One process per run directory. The lock is a folder `lock/` holding one file
 * `<pid>-<nonce>.json` = `{pid, host, since}`. A lock left by a dead process on this host
 * (kill -9, power loss) is taken over with a note; a live one, or one from another host (whose pid
 * cannot be checked), is a clear refusal. Under Slurm the lock also names the job
 * (SLURM_JOB_ID): a job runs once at a time, so a lock of this same job is its previous run's,
 * requeued or restarted, on whatever node it was (a node that died leaves such a lock).
 *
 * Why a folder: it is made whole beside the run (`lock.tmp-<pid>-<n>/`, content written) and then
 * renamed to `lock`, and rename(2) of a folder succeeds only when the target is absent or an empty
 * folder. So a lock never exists without its content, and of any number of processes renaming at
 * once exactly one gets it (O_EXCL semantics, like link(2) of a file). A stale lock is taken over
 * by deleting its holder's file, whose name is unique to that holder: a process that saw the lock
 * stale and acts late deletes nothing (the file is gone), never a newer holder's lock, and the
 * emptied folder again admits exactly one rename. A single lock file cannot do this: removing it
 * "if it is still the stale one" is not an atomic operation.
 *
 * Reference: the pid-file convention of daemons (e.g. PostgreSQL's `postmaster.pid`: a stale
 * file whose pid is gone is overwritten, a live one refuses start-up), with rename(2)'s rule for
 * folders as the compare-and-swap.
 */
import { randomBytes } from "node:crypto";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { pidAlive } from "../util/fs.js";

export const LOCK_FILE = "lock";

/** Rounds of "remove a stale holder, try again" before giving up (each round makes progress). */
const MAX_ATTEMPTS = 50;

export interface LockInfo {
  pid: number;
  host: string;
  since: string;
  /** The Slurm job that took it (SLURM_JOB_ID), when run under Slurm. */
  job?: string;
}

export class RunLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holder: LockInfo,
  ) {
    super(
      `${dir} is in use by process ${holder.pid} on ${holder.host} (since ${holder.since}); ` +
        `wait for it to finish, or stop it and run \`lethe resume ${dir}\``,
    );
    this.name = "RunLockedError";
  }
}

interface Holder {
  /** The holder's file inside `lock/` (for an older lethe's plain-file lock: `lock` itself). */
  file: string;
  info: LockInfo | null;
}

/** Who holds `dir`'s lock: null when there is no lock (or an empty `lock/`, i.e. a free one). */
function holderOf(dir: string): Holder | null {
  const path = join(dir, LOCK_FILE);
  let names: string[];
  try {
    names = readdirSync(path).filter((n) => n.endsWith(".json"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code !== "ENOTDIR") throw e;
    names = [""]; // an older lethe's lock: a plain file
  }
  if (names.length === 0) return null;
  const file = join(path, names[0]);
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as LockInfo;
    const ok = typeof v.pid === "number" && typeof v.host === "string";
    return { file, info: ok ? v : null };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return holderOf(dir); // just released
    return { file, info: null }; // unreadable: only a crash of the machine mid-write leaves this
  }
}

/** The lock's holder, or null when there is no lock (or its content is unreadable). */
export function readLock(dir: string): LockInfo | null {
  return holderOf(dir)?.info ?? null;
}

/** Whether the lock of `dir` is held by a live process (or by another host). */
export function isLocked(dir: string): LockInfo | null {
  const info = readLock(dir);
  if (info === null) return null;
  return info.host !== hostname() || pidAlive(info.pid) ? info : null;
}

export interface RunLock {
  /** Set when a stale lock was taken over: what it said. */
  readonly tookOver: LockInfo | null;
  release(): void;
}

let tmpCount = 0;

/** Takes the lock of `dir` (which must exist); throws RunLockedError when another holds it. */
export function acquireLock(dir: string): RunLock {
  const path = join(dir, LOCK_FILE);
  const job = process.env.SLURM_JOB_ID;
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    ...(job ? { job } : {}),
  };
  const name = `${me.pid}-${randomBytes(6).toString("hex")}.json`;
  const tmp = `${path}.tmp-${me.pid}-${tmpCount++}`;
  mkdirSync(tmp);
  let tookOver: LockInfo | null = null;
  try {
    writeFileSync(join(tmp, name), JSON.stringify(me));
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        renameSync(tmp, path);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST" && code !== "ENOTDIR") throw e;
        const holder = holderOf(dir);
        if (holder === null) continue; // released meanwhile: rename again
        const { info } = holder;
        const sameJob = job !== undefined && info?.job === job; // its earlier run, now gone
        if (info !== null && !sameJob && (info.host !== me.host || pidAlive(info.pid)))
          throw new RunLockedError(dir, info);
        // Stale (or unreadable): delete the holder's own file; only that lock is affected.
        rmSync(holder.file, { force: true });
        tookOver = info ?? { pid: -1, host: "?", since: "?" };
        continue;
      }
      const mine = join(path, name);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off("exit", release);
        rmSync(mine, { force: true });
        try {
          rmdirSync(path); // not empty: another process took the free lock meanwhile
        } catch {
          // ENOENT, ENOTEMPTY: nothing of ours is left
        }
      };
      process.on("exit", release);
      return { tookOver, release };
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const holder = readLock(dir);
  throw new RunLockedError(dir, holder ?? { pid: -1, host: "unknown", since: "unknown" });
}
