/**
 * GPT-NeoX / Pythia (Black et al. 2022, "GPT-NeoX-20B", arXiv 2204.06745; Biderman et al. 2023,
 * "Pythia", arXiv 2304.01373): rotary embeddings on the first `rotary_pct` of each head
 * (Su et al. 2021, rotate_half layout), a fused query_key_value laid out per head, parallel
 * residual (x + attn(ln1(x)) + mlp(ln2(x))), an untied `embed_out` head.
 * Reference: transformers/models/gpt_neox/modeling_gpt_neox.py (eager attention,
 * GPTNeoXRotaryEmbedding, apply_rotary_pos_emb) and configuration_gpt_neox.py for the defaults.
 * Parameter names are GPTNeoXForCausalLM's (`gpt_neox.layers.0.attention.query_key_value.weight`,
 * `embed_out.weight`). Checkpoint quirk: older Pythia files also hold the non-persistent buffers
 * `attention.bias`, `attention.masked_bias` and `attention.rotary_emb.inv_freq`, which carry no
 * weights and are recomputed here.
 */
import { z } from "zod";
import { Embedding, LayerNorm, Linear, Module, normalLinear } from "../nn/index.js";
import {
  arange,
  cat,
  dropout,
  Generator,
  op,
  scaledDotProductAttention,
  tidy,
  type DType,
  type Tensor,
} from "../tensor/index.js";
import { runBlocks, segmentBlocks } from "./blocks.js";
import { attentionMask4d, keepLast, pastLength, positionIds } from "./masks.js";
import type {
  CausalLM,
  CausalLMInputs,
  CausalLMOutput,
  LayerCache,
  ModelFamily,
  Segments,
} from "./types.js";
import { parseWith } from "../util/schema.js";
import { ACT2FN, type ActivationName } from "./activations.js";

/** transformers' ACT2FN entries GPT-NeoX configs use. */
const ACTIVATIONS = [
  "gelu",
  "gelu_new",
  "gelu_fast",
  "gelu_pytorch_tanh",
  "relu",
  "silu",
] as const satisfies readonly ActivationName[];

const positiveInt = z.number().int().positive();

/** config.json fields of `model_type: "gpt_neox"`, with GPTNeoXConfig's defaults; others pass through. */
const GPTNeoXConfigSchema = z.looseObject({
  model_type: z.literal("gpt_neox").default("gpt_neox"),
  vocab_size: positiveInt.default(50432), // GPT-NeoX-20B's BPE, padded
  hidden_size: positiveInt.default(6144), // model width
  num_hidden_layers: positiveInt.default(44),
  num_attention_heads: positiveInt.default(64),
  intermediate_size: positiveInt.default(24576), // MLP width (4 · hidden_size)
  hidden_act: z.enum(ACTIVATIONS).default("gelu"),
  rotary_pct: z.number().gt(0).max(1).default(0.25), // share of each head's dims that rotate
  rotary_emb_base: z.number().positive().default(10000), // RoPE θ
  max_position_embeddings: positiveInt.default(2048), // context length trained on (informational)
  initializer_range: z.number().nonnegative().default(0.02), // std of the normal init
  layer_norm_eps: z.number().positive().default(1e-5),
  attention_dropout: z.number().min(0).max(1).default(0), // on the attention probabilities
  hidden_dropout: z.number().min(0).max(1).default(0), // on embeddings and both branch outputs
  use_parallel_residual: z.boolean().default(true), // attn and MLP both read x (Pythia, NeoX-20B)
  attention_bias: z.boolean().default(true), // biases on query_key_value and dense
  tie_word_embeddings: z.boolean().default(false), // embed_out is its own matrix
  rope_scaling: z.null({ error: "RoPE scaling is not supported (only plain RoPE)" }).default(null),
});
export type GPTNeoXConfig = z.infer<typeof GPTNeoXConfigSchema>;

/**
 * Newer transformers spell the RoPE fields `rope_theta` / `partial_rotary_factor`, or nest them in
 * `rope_parameters`; like GPTNeoXConfig, the newer spelling wins over rotary_emb_base / rotary_pct.
 */
