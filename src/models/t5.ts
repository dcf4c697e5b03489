/**
 * T5 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
 * Transformer", arXiv 1910.10683), T5 v1.1, mT5 (Xue et al. 2021, arXiv 2010.11934) and mT0
 * (Muennighoff et al. 2023, arXiv 2211.01786; an mT5 checkpoint): an encoder-decoder with
 * pre-RMSNorm blocks, no attention scaling (folded into the init), a learned relative position
 * bias computed by the first block of each stack and shared by the others, cross-attention, and
 * either a ReLU MLP with the LM head tied to the embedding (v1.0, rescaled by d_model^-0.5) or a
 * gated-GELU MLP with an untied `lm_head` (v1.1, mT5, mT0).
 * Reference: transformers/models/t5/modeling_t5.py (eager attention, `T5ForConditionalGeneration`,
 * `_init_weights`, `_shift_right`) and configuration_t5.py / mt5/configuration_mt5.py (defaults,
 * `feed_forward_proj` parsing). Parameter names are Hugging Face's
 * (`encoder.block.0.layer.0.SelfAttention.q.weight`); `encoder.embed_tokens` and
 * `decoder.embed_tokens` are the `shared` embedding itself, so their keys are aliases.
 */
import { z } from "zod";
import { Embedding, Linear, Module, RMSNorm, normalLinear } from "../nn/index.js";
import {
  arange,
  cat,
  dropout,
  full,
  Generator,
  linear,
  noGrad,
  op,
  tidy,
  where,
  type DType,
  type Tensor,
} from "../tensor/index.js";
import { consume, runBlocks, segmentBlocks } from "./blocks.js";
import type {
  LayerCache,
  ModelFamily,
  Segments,
  Seq2SeqInputs,
  Seq2SeqLM,
  Seq2SeqLMOutput,
} from "./types.js";
import { keepLast } from "./masks.js";
import { ACT2FN, type ActivationName } from "./activations.js";
import { parseWith } from "../util/schema.js";
import { didYouMean } from "../util/suggest.js";

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

/**
 * config.json fields of `model_type: "t5"` / `"mt5"`, with T5Config's defaults (t5-small) and,
 * where they differ, MT5Config's (mt5-small); other fields pass through unread. A null field
 * takes its default, as T5Config's constructor arguments do.
 */
function t5Schema(mt5: boolean) {
  return z.object({
    model_type: z.enum(["t5", "mt5"]),
    vocab_size: positiveInt.default(mt5 ? 250112 : 32128), // T5 SentencePiece + 100 sentinels; mT5's 250k
    d_model: positiveInt.default(512), // model width
    d_kv: positiveInt.default(64), // width of one head (need not be d_model / num_heads)
    d_ff: positiveInt.default(mt5 ? 1024 : 2048), // MLP width
    num_layers: positiveInt.default(mt5 ? 8 : 6), // encoder blocks
    num_decoder_layers: positiveInt.optional(), // absent → num_layers
    num_heads: positiveInt.default(mt5 ? 6 : 8),
    relative_attention_num_buckets: z.number().int().min(4).default(32), // position buckets
    relative_attention_max_distance: positiveInt.default(128), // farther distances share the last bucket
    dropout_rate: z.number().min(0).max(1).default(0.1), // embeddings, residuals, MLP hidden, attention
    layer_norm_epsilon: z.number().min(0).max(1).default(1e-6),
    initializer_factor: z.number().min(0).default(1.0), // scales every init std (HF's testing knob)
    // "relu" (v1.0) | "gated-gelu" (v1.1, mT5) | "gated-silu" | "{act}": checked by feedForward
    feed_forward_proj: z.string().default(mt5 ? "gated-gelu" : "relu"),
    tie_word_embeddings: z.boolean().default(!mt5), // LM head = shared embedding, output × d_model^-0.5
    decoder_start_token_id: tokenId.optional(), // absent → pad_token_id (0 in every T5 checkpoint)
    pad_token_id: tokenId.default(0),
    eos_token_id: tokenId.default(1), // "</s>"
  });
}
const T5_SCHEMA = t5Schema(false);
const MT5_SCHEMA = t5Schema(true);

/** A parsed T5 / mT5 config.json: every field filled. */
export type T5Config = Required<z.output<typeof T5_SCHEMA>>;

/**
 * `feed_forward_proj` as T5Config reads it: "{act}" or "gated-{act}"; "gated-gelu" means
 * gelu_new (tanh approximation) for backward compatibility.
 */
