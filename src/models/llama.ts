/**
 * The LLaMA family (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models";
 * Llama 2 and 3): pre-RMSNorm blocks, rotary positions (Su et al. 2021), SwiGLU MLP,
 * grouped-query attention. One file serves `model_type` "llama", "mistral" (Jiang et al. 2023,
 * sliding-window attention) and "qwen2" (Qwen2 technical report; q/k/v biases).
 * References: transformers/models/{llama,mistral,qwen2}/modeling_*.py and configuration_*.py
 * (eager/SDPA attention), RoPE scaling as transformers/modeling_rope_utils.py ("linear",
 * "dynamic", "llama3"). Parameter names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`).
 *
 * Dynamic NTK scaling is computed from this call's largest position alone; transformers keeps the
 * grown frequencies (`max_seq_len_cached`) between calls until a call falls below the original
 * length, so the two differ only for a later call between the original and the grown length.
 */
import { z } from "zod";
import { Embedding, Linear, Module, RMSNorm, normalLinear } from "../nn/index.js";
import {
  arange,
  cat,
  embedding,
  Generator,
  linear,
  noGrad,
  op,
  scaledDotProductAttention,
  tidy,
  where,
  type Tensor,
} from "../tensor/index.js";
import { runBlocks, segmentBlocks } from "./blocks.js";
import { attentionMask4d, keepLast, pastLength, positionIds, type AttentionMask } from "./masks.js";
import type {
  CausalLM,
  CausalLMInputs,
  CausalLMOutput,
  LayerCache,
  ModelFamily,
  Segments,
} from "./types.js";
import { parseWith } from "../util/schema.js";

const LLAMA_TYPES = ["llama", "mistral", "qwen2"] as const;
type LlamaType = (typeof LLAMA_TYPES)[number];

const RopeScaling = z.object({
  rope_type: z.enum(["default", "linear", "dynamic", "llama3"]),
  factor: z.number().positive().default(1), // position interpolation factor
  low_freq_factor: z.number().positive().optional(), // llama3: wavelengths above old_len / this are divided by factor
  high_freq_factor: z.number().positive().optional(), // llama3: wavelengths below old_len / this are kept
  original_max_position_embeddings: z.number().int().positive().optional(), // llama3: pre-training context
});
export type RopeScaling = z.infer<typeof RopeScaling>;

/**
 * config.json fields of a LLaMA-family model, with LlamaConfig's defaults (LLaMA-7B) and, where
 * they differ, MistralConfig's (Mistral-7B) and Qwen2Config's (Qwen2-7B); other fields are dropped.
 */
function llamaSchema(type: LlamaType) {
  const [mistral, qwen2] = [type === "mistral", type === "qwen2"];
  const positiveInt = z.number().int().positive();
  return z.object({
    model_type: z.enum(LLAMA_TYPES),
    vocab_size: positiveInt.default(qwen2 ? 151936 : 32000), // LLaMA 1/2's SentencePiece BPE; Qwen2's byte BPE
    hidden_size: positiveInt.default(4096), // model width
    intermediate_size: positiveInt.default(mistral ? 14336 : qwen2 ? 22016 : 11008), // SwiGLU width (≈ 8/3 · width)
    num_hidden_layers: positiveInt.default(32), // blocks
    num_attention_heads: positiveInt.default(32), // query heads
    num_key_value_heads: positiveInt.nullable().default(mistral ? 8 : null), // null → one per query head (MHA)
    head_dim: positiveInt.nullable().default(null), // null → hidden_size / num_attention_heads
    hidden_act: z.literal("silu").default("silu"), // SwiGLU's gate activation
    // trained context (dynamic RoPE's threshold)
    max_position_embeddings: positiveInt.default(mistral ? 4096 * 32 : qwen2 ? 32768 : 2048),
    initializer_range: z.number().positive().default(0.02), // std of normal init
    rms_norm_eps: z.number().positive().default(1e-6), // llama2.c exports: 1e-5
    tie_word_embeddings: z.boolean().default(false), // false: separate lm_head
    rope_theta: z.number().positive().default(10000), // RoPE base
    rope_scaling: RopeScaling.nullable().default(null), // null: plain RoPE
    attention_bias: z.boolean().default(false), // q/k/v/o without bias (qwen2 always has q/k/v bias)
    attention_dropout: z.number().min(0).max(1).default(0),
    mlp_bias: z.boolean().default(false),
    // mistral: keys within this many positions
    sliding_window: positiveInt.nullable().default(mistral ? 4096 : null),
    pad_token_id: z.number().int().min(0).nullable().default(null), // embedding row kept at zero and not trained
    bos_token_id: z
      .number()
      .int()
      .nullable()
      .default(qwen2 ? null : 1),
    eos_token_id: z
      .union([z.number().int(), z.array(z.number().int())])
      .nullable()
      .default(qwen2 ? null : 2),
  });
}
const LLAMA_SCHEMAS = {
  llama: llamaSchema("llama"),
  mistral: llamaSchema("mistral"),
  qwen2: llamaSchema("qwen2"),
} satisfies Record<LlamaType, z.ZodType>;