function resolveRopeAliases(input: Record<string, unknown>): void {
  const nested = input.rope_parameters;
  delete input.rope_parameters;
  if (nested !== null && typeof nested === "object") {
    const params = nested as Record<string, unknown>;
    if ((params.rope_type ?? "default") !== "default") input.rope_scaling = params;
    input.rope_theta = params.rope_theta ?? input.rope_theta;
    input.partial_rotary_factor = params.partial_rotary_factor ?? input.partial_rotary_factor;
  }
  for (const [alias, field] of [
    ["rope_theta", "rotary_emb_base"],
    ["partial_rotary_factor", "rotary_pct"],
  ]) {
    if (input[alias] !== undefined) input[field] = input[alias];
    delete input[alias];
  }
}

/** Parses a config.json object (defaults filled, aliases resolved); errors name the field. */
export function parseGptNeoxConfig(
  raw: Record<string, unknown>,
  source = "config.json",
): GPTNeoXConfig {
  const input: Record<string, unknown> = { ...raw };
  resolveRopeAliases(input);
  const c = parseWith(GPTNeoXConfigSchema, input, source);
  if (c.hidden_size % c.num_attention_heads !== 0)
    throw new Error(
      `${source}: field "hidden_size" (${c.hidden_size}) must be divisible by "num_attention_heads" (${c.num_attention_heads})`,
    );
  if (rotaryNdims(c) % 2 !== 0)
    throw new Error(
      `${source}: field "rotary_pct" (${c.rotary_pct}) gives ${rotaryNdims(c)} rotary dims per head; they must be even`,
    );
  return c;
}

/** Number of leading dims of each head that rotate: int(head_size · rotary_pct), as HF. */
export function rotaryNdims(c: GPTNeoXConfig): number {
  return Math.floor((c.hidden_size / c.num_attention_heads) * c.rotary_pct);
}

/**
 * cos and sin (B|1, 1, T, dim) for position ids (B|1, T), as GPTNeoXRotaryEmbedding:
 * inv_freq_i = 1 / base^(2i/dim), angle = position · inv_freq, duplicated over both halves.
 */
export function rotaryCosSin(
  positions: Tensor,
  dim: number,
  base: number,
  dtype: DType,
): { cos: Tensor; sin: Tensor } {
  const exponents = arange(0, dim, 2, { device: positions.device }).float().div(dim); // (dim/2,)
  const invFreq = op("aten::pow.Scalar", [base, exponents]).reciprocal();
  const freqs = positions.float().unsqueeze(-1).mul(invFreq); // (B, T, dim/2)
  const emb = cat([freqs, freqs], -1).unsqueeze(1); // (B, 1, T, dim)
  return { cos: emb.cos().to(dtype), sin: emb.sin().to(dtype) };
}

/** (−x₂, x₁) for the halves x₁, x₂ of the last dimension. */
function rotateHalf(x: Tensor): Tensor {
  const [x1, x2] = x.chunk(2, -1);
  return cat([x2.neg(), x1], -1);
}

/** Rotates the first `cos.size(-1)` dims of x (B, nh, T, hs) and passes the rest through. */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const rd = cos.size(-1);
  const hs = x.size(-1);
  return tidy(() => {
    const rot = x.narrow(-1, 0, rd);
    const rotated = rot.mul(cos).add(rotateHalf(rot).mul(sin));
    return rd === hs ? rotated : cat([rotated, x.narrow(-1, rd, hs - rd)], -1);
  });
}

