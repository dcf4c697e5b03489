/**
 * Every `lethe` command, declared once: its summary, arguments and options (each with its default
 * and one line of help). The parser (flags.ts), `lethe CMD --help`, `lethe --help` and the
 * README's command table (`lethe help --markdown`; test/cli/help.test.ts fails when the README
 * differs) all read this table, so they cannot drift. Only declarations live here: the code of a
 * command is in its own file and loads when the command runs, so help and usage errors need no
 * native addon.
 *
 * Reference: clig.dev ("Display help text when passed -h or --help", "exit codes"); git's
 * `git help CMD` / `git CMD -h`.
 */
import { readFileSync } from "node:fs";
import {
  columns,
  helpText,
  parseFlags,
  usageLine,
  UsageError,
  type CommandSpec,
  type Options,
  type Parsed,
} from "./flags.js";
import { didYouMean } from "../util/suggest.js";

const OUT_DIR = { type: "string", value: "DIR" } as const;
const DEVICE = {
  type: "string",
  value: "D",
  default: "cpu",
  help: "device to run on: cpu, cuda, cuda:1, …",
} as const;

const MODEL = {
  type: "string",
  value: "DIR",
  required: true,
  help: "a Hugging Face model directory or hf:ORG/NAME[@REV]",
} as const;

/** Progress output of run, resume and study (src/train/progress.ts, src/continual/events.ts). */
const QUIET = {
  type: "boolean",
  help: "print nothing but errors (the event log is still written)",
} as const;
const JSON_EVENTS = {
  type: "boolean",
  help: "print each run's events (events.jsonl lines, with `run`) to stdout instead of progress",
} as const;

const NPROC = {
  type: "string",
  value: "N",
  default: "1",
  help: "ranks to start on this machine, as torchrun (train.distributed: ddp, zero1, zero2)",
} as const;

