/**
 * `lethe study`: the built-in miniature study (src/mini/study.ts) from nothing to a report.
 *
 *   lethe study [--preset default|quick|full] [--out DIR] [--zoo-dir DIR]
 *
 * Writes the synthetic world, pretrains the model zoo (cached by content hash in --zoo-dir,
 * default $LETHE_CACHE/zoo or ~/.cache/lethe/zoo), runs the grid into DIR (default
 * runs/mini-<preset>), then writes the report and prints the FG table and the report's path.
 * Run the same command again, or `lethe resume DIR`, to continue after an interruption.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { runMiniStudy } from "../mini/study.js";
import { writeReport } from "../report/index.js";
import { progressPrinter } from "../train/progress.js";
import { command } from "./commands.js";
import { runnerOutput } from "./run.js";
import { writeAtomic } from "../util/fs.js";

export const studyCommand = command("study", async ({ values }) => {
  const preset = values.preset;
  const out = resolve(values.out ?? join("runs", `mini-${preset}`));
  const started = performance.now();
  const { say: log, ...output } = runnerOutput(values);
  const { phases } = await runMiniStudy({
    preset,
    out,
    zooDir: values["zoo-dir"] && resolve(values["zoo-dir"]),
    ...output,
    onPretrain: output.log ? progressPrinter({ stream: process.stdout }) : undefined,
  });
  const t = performance.now();
  const files = await writeReport([out], out);
  const report = (performance.now() - t) / 1000;
  const seconds = { ...phases, report, total: (performance.now() - started) / 1000 };
  writeAtomic(join(out, "phases.json"), JSON.stringify(seconds, null, 1) + "\n");
  log(`\n${readFileSync(files.md, "utf8")}`);
  log(`study: ${out} (${seconds.total.toFixed(0)} s)`);
  log(`report: ${files.html}`);
  return 0;
});