class GPTNeoXAttention extends Module {
  query_key_value: Linear;
  dense: Linear;
  constructor(
    private cfg: GPTNeoXConfig,
    g: Generator,
  ) {
    super();
    const { hidden_size: C, initializer_range: std, attention_bias: bias } = cfg;
    this.query_key_value = normalLinear(C, 3 * C, std, g, bias);
    this.dense = normalLinear(C, C, std, g, bias);
  }
  forward(
    x: Tensor,
    rope: { cos: Tensor; sin: Tensor },
    mask: { mask: Tensor | null; isCausal: boolean },
    past: LayerCache | null,
  ): { out: Tensor; kv: LayerCache } {
    const [B, T, C] = x.shape;
    const nh = this.cfg.num_attention_heads;
    const hs = C / nh;
    const qkv = this.query_key_value
      .forward(x)
      .view(B, T, nh, 3 * hs)
      .transpose(1, 2); // (B, nh, T, 3·hs)
    const [q0, k0, v0] = qkv.split(hs, -1); // (B, nh, T, hs) each
    const q = applyRotary(q0, rope.cos, rope.sin);
    let k = applyRotary(k0, rope.cos, rope.sin);
    let v = v0;
    if (past) {
      k = cat([past.k, k], 2); // (B, nh, S, hs)
      v = cat([past.v, v], 2);
    }
    const p = this.training ? this.cfg.attention_dropout : 0;
    const y = scaledDotProductAttention(q, k, v, { ...mask, dropoutP: p }); // (B, nh, T, hs)
    const merged = y.transpose(1, 2).contiguous().view(B, T, C);
    return { out: this.dense.forward(merged), kv: { k, v } };
  }
}

class GPTNeoXMLP extends Module {
  dense_h_to_4h: Linear;
  dense_4h_to_h: Linear;
  constructor(
    private cfg: GPTNeoXConfig,
    g: Generator,
  ) {
    super();
    const { hidden_size: C, intermediate_size: I, initializer_range: std } = cfg;
    this.dense_h_to_4h = normalLinear(C, I, std, g);
    this.dense_4h_to_h = normalLinear(I, C, std, g);
  }
  forward(x: Tensor): Tensor {
    return this.dense_4h_to_h.forward(ACT2FN[this.cfg.hidden_act](this.dense_h_to_4h.forward(x)));
  }
}

class GPTNeoXLayer extends Module {
  input_layernorm: LayerNorm;
  post_attention_layernorm: LayerNorm;
  attention: GPTNeoXAttention;
  mlp: GPTNeoXMLP;
  constructor(
    private cfg: GPTNeoXConfig,
    g: Generator,
  ) {
    super();
    this.input_layernorm = new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps);
    this.post_attention_layernorm = new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps);
    this.attention = new GPTNeoXAttention(cfg, g);
    this.mlp = new GPTNeoXMLP(cfg, g);
  }
  forward(
    x: Tensor,
    rope: { cos: Tensor; sin: Tensor },
    mask: { mask: Tensor | null; isCausal: boolean },
    past: LayerCache | null,
  ): { h: Tensor; kv: LayerCache } {
    const { hidden_dropout: pd } = this.cfg;
    // Attention and MLP each in a scope: only their outputs (and what autograd saved) stay.
    const { out, kv } = tidy(() =>
      this.attention.forward(this.input_layernorm.forward(x), rope, mask, past),
    );
    const a = dropout(out, pd, this.training);
    const mlp = (z: Tensor) =>
      dropout(
        tidy(() => this.mlp.forward(this.post_attention_layernorm.forward(z))),
        pd,
        this.training,
      );
    if (this.cfg.use_parallel_residual) return { h: mlp(x).add(a).add(x), kv }; // x + attn(ln1(x)) + mlp(ln2(x))
    const h = a.add(x); // x + attn(ln1(x)), then + mlp(ln2(·))
    return { h: mlp(h).add(h), kv };
  }
}

class GPTNeoXModel extends Module {
  embed_in: Embedding;
  layers: GPTNeoXLayer[];
  final_layer_norm: LayerNorm;
  constructor(cfg: GPTNeoXConfig, g: Generator) {
    super();
    const C = cfg.hidden_size;
    this.embed_in = new Embedding(cfg.vocab_size, C, { std: cfg.initializer_range, generator: g });
    this.layers = Array.from({ length: cfg.num_hidden_layers }, () => new GPTNeoXLayer(cfg, g));
    this.final_layer_norm = new LayerNorm(C, cfg.layer_norm_eps);
  }
}

