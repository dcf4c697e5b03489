/**
 * `lethe export`: a run's model after a stage, written as a Hugging Face model folder (`hf`) or a
 * PEFT adapter (`peft`), after the fact (src/continual/export.ts has the layouts).
 *
 *   lethe export RUN_DIR [--stage M] --out DIR [--format hf|peft] [--max-shard-size SIZE]
 *     M: 0 (the starting model) to the number of tasks; default the last finished stage. The
 *     model is rebuilt on the CPU from the run's config.yaml and stage M's final checkpoint
 *     (src/continual/run.ts runStage, loadRunModel). DIR must not exist or be empty: nothing of
 *     the user's is replaced. SIZE as save_pretrained's max_shard_size (huggingface_hub
 *     `parse_size_to_int`: KB, MB, GB, TB are powers of 10) or a number of bytes.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { checkExportable, type ExportFormat, writeExport } from "../continual/export.js";
import { loadRunModel, runStage } from "../continual/run.js";
import { command } from "./commands.js";
import { intValue, UsageError } from "./flags.js";

/** huggingface_hub's SIZE_UNITS. */
const UNITS: Record<string, number> = { KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12 };

/** "5GB" → 5e9, "123" → 123 (huggingface_hub `parse_size_to_int`, plus plain bytes). */
function parseSize(v: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]B)?\s*$/i.exec(v);
  const n = m === null ? NaN : Math.floor(Number(m[1]) * (m[2] ? UNITS[m[2].toUpperCase()] : 1));
  if (!(n >= 1))
    throw new UsageError(
      `--${flag} must be a size like 5GB, 500MB or a number of bytes, got "${v}"`,
    );
  return n;
}

export const exportCommand = command("export", async ({ values, positionals }) => {
  const format = values.format as ExportFormat;
  const maxShardBytes = parseSize(values["max-shard-size"], "max-shard-size");
  const stageArg = intValue(values.stage, "stage", 0);
  const out = resolve(values.out);
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0))
    throw new Error(
      `--out ${values.out}: exists and is not an empty folder; remove it or choose another`,
    );
  const s = runStage(resolve(positionals[0]), stageArg ?? null);
  const source = { study: s.study, spec: s.spec, baseDir: null };
  checkExportable(format, source); // before the weights load
  const { model, baseDir } = await loadRunModel(s);
  try {
    await writeExport(model, format, out, { ...source, baseDir }, { maxShardBytes });
  } finally {
    model.dispose();
  }
  console.log(`${s.spec.name} after stage ${s.stage} (${format}) -> ${out}`);
  return 0;
});