function feedForward(proj: string, where: string): { gated: boolean; act: ActivationName } {
  const parts = proj.split("-");
  const gated = parts[0] === "gated";
  if ((parts.length > 1 && !gated) || parts.length > 2)
    throw new Error(
      `${where}: field "feed_forward_proj": must be "{act}" or "gated-{act}" (e.g. "relu", "gated-gelu"), got "${proj}"`,
    );
  const act = proj === "gated-gelu" ? "gelu_new" : parts[parts.length - 1];
  if (!Object.hasOwn(ACT2FN, act))
    throw new Error(
      `${where}: field "feed_forward_proj": names unknown activation "${act}".${didYouMean(act, Object.keys(ACT2FN))} Known: ${Object.keys(ACT2FN).join(", ")}.`,
    );
  return { gated, act: act as ActivationName };
}

/** Fills T5Config / MT5Config defaults into a parsed config.json; throws naming a bad field. */
export function parseT5Config(raw: Record<string, unknown>, source = "config.json"): T5Config {
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== null));
  const type = given.model_type ?? "t5";
  const c = parseWith(
    type === "mt5" ? MT5_SCHEMA : T5_SCHEMA,
    { ...given, model_type: type },
    source,
  );
  feedForward(c.feed_forward_proj, source);
  // Fields in T5Config's order (config.json files written from it keep their layout).
  return {
    model_type: c.model_type,
    vocab_size: c.vocab_size,
    d_model: c.d_model,
    d_kv: c.d_kv,
    d_ff: c.d_ff,
    num_layers: c.num_layers,
    num_heads: c.num_heads,
    num_decoder_layers: c.num_decoder_layers ?? c.num_layers,
    relative_attention_num_buckets: c.relative_attention_num_buckets,
    relative_attention_max_distance: c.relative_attention_max_distance,
    dropout_rate: c.dropout_rate,
    layer_norm_epsilon: c.layer_norm_epsilon,
    initializer_factor: c.initializer_factor,
    feed_forward_proj: c.feed_forward_proj,
    tie_word_embeddings: c.tie_word_embeddings,
    decoder_start_token_id: c.decoder_start_token_id ?? c.pad_token_id,
    pad_token_id: c.pad_token_id,
    eos_token_id: c.eos_token_id,
  };
}

/**
 * The bucket of each relative position (memory − query), HF's `_relative_position_bucket`:
 * bidirectional splits the buckets between before and after; half of each side counts exact
 * distances, the rest grow logarithmically up to `maxDistance`, beyond which all share the last.
 * Unidirectional (decoder) maps every future position to bucket 0.
 */
export function relativePositionBucket(
  relativePosition: Tensor,
  bidirectional: boolean,
  numBuckets: number,
  maxDistance: number,
): Tensor {
  let n = numBuckets;
  let rp = relativePosition;
  let offset: Tensor | null = null;
  if (bidirectional) {
    n = Math.floor(n / 2);
    offset = rp.gt(0).long().mul(n);
    rp = rp.abs();
  } else {
    rp = rp.clamp(null, 0).neg(); // -min(rp, 0)
  }
  const maxExact = Math.floor(n / 2);
  const isSmall = rp.lt(maxExact);
  // log(0) = -inf for rp = 0 gives garbage here, but those positions take the exact branch.
  const large = rp
    .float()
    .div(maxExact)
    .log()
    .div(Math.log(maxDistance / maxExact))
    .mul(n - maxExact)
    .long()
    .add(maxExact)
    .clamp(null, n - 1);
  const bucket = where(isSmall, rp, large);
  return offset ? bucket.add(offset) : bucket;
}

/** torch.finfo(dtype).min: the additive mask value HF uses (not -inf, so no row is all -inf). */
const FINFO_MIN: Partial<Record<DType, number>> = {
  float32: -3.4028234663852886e38,
  float64: -1.7976931348623157e308,
  float16: -65504,
  bfloat16: -3.3895313892515355e38,
};

/** 0 where `allowed`, finfo.min elsewhere, in `dtype`. */
function additiveMask(allowed: Tensor, dtype: DType): Tensor {
  const min = FINFO_MIN[dtype];
  if (min === undefined) throw new Error(`t5: no attention mask value for dtype ${dtype}`);
  return allowed.logicalNot().to(dtype).mul(min);
}

