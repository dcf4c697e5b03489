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
import { command } from "./commands.js";

export const reportCommand = command("report", async ({ values, positionals }) => {
  const files = await writeReport(positionals, values.out, { method: values.method });
  for (const f of Object.values(files)) console.log(f);
  return 0;
});

export const compareCommand = command("compare", async ({ values, positionals }) => {
  process.stdout.write(compareRuns(positionals));
  if (values.out !== undefined) {
    const files = await writeReport(positionals, values.out, { method: values.method });
    for (const f of Object.values(files)) console.log(f);
  }
  return 0;
});
