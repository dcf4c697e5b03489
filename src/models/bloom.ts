/**
 * BLOOM (BigScience 2022, "BLOOM: A 176B-Parameter Open-Access Multilingual Language Model",
 * arXiv 2211.05100): ALiBi attention biases instead of positions (Press et al. 2022, arXiv
 * 2108.12409), a LayerNorm on the word embeddings, a fused query_key_value laid out per head,
 * tanh-GELU MLP, LM head tied to the word embeddings.
 * Reference: transformers/models/bloom/modeling_bloom.py (eager attention, `build_alibi_tensor`)
 * and configuration_bloom.py for the defaults. Parameter names are BloomForCausalLM's
 * (`transformer.h.0.self_attention.query_key_value.weight`).
 * Checkpoint quirks: `lm_head.weight` is `transformer.word_embeddings.weight` (tiedWeights);
 * `pretraining_tp`/`slow_but_exact` only change the summation order of the output projections, so
 * they are read and ignored.
 */
import { z } from "zod";
import { Embedding, LayerNorm, Linear, Module, normalLinear } from "../nn/index.js";
import {
  arange,
  baddbmm,
  cat,
  dropout,
  Generator,
  ones,
  tensor,
  tidy,
  type DType,
  type Tensor,
} from "../tensor/index.js";
import { consume, runBlocks, segmentBlocks } from "./blocks.js";
import { attentionMask4d, keepLast, pastLength } from "./masks.js";
import type {
  CausalLM,
  CausalLMInputs,
  CausalLMOutput,
  LayerCache,
  ModelFamily,
  Segments,
} from "./types.js";
import { parseWith } from "../util/schema.js";

const positiveInt = z.number().int().positive();

/** config.json fields of `model_type: "bloom"`, with BloomConfig's defaults; others pass through. */
const BloomConfigSchema = z.looseObject({
  model_type: z.literal("bloom").default("bloom"),
  vocab_size: positiveInt.default(250880), // BLOOM's multilingual byte-level BPE
  hidden_size: positiveInt.default(64), // model width (BloomConfig's tiny default)
  n_layer: positiveInt.default(2), // blocks
  n_head: positiveInt.default(8), // heads of hidden_size / n_head; sets the ALiBi slopes
  layer_norm_epsilon: z.number().positive().default(1e-5),
  initializer_range: z.number().nonnegative().default(0.02), // std of the normal init
  apply_residual_connection_post_layernorm: z.boolean().default(false), // residual from the LN output
  hidden_dropout: z.number().min(0).max(1).default(0), // after each projection, before the residual add
  attention_dropout: z.number().min(0).max(1).default(0), // on the attention probabilities
  pretraining_tp: positiveInt.default(1), // Megatron TP degree: only matters with slow_but_exact
  slow_but_exact: z.boolean().default(false), // TP-sliced output matmuls: same math, ignored
  tie_word_embeddings: z.boolean().default(true), // lm_head shares word_embeddings
});
export type BloomConfig = z.infer<typeof BloomConfigSchema>;

/** Names BloomConfig also accepts (`attribute_map` and the old `n_embed`): alias → field. */
const ALIASES = {
  n_embed: "hidden_size",
  num_hidden_layers: "n_layer",
  num_attention_heads: "n_head",
} as const;

/** Parses a config.json object (defaults filled, aliases resolved); errors name the field. */
export function parseBloomConfig(
  raw: Record<string, unknown>,
  source = "config.json",
): BloomConfig {
  const input: Record<string, unknown> = { ...raw };
  for (const [alias, field] of Object.entries(ALIASES))
    if (input[alias] !== undefined) {
      input[field] = input[alias];
      delete input[alias];
    }
  const c = parseWith(BloomConfigSchema, input, source);
  if (c.hidden_size % c.n_head !== 0)
    throw new Error(
      `${source}: field "hidden_size" (${c.hidden_size}) must be divisible by "n_head" (${c.n_head})`,
    );
  return c;
}

/**
 * ALiBi biases (B·n_head, 1, S) for a 2-D attention mask (B, S), as HF's `build_alibi_tensor`:
 * head h's slope is 2^(−8(h+1)/n) for n the largest power of two ≤ n_head, the remaining heads
 * take every other slope of 2n; the bias of key j is slope × (its index among unpadded keys).
 * Only differences along a query's row matter (softmax is shift-invariant), so padding and the
 * absolute offset cancel.
 */
export function buildAlibiTensor(attentionMask: Tensor, numHeads: number, dtype: DType): Tensor {
  const [B, S] = attentionMask.shape;
  const device = attentionMask.device;
  const closest = 2 ** Math.floor(Math.log2(numHeads));
  const base = tensor(2 ** -(2 ** -(Math.log2(closest) - 3)), { device });
  let slopes = base.pow(arange(1, 1 + closest, 1, { dtype: "int32", device })); // (closest,) float32
  if (closest !== numHeads) {
    const extraBase = tensor(2 ** -(2 ** -(Math.log2(2 * closest) - 3)), { device });
    const remaining = Math.min(closest, numHeads - closest);
    const extraPowers = arange(1, 1 + 2 * remaining, 2, { dtype: "int32", device });
    slopes = cat([slopes, extraBase.pow(extraPowers)], 0); // (n_head,)
  }
  const m = attentionMask.long();
  const positions = m.cumsum(-1).sub(1).mul(m).unsqueeze(1); // (B, 1, S)
  const alibi = slopes.view(1, numHeads, 1).mul(positions); // (B, n_head, S) float32
  return alibi.reshape(B * numHeads, 1, S).to(dtype);
}

