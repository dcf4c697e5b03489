/**
 * The Python interpreter of the side-by-side references (tests that cross-check against PyTorch,
 * bench/*_torch.py): `LETHE_PYTHON` if set, else the project's venv (`.venv/bin/python`, made by
 * scripts/setup.sh with the same torch whose libtorch the addon links).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Path of the reference interpreter (it may not exist: see `pythonHas`). */
export const PYTHON = process.env.LETHE_PYTHON ?? join(root, ".venv", "bin", "python");

/** Whether the reference interpreter exists and imports every module named. */
export function pythonHas(...modules: string[]): boolean {
  if (!existsSync(PYTHON) && !process.env.LETHE_PYTHON) return false;
  const r = spawnSync(PYTHON, ["-c", modules.map((m) => `import ${m}`).join("; ") || "pass"], {
    stdio: "ignore",
  });
  return r.status === 0;
}
