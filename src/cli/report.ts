/**
 * `lethe report` and `lethe compare`: the HTML report and paper tables of runs and studies
 * (src/report/index.ts).
 *
 *   lethe report RUN_DIR [--out DIR] [--method NAME]
 *     RUN_DIR: a run (holds results.json) or a study (holds runs/<name>/). Writes report.html,
 *     fg.md, fg.csv and fg.tex into DIR (default RUN_DIR). --method picks the runs the findings
 *     compare (default: the method with the most runs).
 *   lethe compare DIR... [--out DIR] [--method NAME]
 *     Prints the runs side by side (Markdown); with --out, also writes one report over all of them.
 */
import { parseArgs } from "node:util";
import { compareRuns, writeReport } from "../report/index.js";
import { didYouMean } from "../util/suggest.js";

const REPORT_USAGE = "lethe report RUN_DIR [--out DIR] [--method NAME]";
const COMPARE_USAGE = "lethe compare DIR... [--out DIR] [--method NAME]";

const OPTIONS = { out: { type: "string" }, method: { type: "string" } } as const;

function parse(argv: string[], usage: string) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    const m = /Unknown option '(--?[\w-]+)'/.exec((e as Error).message);
    const known = Object.keys(OPTIONS).map((k) => `--${k}`);
    const hint = m ? didYouMean(m[1], known) : "";
    throw new Error(`${(e as Error).message}.${hint}\nusage: ${usage}`);
  }
}

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, REPORT_USAGE);
  if (positionals.length !== 1)
    throw new Error(`expected one RUN_DIR, got ${positionals.length}\nusage: ${REPORT_USAGE}`);
  const files = await writeReport(positionals, values.out, { method: values.method });
  for (const f of Object.values(files)) console.log(f);
  return 0;
}

export async function compareCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, COMPARE_USAGE);
  if (positionals.length === 0) throw new Error(`no directory given\nusage: ${COMPARE_USAGE}`);
  process.stdout.write(compareRuns(positionals));
  if (values.out !== undefined) {
    const files = await writeReport(positionals, values.out, { method: values.method });
    for (const f of Object.values(files)) console.log(f);
  }
  return 0;
}
