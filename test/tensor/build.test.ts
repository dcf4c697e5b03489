/**
 * The libtorch underneath: PyTorch 2.11 or newer, and the very version of the venv's torch that
 * the Python references (tests and bench/) run on, so "lethe vs PyTorch" compares like with like.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import test from "node:test";
import { build } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";

const base = (v: string) => v.split("+")[0];

test("the loaded libtorch is 2.11 or newer and is the one the addon was built against", () => {
  const [major, minor] = base(build.torchLoaded).split(".").map(Number);
  assert.ok(major > 2 || (major === 2 && minor >= 11), `libtorch ${build.torchLoaded} < 2.11`);
  assert.equal(base(build.torchLoaded), base(build.torch), "built against ≠ loaded");
  assert.equal(typeof build.cudaCompiled, "boolean");
  assert.ok(build.threads >= 1);
});

test("the addon's libtorch is the reference Python's torch", (t) => {
  if (!pythonHas("torch")) return t.skip(`${PYTHON} with torch is absent (run scripts/setup.sh)`);
  const r = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), build.torchLoaded);
});