/** T5Block's fp16 guard: clamps activations just inside the float16 range (below it if any are inf). */
function clampFp16(h: Tensor): Tensor {
  if (h.dtype !== "float16") return h;
  const limit = op("aten::isinf", [h]).any().float().mul(-1000).add(65504);
  return op("aten::clamp.Tensor", [h, limit.neg(), limit]);
}

/** T5LayerNorm: RMSNorm without mean or bias, in float32; weight = initializer_factor. */
function t5LayerNorm(cfg: T5Config): RMSNorm {
  const n = new RMSNorm(cfg.d_model, cfg.layer_norm_epsilon);
  noGrad(() => n.weight.fill_(cfg.initializer_factor));
  return n;
}

/** Multi-head attention without scaling; the first self-attention of a stack owns the bias table. */
class T5Attention extends Module {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  relative_attention_bias: Embedding | null = null;
  private bidirectional: boolean;

  constructor(
    private cfg: T5Config,
    g: Generator,
    o: { hasRelativeBias: boolean; bidirectional: boolean },
  ) {
    super();
    const f = cfg.initializer_factor;
    const inner = cfg.num_heads * cfg.d_kv;
    this.q = normalLinear(cfg.d_model, inner, f * (cfg.d_model * cfg.d_kv) ** -0.5, g, false);
    this.k = normalLinear(cfg.d_model, inner, f * cfg.d_model ** -0.5, g, false);
    this.v = normalLinear(cfg.d_model, inner, f * cfg.d_model ** -0.5, g, false);
    this.o = normalLinear(inner, cfg.d_model, f * inner ** -0.5, g, false);
    if (o.hasRelativeBias)
      this.relative_attention_bias = new Embedding(
        cfg.relative_attention_num_buckets,
        cfg.num_heads,
        {
          std: f * cfg.d_model ** -0.5,
          generator: g,
        },
      );
    this.bidirectional = o.bidirectional;
  }

  /** (B, L, d_model) → (B, nh, L, d_kv) */
  private heads(x: Tensor): Tensor {
    return x.view(x.size(0), -1, this.cfg.num_heads, this.cfg.d_kv).transpose(1, 2);
  }

  /** Keys and values of `h` (B, S, d_model), each (B, nh, S, d_kv). */
  keyValues(h: Tensor): LayerCache {
    return { k: this.heads(this.k.forward(h)), v: this.heads(this.v.forward(h)) };
  }

  /** Relative position bias (1, nh, T, S) for queries at positions start..start+T-1 over keys 0..S-1. */
  computeBias(start: number, T: number, S: number): Tensor {
    const table = this.relative_attention_bias;
    if (!table)
      throw new Error("t5: computeBias called on an attention without relative_attention_bias");
    const device = table.weight.device;
    return tidy(() => {
      const context = arange(start, start + T, 1, { device }).unsqueeze(1); // (T, 1)
      const memory = arange(S, undefined, 1, { device }).unsqueeze(0); // (1, S)
      const bucket = relativePositionBucket(
        memory.sub(context), // (T, S)
        this.bidirectional,
        this.cfg.relative_attention_num_buckets,
        this.cfg.relative_attention_max_distance,
      );
      return table.forward(bucket).permute(2, 0, 1).unsqueeze(0); // (1, nh, T, S)
    });
  }

  /** softmax(q kᵀ + bias) v, softmax in float32 as HF's eager path; bias already holds the mask. */
  forward(x: Tensor, kv: LayerCache, bias: Tensor | null): Tensor {
    const [B, T] = x.shape;
    const q = this.heads(this.q.forward(x)); // (B, nh, T, d_kv)
    // Each (B, nh, T, S) tensor's handle goes once the next is made (`consume`).
    let w = q.matmul(kv.k.transpose(3, 2)); // (B, nh, T, S)
    if (bias) w = consume(w, (s) => s.add(bias));
    const dtype = w.dtype;
    w = consume(w, (s) => s.float());
    w = consume(w, (s) => s.softmax(-1));
    w = consume(w, (s) => s.to(dtype));
    w = consume(w, (s) => dropout(s, this.cfg.dropout_rate, this.training));
    const y = w.matmul(kv.v).transpose(1, 2).contiguous().view(B, T, -1); // (B, T, nh·d_kv)
    return this.o.forward(y);
  }
}

