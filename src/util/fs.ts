/**
 * Whole-file writes: the text goes to a temporary file beside the target (`<path>.tmp-<pid>`),
 * which is then renamed over it, so a reader or a process killed midway never sees a
 * half-written file. Binary checkpoints (src/io/safetensors.ts) add an fsync on top of this.
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";

/** Writes `text` to `path` through a temporary file and a rename; the temp file never stays. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
