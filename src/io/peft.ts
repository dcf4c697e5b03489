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
import { applyLora, loraConfigOf, loraLayers, type LoraConfig } from "../models/lora.js";
import type { LanguageModel } from "../models/types.js";
import { noGrad, type Tensor } from "../tensor/index.js";
import { loadTensors, saveTensors } from "./checkpoint.js";

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
 * Loads a PEFT LoRA adapter from `dir` into `model`: applies LoRA with the saved settings (unless
 * the model already has the same adapters) and copies lora_A / lora_B in. Every adapter weight
 * must be in the file, and nothing else. Returns the settings.
 */
export function loadLoraAdapter(model: LanguageModel, dir: string): LoraConfig {
  const saved = readAdapterConfig(dir);
  const configFile = join(dir, ADAPTER_CONFIG_FILE);
  const weightsFile = join(dir, ADAPTER_WEIGHTS_FILE);
  if (!existsSync(weightsFile)) {
    const bin = existsSync(join(dir, "adapter_model.bin"))
      ? " (adapter_model.bin is a pickle: re-save it with safe_serialization=True)"
      : "";
    throw new Error(`${weightsFile}: not found${bin}`);
  }
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
  const tensors = loadTensors(weightsFile);
  try {
    const layers = loraLayers(model);
    const expected = new Map<string, Tensor>();
    for (const [path, layer] of layers) {
      if (layer.merged) throw new Error(`loadLoraAdapter: "${path}" is merged; unmergeLora first`);
      expected.set(peftKey(path, "lora_A"), layer.lora_A.weight);
      expected.set(peftKey(path, "lora_B"), layer.lora_B.weight);
    }
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    if (missing.length || unexpected.length)
      throw new Error(
        `${weightsFile}: does not match the model's adapters: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`,
      );
    for (const [k, dst] of expected) {
      const src = tensors.get(k)!;
      if (src.shape.join(",") !== dst.shape.join(","))
        throw new Error(
          `${weightsFile}: tensor "${k}" has shape [${src.shape}] but the adapter expects [${dst.shape}]`,
        );
    }
    noGrad(() => {
      for (const [k, dst] of expected) dst.copy_(tensors.get(k)!);
    });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return config;
}
