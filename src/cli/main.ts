/**
 * The `lethe` command line: `lethe COMMAND [ARGS] [options]`, `lethe --help`, `lethe --version`.
 * Commands are declared in commands.ts; the command line is parsed and checked against that
 * declaration before a command's code is loaded, so `--help` and usage errors are fast and work
 * without the native addon.
 *
 * Exit status: 0 success, 1 the work failed, 2 a usage error (UsageError), and 128 + n when
 * signal n stops the process: no signal handler is installed, so SIGINT and SIGTERM end lethe as
 * they end any process (bin/lethe.js runs in the process it was started as). The exception is
 * `lethe run-one`, a Slurm element's command (src/cli/submit.ts): SIGUSR1 and SIGTERM stop its
 * run gracefully (src/train/stop.ts), and it exits with 75 when the element should be requeued.
 */
import {
  COMMANDS,
  commandSpec,
  helpCommand,
  LETHE,
  overview,
  type CommandName,
} from "./commands.js";
import { versionText } from "./doctor.js";
import { helpText, parseFlags, usageLine, UsageError } from "./flags.js";

type Run = (argv: string[]) => Promise<number>;

/** Each command's code, imported when it runs. */
const IMPLEMENTATIONS = {
  study: async () => (await import("./study.js")).studyCommand,
  demo: async () => (await import("./demo.js")).demoCommand,
  logits: async () => (await import("./model.js")).logitsCommand,
  generate: async () => (await import("./model.js")).generateCommand,
  eval: async () => (await import("./eval.js")).evalCommand,
  run: async () => (await import("./run.js")).runCommand,
  plan: async () => (await import("./plan.js")).planCommand,
  resume: async () => (await import("./run.js")).resumeCommand,
  status: async () => (await import("./run.js")).statusCommand,
  serve: async () => (await import("./serve.js")).serveCommand,
  export: async () => (await import("./export.js")).exportCommand,
  submit: async () => (await import("./submit.js")).submitCommand,
  "run-one": async () => (await import("./submit.js")).runOneCommand,
  cancel: async () => (await import("./submit.js")).cancelCommand,
  report: async () => (await import("./report.js")).reportCommand,
  compare: async () => (await import("./report.js")).compareCommand,
  doctor: async () => (await import("./doctor.js")).doctorCommand,
  help: async () => helpCommand,
} satisfies Record<CommandName, () => Promise<Run>>;

let pipeHandled = false;

export async function main(argv: string[]): Promise<number> {
  if (!pipeHandled) {
    pipeHandled = true;
    // `lethe status | head`: a closed pipe ends the command quietly, as for any Unix tool.
    process.stdout.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  }
  const [first, ...rest] = argv;
  const name = first === undefined || first.startsWith("-") ? null : first;
  try {
    if (name === null) return await lethe(argv);
    const spec = commandSpec(name);
    const parsed = parseFlags(rest, spec); // usage errors before the command's code loads
    if (parsed.help) {
      process.stdout.write(helpText(name, spec));
      return 0;
    }
    return await (
      await IMPLEMENTATIONS[name as CommandName]()
    )(rest);
  } catch (e) {
    const who = name !== null && Object.hasOwn(COMMANDS, name) ? `lethe ${name}` : "lethe";
    process.stderr.write(`${who}: ${(e as Error).message}\n`);
    if (!(e instanceof UsageError)) return 1;
    if (who !== "lethe")
      process.stderr.write(
        `usage: ${usageLine(name!, COMMANDS[name as CommandName])}\n` +
          `\`${who} --help\` lists every option\n`,
      );
    else process.stderr.write("`lethe --help` lists the commands\n");
    return 2;
  }
}

/** `lethe`, `lethe --help [COMMAND]`, `lethe --version [--verbose]`. */
async function lethe(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseFlags(argv, LETHE);
  if (values.verbose && !values.version) throw new UsageError("--verbose goes with --version");
  if (values.version) {
    if (help) throw new UsageError("give --help or --version, not both");
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    process.stdout.write(await versionText(values.verbose));
    return 0;
  }
  process.stdout.write(
    positionals.length ? helpText(positionals[0], commandSpec(positionals[0])) : overview(),
  );
  return 0;
}
