/**
 * The native bridge's unboxed fast paths (native/lethe.cc `fastOps`) against its boxed path, the
 * oracle: the same battery of ops (test/tensor/fastpath_battery.ts) run once with the fast paths
 * and once with LETHE_BOXED_ONLY=1 must give the same bytes for every result and gradient, and
 * the same error messages.
 */
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import { test } from "node:test";
import { native } from "../../src/tensor/native.js";

function battery(boxedOnly: boolean): { fastPaths: number | null; out: Record<string, string> } {
  const env = { ...process.env };
  if (boxedOnly) env.LETHE_BOXED_ONLY = "1";
  else delete env.LETHE_BOXED_ONLY;
  const r = spawnSync(
    process.execPath,
    ["--import", "tsx", new URL("./fastpath_battery.ts", import.meta.url).pathname],
    { env, encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

test("fast paths equal the boxed path bit for bit", (t) => {
  if (native.stats().fastPaths === undefined) {
    t.skip("this addon predates the fast paths (rebuild: npm run build:native)");
    return;
  }
  const fast = battery(false);
  const boxed = battery(true);
  assert.equal(boxed.fastPaths, 0);
  assert.ok(fast.fastPaths! >= 30, `only ${fast.fastPaths} ops took a fast path`);
  assert.deepEqual(Object.keys(fast.out).sort(), Object.keys(boxed.out).sort());
  let differing = 0;
  for (const k of Object.keys(boxed.out)) if (fast.out[k] !== boxed.out[k]) differing++;
  console.log(
    `${Object.keys(boxed.out).length} results compared, ${fast.fastPaths} fast ops, ${differing} differ`,
  );
  for (const k of Object.keys(boxed.out)) assert.equal(fast.out[k], boxed.out[k], k);
  assert.match(fast.out.missing, /missing argument 'size' for aten::view/);
  assert.match(fast.out.too_many, /too many arguments for aten::neg/);
});
