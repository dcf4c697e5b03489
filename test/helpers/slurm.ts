/**
 * The local one-node Slurm cluster of scripts/slurm-local.sh, for tests: `slurmCluster()` finds
 * one that is up ($SLURM_CONF, else the script's default folder) or starts it (the script installs
 * Debian's slurm-wlm and munge when missing, which needs root or sudo). Where slurm-wlm cannot be
 * installed it returns a printed reason to skip; a cluster that is installed but does not come up
 * is an error. The SLURM_CONF it sets in process.env reaches every child process.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./data.js";

const SCRIPT = join(repoRoot, "scripts", "slurm-local.sh");
const DEFAULT_CONF = join(process.env.LETHE_SLURM_DIR ?? "/tmp/lethe-slurm", "slurm.conf");

const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

function up(conf: string): boolean {
  if (!existsSync(conf) || !has("sinfo")) return false;
  const r = spawnSync("sinfo", ["--noheader", "--format=%T"], {
    encoding: "utf8",
    env: { ...process.env, SLURM_CONF: conf },
    timeout: 10_000,
  });
  return r.status === 0 && /^(idle|mix|alloc|completing)/m.test(r.stdout);
}

export interface Cluster {
  /** Whether this process started it (then `stopCluster` takes it down again). */
  started: boolean;
}

/** A running local cluster, or the reason (printed) why none can be had here. */
export function slurmCluster(): Cluster | { skip: string } {
  for (const conf of [process.env.SLURM_CONF, DEFAULT_CONF])
    if (conf !== undefined && up(conf)) {
      process.env.SLURM_CONF = conf;
      return { started: false };
    }
  const root = process.getuid?.() === 0;
  if (!root && spawnSync("sudo", ["-n", "true"]).status !== 0) {
    const msg =
      "no Slurm cluster is up and slurm-wlm cannot be installed or started (not root, no sudo)";
    console.log(`# SKIP ${msg}`);
    return { skip: msg };
  }
  const r = spawnSync("bash", [SCRIPT, "start"], { encoding: "utf8", timeout: 600_000 });
  if (r.status !== 0) {
    if (!has("slurmctld") || !has("munged")) {
      const msg = `slurm-wlm could not be installed: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" / ")}`;
      console.log(`# SKIP ${msg}`);
      return { skip: msg };
    }
    throw new Error(`bash ${SCRIPT} start failed:\n${r.stderr}${r.stdout}`);
  }
  process.env.SLURM_CONF = DEFAULT_CONF;
  return { started: true };
}

/** Takes down a cluster `slurmCluster` started. */
export function stopCluster(c: Cluster): void {
  if (c.started) spawnSync("bash", [SCRIPT, "stop"], { stdio: "ignore" });
}

/** A Slurm command's stdout; throws with what it said when it fails. */
export function slurmRun(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** An array element as squeue sees it now (null once Slurm forgot it). */
export function elementState(
  element: string,
): { state: string; reason: string; restarts: number; node: string } | null {
  const r = spawnSync(
    "squeue",
    [
      "--noheader",
      "--array",
      "--states=all",
      `--jobs=${element}`,
      "--Format=State:|,Reason:|,RestartCnt:|,NodeList:|",
    ],
    { encoding: "utf8" },
  );
  const line = r.status === 0 ? r.stdout.trim().split("\n")[0] : "";
  if (!line) return null;
  const [state, reason, restarts, node] = line.split("|").map((s) => s.trim());
  return { state, reason, restarts: Number(restarts), node };
}

const hurried = new Set<string>();

/**
 * Slurm holds a requeued job for about two minutes (BeginTime) before it may start again; a
 * test does not wait that long: a pending element of `arrayJob` held for its begin time may start
 * 5 s from now. Not at once: slurmd refuses a job whose credential dates from the second its last
 * run was killed ("Job credential revoked"), which is what the hold protects against.
 */
export function hurry(arrayJob: string): void {
  const r = spawnSync(
    "squeue",
    [
      "--noheader",
      "--array",
      "--states=PENDING",
      `--jobs=${arrayJob}`,
      "--Format=ArrayJobID:|,ArrayTaskID:|,Reason:|,RestartCnt:|",
    ],
    { encoding: "utf8" },
  );
  if (r.status !== 0) return;
  for (const line of r.stdout.split("\n")) {
    const [a, task, reason, restarts] = line.split("|").map((s) => s.trim());
    const key = `${a}_${task}#${restarts}`;
    if (reason !== "BeginTime" || hurried.has(key)) continue;
    hurried.add(key);
    spawnSync("scontrol", ["update", `JobId=${a}_${task}`, "StartTime=now+5"], { stdio: "ignore" });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` (every 100 ms, hurrying requeued elements of `arrayJob`) until it returns a
 * value other than null/false; throws naming `what` after `timeoutMs`.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | null | false,
  o: { timeoutMs: number; arrayJob?: string; onTimeout?: () => string },
): Promise<T> {
  const end = Date.now() + o.timeoutMs;
  for (;;) {
    const v = check();
    if (v !== null && v !== false) return v;
    if (Date.now() > end)
      throw new Error(
        `timed out after ${o.timeoutMs / 1000} s waiting for ${what}${o.onTimeout ? `\n${o.onTimeout()}` : ""}`,
      );
    if (o.arrayJob) hurry(o.arrayJob);
    await sleep(100);
  }
}
