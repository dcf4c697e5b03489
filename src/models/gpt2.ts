/**
 * GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"): learned
 * positions, pre-LayerNorm blocks, gelu_new MLP, weight-tied LM head.
 * Reference: transformers/models/gpt2/modeling_gpt2.py (eager/SDPA attention) and
 * configuration_gpt2.py. Parameter names are Hugging Face's (`transformer.h.0.attn.c_attn.weight`);
 * its Conv1D stores weights as (in, out), the transpose of nn.Linear, so projections are
 * `x @ W + b`. Masks and position ids follow src/models/masks.ts (transformers' rules).
 * Not modelled: `scale_attn_by_inverse_layer_idx` and `reorder_and_upcast_attn` (false in every
 * released GPT-2 checkpoint).
 */
import { z } from "zod";
import { Embedding, LayerNorm, Module, parameter } from "../nn/index.js";
import {
  addmm,
  cat,
  dropout,
  empty,
  Generator,
  linear,
  scaledDotProductAttention,
  tidy,
  zeros,
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
import { ACT2FN } from "./activations.js";

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).max(1);

/** config.json fields of `model_type: "gpt2"`, with GPT2Config's defaults (GPT-2 small); others are dropped. */
const GPT2ConfigSchema = z.object({
  model_type: z.literal("gpt2").default("gpt2"),
  vocab_size: positiveInt.default(50257), // byte-level BPE
  n_positions: positiveInt.default(1024), // learned position table length
  n_embd: positiveInt.default(768), // model width
  n_layer: positiveInt.default(12), // blocks
  n_head: positiveInt.default(12), // heads of n_embd / n_head
  n_inner: positiveInt.nullable().default(null), // null → 4 · n_embd
  // "gelu_new" = GELU's tanh approximation, what GPT-2 was trained with
  activation_function: z
    .enum(["gelu_new", "gelu_pytorch_tanh", "gelu", "relu"])
    .default("gelu_new"),
  resid_pdrop: probability.default(0.1),
  embd_pdrop: probability.default(0.1),
  attn_pdrop: probability.default(0.1),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  initializer_range: z.number().positive().default(0.02), // std of normal init
  tie_word_embeddings: z.literal(true).default(true), // GPT2LMHeadModel's head is always wte
  bos_token_id: z.number().int().optional(), // 50256 <|endoftext|>
  eos_token_id: z.number().int().optional(), // 50256 <|endoftext|>
});

/** config.json fields of `model_type: "gpt2"`. */
export type GPT2Config = z.infer<typeof GPT2ConfigSchema>;

/** A GPT-2 config: GPT-2 small's defaults (configuration_gpt2.py) overridden by `c`. */
export function gpt2Config(c: Partial<GPT2Config>): GPT2Config {
  return parseGpt2Config(c, "gpt2Config");
}

/** A config.json's GPT-2 fields with defaults filled; throws naming the bad field. */
export function parseGpt2Config(raw: Record<string, unknown>, source = "config.json"): GPT2Config {
  const c = parseWith(GPT2ConfigSchema, raw, source);
  if (c.n_embd % c.n_head !== 0)
    throw new Error(`${source}: field "n_head": ${c.n_head} does not divide n_embd ${c.n_embd}`);
  return c;
}

/** HF's Conv1D: y = x W + b with W of shape (in, out). */
class Conv1D extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(nx: number, nf: number, std: number, g: Generator) {
    super();
    this.weight = parameter(empty([nx, nf]).normal_(0, std, g));
    this.bias = parameter(zeros([nf]));
  }
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    const y = addmm(this.bias, x.reshape(-1, shape[shape.length - 1]), this.weight); // (B·T, nf)
    return y.view(...shape.slice(0, -1), this.weight.size(1));
  }
}

class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  constructor(
    private cfg: GPT2Config,
    g: Generator,
  ) {
    super();
    const std = cfg.initializer_range;
    this.c_attn = new Conv1D(cfg.n_embd, 3 * cfg.n_embd, std, g);
    this.c_proj = new Conv1D(cfg.n_embd, cfg.n_embd, std / Math.sqrt(2 * cfg.n_layer), g);
  }
  forward(
    x: Tensor,
    mask: AttentionMask,
    past: LayerCache | null,
  ): { out: Tensor; cache: LayerCache } {
    const [B, T, C] = x.shape;
    const nh = this.cfg.n_head;
    let [q, k, v] = this.c_attn
      .forward(x)
      .split(C, 2)
      .map((t) => t.view(B, T, nh, C / nh).transpose(1, 2)); // (B, nh, T, hs)
    if (past) {
      k = cat([past.k, k], 2); // (B, nh, S, hs)
      v = cat([past.v, v], 2);
    }
    const y = scaledDotProductAttention(q, k, v, {
      mask: mask.mask,
      isCausal: mask.isCausal,
      dropoutP: this.training ? this.cfg.attn_pdrop : 0,
    }); // (B, nh, T, hs)
    const merged = y.transpose(1, 2).contiguous().view(B, T, C);
    const out = dropout(this.c_proj.forward(merged), this.cfg.resid_pdrop, this.training);
    return { out, cache: { k, v } };
  }
}

class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  constructor(
    private cfg: GPT2Config,
    g: Generator,
  ) {
    super();
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = new Conv1D(cfg.n_embd, inner, cfg.initializer_range, g);
    this.c_proj = new Conv1D(
      inner,
      cfg.n_embd,
      cfg.initializer_range / Math.sqrt(2 * cfg.n_layer),
      g,
    );
  }
  forward(x: Tensor): Tensor {
    const h = ACT2FN[this.cfg.activation_function](this.c_fc.forward(x));
    return dropout(this.c_proj.forward(h), this.cfg.resid_pdrop, this.training);
  }
}