/** config.json of a LLaMA-family model, with `num_key_value_heads` and `head_dim` resolved. */
export type LlamaConfig = Omit<
  z.infer<(typeof LLAMA_SCHEMAS)["llama"]>,
  "num_key_value_heads" | "head_dim"
> & {
  num_key_value_heads: number;
  head_dim: number;
};

/**
 * Fills a config.json's LLaMA-family fields with their defaults; throws naming the field.
 * Accepts transformers ≥ 5's `rope_parameters` and the old `rope_scaling.type` spelling.
 */
export function parseLlamaConfig(
  raw: Record<string, unknown>,
  source = "config.json",
): LlamaConfig {
  const type = raw.model_type;
  if (!LLAMA_TYPES.includes(type as LlamaType))
    throw new Error(
      `${source}: field "model_type": "${type}" is not one of ${LLAMA_TYPES.join(", ")}`,
    );
  const schema = LLAMA_SCHEMAS[type as LlamaType];
  const merged: Record<string, unknown> = {};
  for (const k of Object.keys(schema.shape)) if (raw[k] !== undefined) merged[k] = raw[k];
  const params = raw.rope_parameters as Record<string, unknown> | undefined;
  if (params && typeof params === "object") {
    if (params.rope_theta !== undefined) merged.rope_theta = params.rope_theta;
    merged.rope_scaling = params;
  }
  const scaling = merged.rope_scaling as Record<string, unknown> | null;
  if (scaling && typeof scaling === "object") {
    const { type: oldName, rope_theta: _theta, ...rest } = scaling;
    merged.rope_scaling = { rope_type: rest.rope_type ?? oldName, ...rest };
  }
  if (type === "qwen2" && raw.use_sliding_window === true)
    throw new Error(
      `${source}: field "use_sliding_window": qwen2 sliding-window layers are not supported`,
    );
  if (type === "qwen2") merged.sliding_window = null; // only read when use_sliding_window is true
  const c = parseWith(schema, merged, source);
  const r = c.rope_scaling;
  if (
    r?.rope_type === "llama3" &&
    (r.low_freq_factor === undefined ||
      r.high_freq_factor === undefined ||
      r.original_max_position_embeddings === undefined)
  )
    throw new Error(
      `${source}: field "rope_scaling": llama3 needs low_freq_factor, high_freq_factor and original_max_position_embeddings`,
    );
  const nkv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % nkv !== 0)
    throw new Error(
      `${source}: field "num_key_value_heads": ${nkv} does not divide num_attention_heads ${c.num_attention_heads}`,
    );
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw new Error(
      `${source}: field "head_dim": ${headDim} must be an even integer (RoPE rotates pairs)`,
    );
  return { ...c, num_key_value_heads: nkv, head_dim: headDim };
}

