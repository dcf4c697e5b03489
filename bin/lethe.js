#!/usr/bin/env node
// The `lethe` command. Re-executes itself once with the environment libtorch needs
// (OMP_WAIT_POLICY=PASSIVE before libgomp loads, tcmalloc preloaded; see src/tensor/native.ts),
// then runs the TypeScript CLI through tsx.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
const needsTc = existsSync(tcmalloc) && !(process.env.LD_PRELOAD ?? "").includes("tcmalloc");
if (process.env.OMP_WAIT_POLICY === undefined || needsTc) {
  const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" };
  if (needsTc) env.LD_PRELOAD = [tcmalloc, process.env.LD_PRELOAD].filter(Boolean).join(":");
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: "inherit", env });
  process.exit(r.status ?? (r.signal ? 128 + 15 : 1));
}
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