class T5LayerSelfAttention extends Module {
  SelfAttention: T5Attention;
  layer_norm: RMSNorm;
  constructor(
    private cfg: T5Config,
    g: Generator,
    o: { hasRelativeBias: boolean; bidirectional: boolean },
  ) {
    super();
    this.SelfAttention = new T5Attention(cfg, g, o);
    this.layer_norm = t5LayerNorm(cfg);
  }
  /** Returns the new hidden states and this layer's keys/values including `past`. */
  forward(h: Tensor, bias: Tensor, past: LayerCache | null): { h: Tensor; kv: LayerCache } {
    const normed = this.layer_norm.forward(h);
    let kv = this.SelfAttention.keyValues(normed);
    if (past) kv = { k: cat([past.k, kv.k], 2), v: cat([past.v, kv.v], 2) }; // (B, nh, P+T, d_kv)
    const y = this.SelfAttention.forward(normed, kv, bias);
    return { h: h.add(dropout(y, this.cfg.dropout_rate, this.training)), kv };
  }
}

class T5LayerCrossAttention extends Module {
  EncDecAttention: T5Attention;
  layer_norm: RMSNorm;
  constructor(
    private cfg: T5Config,
    g: Generator,
  ) {
    super();
    this.EncDecAttention = new T5Attention(cfg, g, { hasRelativeBias: false, bidirectional: true });
    this.layer_norm = t5LayerNorm(cfg);
  }
  /** `kv`: the encoder output's keys/values for this layer (computed once per input). */
  forward(h: Tensor, kv: LayerCache, bias: Tensor | null): Tensor {
    const y = this.EncDecAttention.forward(this.layer_norm.forward(h), kv, bias);
    return h.add(dropout(y, this.cfg.dropout_rate, this.training));
  }
}

/** v1.0 MLP: wo(act(wi x)). */
class T5DenseActDense extends Module {
  wi: Linear;
  wo: Linear;
  constructor(
    private cfg: T5Config,
    private act: ActivationName,
    g: Generator,
  ) {
    super();
    const f = cfg.initializer_factor;
    this.wi = normalLinear(cfg.d_model, cfg.d_ff, f * cfg.d_model ** -0.5, g, false);
    this.wo = normalLinear(cfg.d_ff, cfg.d_model, f * cfg.d_ff ** -0.5, g, false);
  }
  forward(x: Tensor): Tensor {
    const h = ACT2FN[this.act](this.wi.forward(x));
    return this.wo.forward(
      dropout(h, this.cfg.dropout_rate, this.training).to(this.wo.weight.dtype),
    );
  }
}

/** v1.1 / mT5 MLP: wo(act(wi_0 x) · wi_1 x). */
class T5DenseGatedActDense extends Module {
  wi_0: Linear;
  wi_1: Linear;
  wo: Linear;
  constructor(
    private cfg: T5Config,
    private act: ActivationName,
    g: Generator,
  ) {
    super();
    const f = cfg.initializer_factor;
    this.wi_0 = normalLinear(cfg.d_model, cfg.d_ff, f * cfg.d_model ** -0.5, g, false);
    this.wi_1 = normalLinear(cfg.d_model, cfg.d_ff, f * cfg.d_model ** -0.5, g, false);
    this.wo = normalLinear(cfg.d_ff, cfg.d_model, f * cfg.d_ff ** -0.5, g, false);
  }
  forward(x: Tensor): Tensor {
    const h = ACT2FN[this.act](this.wi_0.forward(x)).mul(this.wi_1.forward(x));
    return this.wo.forward(
      dropout(h, this.cfg.dropout_rate, this.training).to(this.wo.weight.dtype),
    );
  }
}

class T5LayerFF extends Module {
  DenseReluDense: T5DenseActDense | T5DenseGatedActDense;
  layer_norm: RMSNorm;
  constructor(
    private cfg: T5Config,
    g: Generator,
  ) {
    super();
    const { gated, act } = feedForward(cfg.feed_forward_proj, "t5");
    this.DenseReluDense = gated
      ? new T5DenseGatedActDense(cfg, act, g)
      : new T5DenseActDense(cfg, act, g);
    this.layer_norm = t5LayerNorm(cfg);
  }
  forward(h: Tensor): Tensor {
    const y = this.DenseReluDense.forward(this.layer_norm.forward(h));
    return h.add(dropout(y, this.cfg.dropout_rate, this.training));
  }
}

/**
 * What the decoder attends to across: per-layer keys/values of the encoder output (or a function
 * making layer i's, called inside that block so they go with it) and the encoder padding mask.
 */
