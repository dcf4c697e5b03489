/**
 * File-system helpers for lethe's own files.
 *
 * Whole-file writes: the text goes to a temporary file beside the target (`<path>.tmp-<pid>`),
 * which is then renamed over it, so a reader or a process killed midway never sees a
 * half-written file. A process killed between the two (kill -9) leaves the temporary file behind;
 * `removeStaleTemps` removes those whose process is gone when a run resumes. Binary checkpoints
 * (src/io/safetensors.ts) add an fsync on top of this and use the same temporary names.
 *
 * Errors name the file and keep the system's code: Node's message for a failed write(2) names no
 * path ("ENOSPC: no space left on device, write"), and its recursive mkdir reports ENOENT for a
 * folder it could not make on a read-only file system (it stats the folder after EROFS); `makeDir`
 * reports the real cause (EROFS, EACCES).
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";

/** `e` (a Node fs error) with `path` in front of its message when the message does not name it. */
function naming(e: unknown, path: string): unknown {
  if (e instanceof Error && !e.message.includes(path)) e.message = `${path}: ${e.message}`;
  return e;
}

/** Writes `text` to `path` through a temporary file and a rename; the temp file never stays. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw naming(e, path);
  }
}

/** `mkdir -p path`; a failure names the first folder that could not be made and the real cause. */
export function makeDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw naming(e, path);
  }
  // Make the first missing folder alone: mkdir(2) says why it cannot (EROFS, EACCES, ENOSPC).
  let first = resolve(path);
  while (dirname(first) !== first && !existsSync(dirname(first))) first = dirname(first);
  try {
    mkdirSync(first);
    mkdirSync(path, { recursive: true }); // it could be made after all (a concurrent mkdir)
  } catch (e) {
    throw naming(e, path);
  }
}

/**
 * Throws unless a file can be written at `path`: its folder exists and is writable, and `path`
 * is not a folder. For checking an output path before hours of work whose result goes there;
 * `what` names it in the message (e.g. "--output").
 */
export function checkWritable(path: string, what: string): void {
  const file = resolve(path);
  const dir = dirname(file);
  const fail = (why: string) => new Error(`${what} ${path}: ${why}`);
  if (!existsSync(dir)) throw fail(`folder ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw fail(`${dir} is not a folder`);
  if (existsSync(file) && statSync(file).isDirectory()) throw fail("is a folder");
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw fail(`folder ${dir} is not writable (${(e as NodeJS.ErrnoException).code})`);
  }
}

/** Whether `pid` is a live process on this host (signal 0 checks without sending). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false; // 0 and -n would name process groups
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A temporary name of writeAtomic, the safetensors writer and the run lock: `….tmp-<pid>[-<n>]`. */
const TEMP_NAME = /\.tmp-(\d+)(?:-\d+)?$/;

/**
 * Removes the temporary files and folders under `dir` (`….tmp-<pid>`, recursively unless told
 * otherwise) whose process is no longer alive on this host: what a kill -9 between a write and
 * its rename leaves. Returns the paths removed.
 */
export function removeStaleTemps(dir: string, o: { recursive?: boolean } = {}): string[] {
  const removed: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      const m = TEMP_NAME.exec(entry.name);
      if (m && !pidAlive(Number(m[1]))) {
        rmSync(path, { recursive: true, force: true });
        removed.push(path);
      } else if (entry.isDirectory() && (o.recursive ?? true)) walk(path);
    }
  };
  walk(dir);
  return removed;
}
