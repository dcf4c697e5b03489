/**
 * Export of a run's model after a stage, in the layouts other tools load:
 *
 * - `hf`: a Hugging Face model folder as transformers' `save_pretrained` writes it (config.json,
 *   model.safetensors or 5 GB shards with model.safetensors.index.json, generation_config.json,
 *   the tokenizer files). It holds the full weights after the stage, a LoRA run's adapters merged
 *   in (PEFT's `merge_and_unload`), in the dtype the run held them (float32 master weights under
 *   the mixed precisions). config.json (with `torch_dtype` set to the stored dtype),
 *   generation_config.json and the tokenizer files are the base model's own; a `build` model
 *   gets its config and a copy of its tokenizer file.
 * - `peft`: a LoRA run's adapter as PEFT saves it (adapter_config.json + adapter_model.safetensors),
 *   `base_model_name_or_path` naming the run's base model (its hub id or folder). A run that started
 *   from an adapter (`adapter:` in the model spec) trained that adapter on, so this is the whole
 *   difference from the base model.
 *
 * A study with `export: [hf, peft]` writes `runs/<run>/export/stage-<m>/<format>/` after each
 * trained stage (m ≥ 1), before the stage counts as done, so a resume writes again what a kill
 * interrupted; `lethe export` writes any finished stage, the base model (stage 0) included, from the
 * run's checkpoints later (src/cli/export.ts). A folder is written beside its destination under a
 * temporary name and renamed into place, so a reader never sees half of one.
 *
 * References: transformers `modeling_utils.py` (`save_pretrained`), PEFT `peft_model.py`
 * (`save_pretrained`) and `tuners/lora/model.py` (`merge_and_unload`).
 */
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { LanguageModel } from "../models/index.js";
import { saveLoraAdapter } from "../io/peft.js";
import { parseModelRef, replaceDir, savePretrained } from "../io/pretrained.js";
import { makeDir } from "../util/fs.js";
import type { EXPORT_FORMATS, RunSpec, Study } from "./config.js";

export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** What an export needs to know of a run besides its model. */
export interface ExportSource {
  study: Study;
  spec: RunSpec;
  /** The base model's folder (a `ref`), or null for a `build` model. */
  baseDir: string | null;
}

/** Where a run's `export:` writes stage m's format. */
export function exportDir(runDir: string, m: number, format: ExportFormat): string {
  return join(runDir, "export", `stage-${m}`, format);
}

/**
 * Throws unless the run can be exported as `format`: peft needs a LoRA run. (OLoRA's later stages
 * are no one adapter: config.ts refuses `export: [peft]` with it, runStage rebuilding them.)
 */
export function checkExportable(format: ExportFormat, source: ExportSource): void {
  const kind = source.study.config.tuning.kind;
  if (format === "peft" && kind !== "lora")
    throw new Error(
      `run ${source.spec.name} is full fine-tuning (tuning.kind: ${kind}): peft holds a LoRA adapter; export hf`,
    );
}

/**
 * Writes `model` (a run's model after some stage) to the folder `out` as `format`, replacing what
 * is there. `maxShardBytes` as savePretrained's (default 5 GB).
 */
export async function writeExport(
  model: LanguageModel,
  format: ExportFormat,
  out: string,
  source: ExportSource,
  o: { maxShardBytes?: number } = {},
): Promise<void> {
  const spec = source.spec.model;
  makeDir(dirname(resolve(out)));
  if (format === "hf") {
    const base = source.baseDir;
    const raw = (f: string) => JSON.parse(readFileSync(join(base!, f), "utf8")) as object;
    await savePretrained(model, out, {
      maxShardBytes: o.maxShardBytes,
      tokenizerDir: base ?? spec.build!.tokenizer,
      ...(base === null ? {} : { config: { ...raw("config.json") } }),
      ...(base !== null && existsSync(join(base, "generation_config.json"))
        ? { generationConfig: { ...raw("generation_config.json") } }
        : {}),
    });
    return;
  }
  const ref = spec.ref === undefined ? null : parseModelRef(spec.ref);
  const final = resolve(out);
  const tmp = join(dirname(final), `.${basename(final)}.tmp-${process.pid}-${Date.now()}`);
  try {
    saveLoraAdapter(model, tmp, {
      baseModelNameOrPath: ref === null ? null : "dir" in ref ? ref.dir : ref.repo,
    });
    await replaceDir(tmp, final);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The runner's hook once stage m is trained and evaluated: every format of the run's `export:`
 * into exportDir(runDir, m, format). Stage 0, the base model, is not exported during a run.
 */
export async function exportStage(
  runDir: string,
  m: number,
  model: LanguageModel,
  source: ExportSource,
  log: (line: string) => void = () => {},
): Promise<void> {
  if (m === 0) return;
  for (const format of source.study.config.export ?? []) {
    checkExportable(format, source);
    const out = exportDir(runDir, m, format);
    await writeExport(model, format, out, source);
    log(`stage ${m}: exported ${format} to ${out}`);
  }
}