interface CrossInputs {
  kv: LayerCache[] | ((i: number) => LayerCache);
  bias: Tensor | null;
}

/** Encoder block: [self-attention, MLP]; decoder block: [self-attention, cross-attention, MLP]. */
class T5Block extends Module {
  layer:
    [T5LayerSelfAttention, T5LayerFF] | [T5LayerSelfAttention, T5LayerCrossAttention, T5LayerFF];
  constructor(cfg: T5Config, g: Generator, o: { isDecoder: boolean; hasRelativeBias: boolean }) {
    super();
    const bidirectional = !o.isDecoder;
    const self = new T5LayerSelfAttention(cfg, g, {
      hasRelativeBias: o.hasRelativeBias,
      bidirectional,
    });
    this.layer = o.isDecoder
      ? [self, new T5LayerCrossAttention(cfg, g), new T5LayerFF(cfg, g)]
      : [self, new T5LayerFF(cfg, g)];
  }
  get selfAttention(): T5LayerSelfAttention {
    return this.layer[0];
  }
  forward(
    h: Tensor,
    selfBias: Tensor,
    past: LayerCache | null,
    cross: { kv: LayerCache; bias: Tensor | null } | null,
  ): { h: Tensor; kv: LayerCache } {
    // Each sub-layer in a scope: only its output (and what autograd saved) stays.
    const layer = this.layer;
    const self = tidy(() => layer[0].forward(h, selfBias, past));
    h = clampFp16(self.h);
    if (layer.length === 3) {
      if (!cross) throw new Error("t5: a decoder block needs the encoder output");
      const x = h;
      h = clampFp16(tidy(() => layer[1].forward(x, cross.kv, cross.bias)));
    }
    const x = h;
    h = clampFp16(tidy(() => (layer.length === 3 ? layer[2] : layer[1]).forward(x)));
    return { h, kv: self.kv };
  }
}

/** T5Stack: embeddings (the shared table), the blocks, the final norm. */
class T5Stack extends Module {
  embed_tokens: Embedding;
  block: T5Block[];
  final_layer_norm: RMSNorm;
  constructor(
    private cfg: T5Config,
    shared: Embedding,
    g: Generator,
    private isDecoder: boolean,
  ) {
    super();
    this.embed_tokens = shared;
    const n = isDecoder ? cfg.num_decoder_layers : cfg.num_layers;
    this.block = Array.from(
      { length: n },
      (_, i) => new T5Block(cfg, g, { isDecoder, hasRelativeBias: i === 0 }),
    );
    this.final_layer_norm = t5LayerNorm(cfg);
  }

  /**
   * Runs the stack over `inputIds` (B, T). `mask` (B, P+T) marks real tokens (1) and padding (0);
   * the decoder is also causal, with `past` holding P earlier positions per layer. `cache` (each
   * layer's self-attention keys/values, past included) only when `useCache`.
   */
  forward(
    inputIds: Tensor,
    o: {
      mask: Tensor | null;
      past: LayerCache[] | null;
      cross: CrossInputs | null;
      useCache?: boolean;
    },
  ): { hidden: Tensor; cache: LayerCache[] } {
    // One scope: the bias and the embeddings go with the blocks' tensors.
    return tidy(() => {
      const P = o.past ? o.past[0].k.size(2) : 0;
      const { h, bias } = this.#input(inputIds, o.mask, P);
      const c = o.cross;
      const { hidden, cache } = runBlocks(this.block.length, h, o.useCache ?? false, (i, x) => {
        const cross = c && { kv: typeof c.kv === "function" ? c.kv(i) : c.kv[i], bias: c.bias };
        return this.block[i].forward(x, bias, o.past?.[i] ?? null, cross);
      });
      return { hidden: this.segmentOutput(hidden), cache };
    });
  }

  /**
   * `forward`'s pre-block part (no cache) for checkpoint segments: the embedded, dropped-out
   * input and the self-attention bias (relative positions plus masks) every block reads.
   */
  segmentInput(inputIds: Tensor, mask: Tensor | null): { h: Tensor; bias: Tensor } {
    return this.#input(inputIds, mask, 0);
  }

