/**
 * bin/lethe.js sets OMP_WAIT_POLICY in its own environment before the native addon, and with it
 * libgomp (which reads the variable once, when it loads), is loaded: PASSIVE unless the user chose
 * a policy. A probe preloaded with `--import` wraps process.dlopen and prints the variable at the
 * moment build/lethe.node is opened, in the process `lethe` was started as.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../helpers/data.js";

const PROBE = `const open = process.dlopen;
process.dlopen = function (module, file, ...rest) {
  if (String(file).endsWith(".node"))
    process.stderr.write(\`dlopen \${file} pid \${process.pid} OMP_WAIT_POLICY=\${process.env.OMP_WAIT_POLICY}\\n\`);
  return open.call(this, module, file, ...rest);
};`;

test("bin/lethe.js: OMP_WAIT_POLICY is set before the addon loads; the user's policy wins", () => {
  for (const policy of [undefined, "ACTIVE"]) {
    const env = { ...process.env };
    delete env.OMP_WAIT_POLICY;
    if (policy) env.OMP_WAIT_POLICY = policy;
    const r = spawnSync(
      process.execPath,
      [
        ...["--import", `data:text/javascript,${encodeURIComponent(PROBE)}`],
        ...[join(repoRoot, "bin", "lethe.js"), "help"],
      ],
      { cwd: repoRoot, env, encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    const loads = r.stderr.split("\n").filter((l) => /^dlopen .*lethe[^/]*\.node /.test(l));
    assert.equal(loads.length, 1, r.stderr);
    assert.match(loads[0], new RegExp(` pid ${r.pid} OMP_WAIT_POLICY=${policy ?? "PASSIVE"}$`));
  }
});