export const COMMANDS = {
  study: {
    summary: "the built-in miniature study, end to end: world, model zoo, grid, report",
    options: {
      preset: {
        type: "string",
        value: "NAME",
        default: "default",
        choices: ["default", "quick", "full"],
        help: "which grid and world (see presets below)",
      },
      out: { ...OUT_DIR, defaultText: "runs/mini-<preset>", help: "the study folder" },
      "zoo-dir": {
        type: "string",
        value: "DIR",
        defaultText: "$LETHE_CACHE/zoo, else ~/.cache/lethe/zoo",
        help: "the pretrained zoo's cache, kept by content hash",
      },
      quiet: QUIET,
      json: JSON_EVENTS,
    },
    notes: `presets:
  default  the paper's four comparisons and replay / general mixing, 5 stages, 2 seeds
  quick    the default grid on a smaller world and zoo (tests, a first look)
  full     the default world and zoo, three seeds, every full-tuning method
Run the same command again, or \`lethe resume DIR\`, to continue after an interruption.`,
  },
  demo: {
    summary: "train a small GPT-2 on built-in text for a while (engine check)",
    options: {
      seconds: { type: "string", value: "S", default: "60", help: "how long to train" },
      seed: { type: "string", value: "N", default: "0", help: "seed of the data and weights" },
    },
  },
  logits: {
    summary: "logits of a model for the input ids of a safetensors file",
    options: {
      model: MODEL,
      inputs: {
        type: "string",
        value: "IN.safetensors",
        required: true,
        help: "int64 input_ids [B,T]; optional attention_mask, decoder_input_ids",
      },
      out: {
        type: "string",
        value: "OUT.safetensors",
        required: true,
        help: "where float32 logits [B,T,V] are written",
      },
      device: DEVICE,
    },
    notes: "OUT holds `model(**inputs).logits`, as transformers computes it.",
  },
  generate: {
    summary: "greedy or sampled continuation of a prompt or of an inputs file's rows",
    usage: "--model DIR (--prompt TEXT | --inputs IN.safetensors) --max-new-tokens N [options]",
    options: {
      model: MODEL,
      prompt: { type: "string", value: "TEXT", help: "text to continue (needs tokenizer files)" },
      inputs: {
        type: "string",
        value: "IN.safetensors",
        help: "input_ids (left-padded for decoder-only models) and attention_mask",
      },
      "max-new-tokens": {
        type: "string",
        value: "N",
        required: true,
        help: "tokens to generate at most, up to the model's context length",
      },
      sample: { type: "boolean", help: "sample instead of greedy decoding" },
      temperature: {
        type: "string",
        value: "T",
        defaultText: "generation_config.json's, else 1",
        help: "sampling temperature; needs --sample",
      },
      "top-p": {
        type: "string",
        value: "P",
        defaultText: "generation_config.json's, else 1",
        help: "nucleus sampling threshold; needs --sample",
      },
      seed: { type: "string", value: "S", help: "seed of the sampler; needs --sample" },
      out: {
        type: "string",
        value: "OUT.json",
        help: 'also write {"sequences": [[new token ids…], …]} here',
      },
      device: DEVICE,
    },
    notes:
      "Give exactly one of --prompt and --inputs. Stop tokens are generation_config.json's\n" +
      "eos_token_id; top_k comes from it too (transformers' default 50).",
  },
  eval: {
    summary: "lm-eval-compatible log-likelihood evaluation, results in lm-eval's JSON layout",
    options: {
      model: { ...MODEL, value: "DIR|hf:ORG/NAME" },
      adapter: { type: "string", value: "DIR", help: "a PEFT LoRA adapter folder to apply" },
      tasks: {
        type: "string",
        value: "T1,T2,…",
        required: true,
        help: "lm-eval task or group names, comma-separated (mmlu, piqa, …)",
      },
      "data-dir": {
        type: "string",
        value: "DIR",
        required: true,
        help: "the benchmarks' data folder",
      },
      output: {
        type: "string",
        value: "OUT.json",
        required: true,
        help: "where the results JSON is written",
      },
      shots: { type: "string", value: "K", default: "0", help: "few-shot examples per prompt" },
      limit: {
        type: "string",
        value: "N",
        defaultText: "all",
        help: "score only the first N documents of each task",
      },
      "batch-size": { type: "string", value: "B", default: "32", help: "requests per forward" },
      device: DEVICE,
      dtype: {
        type: "string",
        default: "float32",
        choices: ["float32", "float16", "bfloat16"],
        help: "compute dtype of the weights",
      },
      precision: {
        type: "string",
        choices: ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"], // src/train/precision.ts PRECISIONS
        defaultText: "from --dtype",
        help: "precision policy, as in training (bf16-mixed: fp32 weights, bf16 matmuls)",
      },
      "max-length": {
        type: "string",
        value: "L",
        defaultText: "the model's context length",
        help: "longest context scored; longer ones are cut on the left",
      },
      "log-samples": { type: "boolean", help: "also write every scored sample" },
      "cache-dir": {
        type: "string",
        value: "DIR",
        defaultText: "$LETHE_CACHE/eval, else ~/.cache/lethe/eval",
        help: "cache of scored requests, keyed by the model files' hash",
      },
      "no-cache": { type: "boolean", help: "score everything again, cache nothing" },
      "prefix-cache-mb": {
        type: "string",
        value: "MB",
        defaultText: "a quarter of free memory",
        help: "key/value cache the prefix tree keeps across requests",
      },
      "no-prefix-cache": {
        type: "boolean",
        help: "share only whole identical contexts, no prefix tree (for benches)",
      },
    },
    notes: "OUT.json's folder is checked before the model loads.",
  },
  run: {
    summary: "run a continual fine-tuning study: every model × method × order × seed",
    args: { name: "CONFIG.yaml", min: 1, max: 1, help: "the study config (YAML or JSON)" },
    options: {
      out: {
        ...OUT_DIR,
        defaultText: "runs/<study name>",
        help: "the study folder; one the same config started is continued",
      },
      "nproc-per-node": NPROC,
      "ignore-plan": {
        type: "boolean",
        help: "start even when `lethe plan` says a run does not fit its device's memory",
      },
      "dry-run": {
        type: "boolean",
        help: "resolve and list every model, task, benchmark, category and run; load and train nothing",
      },
      quiet: QUIET,
      json: JSON_EVENTS,
    },
    notes:
      "Refuses up front (exit status 1) a run whose memory plan does not fit its device.\n" +
      "Writes the report when done. Exit status 1 while any run of the grid is incomplete\n" +
      "(e.g. held by another process). Under torchrun, srun or another launcher, each rank\n" +
      "reads RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT.",
  },
  plan: {
    summary:
      "the memory each run of a study needs on its device before anything loads, and whether it fits",
    args: { name: "CONFIG.yaml", min: 1, max: 1, help: "the study config (YAML or JSON)" },
    options: {
      device: {
        type: "string",
        value: "D",
        defaultText: "each model's device",
        help: "plan every run for this device: cpu, cuda, cuda:1, …",
      },
      "memory-gb": {
        type: "string",
        value: "N",
        defaultText: "the device's: CUDA total (nvidia-smi), RAM on CPU",
        help: "the device's memory in GiB, e.g. 80 or 141 for another machine's GPU",
      },
      "nproc-per-node": { ...NPROC, help: "ranks the runs would train on (train.distributed)" },
      fetch: {
        type: "boolean",
        help: "download the config.json of hf: models missing from the hub cache",
      },
      json: { type: "boolean", help: "the plans as JSON" },
    },
    notes: `Per run: weights (the policy's dtype; mixed: float32 master weights), autocast's 16-bit
weight copies, gradients, AdamW state, the method's own tensors (θ₀, Fisher, teacher logits),
one micro-batch's activations without and with gradient checkpointing, one evaluation batch, and
the peak against the device's memory. A run that does not fit gets the changes that would make
it fit: checkpointing, bf16-mixed, LoRA, a smaller batch, zero1 sharding. hf: models are planned
from config.json in the hub cache (--fetch downloads it), else shown as unknown.`,
  },
  resume: {
    summary: "finish a study's whole grid (runs never started too), or one run folder",
    args: {
      name: "DIR",
      min: 1,
      max: 1,
      help: "a study folder (holds study.yaml) or a run folder",
    },
    options: {
      "nproc-per-node": NPROC,
      slurm: {
        type: "boolean",
        help: "submit the unfinished runs to Slurm instead, with the last submission's settings",
      },
      quiet: QUIET,
      json: JSON_EVENTS,
    },
    notes: "Exit status 1 while any run is incomplete (e.g. held by another process).",
  },
  status: {
    summary: "a table of the runs of a study: state, last stage done, FG, holding process",
    args: { name: "DIR", min: 0, max: 1, help: "a study or run folder (default: .)" },
    options: { json: { type: "boolean", help: "the same as JSON" } },
    notes: `A run is complete, running (a live process holds its lock), failed (it stopped on an
error: failed.json, and "error" in --json), stopped (started, incomplete, no live process, not
failed: interrupted) or not started; \`lethe resume\` continues failed and stopped runs.
Stage m/N: stages 0 (the base model's evaluation) to m of N tasks are done; -/N: none yet.
FG: the run's last forgetting per category, in percent. slurm (a study sent with lethe submit):
pending, running on NODE, requeued N×, completed, failed with its log, cancelled.`,
  },
  serve: {
    summary: "a live dashboard of a study, running or finished: runs, loss and benchmark curves",
    args: {
      name: "DIR",
      min: 1,
      max: 1,
      help: "a study folder (holds study.yaml) or a run folder",
    },
    options: {
      port: { type: "string", value: "N", default: "8787", help: "the port (0: any free one)" },
      host: {
        type: "string",
        value: "ADDR",
        default: "127.0.0.1",
        help: "the address to bind; another than loopback prints a token every request must carry",
      },
    },
    notes: `Reads the study's files only (events.jsonl, results.json, locks, report.html), so it
works on a study that is running, finished, or on a shared file system. The page updates every
second. TensorBoard: \`tensorboard --logdir DIR/runs\` reads the runs' tb/ folders.`,
  },
  export: {
    summary: "a run's model after a stage as a Hugging Face folder (hf) or a PEFT adapter (peft)",
    args: { name: "RUN_DIR", min: 1, max: 1, help: "a run folder (a study's runs/<name>)" },
    options: {
      stage: {
        type: "string",
        value: "M",
        defaultText: "the last finished",
        help: "0 (the starting model) to the number of tasks",
      },
      out: {
        ...OUT_DIR,
        required: true,
        help: "the folder to write (must not exist, or be empty)",
      },
      format: {
        type: "string",
        default: "hf",
        choices: ["hf", "peft"], // src/continual/config.ts EXPORT_FORMATS
        help: "hf: full weights, LoRA merged; peft: a LoRA run's adapter",
      },
      "max-shard-size": {
        type: "string",
        value: "SIZE",
        default: "5GB",
        help: "hf: largest weights file before sharding (bytes, or KB/MB/GB as save_pretrained)",
      },
    },
    notes: `Reads the run's config.yaml and the stage's final checkpoint (train.keep: none removes
those: export while training with \`export: [hf, peft]\` in the study config instead).
hf copies config.json, generation_config.json and the tokenizer files from the base model.`,
  },
  submit: {
    summary: "run a study's grid on a Slurm cluster: a job array, one element per unfinished run",
    args: { name: "CONFIG.yaml", min: 1, max: 1, help: "the study config (YAML or JSON)" },
    options: {
      out: {
        ...OUT_DIR,
        defaultText: "runs/<study name>",
        help: "the study folder, on storage every node sees; one the same config started is continued",
      },
      partition: { type: "string", value: "NAME", help: "sbatch --partition" },
      account: { type: "string", value: "NAME", help: "sbatch --account" },
      time: {
        type: "string",
        value: "LIMIT",
        help: "each run's time limit (sbatch --time: 4:00:00)",
      },
      "gpus-per-run": { type: "string", value: "N", help: "GPUs per node of each run" },
      "cpus-per-run": { type: "string", value: "N", defaultText: "1", help: "CPUs of each run" },
      mem: {
        type: "string",
        value: "SIZE",
        help: "memory per node of each run (sbatch --mem: 16G)",
      },
      "nodes-per-run": { type: "string", value: "N", defaultText: "1", help: "nodes of each run" },
      "ranks-per-node": {
        type: "string",
        value: "N",
        defaultText: "--gpus-per-run, else 1",
        help: "ranks of each run per node, started with srun (train.distributed)",
      },
      "sbatch-arg": {
        type: "string",
        value: "ARG",
        help: "another sbatch option, repeatable: --sbatch-arg=--qos=high",
      },
      "max-retries": {
        type: "string",
        value: "N",
        defaultText: "2",
        help: "requeues of a run that keeps failing before it counts as failed",
      },
    },
    notes: `Writes DIR as \`lethe run\` does, plus DIR/slurm/array.sbatch (element i runs \`lethe run-one
DIR i\`) and report.sbatch; prints the job ids. Options override the config's \`slurm:\` section
(same names in camelCase: partition, account, time, gpusPerRun, cpusPerRun, mem, nodesPerRun,
ranksPerNode, sbatchArgs, maxRetries). Elements run with --requeue and --signal=B:USR1@120: on SIGUSR1 or
SIGTERM a run checkpoints, releases its lock and exits, and resumes from there when requeued.
The report job runs when the array ends (afterany): DIR/status.txt, then the report.
Logs: DIR/runs/<run>/slurm-<job id>.out. A run of several ranks (nodes × ranks per node) starts
them with srun, in torchrun's environment.`,
  },
  "run-one": {
    summary: "run one run of a study's grid, from where it stopped (a Slurm element's command)",
    usage: "DIR INDEX [options]",
    args: {
      name: "DIR INDEX",
      min: 2,
      max: 2,
      help: "a study folder (holds study.yaml) and the run's index in its grid, from 0",
    },
    options: {
      "max-retries": {
        type: "string",
        value: "N",
        default: "2",
        help: "under Slurm: failures requeued (exit status 75) before the run counts as failed",
      },
    },
    notes: `SIGUSR1 and SIGTERM, or the file $LETHE_STOP_FILE appearing, stop the run gracefully: a
checkpoint at the current step, the lock released, exit status 75 after SIGUSR1 (the batch
script requeues the element), 128 + n after another signal n.`,
  },
  cancel: {
    summary: "cancel a study's Slurm jobs that are still pending or running",
    args: { name: "DIR", min: 1, max: 1, help: "a study folder submitted with lethe submit" },
    options: {},
    notes: "Running runs checkpoint and stop; `lethe resume DIR --slurm` submits them again.",
  },
  report: {
    summary: "self-contained HTML report and Markdown/CSV/LaTeX FG tables",
    args: { name: "RUN_DIR", min: 1, max: 1, help: "a run (holds results.json) or a study" },
    options: {
      out: { ...OUT_DIR, defaultText: "RUN_DIR", help: "where report.html and fg.* are written" },
      method: {
        type: "string",
        value: "NAME",
        defaultText: "the method with the most runs",
        help: "the runs the findings compare",
      },
    },
  },
  compare: {
    summary: "several runs or studies side by side (Markdown)",
    args: { name: "DIR", min: 1, max: Infinity, help: "runs or studies" },
    options: {
      out: { ...OUT_DIR, help: "also write one report over all of them here" },
      method: {
        type: "string",
        value: "NAME",
        defaultText: "the method with the most runs",
        help: "the runs the report's findings compare",
      },
    },
  },
  doctor: {
    summary: "versions, libtorch's backends and build, CPU: paste it into bug reports",
    options: {},
  },
  help: {
    summary: "the commands, or one command's options",
    args: { name: "COMMAND", min: 0, max: 1, help: "a command" },
    options: {
      markdown: { type: "boolean", help: "the README's tables of commands and exit statuses" },
    },
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/** `lethe` without a command: --help, --version. */
export const LETHE = {
  summary: "measure and mitigate catastrophic forgetting in continually fine-tuned LLMs",
  args: { name: "COMMAND", min: 0, max: 1, help: "with --help: that command's help" },
  options: {
    version: { type: "boolean", short: "V", help: "print lethe's version" },
    verbose: {
      type: "boolean",
      short: "v",
      help: "with --version: libtorch, CUDA/NCCL/Gloo, the addon's build flags",
    },
  },
} as const satisfies CommandSpec;

const VERSION_SUMMARY =
  "lethe's version; --verbose adds libtorch (built against, loaded), CUDA, NCCL, Gloo, " +
  "BLAS, threads, CPU and the addon's build flags";

/** The exit statuses of every command (README, `lethe --help`). */
export const EXIT_CODES: [string, string][] = [
  ["0", "success"],
  ["1", "the work failed (an error; run/resume: a run of the grid is incomplete)"],
  ["2", "usage error: unknown command or option, missing argument, bad value"],
  ["75", "run-one: requeue this Slurm element (stopped by SIGUSR1, or a retry)"],
  ["130, 143", "interrupted by SIGINT (Ctrl-C) or SIGTERM (128 + the signal's number)"],
];

/** The command's declaration, or a UsageError suggesting the closest command. */
export function commandSpec(name: string): CommandSpec {
  if (!Object.hasOwn(COMMANDS, name))
    throw new UsageError(`unknown command "${name}".${didYouMean(name, Object.keys(COMMANDS))}`);
  return COMMANDS[name as CommandName];
}

/** A command's function: parses `argv` by its declaration, answers --help, else runs. */
export function command<N extends CommandName>(
  name: N,
  run: (a: Parsed<(typeof COMMANDS)[N]["options"]>) => Promise<number>,
): (argv: string[]) => Promise<number> {
  const spec = COMMANDS[name] as CommandSpec;
  return async (argv) => {
    const a = parseFlags(argv, spec) as Parsed<(typeof COMMANDS)[N]["options"]>;
    if (a.help) {
      process.stdout.write(helpText(name, spec));
      return 0;
    }
    return run(a);
  };
}

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** `lethe --help`. */
export function overview(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]): [string, string] => [name, c.summary]);
  const flags = Object.entries(LETHE.options as Options).map(([k, o]): [string, string] => [
    `-${o.short}, --${k}`,
    o.help,
  ]);
  return [
    `lethe ${pkg.version}: ${LETHE.summary}`,
    "",
    "usage: lethe COMMAND [ARGS] [options]",
    "       lethe help COMMAND | lethe COMMAND --help   a command's options and defaults",
    "       lethe --version [--verbose]",
    "",
    "commands:",
    columns(rows),
    "",
    "options:",
    columns([...flags, ["-h, --help", "print this help"]]),
    "",
    "exit status:",
    columns(EXIT_CODES),
    "",
  ].join("\n");
}