class BloomAttention extends Module {
  query_key_value: Linear;
  dense: Linear;
  constructor(
    private cfg: BloomConfig,
    g: Generator,
  ) {
    super();
    this.query_key_value = normalLinear(
      cfg.hidden_size,
      3 * cfg.hidden_size,
      cfg.initializer_range,
      g,
    );
    this.dense = normalLinear(cfg.hidden_size, cfg.hidden_size, cfg.initializer_range, g);
  }

  /** Attention plus `residual` (dropout_add); `blocked` (B|1, 1, T, S) is true where a key is hidden. */
  forward(
    x: Tensor,
    residual: Tensor,
    alibi: Tensor,
    blocked: Tensor | null,
    past: LayerCache | null,
  ): { out: Tensor; kv: LayerCache } {
    const [B, T, C] = x.shape;
    const nh = this.cfg.n_head;
    const hd = C / nh;
    const fused = this.query_key_value.forward(x).view(B, T, nh, 3, hd); // (B, T, nh, 3, hd)
    const q = fused.select(3, 0).transpose(1, 2); // (B, nh, T, hd)
    let k = fused.select(3, 1).transpose(1, 2);
    let v = fused.select(3, 2).transpose(1, 2);
    if (past) {
      k = cat([past.k, k], 2); // (B, nh, S, hd)
      v = cat([past.v, v], 2);
    }
    const S = k.size(2);
    // Each (B, nh, T, S) tensor's handle goes once the next is made (`consume`).
    const scores = baddbmm(
      alibi,
      q.reshape(B * nh, T, hd),
      k.reshape(B * nh, S, hd).transpose(1, 2),
      1,
      1 / Math.sqrt(hd),
    ); // (B·nh, T, S)
    let w = consume(scores, (x) => x.view(B, nh, T, S));
    if (blocked) w = consume(w, (x) => x.maskedFill(blocked, -Infinity));
    w = consume(w, (x) => x.float()); // softmax in float32
    w = consume(w, (x) => x.softmax(-1));
    w = consume(w, (x) => x.to(q.dtype));
    const probs = consume(w, (x) => dropout(x, this.cfg.attention_dropout, this.training)); // (B, nh, T, S)
    const context = probs.view(B * nh, T, S).bmm(v.reshape(B * nh, S, hd)); // (B·nh, T, hd)
    const merged = context.view(B, nh, T, hd).permute(0, 2, 1, 3).reshape(B, T, C); // (B, T, C)
    const out = dropout(this.dense.forward(merged), this.cfg.hidden_dropout, this.training);
    return { out: residual.add(out), kv: { k, v } };
  }
}

class BloomMLP extends Module {
  dense_h_to_4h: Linear;
  dense_4h_to_h: Linear;
  constructor(
    private cfg: BloomConfig,
    g: Generator,
  ) {
    super();
    const std = cfg.initializer_range;
    this.dense_h_to_4h = normalLinear(cfg.hidden_size, 4 * cfg.hidden_size, std, g);
    this.dense_4h_to_h = normalLinear(4 * cfg.hidden_size, cfg.hidden_size, std, g);
  }
  /** MLP plus `residual`; bloom_gelu_forward is the tanh approximation of GELU. */
  forward(x: Tensor, residual: Tensor): Tensor {
    const h = this.dense_4h_to_h.forward(this.dense_h_to_4h.forward(x).gelu("tanh"));
    return residual.add(dropout(h, this.cfg.hidden_dropout, this.training));
  }
}

class BloomBlock extends Module {
  input_layernorm: LayerNorm;
  self_attention: BloomAttention;
  post_attention_layernorm: LayerNorm;
  mlp: BloomMLP;
  constructor(
    private cfg: BloomConfig,
    g: Generator,
  ) {
    super();
    this.input_layernorm = new LayerNorm(cfg.hidden_size, cfg.layer_norm_epsilon);
    this.self_attention = new BloomAttention(cfg, g);
    this.post_attention_layernorm = new LayerNorm(cfg.hidden_size, cfg.layer_norm_epsilon);
    this.mlp = new BloomMLP(cfg, g);
  }
  forward(
    x: Tensor,
    alibi: Tensor,
    blocked: Tensor | null,
    past: LayerCache | null,
  ): { h: Tensor; kv: LayerCache } {
    const postLn = this.cfg.apply_residual_connection_post_layernorm;
    // Attention and MLP each in a scope: only their outputs (and what autograd saved) stay.
    const ln1 = this.input_layernorm.forward(x);
    const { out: a, kv } = tidy(() =>
      this.self_attention.forward(ln1, postLn ? ln1 : x, alibi, blocked, past),
    );
    const ln2 = this.post_attention_layernorm.forward(a);
    return { h: tidy(() => this.mlp.forward(ln2, postLn ? ln2 : a)), kv };
  }
}

