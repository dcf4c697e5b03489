/**
 * `node bin/lethe.js` as a shell runs it: real exit statuses (0 help and version, 1 a failure of
 * the work, 2 a usage error, death by SIGINT/SIGTERM, which the shell reports as 130/143), help
 * without the native addon, and the addon loaded in the process `lethe` was started as (no
 * re-exec), with OMP_WAIT_POLICY as the user left it (libgomp's default when unset, as PyTorch). A
 * probe preloaded with `--import` wraps process.dlopen and prints the variable at the moment
 * build/lethe.node is opened.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { repoRoot } from "../helpers/data.js";

const LETHE = join(repoRoot, "bin", "lethe.js");

const PROBE = `const open = process.dlopen;
process.dlopen = function (module, file, ...rest) {
  if (String(file).endsWith(".node"))
    process.stderr.write(\`dlopen \${file} pid \${process.pid} OMP_WAIT_POLICY=\${process.env.OMP_WAIT_POLICY}\\n\`);
  return open.call(this, module, file, ...rest);
};`;

function lethe(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawnSync(
    process.execPath,
    [...["--import", `data:text/javascript,${encodeURIComponent(PROBE)}`], LETHE, ...args],
    { cwd: repoRoot, env, encoding: "utf8" },
  );
}

const addonLoads = (stderr: string) =>
  stderr.split("\n").filter((l) => /^dlopen .*lethe[^/]*\.node /.test(l));

test("bin/lethe.js: the addon loads in the lethe PID itself; OMP_WAIT_POLICY is left as set", () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    version: string;
  };
  for (const policy of [undefined, "ACTIVE"]) {
    const env = { ...process.env };
    delete env.OMP_WAIT_POLICY;
    if (policy) env.OMP_WAIT_POLICY = policy;
    const r = lethe(["--version"], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split("\n")[0], `lethe ${pkg.version}`);
    const loads = addonLoads(r.stderr);
    assert.equal(loads.length, 1, r.stderr);
    assert.match(loads[0], new RegExp(` pid ${r.pid} OMP_WAIT_POLICY=${policy ?? "undefined"}$`));
  }
});

test("bin/lethe.js: exit 0 for help (no addon loaded), 2 for usage errors, 1 for failed work", () => {
  const help = lethe(["--help"]);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /^usage: lethe COMMAND/m);
  assert.deepEqual(addonLoads(help.stderr), [], "help needs no native addon");
  const runHelp = lethe(["run", "-h"]);
  assert.equal(runHelp.status, 0, runHelp.stderr);
  assert.match(runHelp.stdout, /^usage: lethe run CONFIG\.yaml \[options\]\n/);
  assert.deepEqual(addonLoads(runHelp.stderr), []);

  const typo = lethe(["generate", "--max-new-token", "3"]);
  assert.equal(typo.status, 2);
  assert.equal(typo.stdout, "");
  assert.match(typo.stderr, /Unknown option '--max-new-token'\. Did you mean "--max-new-tokens"\?/);
  const missing = lethe(["eval", "--tasks", "piqa"]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^lethe eval: --model is required$/m);
  assert.equal(lethe(["stauts"]).status, 2);

  const failed = lethe(["resume", join(repoRoot, "no-such-study")]);
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /^lethe resume: .*no-such-study: no such directory$/m);
});

test("bin/lethe.js: SIGINT and SIGTERM end lethe by the signal (the shell's 130 and 143)", async () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const child = spawn(process.execPath, [LETHE, "demo", "--seconds", "60"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: child.stdout });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((res) =>
      child.on("exit", (code, sig) => res([code, sig])),
    );
    // Once the demo has printed its first line it is training; then the signal comes.
    for await (const line of lines) {
      assert.match(line, /^lethe demo: GPT-2 /);
      child.kill(signal);
      break;
    }
    const [code, sig] = await exited;
    assert.deepEqual([code, sig], [null, signal], "no handler swallows the signal");
    assert.equal(128 + constants.signals[signal], signal === "SIGINT" ? 130 : 143);
  }
});
