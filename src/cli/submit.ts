/**
 * `lethe submit`, `lethe run-one`, `lethe cancel` (and `lethe resume DIR --slurm`): a study's
 * grid on a Slurm cluster (src/continual/slurm.ts). Their options are declared in commands.ts.
 *
 *   lethe submit CONFIG.yaml [--out DIR] [slurm options]   writes DIR as `lethe run` does, submits
 *                                    one job array element per unfinished run and the report job
 *   lethe run-one DIR INDEX          one run of the grid (what each element runs)
 *   lethe cancel DIR                 scancel of every job of the study still pending or running
 *   lethe resume DIR --slurm         submit again what is unfinished, with the last settings
 *
 * The batch scripts start this checkout's bin/lethe.js with this Node.js (absolute paths), so the
 * cluster's nodes must see both at the same paths (a shared file system).
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadStudy, type Study } from "../continual/config.js";
import {
  cancelStudy,
  DEFAULT_MAX_RETRIES,
  lastSettings,
  runElement,
  slurmSettings,
  submitStudy,
  type SlurmSettings,
} from "../continual/slurm.js";
import { command } from "./commands.js";
import { intValue, UsageError } from "./flags.js";

const log = (line: string) => process.stdout.write(`${line}\n`);

const LETHE_COMMAND = {
  node: process.execPath,
  lethe: fileURLToPath(new URL("../../bin/lethe.js", import.meta.url)),
};

/**
 * Every value of a repeatable string option, in order (the flag parser keeps the last only).
 * Values that start with "-" must be written `--flag=VALUE`, as the parser demands.
 */
function repeated(argv: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (a === `--${flag}` && i + 1 < argv.length) out.push(argv[++i]);
    else if (a.startsWith(`--${flag}=`)) out.push(a.slice(flag.length + 3));
  }
  return out;
}

function submitted(dir: string, study: Study, settings: SlurmSettings): number {
  const r = submitStudy(study, dir, settings, LETHE_COMMAND, { log });
  if (r.arrayJob === null) {
    log(
      r.queued.length > 0
        ? `nothing submitted: the unfinished runs are still queued (lethe status ${dir})`
        : `nothing submitted: every run of ${dir} is complete`,
    );
    return 0;
  }
  const runs = Object.entries(r.runs);
  log(`job array ${r.arrayJob}: ${runs.length} run(s) of ${study.config.name}`);
  for (const [i, name] of runs) log(`  ${r.arrayJob}_${i}  ${name}`);
  log(`report job ${r.reportJob}: when the array ends (afterany)`);
  log(`logs: ${join(dir, "runs", "<run>", "slurm-<job id>.out")}`);
  log(`lethe status ${dir} shows where they are; lethe cancel ${dir} cancels what is left`);
  return 0;
}

export const submitCommand = (argv: string[]) =>
  command("submit", async ({ values, positionals: [file] }) => {
    const study = loadStudy(file);
    const dir = resolve(values.out ?? join("runs", study.config.name));
    const flags: SlurmSettings = {
      partition: values.partition,
      account: values.account,
      time: values.time,
      gpusPerRun: intValue(values["gpus-per-run"], "gpus-per-run", 0),
      cpusPerRun: intValue(values["cpus-per-run"], "cpus-per-run", 1),
      mem: values.mem,
      nodesPerRun: intValue(values["nodes-per-run"], "nodes-per-run", 1),
      ranksPerNode: intValue(values["ranks-per-node"], "ranks-per-node", 1),
      sbatchArgs: values["sbatch-arg"] === undefined ? undefined : repeated(argv, "sbatch-arg"),
      maxRetries: intValue(values["max-retries"], "max-retries", 0),
    };
    let settings: SlurmSettings;
    try {
      settings = slurmSettings(study, flags);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return submitted(dir, study, settings);
  })(argv);

/** `lethe resume DIR --slurm`. */
export async function resubmit(dir: string): Promise<number> {
  const study = loadStudy(join(dir, "study.yaml"));
  const settings = lastSettings(dir) ?? slurmSettings(study, {});
  return submitted(dir, study, settings);
}

export const runOneCommand = command("run-one", async ({ values, positionals: [arg, index] }) => {
  const dir = resolve(arg);
  if (!existsSync(join(dir, "study.yaml")))
    throw new Error(`${dir}: not a study folder (no study.yaml)`);
  const i = Number(index);
  if (!/^\d+$/.test(index)) throw new UsageError(`INDEX must be an integer >= 0, got "${index}"`);
  const maxRetries = intValue(values["max-retries"], "max-retries", 0) ?? DEFAULT_MAX_RETRIES;
  return runElement(dir, i, { log, maxRetries });
});

export const cancelCommand = command("cancel", async ({ positionals: [arg] }) => {
  const dir = resolve(arg);
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  const ids = cancelStudy(dir);
  log(ids.length === 0 ? "nothing left to cancel" : `cancelled: ${ids.join(" ")}`);
  return 0;
});
