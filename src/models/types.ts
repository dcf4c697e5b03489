/**
 * What every architecture offers the layers above (io, train, eval): a causal LM or an
 * encoder-decoder LM over the engine's tensors, with Hugging Face's parameter names and
 * transformers' masking rules. Each architecture file exports a `ModelFamily` that the registry
 * in src/models/index.ts picks by config.json's `model_type`.
 */
import type { Module } from "../nn/index.js";
import type { Tensor } from "../tensor/index.js";

/** Key/value cache of one attention layer: (B, n_kv_heads, S, head_dim) each. */
export interface LayerCache {
  k: Tensor;
  v: Tensor;
}

export interface CausalLMOutput {
  /** (B, T, vocab) float32 */
  logits: Tensor;
  /** Per layer, keys and values including this call's positions (only when `useCache`). */
  cache?: LayerCache[];
}

export interface CausalLMInputs {
  /** (B, T) int64 */
  inputIds: Tensor;
  /** (B, S) with 1 = attend, 0 = padding; S = past length + T. Left or right padding. */
  attentionMask?: Tensor | null;
  /** (B, T) int64; default: from the attention mask (cumsum − 1, as transformers' generate) or past length + arange. */
  positionIds?: Tensor | null;
  /** Keys and values of earlier positions (from a previous call's output). */
  cache?: LayerCache[] | null;
  /** Return the updated cache. */
  useCache?: boolean;
  /**
   * transformers' `logits_to_keep`: logits only for the last N positions (the head's matmul and
   * its output shrink to N rows); 0 or absent: every position.
   */
  logitsToKeep?: number;
  /**
   * (N) int64: logits only at these positions, indices b·T + t into the batch's B·T positions
   * (rows may want different numbers of positions), returned as (N, vocab); the head and any
   * log-softmax after it run on N rows, not B·T (scoring wants continuation positions only).
   * Overrides `logitsToKeep`.
   */
  logitsPositions?: Tensor | null;
}

/**
 * A forward pass cut at its transformer blocks, for gradient checkpointing
 * (src/train/checkpointing.ts): `head(blocks[n−1](…blocks[0](input)))` computes what `forward`
 * does without a cache. Masks and positions are computed once and captured by the closures.
 */
export interface Segments {
  /** Block 0's input (B, T, C), computed with grad (the embeddings train too). */
  input: Tensor;
  /**
   * Tensors every block reads besides its hidden state, computed with grad (T5's position bias,
   * the encoder output its decoder attends to); blocks get them as `shared`. Absent: none.
   * Their graphs and `input`'s share no intermediate node (each is back-propagated on its own).
   */
  shared?: Tensor[];
  /** One per transformer block: its input hidden state (and the shared tensors) to its output. */
  blocks: ((h: Tensor, shared: Tensor[]) => Tensor)[];
  /** Final norm and LM head: the last block's output to float32 logits (B, T, vocab). */
  head: (h: Tensor) => Tensor;
}

export interface CausalLM extends Module {
  readonly kind: "causal";
  readonly config: { model_type: string; vocab_size: number; [k: string]: unknown };
  forward(inputs: CausalLMInputs): CausalLMOutput;
  /** `forward` (no cache, every position) as checkpoint segments; absent: not supported. */
  segments?(inputs: CausalLMInputs): Segments;
}

export interface Seq2SeqInputs {
  /** Encoder input (B, S) int64 and its mask (B, S). */
  inputIds: Tensor;
  attentionMask?: Tensor | null;
  /** Encoder output from an earlier call (generation computes it once). */
  encoderHidden?: Tensor | null;
  /** Decoder input (B, T) int64, starting with the decoder start token. */
  decoderInputIds: Tensor;
  decoderAttentionMask?: Tensor | null;
  /** Decoder self-attention cache; cross-attention keys/values are cached in `crossCache`. */
  cache?: LayerCache[] | null;
  crossCache?: LayerCache[] | null;
  useCache?: boolean;
  /**
   * transformers' `logits_to_keep`: logits only for the last N decoder positions (the head's matmul and
   * its output shrink to N rows); 0 or absent: every position.
   */
  logitsToKeep?: number;
  /**
   * (N) int64: logits only at these positions, indices b·T + t into the batch's B·T positions
   * (rows may want different numbers of positions), returned as (N, vocab); the head and any
   * log-softmax after it run on N rows, not B·T (scoring wants continuation positions only).
   * Overrides `logitsToKeep`.
   */
  logitsPositions?: Tensor | null;
}

export interface Seq2SeqLMOutput {
  logits: Tensor;
  encoderHidden: Tensor;
  cache?: LayerCache[];
  crossCache?: LayerCache[];
}

export interface Seq2SeqLM extends Module {
  readonly kind: "seq2seq";
  readonly config: {
    model_type: string;
    vocab_size: number;
    decoder_start_token_id: number;
    [k: string]: unknown;
  };
  forward(inputs: Seq2SeqInputs): Seq2SeqLMOutput;
  /** `forward` (no cache, every position) as checkpoint segments; absent: not supported. */
  segments?(inputs: Seq2SeqInputs): Segments;
}

export type LanguageModel = CausalLM | Seq2SeqLM;

/** One architecture: how to read its config.json and build it with seeded random weights. */
export interface ModelFamily {
  /** config.json `model_type` values this family handles. */
  modelTypes: readonly string[];
  /** Fills defaults into a parsed config.json; throws naming the field on a bad value. */
  parseConfig(raw: Record<string, unknown>, source?: string): LanguageModel["config"];
  /** A model with seeded random weights (HF's `_init_weights`). */
  create(config: LanguageModel["config"], o?: { seed?: number }): LanguageModel;
  /** Names of tensors that share storage in HF checkpoints: [alias, canonical]. */
  tiedWeights?(config: LanguageModel["config"]): [string, string][];
  /** Module-name suffixes LoRA targets by default (e.g. ["q_proj", "v_proj"]). */
  loraTargets: readonly string[];
  /** How HF checkpoints of this family differ from `stateDict()`'s names (io/pretrained.ts reads it). */
  checkpoint: CheckpointQuirks;
}

/** transformers' `base_model_prefix` and `_keys_to_ignore_on_load_unexpected`, per family. */
export interface CheckpointQuirks {
  /** The prefix a checkpoint saved from the base model (no LM head) lacks; null: none. */
  basePrefix: string | null;
  /** Tensors HF checkpoints carry that the model recomputes (skipped on load), with the reason. */
  ignore: readonly (readonly [RegExp, string])[];
}
