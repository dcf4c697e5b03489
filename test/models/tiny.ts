/**
 * Tiny configs (a few thousand parameters) of every architecture, by config.json `model_type`,
 * for tests that run over all registered families (generation, LoRA, the model CLI).
 * Field names are each family's config.json fields (transformers' configuration_*.py).
 */
import { families } from "../../src/models/index.js";
import type { LanguageModel, ModelFamily } from "../../src/models/types.js";

export const TINY_CONFIGS: Record<string, Record<string, unknown>> = {
  gpt2: {
    model_type: "gpt2",
    vocab_size: 61,
    n_positions: 64,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  },
  llama: {
    model_type: "llama",
    vocab_size: 61,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
  bloom: {
    model_type: "bloom",
    vocab_size: 61,
    hidden_size: 32,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  },
  gpt_neox: {
    model_type: "gpt_neox",
    vocab_size: 61,
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 64,
  },
  t5: {
    model_type: "t5",
    vocab_size: 61,
    d_model: 32,
    d_kv: 8,
    d_ff: 48,
    num_layers: 2,
    num_heads: 4,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 20,
    dropout_rate: 0,
    initializer_factor: 2,
  },
};

/** Each registered family once, with the tiny config of its first model_type. */
export function tinyFamilies(): {
  modelType: string;
  family: ModelFamily;
  raw: Record<string, unknown>;
}[] {
  const seen = new Set<ModelFamily>();
  const out = [];
  for (const [modelType, family] of Object.entries(families) as [string, ModelFamily][]) {
    if (seen.has(family)) continue;
    seen.add(family);
    const raw = TINY_CONFIGS[modelType];
    if (!raw)
      throw new Error(`test/models/tiny.ts: add a tiny config for model_type "${modelType}"`);
    out.push({ modelType, family, raw });
  }
  return out;
}

/** A tiny model of `modelType` with seeded random weights, in eval mode. */
export function tinyModel(modelType: string, seed = 0): LanguageModel {
  const raw = TINY_CONFIGS[modelType];
  const family = (families as Record<string, ModelFamily>)[modelType];
  return family.create(family.parseConfig(raw), { seed }).eval();
}