/** GPTNeoXForCausalLM: the transformer plus `embed_out` (tied to embed_in only if configured). */
export class GPTNeoXForCausalLM extends Module implements CausalLM {
  readonly kind = "causal";
  gpt_neox: GPTNeoXModel;
  embed_out: Linear;
  constructor(
    readonly config: GPTNeoXConfig,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    this.gpt_neox = new GPTNeoXModel(config, g);
    this.embed_out = normalLinear(
      config.hidden_size,
      config.vocab_size,
      config.initializer_range,
      g,
      false,
    );
    if (config.tie_word_embeddings) {
      this.embed_out.weight.dispose();
      this.embed_out.weight = this.gpt_neox.embed_in.weight;
    }
  }

  /** Logits (B, T, vocab); rotary positions from `positionIds`, else from the mask or the cache length. */
  forward(inputs: CausalLMInputs): CausalLMOutput {
    const { inputIds, attentionMask, cache } = inputs;
    const T = inputIds.size(1);
    const past = pastLength(cache);
    const cfg = this.config;
    const m = this.gpt_neox;
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, past); // (B|1, T)
    const mask = attentionMask4d({ attentionMask, queryLength: T, past });
    const x = dropout(m.embed_in.forward(inputIds), cfg.hidden_dropout, this.training); // (B, T, C)
    const rope = rotaryCosSin(positions, rotaryNdims(cfg), cfg.rotary_emb_base, x.dtype);
    const useCache = inputs.useCache ?? false;
    const { hidden, cache: kvs } = runBlocks(m.layers.length, x, useCache, (i, h) =>
      m.layers[i].forward(h, rope, mask, cache?.[i] ?? null),
    );
    const logits = this.#head(keepLast(hidden, inputs.logitsToKeep, inputs.logitsPositions)); // (B, T, vocab)
    return useCache ? { logits, cache: kvs } : { logits };
  }

  /** Final norm and `embed_out`: float32 logits (B, T, vocab); its other tensors go at once. */
  #head(h: Tensor): Tensor {
    return tidy(() => this.embed_out.forward(this.gpt_neox.final_layer_norm.forward(h)).float());
  }

  /** `forward` without a cache, cut at the blocks for gradient checkpointing. */
  segments(inputs: CausalLMInputs): Segments {
    const { inputIds, attentionMask } = inputs;
    const T = inputIds.size(1);
    const cfg = this.config;
    const m = this.gpt_neox;
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, 0); // (B|1, T)
    const mask = attentionMask4d({ attentionMask, queryLength: T, past: 0 });
    const x = dropout(m.embed_in.forward(inputIds), cfg.hidden_dropout, this.training); // (B, T, C)
    const rope = rotaryCosSin(positions, rotaryNdims(cfg), cfg.rotary_emb_base, x.dtype);
    return {
      input: x,
      blocks: segmentBlocks(m.layers.length, (i, h) => m.layers[i].forward(h, rope, mask, null).h),
      head: (h) => this.#head(h), // (B, T, vocab)
    };
  }
}

export const gptNeoxFamily = {
  modelTypes: ["gpt_neox"],
  parseConfig: parseGptNeoxConfig,
  create: (config, o) => new GPTNeoXForCausalLM(parseGptNeoxConfig(config), o),
  tiedWeights: (config) =>
    parseGptNeoxConfig(config).tie_word_embeddings
      ? [["embed_out.weight", "gpt_neox.embed_in.weight"]]
      : [],
  loraTargets: ["query_key_value"], // PEFT's default for gpt_neox
  checkpoint: {
    basePrefix: "gpt_neox",
    ignore: [
      [/\.attention\.bias$/, "causal-mask buffer saved by old transformers versions"],
      [/\.attention\.masked_bias$/, "the constant -1e9 saved by old transformers versions"],
      [/\.rotary_emb\.inv_freq$/, "RoPE frequencies, recomputed from rotary_emb_base"],
    ],
  },
} satisfies ModelFamily;