// ---- rotary position embedding ------------------------------------------------------------------

/** 1 / theta^(2i/d) for i < d/2, as modeling_rope_utils' `_compute_default_rope_parameters`. */
function defaultInvFreq(theta: number, dim: number): Tensor {
  const exponents = arange(0, dim, 2).float().div(dim);
  return op("aten::pow.Scalar", [theta, exponents]).reciprocal();
}

/**
 * RoPE inverse frequencies (head_dim / 2) for a call whose largest position is `seqLen − 1`
 * (modeling_rope_utils.py `ROPE_INIT_FUNCTIONS`; attention scaling is 1 for these types).
 */
export function ropeInvFreq(c: LlamaConfig, seqLen: number): Tensor {
  const r = c.rope_scaling;
  const dim = c.head_dim;
  if (!r || r.rope_type === "default") return defaultInvFreq(c.rope_theta, dim);
  if (r.rope_type === "linear") return defaultInvFreq(c.rope_theta, dim).div(r.factor);
  if (r.rope_type === "dynamic") {
    const max = c.max_position_embeddings;
    if (seqLen <= max) return defaultInvFreq(c.rope_theta, dim);
    const base = c.rope_theta * ((r.factor * seqLen) / max - (r.factor - 1)) ** (dim / (dim - 2));
    return defaultInvFreq(base, dim);
  }
  // llama3: long wavelengths divided by factor, short kept, the band between interpolated.
  const invFreq = defaultInvFreq(c.rope_theta, dim);
  const oldLen = r.original_max_position_embeddings!;
  const [low, high] = [r.low_freq_factor!, r.high_freq_factor!];
  const wavelen = invFreq.reciprocal().mul(2 * Math.PI);
  const scaled = where(wavelen.gt(oldLen / low), invFreq.div(r.factor), invFreq);
  const smooth = wavelen
    .reciprocal()
    .mul(oldLen)
    .sub(low)
    .div(high - low);
  const smoothed = smooth.neg().add(1).mul(scaled).div(r.factor).add(smooth.mul(scaled));
  const medium = wavelen
    .lt(oldLen / high)
    .logicalNot()
    .logicalAnd(wavelen.gt(oldLen / low).logicalNot());
  return where(medium, smoothed, scaled);
}

/** cos and sin (B, 1, T, head_dim) of positions (B, T), in float32 as transformers computes them. */
function rotary(c: LlamaConfig, positions: Tensor): { cos: Tensor; sin: Tensor } {
  const seqLen = c.rope_scaling?.rope_type === "dynamic" ? positions.max().item() + 1 : 0;
  const invFreq = ropeInvFreq(c, seqLen).to(positions.device);
  const freqs = positions.float().unsqueeze(-1).mul(invFreq); // (B, T, hd/2)
  const emb = cat([freqs, freqs], -1).unsqueeze(1); // (B, 1, T, hd)
  return { cos: emb.cos(), sin: emb.sin() };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = (−x₂, x₁) over the two halves of head_dim. */
function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tidy(() => {
    const [x1, x2] = x.chunk(2, -1);
    const rotated = cat([x2.neg(), x1], -1);
    return x.mul(cos.to(x.dtype)).add(rotated.mul(sin.to(x.dtype)));
  });
}

/** (B, n_kv, S, hd) → (B, n_kv · rep, S, hd), each key/value head serving `rep` query heads. */
function repeatKv(x: Tensor, rep: number): Tensor {
  if (rep === 1) return x;
  const [B, nkv, S, hd] = x.shape;
  return x
    .unsqueeze(2)
    .expand(B, nkv, rep, S, hd)
    .reshape(B, nkv * rep, S, hd);
}

// ---- blocks -------------------------------------------------------------------------------------