class BloomModel extends Module {
  word_embeddings: Embedding;
  word_embeddings_layernorm: LayerNorm;
  h: BloomBlock[];
  ln_f: LayerNorm;
  constructor(cfg: BloomConfig, g: Generator) {
    super();
    const { hidden_size: C, layer_norm_epsilon: eps } = cfg;
    this.word_embeddings = new Embedding(cfg.vocab_size, C, {
      std: cfg.initializer_range,
      generator: g,
    });
    this.word_embeddings_layernorm = new LayerNorm(C, eps);
    this.h = Array.from({ length: cfg.n_layer }, () => new BloomBlock(cfg, g));
    this.ln_f = new LayerNorm(C, eps);
  }
}

/** BloomForCausalLM: the transformer plus the LM head (tied to the word embeddings by default). */
export class BloomForCausalLM extends Module implements CausalLM {
  readonly kind = "causal";
  transformer: BloomModel;
  lm_head: Linear;
  constructor(
    readonly config: BloomConfig,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    this.transformer = new BloomModel(config, g);
    this.lm_head = normalLinear(
      config.hidden_size,
      config.vocab_size,
      config.initializer_range,
      g,
      false,
    );
    if (config.tie_word_embeddings) {
      this.lm_head.weight.dispose();
      this.lm_head.weight = this.transformer.word_embeddings.weight;
    }
  }

  /** Logits (B, T, vocab); BLOOM has no position ids (`positionIds` is ignored), ALiBi reads the mask. */
  forward(inputs: CausalLMInputs): CausalLMOutput {
    const { inputIds, cache } = inputs;
    const [B, T] = inputIds.shape;
    const past = pastLength(cache);
    const tr = this.transformer;
    const device = inputIds.device;
    const mask2d = inputs.attentionMask ?? ones([B, past + T], { dtype: "int64", device }); // (B, S)
    const { mask, isCausal } = attentionMask4d({
      attentionMask: inputs.attentionMask,
      queryLength: T,
      past,
    });
    const allowed = isCausal ? ones([T, T], { dtype: "bool", device }).tril() : mask; // (T, S) or (B, 1, T, S)
    const blocked = allowed ? allowed.logicalNot() : null;

    const x = tr.word_embeddings_layernorm.forward(tr.word_embeddings.forward(inputIds)); // (B, T, C)
    const alibi = buildAlibiTensor(mask2d, this.config.n_head, x.dtype); // (B·nh, 1, S)
    const useCache = inputs.useCache ?? false;
    const { hidden, cache: kvs } = runBlocks(tr.h.length, x, useCache, (i, h) =>
      tr.h[i].forward(h, alibi, blocked, cache?.[i] ?? null),
    );
    const logits = this.#head(keepLast(hidden, inputs.logitsToKeep, inputs.logitsPositions));
    return useCache ? { logits, cache: kvs } : { logits };
  }

  /** `ln_f` and the LM head: float32 logits (B, T, vocab); its other tensors go at once. */
  #head(h: Tensor): Tensor {
    return tidy(() => this.lm_head.forward(this.transformer.ln_f.forward(h)).float());
  }

  /** `forward` without a cache, cut at the blocks for gradient checkpointing. */
  segments(inputs: CausalLMInputs): Segments {
    const { inputIds } = inputs;
    const [B, T] = inputIds.shape;
    const tr = this.transformer;
    const device = inputIds.device;
    const mask2d = inputs.attentionMask ?? ones([B, T], { dtype: "int64", device }); // (B, T)
    const { mask, isCausal } = attentionMask4d({
      attentionMask: inputs.attentionMask,
      queryLength: T,
      past: 0,
    });
    const allowed = isCausal ? ones([T, T], { dtype: "bool", device }).tril() : mask; // (T, T) or (B, 1, T, T)
    const blocked = allowed ? allowed.logicalNot() : null;
    const x = tr.word_embeddings_layernorm.forward(tr.word_embeddings.forward(inputIds)); // (B, T, C)
    const alibi = buildAlibiTensor(mask2d, this.config.n_head, x.dtype); // (B·nh, 1, T)
    return {
      input: x,
      blocks: segmentBlocks(tr.h.length, (i, h) => tr.h[i].forward(h, alibi, blocked, null).h),
      head: (h) => this.#head(h), // (B, T, vocab)
    };
  }
}

export const bloomFamily = {
  modelTypes: ["bloom"],
  parseConfig: parseBloomConfig,
  create: (config, o) => new BloomForCausalLM(parseBloomConfig(config), o),
  tiedWeights: (config) =>
    parseBloomConfig(config).tie_word_embeddings
      ? [["lm_head.weight", "transformer.word_embeddings.weight"]]
      : [],
  loraTargets: ["query_key_value"], // PEFT's default for bloom
  checkpoint: { basePrefix: "transformer", ignore: [] },
} satisfies ModelFamily;
