/**
 * The allocator policy of native/lethe.cc: by default glibc's (a 100 MB tensor is mapped on its
 * own and its pages go back to the OS when it is freed); LETHE_MALLOC=retain keeps freed memory
 * in the process (the pages stay resident for the next step's tensors). Each policy runs in its
 * own child process, since it is set once when the addon loads.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

const CHILD = `
import { build, zeros } from "./src/tensor/index.js";
const rss = () => process.memoryUsage().rss;
const t = zeros([25_000_000]); // 100 MB, every page written
const held = rss();
t.dispose();
console.log(JSON.stringify({ malloc: build.malloc, droppedMb: (held - rss()) / 1e6 }));
`;

function run(env: Record<string, string>): { malloc: string; droppedMb: number } {
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", CHILD], {
    encoding: "utf8",
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, LETHE_MALLOC: "", ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

test("allocator: glibc's defaults return a freed 100 MB tensor; LETHE_MALLOC=retain keeps it", () => {
  const os = run({});
  const retain = run({ LETHE_MALLOC: "retain" });
  console.log(
    `# RSS drop after freeing 100 MB: default ${os.droppedMb.toFixed(1)} MB, retain ${retain.droppedMb.toFixed(1)} MB`,
  );
  assert.equal(os.malloc, "os");
  assert.equal(retain.malloc, "retain");
  assert.ok(os.droppedMb > 90, `default policy: RSS fell ${os.droppedMb} MB, expected ~100`);
  assert.ok(retain.droppedMb < 10, `retain policy: RSS fell ${retain.droppedMb} MB, expected ~0`);
});