class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  constructor(
    private cfg: LlamaConfig,
    g: Generator,
  ) {
    super();
    const { hidden_size: C, num_attention_heads: nh, num_key_value_heads: nkv, head_dim: hd } = cfg;
    const std = cfg.initializer_range;
    const qkvBias = cfg.attention_bias || cfg.model_type === "qwen2";
    this.q_proj = normalLinear(C, nh * hd, std, g, qkvBias);
    this.k_proj = normalLinear(C, nkv * hd, std, g, qkvBias);
    this.v_proj = normalLinear(C, nkv * hd, std, g, qkvBias);
    this.o_proj = normalLinear(nh * hd, C, std, g, cfg.attention_bias);
  }
  forward(
    x: Tensor,
    rope: { cos: Tensor; sin: Tensor },
    mask: AttentionMask,
    past: LayerCache | null,
  ): { out: Tensor; cache: LayerCache } {
    const [B, T] = x.shape;
    const { num_attention_heads: nh, num_key_value_heads: nkv, head_dim: hd } = this.cfg;
    const q = this.q_proj.forward(x).view(B, T, nh, hd).transpose(1, 2); // (B, nh, T, hd)
    let k = this.k_proj.forward(x).view(B, T, nkv, hd).transpose(1, 2); // (B, nkv, T, hd)
    let v = this.v_proj.forward(x).view(B, T, nkv, hd).transpose(1, 2); // (B, nkv, T, hd)
    const qr = applyRotary(q, rope.cos, rope.sin);
    k = applyRotary(k, rope.cos, rope.sin);
    if (past) {
      k = cat([past.k, k], 2); // (B, nkv, S, hd)
      v = cat([past.v, v], 2);
    }
    const y = scaledDotProductAttention(qr, repeatKv(k, nh / nkv), repeatKv(v, nh / nkv), {
      mask: mask.mask,
      isCausal: mask.isCausal,
      dropoutP: this.training ? this.cfg.attention_dropout : 0,
    }); // (B, nh, T, hd)
    const merged = y.transpose(1, 2).reshape(B, T, nh * hd); // (B, T, nh·hd)
    return { out: this.o_proj.forward(merged), cache: { k, v } };
  }
}

class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  constructor(cfg: LlamaConfig, g: Generator) {
    super();
    const { hidden_size: C, intermediate_size: I, mlp_bias: bias, initializer_range: std } = cfg;
    this.gate_proj = normalLinear(C, I, std, g, bias);
    this.up_proj = normalLinear(C, I, std, g, bias);
    this.down_proj = normalLinear(I, C, std, g, bias);
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(this.gate_proj.forward(x).silu().mul(this.up_proj.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: LlamaConfig, g: Generator) {
    super();
    this.self_attn = new LlamaAttention(cfg, g);
    this.mlp = new LlamaMLP(cfg, g);
    this.input_layernorm = new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
    this.post_attention_layernorm = new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
  }
  forward(
    x: Tensor,
    rope: { cos: Tensor; sin: Tensor },
    mask: AttentionMask,
    past: LayerCache | null,
  ): { out: Tensor; cache: LayerCache } {
    // Attention and MLP each in a scope: only their outputs (and what autograd saved) stay.
    const a = tidy(() => this.self_attn.forward(this.input_layernorm.forward(x), rope, mask, past));
    x = x.add(a.out);
    const m = tidy(() => this.mlp.forward(this.post_attention_layernorm.forward(x)));
    return { out: x.add(m), cache: a.cache };
  }
}

class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  constructor(
    private cfg: LlamaConfig,
    g: Generator,
  ) {
    super();
    this.embed_tokens = new Embedding(cfg.vocab_size, cfg.hidden_size, {
      std: cfg.initializer_range,
      generator: g,
    });
    if (cfg.pad_token_id !== null)
      noGrad(() => this.embed_tokens.weight.select(0, cfg.pad_token_id!).zero_());
    this.layers = Array.from(
      { length: cfg.num_hidden_layers },
      () => new LlamaDecoderLayer(cfg, g),
    );
    this.norm = new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps);
  }
  /** The last block's output (`norm` comes with the head) and, with `useCache`, the cache. */
  forward(
    ids: Tensor,
    positions: Tensor,
    mask: AttentionMask,
    cache: LayerCache[] | null,
    useCache: boolean,
  ): { hidden: Tensor; cache: LayerCache[] } {
    const x = embedding(this.embed_tokens.weight, ids, this.cfg.pad_token_id ?? -1); // (B, T, C)
    const rope = rotary(this.cfg, positions);
    return runBlocks(this.layers.length, x, useCache, (i, h) => {
      const r = this.layers[i].forward(h, rope, mask, cache?.[i] ?? null);
      return { h: r.out, kv: r.cache };
    });
  }
}

