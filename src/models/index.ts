/**
 * models: the registry of architectures, keyed by config.json's `model_type` as Hugging Face
 * spells it (transformers/models/auto/configuration_auto.py `CONFIG_MAPPING_NAMES`). Adding an
 * architecture is one import and one line per model_type below.
 */
import { bloomFamily } from "./bloom.js";
import { gpt2Family } from "./gpt2.js";
import { gptNeoxFamily } from "./gpt_neox.js";
import { llamaFamily } from "./llama.js";
import { t5Family } from "./t5.js";
import type { LanguageModel, ModelFamily } from "./types.js";
import { didYouMean } from "../util/suggest.js";

export const families = {
  gpt2: gpt2Family,
  llama: llamaFamily,
  mistral: llamaFamily,
  qwen2: llamaFamily,
  bloom: bloomFamily,
  gpt_neox: gptNeoxFamily,
  t5: t5Family,
  mt5: t5Family,
} satisfies Record<string, ModelFamily>;

export type ModelType = keyof typeof families;

/** The family of a `model_type`; unknown names get "Did you mean …" with the closest ones. */
export function familyOf(modelType: unknown, source = "config.json"): ModelFamily {
  if (typeof modelType === "string" && Object.hasOwn(families, modelType))
    return families[modelType as ModelType];
  const name = String(modelType);
  const known = Object.keys(families);
  throw new Error(
    `${source}: field "model_type": "${name}" is not a supported architecture (${known.join(", ")}).${didYouMean(name, known)}`,
  );
}

/** A parsed config.json (defaults filled in) for the family its `model_type` names. */
export function parseModelConfig(
  raw: Record<string, unknown>,
  source = "config.json",
): LanguageModel["config"] {
  return familyOf(raw.model_type, source).parseConfig(raw, source);
}

/** A model with seeded random weights (HF `_init_weights`) for a parsed config. */
export function createModel(
  config: LanguageModel["config"],
  o: { seed?: number } = {},
): LanguageModel {
  return familyOf(config.model_type).create(config, o);
}

export type * from "./types.js";
export { attentionMask4d, positionIds, pastLength, type AttentionMask } from "./masks.js";
