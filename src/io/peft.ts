/**
 * LoRA adapters on disk in PEFT's layout, so PEFT loads what lethe saves and the other way round:
 * a directory with `adapter_config.json` (LoraConfig's fields, sorted keys as PEFT writes them)
 * and `adapter_model.safetensors` holding `base_model.model.<module path>.lora_A.weight` /
 * `lora_B.weight` (PEFT's `get_peft_model_state_dict` drops the adapter name "default").
 * Reference: PEFT's utils/save_and_load.py (`get_peft_model_state_dict`,
 * `set_peft_model_state_dict`), utils/constants.py (SAFETENSORS_WEIGHTS_NAME, CONFIG_NAME),
 * tuners/lora/config.py (`LoraConfig` fields and defaults).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import {
  applyLora,
  isLoraTarget,
  loraConfigOf,
  loraLayers,
  type LoraConfig,
} from "../models/lora.js";
import type { LanguageModel } from "../models/types.js";
import { noGrad, Tensor, tidy } from "../tensor/index.js";
import { loadTensors, saveTensors } from "./checkpoint.js";
import { type HubOptions, snapshotDownload } from "./hub.js";
import { parseModelRef } from "./pretrained.js";

export const ADAPTER_CONFIG_FILE = "adapter_config.json";
export const ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors";
/** PEFT's prefix: PeftModel.base_model (LoraModel) .model (the transformers model). */
const PREFIX = "base_model.model.";

/** The adapter_config.json fields lethe reads; features lethe lacks must be off. */
const AdapterConfigSchema = z.looseObject({
  peft_type: z.literal("LORA"),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  lora_dropout: z.number().min(0).lt(1).default(0),
  target_modules: z.union([z.array(z.string()).min(1), z.string()]),
  bias: z.literal("none", { error: 'only bias "none" is supported' }).default("none"),
  fan_in_fan_out: z.boolean().default(false),
  use_dora: z.literal(false, { error: "DoRA adapters are not supported" }).default(false),
  use_rslora: z.literal(false, { error: "rsLoRA scaling is not supported" }).default(false),
  rank_pattern: z
    .record(z.string(), z.never(), { error: "per-module ranks are not supported" })
    .default({}),
  alpha_pattern: z
    .record(z.string(), z.never(), { error: "per-module alphas are not supported" })
    .default({}),
  layers_to_transform: z.null({ error: "layers_to_transform is not supported" }).default(null),
  modules_to_save: z
    .union([z.null(), z.array(z.never())], { error: "modules_to_save is not supported" })
    .default(null),
});

/** PEFT's name for a LoRA weight of the module at `path`. */
export function peftKey(path: string, which: "lora_A" | "lora_B"): string {
  return `${PREFIX}${path}.${which}.weight`;
}

/**
 * Writes the adapters of `model` (after `applyLora`) to `dir` in PEFT's layout.
 * `baseModelNameOrPath` goes to base_model_name_or_path (PEFT records the hub id or path).
 */
export function saveLoraAdapter(
  model: LanguageModel,
  dir: string,
  o: { baseModelNameOrPath?: string | null } = {},
): void {
  const config = loraConfigOf(model);
  if (!config)
    throw new Error("saveLoraAdapter: the model has no LoRA adapters (call applyLora first)");
  const tensors = new Map<string, Tensor>();
  for (const [path, layer] of loraLayers(model)) {
    tensors.set(peftKey(path, "lora_A"), layer.lora_A.weight);
    tensors.set(peftKey(path, "lora_B"), layer.lora_B.weight);
  }
  const json = {
    alpha_pattern: {},
    base_model_name_or_path: o.baseModelNameOrPath ?? null,
    bias: "none",
    fan_in_fan_out: config.fanInFanOut,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    modules_to_save: null,
    peft_type: "LORA",
    r: config.r,
    rank_pattern: {},
    revision: null,
    target_modules: config.targetModules,
    task_type: model.kind === "causal" ? "CAUSAL_LM" : "SEQ_2_SEQ_LM",
    use_dora: false,
    use_rslora: false,
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, ADAPTER_CONFIG_FILE), JSON.stringify(json, null, 2) + "\n");
  saveTensors(join(dir, ADAPTER_WEIGHTS_FILE), tensors, { format: "pt" });
}

/** Reads and checks `dir/adapter_config.json`; errors name the file and the field. */
export function readAdapterConfig(dir: string): z.infer<typeof AdapterConfigSchema> {
  const file = join(dir, ADAPTER_CONFIG_FILE);
  if (!existsSync(file)) throw new Error(`${file}: not found (a PEFT adapter directory has one)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const parsed = AdapterConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${file}: field "${issue.path.join(".")}": ${issue.message}`);
  }
  return parsed.data;
}

/**
 * An adapter folder: a local one as it is, or `hf:org/name[@revision]` downloaded into the hub
 * cache (adapter_config.json and adapter_model.safetensors only).
 */
export async function resolveAdapter(ref: string, o: HubOptions = {}): Promise<string> {
  const where = parseModelRef(ref);
  const dir =
    "dir" in where
      ? where.dir
      : await snapshotDownload(where.repo, {
          ...o,
          revision: where.revision ?? o.revision,
          allowPatterns: [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE],
        });
  readAdapterConfig(dir); // a clear error now if it is not an adapter folder
  return dir;
}

