/**
 * The `lethe` command line. Each command parses its own flags; unknown flags are errors that
 * suggest the right one.
 */
import { parseArgs } from "node:util";
import { demo } from "./demo.js";
import { doctorCommand, versionText } from "./doctor.js";
import { evalCommand } from "./eval.js";
import { generateCommand, logitsCommand } from "./model.js";
import { compareCommand, reportCommand } from "./report.js";
import { resumeCommand, runCommand, statusCommand } from "./run.js";
import { studyCommand } from "./study.js";

const USAGE = `lethe — measure and mitigate catastrophic forgetting in continually fine-tuned LLMs

usage:
  lethe study [--preset default|quick|full] [--out DIR] [--zoo-dir DIR]
                                         the built-in miniature study, end to end, to a report
  lethe demo [--seconds 60] [--seed 0]   train a small GPT-2 on built-in text (engine check)
  lethe logits --model DIR --inputs IN.safetensors --out OUT.safetensors
                                         logits of a model for the input ids in IN
  lethe generate --model DIR (--prompt TEXT | --inputs IN.safetensors) --max-new-tokens N
                 [--sample --temperature T --top-p P --seed S] [--out OUT.json]
                                         greedy or sampled continuation
  lethe eval --model DIR|hf:ORG/NAME [--adapter DIR] --tasks mmlu,piqa,... --data-dir DIR
             [--shots K] [--limit N] [--batch-size B] [--device D] --output OUT.json [--log-samples]
                                         lm-eval-compatible log-likelihood evaluation
  lethe run CONFIG.yaml [--out DIR]      run a continual fine-tuning study (every grid cell)
  lethe resume DIR                       finish a study's whole grid (runs never started too),
                                         or one run directory; exit 1 while a run is incomplete
  lethe status [DIR]                     every run's stage (or "not started"), last FG and lock
  lethe report RUN_DIR [--out DIR] [--method NAME]
                                         self-contained HTML report + Markdown/CSV/LaTeX tables
  lethe compare DIR... [--out DIR]       several runs side by side
  lethe doctor                           versions, libtorch backends and CPU, for bug reports
  lethe --version [--verbose]            lethe, libtorch (built against and loaded), CUDA
  lethe help                             this text
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, Command> = {
  async demo(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        seconds: { type: "string", default: "60" },
        seed: { type: "string", default: "0" },
      },
    });
    demo({
      seconds: Number(values.seconds),
      seed: Number(values.seed),
      log: (l) => console.log(l),
    });
    return 0;
  },
  study: studyCommand,
  logits: logitsCommand,
  generate: generateCommand,
  eval: evalCommand,
  run: runCommand,
  resume: resumeCommand,
  status: statusCommand,
  report: reportCommand,
  compare: compareCommand,
  doctor: doctorCommand,
  async help() {
    process.stdout.write(USAGE);
    return 0;
  },
};

export async function main(argv: string[]): Promise<number> {
  // `lethe status | head`: a closed pipe ends the command quietly, as for any Unix tool.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  const [name = "help", ...rest] = argv;
  if (name === "--version" || name === "-V") {
    process.stdout.write(await versionText(rest.includes("--verbose") || rest.includes("-v")));
    return 0;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`lethe: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await cmd(rest);
  } catch (e) {
    process.stderr.write(`lethe ${name}: ${(e as Error).message}\n`);
    return 1;
  }
}