  /** The embedded, dropped-out input (B, T, d_model) and the self-attention bias (B, nh, T, P+T). */
  #input(inputIds: Tensor, mask: Tensor | null, P: number): { h: Tensor; bias: Tensor } {
    const T = inputIds.size(1);
    const h = this.embed_tokens.forward(inputIds); // (B, T, d_model)
    // Relative bias from the first block, plus the mask, shared by every block.
    let bias = this.selfAttentionBias(P, T);
    let allowed: Tensor | null = null;
    if (this.isDecoder)
      allowed = arange(P + T, undefined, 1, { device: h.device })
        .unsqueeze(0)
        .le(arange(P, P + T, 1, { device: h.device }).unsqueeze(1)) // (T, P+T) causal
        .unsqueeze(0); // (1, T, P+T)
    if (mask) {
      const pad = mask.ne(0).unsqueeze(1); // (B, 1, P+T)
      allowed = allowed ? allowed.logicalAnd(pad) : pad;
    }
    if (allowed) bias = bias.add(additiveMask(allowed, h.dtype).unsqueeze(1));
    return { h: dropout(h, this.cfg.dropout_rate, this.training), bias };
  }

  /** `forward`'s post-block part: the final norm and its dropout. */
  segmentOutput(h: Tensor): Tensor {
    return tidy(() =>
      dropout(this.final_layer_norm.forward(h), this.cfg.dropout_rate, this.training),
    );
  }

  private selfAttentionBias(P: number, T: number): Tensor {
    return this.block[0].selfAttention.SelfAttention.computeBias(P, T, P + T);
  }

  /** Each decoder block's cross-attention keys/values of the encoder output. */
  crossKeyValues(encoderHidden: Tensor): LayerCache[] {
    return this.block.map((_, i) => this.crossKeyValuesOf(i, encoderHidden));
  }

  /** Decoder block i's cross-attention keys/values of the encoder output. */
  crossKeyValuesOf(i: number, encoderHidden: Tensor): LayerCache {
    const cross = this.block[i].layer[1];
    if (!(cross instanceof T5LayerCrossAttention))
      throw new Error("t5: the encoder has no cross-attention");
    return cross.EncDecAttention.keyValues(encoderHidden);
  }
}

/** T5ForConditionalGeneration: shared embedding, encoder, decoder, LM head. */
export class T5ForConditionalGeneration extends Module implements Seq2SeqLM {
  readonly kind = "seq2seq";
  shared: Embedding;
  encoder: T5Stack;
  decoder: T5Stack;
  /** Untied checkpoints only (v1.1, mT5, mT0); v1.0 projects with `shared.weight`. */
  lm_head: Linear | null = null;

  constructor(
    readonly config: T5Config,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    const f = config.initializer_factor;
    this.shared = new Embedding(config.vocab_size, config.d_model, { std: f, generator: g });
    this.encoder = new T5Stack(config, this.shared, g, false);
    this.decoder = new T5Stack(config, this.shared, g, true);
    if (!config.tie_word_embeddings) {
      this.lm_head = normalLinear(config.d_model, config.vocab_size, f, g, false);
    }
  }

  /**
   * Logits (B, T, vocab) float32 of the decoder inputs. The encoder runs unless `encoderHidden`
   * is given; cross-attention keys/values are computed unless `crossCache` is given.
   */
  forward(inputs: Seq2SeqInputs): Seq2SeqLMOutput {
    const encMask = inputs.attentionMask ?? null;
    const dec = inputs.decoderInputIds;
    const P = inputs.cache ? inputs.cache[0].k.size(2) : 0;
    checkMask(encMask, inputs.inputIds.size(0), inputs.inputIds.size(1), "attentionMask");
    const decMask = inputs.decoderAttentionMask ?? null;
    checkMask(decMask, dec.size(0), P + dec.size(1), "decoderAttentionMask");
    const encoderHidden =
      inputs.encoderHidden ??
      this.encoder.forward(inputs.inputIds, { mask: encMask, past: null, cross: null }).hidden;
    const useCache = inputs.useCache ?? false;
    // Without a cache to return, each block makes its cross keys/values and lets them go.
    const crossCache =
      inputs.crossCache ?? (useCache ? this.decoder.crossKeyValues(encoderHidden) : null);
    // The cross-attention bias is only the encoder padding mask (no relative positions): (B, 1, 1, S).
    const crossBias = encMask
      ? additiveMask(encMask.ne(0), encoderHidden.dtype).unsqueeze(1).unsqueeze(1)
      : null;
    const out = this.decoder.forward(dec, {
      mask: decMask,
      past: inputs.cache ?? null,
      cross: {
        kv: crossCache ?? ((i) => this.decoder.crossKeyValuesOf(i, encoderHidden)),
        bias: crossBias,
      },
      useCache,
    });
    const logits = this.#head(keepLast(out.hidden, inputs.logitsToKeep, inputs.logitsPositions));
    return useCache && crossCache
      ? { logits, encoderHidden, cache: out.cache, crossCache }
      : { logits, encoderHidden };
  }

