/**
 * One process per run directory: a lock file `lock` holding `{pid, host, since}`, created with
 * O_EXCL. A lock left by a dead process on this host (kill -9, power loss) is taken over with a
 * note; a live one, or one from another host (whose pid cannot be checked), is a clear refusal.
 * Reference: the pid-file convention of daemons (e.g. PostgreSQL's `postmaster.pid`: a stale
 * file whose pid is gone is overwritten, a live one refuses start-up).
 */
import { openSync, closeSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

export const LOCK_FILE = "lock";

export interface LockInfo {
  pid: number;
  host: string;
  since: string;
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

/** The lock's holder, or null when there is no lock (or it is unreadable, i.e. half-written). */
export function readLock(dir: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8")) as LockInfo;
    return typeof v.pid === "number" && typeof v.host === "string" ? v : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a live process on this host (signal 0 checks without sending). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Whether the lock of `dir` is held by a live process (or by another host). */
export function isLocked(dir: string): LockInfo | null {
  const info = readLock(dir);
  if (info === null) return null;
  return info.host !== hostname() || alive(info.pid) ? info : null;
}

export interface RunLock {
  /** Set when a stale lock was taken over: what it said. */
  readonly tookOver: LockInfo | null;
  release(): void;
}

/** Takes the lock of `dir` (which must exist); throws RunLockedError when another holds it. */
export function acquireLock(dir: string): RunLock {
  const file = join(dir, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  let tookOver: LockInfo | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, "wx");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = readLock(dir);
      if (holder !== null && (holder.host !== me.host || alive(holder.pid)))
        throw new RunLockedError(dir, holder);
      // Stale (or unreadable): move it aside atomically; whoever renames first takes over.
      try {
        renameSync(file, `${file}.stale.${process.pid}`);
        rmSync(`${file}.stale.${process.pid}`, { force: true });
      } catch {
        // another process took it over first; try again
      }
      tookOver = holder ?? { pid: -1, host: "?", since: "?" };
      continue;
    }
    writeSync(fd, JSON.stringify(me));
    closeSync(fd);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const now = readLock(dir);
      if (now?.pid === me.pid && now.host === me.host) rmSync(file, { force: true });
      process.off("exit", release);
    };
    process.on("exit", release);
    return { tookOver, release };
  }
  const holder = readLock(dir);
  throw new RunLockedError(dir, holder ?? { pid: -1, host: "unknown", since: "unknown" });
}