class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(cfg: GPT2Config, g: Generator) {
    super();
    this.ln_1 = new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
    this.attn = new GPT2Attention(cfg, g);
    this.ln_2 = new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
    this.mlp = new GPT2MLP(cfg, g);
  }
  forward(
    x: Tensor,
    mask: AttentionMask,
    past: LayerCache | null,
  ): { out: Tensor; cache: LayerCache } {
    // Attention and MLP each in a scope: only their outputs (and what autograd saved) stay.
    const a = tidy(() => this.attn.forward(this.ln_1.forward(x), mask, past));
    x = x.add(a.out);
    const m = tidy(() => this.mlp.forward(this.ln_2.forward(x)));
    return { out: x.add(m), cache: a.cache };
  }
}

class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: GPT2Block[];
  ln_f: LayerNorm;
  constructor(
    private cfg: GPT2Config,
    g: Generator,
  ) {
    super();
    this.wte = new Embedding(cfg.vocab_size, cfg.n_embd, {
      std: cfg.initializer_range,
      generator: g,
    });
    this.wpe = new Embedding(cfg.n_positions, cfg.n_embd, {
      std: cfg.initializer_range,
      generator: g,
    });
    this.h = Array.from({ length: cfg.n_layer }, () => new GPT2Block(cfg, g));
    this.ln_f = new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
  }
  /** The last block's output (`ln_f` comes with the head) and, with `useCache`, the cache. */
  forward(
    ids: Tensor,
    positions: Tensor,
    mask: AttentionMask,
    cache: LayerCache[] | null,
    useCache: boolean,
  ): { hidden: Tensor; cache: LayerCache[] } {
    let x = this.wte.forward(ids).add(this.wpe.forward(positions)); // (B, T, C)
    x = dropout(x, this.cfg.embd_pdrop, this.training);
    return runBlocks(this.h.length, x, useCache, (i, h) => {
      const r = this.h[i].forward(h, mask, cache?.[i] ?? null);
      return { h: r.out, kv: r.cache };
    });
  }
}

/** GPT2LMHeadModel: the transformer plus the tied LM head. */
export class GPT2LMHeadModel extends Module implements CausalLM {
  readonly kind = "causal";
  transformer: GPT2Model;
  constructor(
    readonly config: GPT2Config,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    this.transformer = new GPT2Model(config, g);
  }

  forward(inputs: CausalLMInputs): CausalLMOutput {
    const { inputIds, attentionMask = null, cache = null } = inputs;
    const T = inputIds.size(1);
    const past = pastLength(cache);
    if (past + T > this.config.n_positions)
      throw new RangeError(
        `gpt2: ${past + T} positions exceed n_positions ${this.config.n_positions} (the learned position table)`,
      );
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, past, inputIds.device);
    const mask = attentionMask4d({ attentionMask, queryLength: T, past, device: inputIds.device });
    const useCache = inputs.useCache ?? false;
    const tr = this.transformer;
    const { hidden, cache: next } = tr.forward(inputIds, positions, mask, cache, useCache);
    const logits = this.#head(hidden, inputs.logitsToKeep, inputs.logitsPositions);
    return useCache ? { logits, cache: next } : { logits };
  }

  /** `ln_f` and the tied head: float32 logits (B, T, vocab); its other tensors go at once. */
  #head(h: Tensor, logitsToKeep?: number, positions?: Tensor | null): Tensor {
    return tidy(() => {
      const tr = this.transformer;
      const picked = keepLast(h, logitsToKeep, positions); // ln_f is per position
      const logits = linear(tr.ln_f.forward(picked), tr.wte.weight); // (B, T, vocab)
      return logits.dtype === "float32" ? logits : logits.float();
    });
  }

  /** `forward` without a cache, cut at the blocks for gradient checkpointing. */
  segments(inputs: CausalLMInputs): Segments {
    const { inputIds, attentionMask = null } = inputs;
    const T = inputIds.size(1);
    if (T > this.config.n_positions)
      throw new RangeError(
        `gpt2: ${T} positions exceed n_positions ${this.config.n_positions} (the learned position table)`,
      );
    const tr = this.transformer;
    const positions = inputs.positionIds ?? positionIds(attentionMask, T, 0, inputIds.device);
    const mask = attentionMask4d({
      attentionMask,
      queryLength: T,
      past: 0,
      device: inputIds.device,
    });
    const x = tr.wte.forward(inputIds).add(tr.wpe.forward(positions)); // (B, T, C)
    return {
      input: dropout(x, this.config.embd_pdrop, this.training),
      blocks: segmentBlocks(tr.h.length, (i, h) => tr.h[i].forward(h, mask, null).out),
      head: (h) => this.#head(h),
    };
  }
}

export const gpt2Family = {
  modelTypes: ["gpt2"],
  parseConfig: parseGpt2Config,
  create: (config, o) => new GPT2LMHeadModel(config as GPT2Config, o),
  tiedWeights: () => [["lm_head.weight", "transformer.wte.weight"]],
  loraTargets: ["c_attn"],
  checkpoint: {
    basePrefix: "transformer",
    ignore: [
      [/\.attn\.bias$/, "causal-mask buffer (tril of ones) that transformers < 4.35 saved"],
      [/\.attn\.masked_bias$/, "the constant -1e4 that old transformers versions saved"],
    ],
  },
} satisfies ModelFamily;