  /** The LM head: float32 logits (B, T, vocab); its other tensors go at once. */
  #head(hidden: Tensor): Tensor {
    return tidy(() => {
      const logits = this.lm_head
        ? this.lm_head.forward(hidden)
        : linear(hidden.mul(this.config.d_model ** -0.5), this.shared.weight); // tied: rescale
      return logits.dtype === "float32" ? logits : logits.float();
    });
  }

  /**
   * `forward` (no cache, every position) as checkpoint segments: the encoder runs with its full
   * graph; the decoder blocks are the segments, sharing the decoder's self-attention bias and the
   * encoder output (each block computes its cross-attention keys/values from it).
   */
  segments(inputs: Seq2SeqInputs): Segments {
    const encMask = inputs.attentionMask ?? null;
    const dec = inputs.decoderInputIds;
    checkMask(encMask, inputs.inputIds.size(0), inputs.inputIds.size(1), "attentionMask");
    const decMask = inputs.decoderAttentionMask ?? null;
    checkMask(decMask, dec.size(0), dec.size(1), "decoderAttentionMask");
    const encoderHidden =
      inputs.encoderHidden ??
      this.encoder.forward(inputs.inputIds, { mask: encMask, past: null, cross: null }).hidden;
    const crossBias = encMask
      ? additiveMask(encMask.ne(0), encoderHidden.dtype).unsqueeze(1).unsqueeze(1)
      : null;
    const { h, bias } = this.decoder.segmentInput(dec, decMask);
    return {
      input: h,
      shared: [bias, encoderHidden],
      blocks: segmentBlocks(this.decoder.block.length, (i, x, shared) => {
        const kv = this.decoder.crossKeyValuesOf(i, shared[1]);
        return this.decoder.block[i].forward(x, shared[0], null, { kv, bias: crossBias }).h;
      }),
      head: (x) => this.#head(this.decoder.segmentOutput(x)),
    };
  }

  /** Decoder inputs for teacher forcing (HF `_shift_right`): start token, labels[:-1], -100 → pad. */
  shiftRight(labels: Tensor): Tensor {
    const start = full([labels.size(0), 1], this.config.decoder_start_token_id, {
      dtype: "int64",
      device: labels.device,
    });
    const shifted = cat([start, labels.slice(1, 0, -1)], 1); // (B, T)
    return shifted.maskedFill(shifted.eq(-100), this.config.pad_token_id);
  }
}

function checkMask(mask: Tensor | null, B: number, S: number, name: string): void {
  if (!mask) return;
  const [b, s] = mask.shape;
  if (mask.ndim !== 2 || b !== B || s !== S)
    throw new Error(`t5: ${name} has shape [${mask.shape}] but must be [${B}, ${S}]`);
}

/** T5, mT5 and mT0 checkpoints (`model_type` "t5" / "mt5"). */
export const t5Family = {
  modelTypes: ["t5", "mt5"],
  parseConfig: (raw: Record<string, unknown>, source?: string) => parseT5Config(raw, source),
  create: (config: Record<string, unknown>, o?: { seed?: number }) =>
    new T5ForConditionalGeneration(parseT5Config(config), o),
  /** Both stacks' `embed_tokens` are `shared`; so is `lm_head` when the head is tied. */
  tiedWeights: (config: Record<string, unknown>): [string, string][] => [
    ["encoder.embed_tokens.weight", "shared.weight"],
    ["decoder.embed_tokens.weight", "shared.weight"],
    ...(parseT5Config(config).tie_word_embeddings
      ? [["lm_head.weight", "shared.weight"] as [string, string]]
      : []),
  ],
  /** PEFT's default LoRA targets for T5 and mT5. */
  loraTargets: ["q", "v"],
  checkpoint: {
    basePrefix: null,
    ignore: [
      [
        /^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$/,
        "cross-attention has no position bias (T5's _keys_to_ignore_on_load_unexpected)",
      ],
    ],
  },
} satisfies ModelFamily;