/** A Markdown table, aligned as prettier aligns one. */
function markdownTable(head: [string, string], rows: [string, string][]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  const all = [head, ...rows].map((r) => r.map(cell));
  const w = [0, 1].map((i) => Math.max(...all.map((r) => [...r[i]].length)));
  const line = (r: string[]) =>
    `| ${r.map((c, i) => c + " ".repeat(w[i] - [...c].length)).join(" | ")} |`;
  const [h, ...body] = all;
  return [line(h), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...body.map(line)]
    .join("\n")
    .concat("\n");
}

/** The README's command table. */
export function commandTable(): string {
  return markdownTable(
    ["command", "what it does"],
    [
      ...Object.entries(COMMANDS).map(([name, c]): [string, string] => [
        `\`${usageLine(name, c)}\``,
        c.summary,
      ]),
      ["`lethe --version [--verbose]`", VERSION_SUMMARY],
    ],
  );
}

/** The README's table of exit statuses. */
export function exitCodeTable(): string {
  return markdownTable(["exit status", "meaning"], EXIT_CODES);
}

/** `lethe help [COMMAND]`, `lethe help --markdown`. */
export const helpCommand = command("help", async ({ values, positionals }) => {
  if (values.markdown) process.stdout.write(`${commandTable()}\n${exitCodeTable()}`);
  else if (positionals.length === 1)
    process.stdout.write(helpText(positionals[0], commandSpec(positionals[0])));
  else process.stdout.write(overview());
  return 0;
});