/** `dir/adapter_model.safetensors`, or an error that names it (and a pickle found instead). */
function adapterWeightsFile(dir: string): string {
  const file = join(dir, ADAPTER_WEIGHTS_FILE);
  if (existsSync(file)) return file;
  const bin = existsSync(join(dir, "adapter_model.bin"))
    ? " (adapter_model.bin is a pickle: re-save it with safe_serialization=True)"
    : "";
  throw new Error(`${file}: not found${bin}`);
}

/**
 * The tensors of `dir/adapter_model.safetensors`, checked against `expected` (PEFT name → shape):
 * every one present with its shape, nothing else. The caller disposes them.
 */
function readAdapterWeights(dir: string, expected: Map<string, number[]>): Map<string, Tensor> {
  const weightsFile = adapterWeightsFile(dir);
  const tensors = loadTensors(weightsFile);
  try {
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    if (missing.length || unexpected.length)
      throw new Error(
        `${weightsFile}: does not match the model's adapters: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`,
      );
    for (const [k, shape] of expected) {
      const src = tensors.get(k)!;
      if (src.shape.join(",") !== shape.join(","))
        throw new Error(
          `${weightsFile}: tensor "${k}" has shape [${src.shape}] but the adapter expects [${shape}]`,
        );
    }
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return tensors;
}

/**
 * Adds the PEFT LoRA adapter in `dir` into `model`'s weights, as PEFT's `merge_and_unload()`:
 * each target weight W becomes W + (lora_alpha / r)·B A (transposed for GPT-2's Conv1D, which
 * stores W as (in, out)), the formula of LoraLinear.deltaWeight. The model gets no LoRA layer: it trains and
 * saves as a plain model.
 */
export function mergeLoraAdapter(model: LanguageModel, dir: string): void {
  if (loraConfigOf(model))
    throw new Error("mergeLoraAdapter: the model has LoRA adapters; use loadLoraAdapter");
  const saved = readAdapterConfig(dir);
  // Layout by layer class, as applyLora (and PEFT, which overrides fan_in_fan_out for Conv1D).
  const targets: [string, Tensor, boolean][] = [];
  for (const [path, m] of model.namedModules()) {
    const w = (m as unknown as { weight?: unknown }).weight;
    if (path !== "" && isLoraTarget(path, saved.target_modules) && w instanceof Tensor)
      targets.push([path, w, m.constructor.name === "Conv1D"]);
  }
  if (targets.length === 0)
    throw new Error(
      `${join(dir, ADAPTER_CONFIG_FILE)}: target_modules ${JSON.stringify(saved.target_modules)} match no layer of ${model.config.model_type}`,
    );
  const expected = new Map<string, number[]>();
  for (const [path, w, fanInFanOut] of targets) {
    const [outF, inF] = fanInFanOut ? [...w.shape].reverse() : w.shape;
    expected.set(peftKey(path, "lora_A"), [saved.r, inF]);
    expected.set(peftKey(path, "lora_B"), [outF, saved.r]);
  }
  const tensors = readAdapterWeights(dir, expected);
  try {
    const scaling = saved.lora_alpha / saved.r;
    noGrad(() => {
      for (const [path, w, fanInFanOut] of targets)
        tidy(() => {
          const A = tensors.get(peftKey(path, "lora_A"))!.to(w.dtype).to(w.device);
          const B = tensors.get(peftKey(path, "lora_B"))!.to(w.dtype).to(w.device);
          const d = B.matmul(A).mul(scaling); // (out, in)
          w.add_(fanInFanOut ? d.t() : d);
        });
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/**
 * Loads a PEFT LoRA adapter from `dir` into `model`: applies LoRA with the saved settings (unless
 * the model already has the same adapters) and copies lora_A / lora_B in. Every adapter weight
 * must be in the file, and nothing else. Returns the settings.
 */
export function loadLoraAdapter(model: LanguageModel, dir: string): LoraConfig {
  const saved = readAdapterConfig(dir);
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  adapterWeightsFile(dir); // checked before applyLora, so a missing file changes nothing
  let config = loraConfigOf(model);
  if (!config)
    config = applyLora(model, {
      r: saved.r,
      alpha: saved.lora_alpha,
      dropout: saved.lora_dropout,
      targetModules: saved.target_modules,
    });
  else if (
    config.r !== saved.r ||
    config.alpha !== saved.lora_alpha ||
    JSON.stringify(config.targetModules) !== JSON.stringify(saved.target_modules)
  )
    throw new Error(
      `${configFile}: r ${saved.r}, lora_alpha ${saved.lora_alpha}, target_modules ${JSON.stringify(saved.target_modules)} ` +
        `differ from the model's adapters (r ${config.r}, alpha ${config.alpha}, ${JSON.stringify(config.targetModules)})`,
    );
  const expected = new Map<string, Tensor>();
  for (const [path, layer] of loraLayers(model)) {
    if (layer.merged) throw new Error(`loadLoraAdapter: "${path}" is merged; unmergeLora first`);
    expected.set(peftKey(path, "lora_A"), layer.lora_A.weight);
    expected.set(peftKey(path, "lora_B"), layer.lora_B.weight);
  }
  const tensors = readAdapterWeights(dir, new Map([...expected].map(([k, t]) => [k, t.shape])));
  try {
    noGrad(() => {
      for (const [k, dst] of expected) dst.copy_(tensors.get(k)!);
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return config;
}
