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
import { compareRuns, writeReport } from "../report/index.js";
import { parseFlags } from "./flags.js";

const REPORT_USAGE = "lethe report RUN_DIR [--out DIR] [--method NAME]";
const COMPARE_USAGE = "lethe compare DIR... [--out DIR] [--method NAME]";

const OPTIONS = { out: { type: "string" }, method: { type: "string" } } as const;

export async function reportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, OPTIONS, REPORT_USAGE, true);
  if (positionals.length !== 1)
    throw new Error(`expected one RUN_DIR, got ${positionals.length}\nusage: ${REPORT_USAGE}`);
  const files = await writeReport(positionals, values.out, { method: values.method });
  for (const f of Object.values(files)) console.log(f);
  return 0;
}

export async function compareCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags(argv, OPTIONS, COMPARE_USAGE, true);
  if (positionals.length === 0) throw new Error(`no directory given\nusage: ${COMPARE_USAGE}`);
  process.stdout.write(compareRuns(positionals));
  if (values.out !== undefined) {
    const files = await writeReport(positionals, values.out, { method: values.method });
    for (const f of Object.values(files)) console.log(f);
  }
  return 0;
}