/** LlamaForCausalLM (also MistralForCausalLM, Qwen2ForCausalLM): the decoder plus the LM head. */
export class LlamaForCausalLM extends Module implements CausalLM {
  readonly kind = "causal";
  model: LlamaModel;
  /** Absent when tied: the head is then `model.embed_tokens.weight`. */
  lm_head?: Linear;
  constructor(
    readonly config: LlamaConfig,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    this.model = new LlamaModel(config, g);
    if (!config.tie_word_embeddings)
      this.lm_head = normalLinear(
        config.hidden_size,
        config.vocab_size,
        config.initializer_range,
        g,
        false,
      );
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    const { inputIds, attentionMask = null, cache = null } = inputs;
    const T = inputIds.size(1);
    const past = pastLength(cache);
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, past, inputIds.device);
    const mask = attentionMask4d({
      attentionMask,
      queryLength: T,
      past,
      slidingWindow: this.config.sliding_window,
      device: inputIds.device,
    });
    const useCache = inputs.useCache ?? false;
    const { hidden, cache: next } = this.model.forward(inputIds, positions, mask, cache, useCache);
    const logits = this.#head(hidden, inputs.logitsToKeep, inputs.logitsPositions);
    return useCache ? { logits, cache: next } : { logits };
  }

  /** Final norm and LM head: float32 logits (B, T, vocab); its other tensors go at once. */
  #head(h: Tensor, logitsToKeep?: number, positions?: Tensor | null): Tensor {
    return tidy(() => {
      const head = this.lm_head?.weight ?? this.model.embed_tokens.weight;
      const picked = keepLast(h, logitsToKeep, positions); // the norm is per position
      const logits = linear(this.model.norm.forward(picked), head); // (B, T, vocab)
      return logits.dtype === "float32" ? logits : logits.float();
    });
  }

  /** `forward` without a cache, cut at the blocks for gradient checkpointing. */
  segments(inputs: CausalLMInputs): Segments {
    const { inputIds, attentionMask = null } = inputs;
    const T = inputIds.size(1);
    const m = this.model;
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, 0, inputIds.device);
    const mask = attentionMask4d({
      attentionMask,
      queryLength: T,
      past: 0,
      slidingWindow: this.config.sliding_window,
      device: inputIds.device,
    });
    const rope = rotary(this.config, positions);
    return {
      input: embedding(m.embed_tokens.weight, inputIds, this.config.pad_token_id ?? -1), // (B, T, C)
      blocks: segmentBlocks(
        m.layers.length,
        (i, h) => m.layers[i].forward(h, rope, mask, null).out,
      ),
      head: (h) => this.#head(h),
    };
  }
}

export const llamaFamily = {
  modelTypes: LLAMA_TYPES,
  parseConfig: parseLlamaConfig,
  create: (config, o) => new LlamaForCausalLM(config as LlamaConfig, o),
  tiedWeights: (config) =>
    (config as LlamaConfig).tie_word_embeddings
      ? [["lm_head.weight", "model.embed_tokens.weight"]]
      : [],
  loraTargets: ["q_proj", "v_proj"],
  checkpoint: {
    basePrefix: "model",
    ignore: [
      [
        /\.rotary_emb\.inv_freq$/,
        "RoPE frequencies, recomputed from rope_theta (saved by transformers < 4.31)",
      ],
    ],
  },
} satisfies ModelFamily;
