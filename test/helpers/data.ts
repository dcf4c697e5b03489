/**
 * Where tests find the real public data in `../shared/data/` (or `$LETHE_DATA`).
 * A test that needs a file calls `dataPath(...)`; when the folder is absent it gets `null`
 * and must skip with a printed reason via `skipReason(...)`.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const sharedDataRoot = process.env.LETHE_DATA ?? join(repoRoot, "..", "shared", "data");

/** Absolute path of a file or folder under shared/data, or null if it is not there. */
export function dataPath(...parts: string[]): string | null {
  const p = join(sharedDataRoot, ...parts);
  return existsSync(p) ? p : null;
}

/** The message a test prints (and passes to `t.skip`) when shared data is missing. */
export function skipReason(...parts: string[]): string {
  const msg = `shared data not found: ${join(sharedDataRoot, ...parts)} (set LETHE_DATA or place ../shared/data beside the repo)`;
  console.log(`# SKIP ${msg}`);
  return msg;
}
