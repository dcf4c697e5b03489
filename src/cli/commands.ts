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
    },
    notes:
      "Writes the report when done. Exit status 1 while any run of the grid is incomplete\n" +
      "(e.g. held by another process).",
  },
  resume: {
    summary: "finish a study's whole grid (runs never started too), or one run folder",
    args: {
      name: "DIR",
      min: 1,
      max: 1,
      help: "a study folder (holds study.yaml) or a run folder",
    },
    options: {},
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
FG: the run's last forgetting per category, in percent.`,
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
