/**
 * The memory plan of a run: what training and evaluating it holds on its device, computed from
 * the model's config.json and the study config before anything loads (`lethe plan`, and the check
 * `lethe run` makes before it starts). Pure arithmetic: no weights, no tensors, no addon call.
 *
 * What a run holds (src/train/trainer.ts, precision.ts, nn/flat.ts, optim/adamw.ts):
 *   weights      every parameter in the policy's dtype (mixed modes: the float32 master weights,
 *                which are the only copy; a frozen LoRA base too)
 *   16-bit copies  mixed modes: autocast's bf16/fp16 casts of every matmul weight, cached for the
 *                forward and saved for the backward (checkpointed: one block's at a time)
 *   gradients    one flat buffer the size of the trainable parameters (nn/flat.ts)
 *   optimizer    AdamW's exp_avg and exp_avg_sq in the parameters' dtype, plus the step's
 *                `denom` temporary
 *   method       the method's own tensors (θ₀, Fisher and θ*, the teacher's logits, …; below)
 *   activations  the step's forward: the models run each block in its own `tidy`
 *                (models/blocks.ts), so the plain path holds what autograd saves, the logits and
 *                the loss's tensors; gradient checkpointing (train/checkpointing.ts) keeps each
 *                block's input and rebuilds one block at a time. Plus the backward's largest
 *                transient (the logits' gradients).
 *   eval batch   evaluation (no grad, no optimizer) of `eval.batchSize` rows at lm-eval's max
 *                length, capped as ModelLM caps a forward's logits: one block's tensors at a time
 *                plus every block's keys and values (cached decoding)
 * The activations are counted by replaying each family's forward, op by op as lethe's model
 * files write it, on a `Tape` that records every tensor's size and dtype, which ones autograd
 * saves and when lethe frees the others: the sum of the saved ones is the theoretical minimum
 * (`minimum`, what an implementation that frees everything else would hold).
 *
 * Checked against measurement: test/continual/plan.test.ts (a tiny LLaMA's peak RSS, exact
 * parameter counts of every family, the paper's models' counts) and bench/memory.ts.
 *
 * Sharding: `worldSize` and `zero` are distributed training's (src/train/distributed.ts): under
 * `zero1` and `zero2` each rank keeps 1/worldSize of the AdamW state; every rank still holds the
 * weights and a whole flat gradient buffer (zero2 reduces each range to its owner, into the same
 * buffer), and runs whole micro-batches. Default: one process.
 *
 * References: Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
 * Parameter Models" (16 bytes/parameter for mixed-precision Adam; stages 1–3); Korthikanti et al.
 * 2022, "Reducing Activation Recomputation in Large Transformer Models" (per-layer activation
 * accounting); Chen et al. 2016 (checkpointing); torch.autocast's weight cast cache.
 */
import { totalmem } from "node:os";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gpuMemory, isCuda } from "../util/gpu.js";
import { familyOf, parseModelConfig, type LanguageModel, type ModelType } from "../models/index.js";
import type { LlamaConfig } from "../models/llama.js";
import type { GPT2Config } from "../models/gpt2.js";
import type { BloomConfig } from "../models/bloom.js";
import { rotaryNdims, type GPTNeoXConfig } from "../models/gpt_neox.js";
import type { T5Config } from "../models/t5.js";
import { isLoraTarget } from "../models/lora.js";
import { parseModelRef } from "../io/pretrained.js";
import { downloadFile } from "../io/hub.js";
import { POLICIES, resolvePrecision, type Precision } from "../train/precision.js";
import { maxLengthOf } from "../eval/model_lm.js";
import { expandGrid, runConfig, type ModelSpec, type RunSpec, type Study } from "./config.js";
import { methodOf, type MethodName } from "./methods/index.js";

// ---------------------------------------------------------------------------------------------
// Inputs

/** Optimizer-state sharding over data-parallel ranks (ZeRO stages 1–2); "none": ddp or one process. */
export type Zero = "none" | "zero1" | "zero2";

/** Everything the plan of one run depends on. */
export interface PlanInput {
  /** The model's config.json (its `model_type` picks the family). */
  config: Record<string, unknown>;
  /** The dtype the weights load in (θ₀ copies are kept in it; the default policy follows it). */
  modelDtype: "float32" | "float16" | "bfloat16";
  /** train.precision; undefined: the model dtype's policy. */
  precision?: Precision;
  tuning: { kind: "full" | "lora"; r: number; dropout: number; targetModules?: string[] | string };
  gradientCheckpointing: boolean;
  /** Rows per micro-batch and tokens per row. */
  batchSize: number;
  maxLength: number;
  gradAccum: number;
  /** The run's method; a combination lists its methods in `parts` (their memory adds up). */
  method: {
    name: string;
    options: Record<string, unknown>;
    parts?: { name: string; options: Record<string, unknown> }[];
  };
  /** Tasks of the run's order (O-LoRA keeps every earlier task's adapter). */
  stages: number;
  /** Evaluation: rows per forward, lm-eval's max length, tokens generated per continual-task
   * prompt (a seq2seq decoder's length). */
  eval: { batchSize: number; maxLength?: number; maxGenToks: number };
  /** "cpu" or "cuda[:n]": CPU memory is RAM; a checkpoint write copies tensors to host memory. */
  device: string;
  /** Data-parallel ranks. @default 1 */
  worldSize?: number;
  /** @default "none" */
  zero?: Zero;
}

// ---------------------------------------------------------------------------------------------
// The tape: a forward pass as a list of tensors

/**
 * The dtype class of a tensor: `mm` an autocast op's output (16-bit under a mixed policy, else the
 * parameters' dtype), `res` the residual stream's and the norms' (the parameters' dtype: float32
 * in the mixed modes, as float32 + bf16 promotes), `f32` always float32, `bool` one byte.
 */
type Kind = "mm" | "res" | "f32" | "bool";

interface Rec {
  n: number;
  kind: Kind;
  bytes: number;
}

interface TapeOptions {
  /** Bytes of a parameter (the policy's dtype). */
  param: number;
  /** Autocast's dtype bytes; null: no autocast. */
  autocast: number | null;
  /** Autograd on (training): what ops save is counted. */
  grad: boolean;
  /** Full fine-tuning: every weight trains (LoRA: only the adapters). */
  full: boolean;
  training: boolean;
  lora: { r: number; dropout: number; targets: string[] | string } | null;
  /** libtorch's fused attention (flash / memory-efficient) on this device for this call. */
  fusedAttention: (dropout: number) => boolean;
}

/**
 * Records the tensors of a forward pass: `created` is every tensor made, `live` those not freed
 * yet and `peak` the most ever live at once (lethe's models free a block's tensors as the block
 * ends, `scope`, and eager attention's score tensors one by one, `consume`; autograd keeps the
 * ones it saves until the backward), `saved` those autograd keeps for the backward, `casts`
 * autocast's 16-bit weight copies, `largest` the largest single tensor (the backward's transient
 * scale).
 */
export class Tape {
  created = 0;
  live = 0;
  peak = 0;
  readonly saved = new Set<Rec>();
  casts = 0;
  largest = 0;
  /** Tensors made here and not freed yet; per open `scope`, the ones made inside it. */
  readonly #mine = new Set<Rec>();
  readonly #scopes: Rec[][] = [];
  constructor(readonly o: TapeOptions) {}

  size(kind: Kind): number {
    if (kind === "bool") return 1;
    if (kind === "f32") return 4;
    if (kind === "mm") return this.o.autocast ?? this.o.param;
    return this.o.param;
  }
  /** A new tensor of `n` elements. */
  t(n: number, kind: Kind): Rec {
    const r = { n, kind, bytes: n * this.size(kind) };
    this.created += r.bytes;
    this.live += r.bytes;
    this.peak = Math.max(this.peak, this.live);
    this.largest = Math.max(this.largest, r.bytes);
    this.#mine.add(r);
    this.#scopes.at(-1)?.push(r);
    return r;
  }
  /** Its JS handle goes: the memory too, unless autograd saved it (or it is not this tape's). */
  free(r: Rec): void {
    if (!this.#mine.has(r) || this.saved.has(r)) return;
    this.#mine.delete(r);
    this.live -= r.bytes;
  }
  /** `y` made from `x`, then `x` freed (src/models/blocks.ts `consume`). */
  consume(x: Rec, y: Rec): Rec {
    if (y !== x) this.free(x);
    return y;
  }
  /** `fn` as inside lethe's `tidy`: what it made goes at the end, but for its result. */
  scope(fn: () => Rec): Rec {
    this.#scopes.push([]);
    const out = fn();
    for (const r of this.#scopes.pop()!) if (r !== out) this.free(r);
    this.#scopes.at(-1)?.push(out);
    return out;
  }
  /** An existing tensor (a model input, a shared table): not counted as made here. */
  input(n: number, kind: Kind): Rec {
    return { n, kind, bytes: n * this.size(kind) };
  }
  save(...xs: Rec[]): void {
    if (this.o.grad) for (const x of xs) this.saved.add(x);
  }
  savedBytes(): number {
    let n = 0;
    for (const x of this.saved) n += x.bytes;
    return n;
  }
  /** Result kind of a binary op: float32 wins over 16-bit (type promotion). */
  promote(a: Rec, b: Rec): Kind {
    return this.size(a.kind) >= this.size(b.kind) ? a.kind : b.kind;
  }

  // ---- ops, with what libtorch's autograd saves for each --------------------------------------

  /** `linear`/`addmm`/Conv1D: under autocast the input is cast (a copy) and the weight cast once. */
  linear(x: Rec, inF: number, outF: number, path: string): Rec {
    const rows = x.n / inF;
    const cast = this.o.autocast !== null && this.size(x.kind) !== this.o.autocast;
    const xc = cast ? this.t(x.n, "mm") : x;
    if (this.o.autocast !== null) this.casts += inF * outF * this.o.autocast;
    const y = this.t(rows * outF, "mm");
    if (this.o.full) this.save(xc); // grad of the weight needs the input
    const lora = this.o.lora;
    if (lora && !this.o.full && isLoraTarget(path, lora.targets)) {
      const d = this.dropout(x, lora.dropout);
      const dc = this.o.autocast !== null && this.size(d.kind) !== this.o.autocast;
      const a = this.t(rows * lora.r, "mm");
      this.save(dc ? this.t(d.n, "mm") : d, a);
      this.t(rows * outF, "mm"); // B A x
      this.t(rows * outF, "mm"); // · alpha / r
      return this.t(rows * outF, "mm"); // base + update
    }
    return y;
  }
  /** gelu / silu (save the input) or relu (saves the output). */
  act(x: Rec): Rec {
    const y = this.t(x.n, x.kind);
    this.save(x);
    return y;
  }
  mul(a: Rec, b: Rec): Rec {
    const y = this.t(Math.max(a.n, b.n), this.promote(a, b));
    this.save(a, b);
    return y;
  }
  add(a: Rec, b: Rec): Rec {
    return this.t(Math.max(a.n, b.n), this.promote(a, b));
  }
  /** A materialised reshape / contiguous / cat / cast to `kind`. */
  copy(x: Rec, kind: Kind = x.kind): Rec {
    return this.t(x.n, kind);
  }
  dropout(x: Rec, p: number): Rec {
    if (!this.o.training || p === 0) return x;
    const mask = this.t(x.n, "bool");
    this.save(mask);
    return this.t(x.n, x.kind);
  }
  /** lethe's rmsNorm (tensor/ops.ts): 16-bit inputs are normalised in float32. */
  rmsNorm(x: Rec, dim: number): Rec {
    const rows = x.n / dim;
    const half = this.size(x.kind) === 2;
    const xf = half ? this.t(x.n, "f32") : x;
    this.t(x.n, xf.kind); // x²
    const r = this.t(3 * rows, "f32"); // mean, + eps, rsqrt
    const normed = this.t(x.n, xf.kind);
    this.save(xf, r);
    const back = half ? this.t(x.n, x.kind) : normed;
    const y = this.t(x.n, x.kind);
    if (this.o.full) this.save(back);
    return y;
  }
  /** aten::layer_norm (autocast runs it in float32). */
  layerNorm(x: Rec, dim: number): Rec {
    const y = this.t(x.n, this.o.autocast !== null ? "f32" : x.kind);
    this.save(x, this.t((2 * x.n) / dim, "f32"));
    return y;
  }
  /**
   * scaled_dot_product_attention over (B, nh, T, hd) q and (B, nkv, S, hd) k, v: fused kernels
   * save q, k, v, the output and the log-sum-exp; the math fallback (CPU with dropout) makes
   * and saves the (B, nh, T, S) weights.
   */
  sdpa(
    q: Rec,
    k: Rec,
    v: Rec,
    a: { rows: number; heads: number; T: number; S: number; dropout: number },
  ): Rec {
    const y = this.t(q.n, "mm");
    const p = this.o.training ? a.dropout : 0;
    if (this.o.fusedAttention(p)) {
      this.save(q, k, v, y, this.t(a.rows * a.heads * a.T, "f32"));
      return y;
    }
    const TS = a.rows * a.heads * a.T * a.S;
    this.t(TS, "mm"); // q kᵀ · scale
    this.t(TS, "mm"); // masked
    const probs = this.t(TS, "mm");
    this.save(q, k, v, probs, this.dropout(probs, p));
    return y;
  }
}

// ---------------------------------------------------------------------------------------------
// Families: parameter tensors and the forward, as each model file writes them

interface Dims {
  /** Rows of the batch. */
  rows: number;
  /** Tokens per row (causal: the row; seq2seq: the decoder's). */
  len: number;
  /** Seq2seq: the encoder's tokens per row. */
  src: number;
}

/** One family's plan: its parameter tensors (tied ones once) and its forward cut as lethe cuts it. */
interface ArchPlan {
  kind: "causal" | "seq2seq";
  /** [HF name, shape] of every distinct parameter tensor. */
  params: [string, number[]][];
  vocab: number;
  /** The hidden state entering block 0 (T5: after the whole encoder, which keeps its graph). */
  pre(t: Tape, d: Dims): Rec;
  /** Blocks lethe checkpoints. */
  blocks: number;
  block(t: Tape, d: Dims, i: number, x: Rec): Rec;
  /** Final norm and the head: float32 logits (B, T, vocab). */
  head(t: Tape, d: Dims, x: Rec): Rec;
  /** Elements of one block's output (what checkpointing keeps per block). */
  hidden: number;
  /**
   * Elements of the keys and values an evaluation holds for cached decoding, every block's
   * (ModelLM's prefix cache, generation's): where they are views of a fused projection, its whole
   * output; T5: the decoder's self-attention and the encoder output's cross-attention caches.
   */
  cache(d: Dims): number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** `(−x₂, x₁)·sin + x·cos` on `n` elements with `rotated` of them rotating (LLaMA, NeoX). */
function rotary(t: Tape, x: Rec, rotatedShare: number, castTables: number): Rec {
  const n = x.n * rotatedShare;
  t.t(n / 2, x.kind); // −x₂
  t.t(n, x.kind); // cat
  if (castTables > 0) {
    t.t(castTables, x.kind); // cos.to(dtype), sin.to(dtype)
    t.t(castTables, x.kind);
  }
  t.t(n, x.kind); // · cos
  t.t(n, x.kind); // · sin
  const y = t.t(n, x.kind); // sum
  return rotatedShare < 1 ? t.copy(x) : y; // cat with the pass-through dims
}

function llamaPlan(c: LlamaConfig): ArchPlan {
  const { hidden_size: h, intermediate_size: I, num_attention_heads: nh } = c;
  const { num_key_value_heads: nkv, head_dim: hd, vocab_size: V } = c;
  const qkvBias = c.attention_bias || c.model_type === "qwen2";
  const lin = (name: string, o: number, i: number, bias: boolean): [string, number[]][] => [
    [`${name}.weight`, [o, i]],
    ...(bias ? [[`${name}.bias`, [o]] as [string, number[]]] : []),
  ];
  const layer = (i: number): [string, number[]][] => {
    const p = `model.layers.${i}`;
    return [
      ...lin(`${p}.self_attn.q_proj`, nh * hd, h, qkvBias),
      ...lin(`${p}.self_attn.k_proj`, nkv * hd, h, qkvBias),
      ...lin(`${p}.self_attn.v_proj`, nkv * hd, h, qkvBias),
      ...lin(`${p}.self_attn.o_proj`, h, nh * hd, c.attention_bias),
      ...lin(`${p}.mlp.gate_proj`, I, h, c.mlp_bias),
      ...lin(`${p}.mlp.up_proj`, I, h, c.mlp_bias),
      ...lin(`${p}.mlp.down_proj`, h, I, c.mlp_bias),
      [`${p}.input_layernorm.weight`, [h]],
      [`${p}.post_attention_layernorm.weight`, [h]],
    ];
  };
  return {
    kind: "causal",
    params: [
      ["model.embed_tokens.weight", [V, h]],
      ...range(c.num_hidden_layers).flatMap(layer),
      ["model.norm.weight", [h]],
      ...(c.tie_word_embeddings ? [] : [["lm_head.weight", [V, h]] as [string, number[]]]),
    ],
    vocab: V,
    blocks: c.num_hidden_layers,
    hidden: h,
    cache: (d) => c.num_hidden_layers * d.rows * d.len * 2 * nkv * hd,
    pre: (t, d) => {
      t.t(d.rows * d.len * hd * 3, "f32"); // positions · inv_freq, cat, cos / sin tables
      return t.t(d.rows * d.len * h, "res"); // embedding
    },
    block: (t, d, i, x) => {
      const p = `model.layers.${i}`;
      const N = d.rows * d.len;
      const n1 = t.rmsNorm(x, h);
      const q = t.linear(n1, h, nh * hd, `${p}.self_attn.q_proj`);
      const k = t.linear(n1, h, nkv * hd, `${p}.self_attn.k_proj`);
      let v = t.linear(n1, h, nkv * hd, `${p}.self_attn.v_proj`);
      const tables = t.size("mm") === 4 ? 0 : N * hd;
      const qr = rotary(t, q, 1, tables);
      let kr = rotary(t, k, 1, tables);
      if (nkv !== nh) {
        kr = t.t(N * nh * hd, "mm"); // repeat_kv
        v = t.t(N * nh * hd, "mm");
      }
      const y = t.sdpa(qr, kr, v, {
        rows: d.rows,
        heads: nh,
        T: d.len,
        S: d.len,
        dropout: c.attention_dropout,
      });
      // Fused kernels lay the output out as (B, T, nh, hd): transpose + reshape is a view.
      const merged = t.o.fusedAttention(c.attention_dropout) ? y : t.copy(y);
      const o = t.linear(merged, nh * hd, h, `${p}.self_attn.o_proj`);
      const x1 = t.add(x, o);
      const n2 = t.rmsNorm(x1, h);
      const g = t.linear(n2, h, I, `${p}.mlp.gate_proj`);
      const u = t.linear(n2, h, I, `${p}.mlp.up_proj`);
      const m = t.linear(t.mul(t.act(g), u), I, h, `${p}.mlp.down_proj`);
      return t.add(x1, m);
    },
    head: (t, _d, x) => {
      const n = t.rmsNorm(x, h);
      const logits = t.linear(n, h, V, c.tie_word_embeddings ? "model.embed_tokens" : "lm_head");
      return t.size("mm") === 4 ? logits : t.copy(logits, "f32");
    },
  };
}

function gpt2Plan(c: GPT2Config): ArchPlan {
  const { n_embd: h, vocab_size: V } = c;
  const I = c.n_inner ?? 4 * h;
  const layer = (i: number): [string, number[]][] => {
    const p = `transformer.h.${i}`;
    return [
      [`${p}.ln_1.weight`, [h]],
      [`${p}.ln_1.bias`, [h]],
      [`${p}.attn.c_attn.weight`, [h, 3 * h]],
      [`${p}.attn.c_attn.bias`, [3 * h]],
      [`${p}.attn.c_proj.weight`, [h, h]],
      [`${p}.attn.c_proj.bias`, [h]],
      [`${p}.ln_2.weight`, [h]],
      [`${p}.ln_2.bias`, [h]],
      [`${p}.mlp.c_fc.weight`, [h, I]],
      [`${p}.mlp.c_fc.bias`, [I]],
      [`${p}.mlp.c_proj.weight`, [I, h]],
      [`${p}.mlp.c_proj.bias`, [h]],
    ];
  };
  return {
    kind: "causal",
    params: [
      ["transformer.wte.weight", [V, h]],
      ["transformer.wpe.weight", [c.n_positions, h]],
      ...range(c.n_layer).flatMap(layer),
      ["transformer.ln_f.weight", [h]],
      ["transformer.ln_f.bias", [h]],
    ],
    vocab: V,
    blocks: c.n_layer,
    hidden: h,
    cache: (d) => c.n_layer * d.rows * d.len * 3 * h, // k, v: views of c_attn's output
    pre: (t, d) => {
      const N = d.rows * d.len;
      const e = t.add(t.t(N * h, "res"), t.t(N * h, "res")); // wte + wpe
      return t.dropout(e, c.embd_pdrop);
    },
    block: (t, d, i, x) => {
      const p = `transformer.h.${i}`;
      const N = d.rows * d.len;
      const qkv = t.linear(t.layerNorm(x, h), h, 3 * h, `${p}.attn.c_attn`);
      const q = t.input(N * h, qkv.kind);
      const y = t.sdpa(q, q, q, {
        rows: d.rows,
        heads: c.n_head,
        T: d.len,
        S: d.len,
        dropout: c.attn_pdrop,
      });
      t.saved.delete(q);
      if (t.o.grad) t.saved.add(qkv);
      const merged = t.o.fusedAttention(t.o.training ? c.attn_pdrop : 0) ? y : t.copy(y);
      const o = t.dropout(t.linear(merged, h, h, `${p}.attn.c_proj`), c.resid_pdrop);
      const x1 = t.add(x, o);
      const f = t.act(t.linear(t.layerNorm(x1, h), h, I, `${p}.mlp.c_fc`));
      const m = t.dropout(t.linear(f, I, h, `${p}.mlp.c_proj`), c.resid_pdrop);
      return t.add(x1, m);
    },
    head: (t, _d, x) => {
      const logits = t.linear(t.layerNorm(x, h), h, V, "transformer.wte");
      return t.size("mm") === 4 ? logits : t.copy(logits, "f32");
    },
  };
}

function bloomPlan(c: BloomConfig): ArchPlan {
  const { hidden_size: h, vocab_size: V, n_head: nh } = c;
  const ln = (name: string): [string, number[]][] => [
    [`${name}.weight`, [h]],
    [`${name}.bias`, [h]],
  ];
  const lin = (name: string, o: number, i: number): [string, number[]][] => [
    [`${name}.weight`, [o, i]],
    [`${name}.bias`, [o]],
  ];
  const layer = (i: number): [string, number[]][] => {
    const p = `transformer.h.${i}`;
    return [
      ...ln(`${p}.input_layernorm`),
      ...lin(`${p}.self_attention.query_key_value`, 3 * h, h),
      ...lin(`${p}.self_attention.dense`, h, h),
      ...ln(`${p}.post_attention_layernorm`),
      ...lin(`${p}.mlp.dense_h_to_4h`, 4 * h, h),
      ...lin(`${p}.mlp.dense_4h_to_h`, h, 4 * h),
    ];
  };
  return {
    kind: "causal",
    params: [
      ["transformer.word_embeddings.weight", [V, h]],
      ...ln("transformer.word_embeddings_layernorm"),
      ...range(c.n_layer).flatMap(layer),
      ...ln("transformer.ln_f"),
      ...(c.tie_word_embeddings ? [] : [["lm_head.weight", [V, h]] as [string, number[]]]),
    ],
    vocab: V,
    blocks: c.n_layer,
    hidden: h,
    cache: (d) => c.n_layer * d.rows * d.len * 3 * h, // k, v: views of query_key_value's output
    pre: (t, d) => {
      const N = d.rows * d.len;
      t.t(d.rows * nh * d.len, "f32"); // ALiBi
      t.t(d.rows * d.len * d.len, "bool"); // the causal mask
      return t.layerNorm(t.t(N * h, "res"), h);
    },
    block: (t, d, i, x) => {
      const p = `transformer.h.${i}`;
      const N = d.rows * d.len;
      const TT = d.rows * nh * d.len * d.len;
      const ln1 = t.layerNorm(x, h);
      const fused = t.linear(ln1, h, 3 * h, `${p}.self_attention.query_key_value`);
      const q = t.copy(t.input(N * h, fused.kind)); // (B·nh, T, hd) reshapes
      const k = t.copy(t.input(N * h, fused.kind));
      // Each (B, nh, T, S) tensor is freed once the next is made (consume).
      const scores = t.t(TT, "mm"); // baddbmm(alibi, q, kᵀ)
      t.save(q, k);
      let w = t.consume(scores, t.t(TT, "mm")); // masked_fill
      if (t.size("mm") !== 4) w = t.consume(w, t.copy(w, "f32")); // .float()
      const sm = t.consume(w, t.t(TT, "f32")); // softmax
      t.save(sm);
      const cast = t.consume(sm, t.size("mm") === 4 ? sm : t.copy(sm, "mm"));
      const probs = t.consume(cast, t.dropout(cast, c.attention_dropout));
      const v = t.copy(t.input(N * h, fused.kind));
      t.save(probs, v);
      const ctx = t.t(N * h, "mm"); // bmm
      const merged = t.copy(ctx);
      const dense = t.dropout(
        t.linear(merged, h, h, `${p}.self_attention.dense`),
        c.hidden_dropout,
      );
      const a = t.add(c.apply_residual_connection_post_layernorm ? ln1 : x, dense);
      const ln2 = t.layerNorm(a, h);
      const up = t.act(t.linear(ln2, h, 4 * h, `${p}.mlp.dense_h_to_4h`));
      const down = t.dropout(t.linear(up, 4 * h, h, `${p}.mlp.dense_4h_to_h`), c.hidden_dropout);
      return t.add(c.apply_residual_connection_post_layernorm ? ln2 : a, down);
    },
    head: (t, _d, x) => {
      const tied = c.tie_word_embeddings ? "transformer.word_embeddings" : "lm_head";
      const logits = t.linear(t.layerNorm(x, h), h, V, tied);
      return t.size("mm") === 4 ? logits : t.copy(logits, "f32");
    },
  };
}

function gptNeoxPlan(c: GPTNeoXConfig): ArchPlan {
  const { hidden_size: h, vocab_size: V, intermediate_size: I, num_attention_heads: nh } = c;
  const bias = c.attention_bias;
  const ln = (name: string): [string, number[]][] => [
    [`${name}.weight`, [h]],
    [`${name}.bias`, [h]],
  ];
  const lin = (name: string, o: number, i: number, b = true): [string, number[]][] => [
    [`${name}.weight`, [o, i]],
    ...(b ? [[`${name}.bias`, [o]] as [string, number[]]] : []),
  ];
  const layer = (i: number): [string, number[]][] => {
    const p = `gpt_neox.layers.${i}`;
    return [
      ...ln(`${p}.input_layernorm`),
      ...ln(`${p}.post_attention_layernorm`),
      ...lin(`${p}.attention.query_key_value`, 3 * h, h, bias),
      ...lin(`${p}.attention.dense`, h, h, bias),
      ...lin(`${p}.mlp.dense_h_to_4h`, I, h),
      ...lin(`${p}.mlp.dense_4h_to_h`, h, I),
    ];
  };
  const hs = h / nh;
  const share = rotaryNdims(c) / hs;
  return {
    kind: "causal",
    params: [
      ["gpt_neox.embed_in.weight", [V, h]],
      ...range(c.num_hidden_layers).flatMap(layer),
      ...ln("gpt_neox.final_layer_norm"),
      ...(c.tie_word_embeddings ? [] : [["embed_out.weight", [V, h]] as [string, number[]]]),
    ],
    vocab: V,
    blocks: c.num_hidden_layers,
    hidden: h,
    cache: (d) => c.num_hidden_layers * d.rows * d.len * 4 * h, // rotated k, v: a view of qkv
    pre: (t, d) => t.dropout(t.t(d.rows * d.len * h, "res"), c.hidden_dropout),
    block: (t, d, i, x) => {
      const p = `gpt_neox.layers.${i}`;
      const N = d.rows * d.len;
      const qkv = t.linear(t.layerNorm(x, h), h, 3 * h, `${p}.attention.query_key_value`);
      const q = rotary(t, t.input(N * h, qkv.kind), share, 0);
      const k = rotary(t, t.input(N * h, qkv.kind), share, 0);
      const v = t.input(N * h, qkv.kind);
      const y = t.sdpa(q, k, v, {
        rows: d.rows,
        heads: nh,
        T: d.len,
        S: d.len,
        dropout: c.attention_dropout,
      });
      if (t.o.grad) (t.saved.delete(v), t.saved.add(qkv));
      const merged = t.o.fusedAttention(t.o.training ? c.attention_dropout : 0) ? y : t.copy(y);
      const a = t.dropout(t.linear(merged, h, h, `${p}.attention.dense`), c.hidden_dropout);
      const mlp = (z: Rec) => {
        const f = t.act(t.linear(t.layerNorm(z, h), h, I, `${p}.mlp.dense_h_to_4h`));
        return t.dropout(t.linear(f, I, h, `${p}.mlp.dense_4h_to_h`), c.hidden_dropout);
      };
      if (c.use_parallel_residual) return t.add(t.add(mlp(x), a), x);
      const h1 = t.add(a, x);
      return t.add(mlp(h1), h1);
    },
    head: (t, _d, x) => {
      const tied = c.tie_word_embeddings ? "gpt_neox.embed_in" : "embed_out";
      const logits = t.linear(t.layerNorm(x, h), h, V, tied);
      return t.size("mm") === 4 ? logits : t.copy(logits, "f32");
    },
  };
}

function t5Plan(c: T5Config): ArchPlan {
  const { d_model: h, d_ff: I, num_heads: nh, d_kv: hd, vocab_size: V } = c;
  const inner = nh * hd;
  const gated = c.feed_forward_proj.startsWith("gated-");
  const attn = (p: string, bias: boolean): [string, number[]][] => [
    [`${p}.q.weight`, [inner, h]],
    [`${p}.k.weight`, [inner, h]],
    [`${p}.v.weight`, [inner, h]],
    [`${p}.o.weight`, [h, inner]],
    ...(bias
      ? [
          [`${p}.relative_attention_bias.weight`, [c.relative_attention_num_buckets, nh]] as [
            string,
            number[],
          ],
        ]
      : []),
  ];
  const ff = (p: string): [string, number[]][] =>
    gated
      ? [
          [`${p}.DenseReluDense.wi_0.weight`, [I, h]],
          [`${p}.DenseReluDense.wi_1.weight`, [I, h]],
          [`${p}.DenseReluDense.wo.weight`, [h, I]],
          [`${p}.layer_norm.weight`, [h]],
        ]
      : [
          [`${p}.DenseReluDense.wi.weight`, [I, h]],
          [`${p}.DenseReluDense.wo.weight`, [h, I]],
          [`${p}.layer_norm.weight`, [h]],
        ];
  const block = (stack: "encoder" | "decoder", i: number): [string, number[]][] => {
    const p = `${stack}.block.${i}.layer`;
    return [
      ...attn(`${p}.0.SelfAttention`, i === 0),
      [`${p}.0.layer_norm.weight`, [h]],
      ...(stack === "decoder"
        ? [
            ...attn(`${p}.1.EncDecAttention`, false),
            [`${p}.1.layer_norm.weight`, [h]] as [string, number[]],
          ]
        : []),
      ...ff(`${p}.${stack === "decoder" ? 2 : 1}`),
    ];
  };
  /** One attention sub-layer: norm, projections, eager softmax(q kᵀ + bias) v, output, residual. */
  const attention = (
    t: Tape,
    p: string,
    x: Rec,
    rows: number,
    T: number,
    kvFrom: { rec: Rec; S: number } | null,
  ) => {
    const n = t.rmsNorm(x, h);
    const q = t.linear(n, h, inner, `${p}.q`);
    const S = kvFrom ? kvFrom.S : T;
    const src = kvFrom ? kvFrom.rec : n;
    const k = t.linear(src, h, inner, `${p}.k`);
    const v = t.linear(src, h, inner, `${p}.v`);
    const TT = rows * nh * T * S;
    // Each (B, nh, T, S) tensor is freed once the next is made (consume).
    const scores = t.t(TT, "mm");
    t.save(q, k);
    const biased = t.consume(scores, t.t(TT, t.promote(scores, t.input(1, "res"))));
    const sm = t.consume(biased, t.t(TT, "f32"));
    t.save(sm);
    const cast = t.consume(sm, t.size(biased.kind) === 4 ? sm : t.copy(sm, biased.kind));
    const w = t.consume(cast, t.dropout(cast, c.dropout_rate));
    const wc = t.o.autocast !== null && t.size(w.kind) !== t.o.autocast ? t.t(TT, "mm") : w;
    t.save(wc, v);
    const y = t.copy(t.t(rows * T * inner, "mm")); // w v, transpose-contiguous
    const o = t.dropout(t.linear(y, inner, h, `${p}.o`), c.dropout_rate);
    return t.add(x, o);
  };
  const feed = (t: Tape, p: string, x: Rec) => {
    const n = t.rmsNorm(x, h);
    const d = `${p}.DenseReluDense`;
    let f: Rec;
    if (gated) f = t.mul(t.act(t.linear(n, h, I, `${d}.wi_0`)), t.linear(n, h, I, `${d}.wi_1`));
    else f = t.act(t.linear(n, h, I, `${d}.wi`));
    f = t.dropout(f, c.dropout_rate);
    if (t.size(f.kind) !== t.size("res")) f = t.copy(f, "res"); // .to(wo.weight.dtype)
    return t.add(x, t.dropout(t.linear(f, I, h, `${d}.wo`), c.dropout_rate));
  };
  let encoderOut: Rec | null = null;
  return {
    kind: "seq2seq",
    params: [
      ["shared.weight", [V, h]],
      ...range(c.num_layers).flatMap((i) => block("encoder", i)),
      ["encoder.final_layer_norm.weight", [h]],
      ...range(c.num_decoder_layers).flatMap((i) => block("decoder", i)),
      ["decoder.final_layer_norm.weight", [h]],
      ...(c.tie_word_embeddings ? [] : [["lm_head.weight", [V, h]] as [string, number[]]]),
    ],
    vocab: V,
    blocks: c.num_decoder_layers,
    hidden: h,
    cache: (d) => c.num_decoder_layers * d.rows * (d.len + d.src) * 2 * inner,
    pre: (t, d) => {
      // The encoder (its blocks as the model runs them, each in its own scope), then the
      // decoder's embedding and bias.
      encoderOut = t.scope(() => {
        let x = t.dropout(t.t(d.rows * d.src * h, "res"), c.dropout_rate);
        t.t(d.rows * nh * d.src * d.src, "res"); // position bias + mask
        for (const i of range(c.num_layers)) {
          const p = `encoder.block.${i}.layer`;
          const input = x;
          x = t.scope(() =>
            feed(t, `${p}.1`, attention(t, `${p}.0.SelfAttention`, input, d.rows, d.src, null)),
          );
          if (i > 0) t.free(input);
        }
        return t.dropout(t.rmsNorm(x, h), c.dropout_rate);
      });
      t.t(d.rows * nh * d.len * d.len, "res"); // decoder position bias + causal mask
      return t.dropout(t.t(d.rows * d.len * h, "res"), c.dropout_rate);
    },
    block: (t, d, i, x) => {
      const p = `decoder.block.${i}.layer`;
      x = attention(t, `${p}.0.SelfAttention`, x, d.rows, d.len, null);
      x = attention(t, `${p}.1.EncDecAttention`, x, d.rows, d.len, {
        rec: encoderOut ?? t.input(d.rows * d.src * h, "res"),
        S: d.src,
      });
      return feed(t, `${p}.2`, x);
    },
    head: (t, _d, x) => {
      let hidden = t.dropout(t.rmsNorm(x, h), c.dropout_rate);
      if (c.tie_word_embeddings) hidden = t.copy(hidden); // · d_model^-0.5
      const logits = t.linear(hidden, h, V, c.tie_word_embeddings ? "shared" : "lm_head");
      return t.size("mm") === 4 ? logits : t.copy(logits, "f32");
    },
  };
}

/** Each model_type's plan; a new family without one fails to compile. */
const ARCH_PLANS = {
  gpt2: (c) => gpt2Plan(c as GPT2Config),
  llama: (c) => llamaPlan(c as LlamaConfig),
  mistral: (c) => llamaPlan(c as LlamaConfig),
  qwen2: (c) => llamaPlan(c as LlamaConfig),
  bloom: (c) => bloomPlan(c as BloomConfig),
  gpt_neox: (c) => gptNeoxPlan(c as GPTNeoXConfig),
  t5: (c) => t5Plan(c as T5Config),
  mt5: (c) => t5Plan(c as T5Config),
} satisfies Record<ModelType, (c: LanguageModel["config"]) => ArchPlan>;

function archOf(raw: Record<string, unknown>, source: string): ArchPlan {
  const config = parseModelConfig(raw, source);
  return ARCH_PLANS[config.model_type as ModelType](config);
}

/** [name, shape] of every distinct parameter tensor of the model a config.json describes. */
export function parameterShapes(
  config: Record<string, unknown>,
  source = "config.json",
): [string, number[]][] {
  return archOf(config, source).params;
}

/** The exact number of parameters (tied tensors once) of the model a config.json describes. */
export function parameterCount(config: Record<string, unknown>, source = "config.json"): number {
  return parameterShapes(config, source).reduce((n, [, s]) => n + numel(s), 0);
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

// ---------------------------------------------------------------------------------------------
// Methods: what each holds beyond the trainer's state

/** Sizes a method's extras are made of, in bytes. */
interface Held {
  /** The trainable parameters, in the policy's dtype. */
  trainable: number;
  /** All parameters in the model's load dtype (a θ₀ copy is a second model as loaded). */
  startCopy: number;
  /** One micro-batch's float32 logits over every position. */
  logits: number;
}

interface MethodMemory {
  /** Bytes held through training (θ₀, Fisher, a snapshot). */
  held(o: Record<string, unknown>, h: Held, p: { kind: "full" | "lora"; stages: number }): number;
  /** Bytes the loss adds while the step's activations are alive (penalty graphs, teacher logits). */
  step?(
    o: Record<string, unknown>,
    h: Held,
    p: { gradAccum: number; kind: "full" | "lora" },
  ): number;
  /** Rows added to each micro-batch of `rows`. */
  rows?(o: Record<string, unknown>, rows: number): number;
}

const mixedRows = (o: Record<string, unknown>, rows: number) => {
  const r = Number(o.ratio ?? 0.1);
  return Math.ceil((rows * r) / (1 - r) - 1e-9);
};

/**
 * Each registered method's memory (src/continual/methods/); a method added to the registry
 * without an entry here fails to compile.
 */
const METHOD_MEMORY = {
  sequential: { held: () => 0 },
  replay: { held: () => 0, rows: mixedRows },
  mix_general: { held: () => 0, rows: mixedRows },
  // Fisher and θ* (trainable, policy dtype); the penalty's graph F·(θ−θ*)² saves (θ−θ*) and its
  // square and makes a third tensor of that size while the loss is built.
  ewc: { held: (_o, h) => 2 * h.trainable, step: (_o, h) => 3 * h.trainable },
  // θ₀ (full); ‖θ − θ₀‖² makes θ − θ₀ and its square (the first saved).
  l2sp: {
    held: (_o, h, p) => (p.kind === "full" ? h.startCopy : 0),
    step: (_o, h) => 2 * h.trainable,
  },
  // The teacher: the previous stage's snapshot, or θ₀; its logits for every micro-batch of the
  // step (at most every position) stay until the step ends; the swap clones the trainable weights.
  lwf: {
    held: (o, h, p) =>
      (o.teacher ?? "previous") === "previous" ? h.trainable : p.kind === "full" ? h.startCopy : 0,
    step: (_o, h, p) => p.gradAccum * h.logits + h.trainable,
  },
  olora: { held: (_o, h, p) => Math.max(0, p.stages - 1) * h.trainable },
  wise_ft: { held: (_o, h, p) => (p.kind === "full" ? h.startCopy : 0) },
  ema: { held: (_o, h) => h.trainable },
  // OSF: per linear weight (out, in) its frozen rank k < min(out, in) keeps U (out, k), V (k, in),
  // Uᵀ W₀ and W₀ Vᵀ in float32 (≤ 4 weights' worth), plus stage-start copies of the rest.
  osf: { held: (_o, h) => 4 * h.trainable },
  // I-LoRA: the slow adapter; its logits on each micro-batch's replayed rows; the swap's clone.
  ilora: {
    held: (_o, h) => h.trainable,
    step: (_o, h, p) => p.gradAccum * h.logits + h.trainable,
    rows: mixedRows,
  },
  // Generating methods hold text only (generation at a stage's start peaks below evaluation).
  sdft: { held: () => 0 },
  lamol: { held: () => 0, rows: (o, rows) => mixedRows({ ratio: o.ratio ?? 0.2 }, rows) },
  ssr: { held: (_o, h, p) => (p.kind === "full" ? h.startCopy : 0), rows: mixedRows },
  // A-GEM: the step's gradient saved and the reference gradient (trainable, float32 each) while
  // the memory batch's forward runs; its activations are a micro-batch's (not above the step's).
  agem: { held: () => 0, step: (_o, h) => 2 * h.trainable },
  // θ_prev (trainable); TIES/DARE: θ₀ (full) and a tensor's task vectors at a time.
  merge: {
    held: (o, h, p) =>
      h.trainable + ((o.mode ?? "average") !== "average" && p.kind === "full" ? h.startCopy : 0),
  },
  // SAM: ε, the saved weights and the step's gradient while the second pass runs.
  sam: { held: () => 0, step: (_o, h) => 3 * h.trainable },
} satisfies Record<MethodName, MethodMemory>;

// ---------------------------------------------------------------------------------------------
// The plan

/** Bytes of each part of a run's memory on its device. */
export interface MemoryPlan {
  model: string;
  /** Every parameter (tied once) and the trainable ones. */
  params: number;
  trainable: number;
  precision: Precision;
  bytes: {
    /** All parameters in the policy's dtype (mixed: the float32 master weights). */
    weights: number;
    /** Mixed: autocast's 16-bit weight copies alive through forward and backward. */
    weightCopies: number;
    gradients: number;
    /** AdamW state (and the step's temporary). */
    optimizer: number;
    method: number;
    /** The step's activations peak as configured (checkpointing on or off). */
    activations: number;
    /** Without and with gradient checkpointing, whatever is configured. */
    activationsPlain: number;
    activationsCheckpointed: number;
    /** Evaluation: activations and logits of one batch (weights and method state come on top). */
    evalBatch: number;
    /** The process itself: libtorch and Node on CPU, the CUDA context on a GPU. */
    runtime: number;
  };
  /** Peaks: training (weights + state + activations), evaluation, and the larger. */
  train: number;
  eval: number;
  peak: number;
  /** The theoretical minimum of training: states + autograd's saved tensors (no transients). */
  minimum: { states: number; activations: number; total: number };
  /** Rows per micro-batch (method rows included), tokens per row, eval rows × tokens. */
  shape: { batch: number; rows: number; len: number; evalRows: number; evalLen: number };
}

/** ModelLM's cap on one forward's logits (src/eval/model_lm.ts LOGITS_BUDGET): 256 Mi floats. */
const EVAL_LOGITS_BUDGET = 2 ** 28;
/** What a device holds besides the run: a lethe CPU process with libtorch loaded (measured
 * ~0.2 GiB, bench/RESULTS.md), a CUDA context with cuBLAS/cuDNN workspaces (~1 GiB). */
const RUNTIME_BYTES = { cpu: 0.25 * 2 ** 30, cuda: 2 ** 30 };

/** glibc's retained heap on top of a CPU step's live activations (measured: 0–30%). */
const CPU_HEAP_SLACK = 0.15;

/** The memory plan of one run. */
export function planMemory(input: PlanInput, source = "config.json"): MemoryPlan {
  const arch = archOf(input.config, source);
  const precision = resolvePrecision(input.precision, input.modelDtype);
  const policy = POLICIES[precision];
  const pb = policy.params === "float32" ? 4 : 2;
  const ab = policy.autocast === null ? null : 2;
  const loadBytes = input.modelDtype === "float32" ? 4 : 2;
  const full = input.tuning.kind === "full";
  const cuda = isCuda(input.device);
  const world = input.worldSize ?? 1;
  const zero = input.zero ?? "none";
  const modelType = String(input.config.model_type);
  const targets =
    input.tuning.targetModules ?? ([...familyOf(modelType, source).loraTargets] as string[]);

  const params = arch.params.reduce((n, [, s]) => n + numel(s), 0);
  const lora = full ? null : { r: input.tuning.r, dropout: input.tuning.dropout, targets: targets };
  const loraParams = lora
    ? arch.params
        .filter(
          ([name, s]) => s.length === 2 && isLoraTarget(name.replace(/\.weight$/, ""), targets),
        )
        .reduce((n, [, [o, i]]) => n + lora.r * (o + i), 0)
    : 0;
  if (lora && loraParams === 0)
    throw new Error(
      `${source}: LoRA target modules ${JSON.stringify(targets)} match no linear layer of ${modelType}`,
    );
  const trainable = full ? params : loraParams;

  const parts = input.method.parts ?? [input.method];
  const mms = parts.map((m) => {
    const mm: MethodMemory = METHOD_MEMORY[methodOf(m.name).name as MethodName];
    return { mm, o: m.options };
  });
  const rows =
    input.batchSize + mms.reduce((n, { mm, o }) => n + (mm.rows?.(o, input.batchSize) ?? 0), 0);
  const len = input.maxLength;
  const dims: Dims = { rows, len, src: len };

  // CPU: flash attention has no dropout (math fallback); CUDA's fused kernels take both.
  const fused = (dropout: number) => cuda || dropout === 0;
  const tape = (
    grad: boolean,
    training: boolean,
    d: Dims,
    what: "all" | "pre" | "block" | "head",
  ) => {
    const t = new Tape({
      param: pb,
      autocast: ab,
      grad,
      full: full && grad,
      training,
      lora: full ? null : lora,
      fusedAttention: fused,
    });
    let x =
      what === "all" || what === "pre"
        ? arch.pre(t, d)
        : t.input(d.rows * d.len * arch.hidden, "res");
    // The forward (src/models/blocks.ts): each block in its own scope, its input freed after it.
    if (what === "all")
      for (const i of range(arch.blocks)) {
        const input = x;
        x = t.scope(() => arch.block(t, d, i, input));
        if (i > 0) t.free(input);
      }
    // A checkpointed block (models/blocks.ts `segmentBlocks`), as recomputed for its backward.
    if (what === "block") t.scope(() => arch.block(t, d, arch.blocks - 1, x));
    if (what === "all" || what === "head") t.scope(() => arch.head(t, d, x));
    return t;
  };

  // The loss: the causal shift copies the logits (rows > 1), log_softmax makes them again.
  const causal = arch.kind === "causal";
  const V = arch.vocab;
  const logitElems = rows * len * V;
  const lossBytes = (causal && rows > 1 ? 2 : 1) * logitElems * 4;
  const lossSaved = logitElems * 4;
  // The backward's first step: the log-softmax gradient and the logits' gradient, both float32.
  const headBackward = 2 * logitElems * 4;

  // Tensors, once freed, stay with the process (glibc's heap, CUDA's caching allocator) and are
  // reused by later ones: one block's worth is resident from the first block on.
  const pre = tape(true, true, dims, "pre");
  const blk = tape(true, true, dims, "block");
  const head = tape(true, true, dims, "head");

  // The step peaks as the backward starts: what the forward left live (autograd's saved tensors,
  // the logits, the embeddings' tables), the loss's, the backward's first gradients, and a
  // block's freed tensors.
  const all = tape(true, true, dims, "all");
  const plainActivations =
    all.live + (blk.peak - blk.live) + lossBytes + Math.max(headBackward, 3 * all.largest);
  const minPlain = all.savedBytes() + lossSaved;

  const inputs = arch.blocks * rows * len * arch.hidden * pb;
  // Checkpointed: the block inputs, a whole block's worth (its recompute) and the head's own peak
  // (its 16-bit logits beside their float32 copy).
  const ckptActivations =
    pre.live + inputs + head.peak + lossBytes + blk.peak + Math.max(headBackward, 3 * blk.largest);
  const minCkpt = pre.savedBytes() + inputs + head.savedBytes() + lossSaved + blk.savedBytes();

  // glibc keeps freed heap memory (tensors under its 32 MiB mmap threshold): a CPU process's
  // peak RSS ran 0–30% above the live activations (bench/RESULTS.md, "bench/memory").
  const slack = cuda ? 1 : 1 + CPU_HEAP_SLACK;
  const activations = (input.gradientCheckpointing ? ckptActivations : plainActivations) * slack;
  const weightCopies = input.gradientCheckpointing ? pre.casts + head.casts + blk.casts : all.casts;

  const weights = params * pb;
  const gradients = trainable * pb;
  const adam = (2 * trainable * pb) / (zero === "none" ? 1 : world);
  const stepTemp = (trainable * pb) / (zero === "none" ? 1 : world);
  const held: Held = {
    trainable: trainable * pb,
    startCopy: params * loadBytes,
    logits: logitElems * 4,
  };
  const methodHeld = mms.reduce(
    (n, { mm, o }) => n + mm.held(o, held, { kind: input.tuning.kind, stages: input.stages }),
    0,
  );
  const methodStep = mms.reduce(
    (n, { mm, o }) =>
      n + (mm.step?.(o, held, { gradAccum: input.gradAccum, kind: input.tuning.kind }) ?? 0),
    0,
  );

  // Evaluation: no grad, one block's tensors at a time (the forward's peak), every block's keys
  // and values for cached decoding, the logits capped as ModelLM caps them.
  const evalLen = input.eval.maxLength ?? maxLengthOf(input.config);
  const evalRows = Math.max(
    1,
    Math.min(input.eval.batchSize, Math.floor(EVAL_LOGITS_BUDGET / (evalLen * V))),
  );
  // A seq2seq model reads the context with its encoder; its decoder sees the continuation only.
  const evalDec = arch.kind === "causal" ? evalLen : Math.min(evalLen, input.eval.maxGenToks);
  const evalDims = { rows: evalRows, len: evalDec, src: evalLen };
  const ev = tape(false, false, evalDims, "all");
  const evalBatch = (ev.peak + arch.cache(evalDims) * pb + ev.casts) * slack;

  const runtime = cuda ? RUNTIME_BYTES.cuda : RUNTIME_BYTES.cpu;
  const states = weights + gradients + adam + methodHeld;
  const train =
    Math.max(
      states + weightCopies + activations + methodStep,
      states + stepTemp, // the optimizer step, after the activations are gone
    ) + runtime;
  const evalPeak = weights + methodHeld + evalBatch + runtime;
  const minStates = weights + gradients + adam;
  const minAct = input.gradientCheckpointing ? minCkpt : minPlain;
  return {
    model: modelType,
    params,
    trainable,
    precision,
    bytes: {
      weights,
      weightCopies,
      gradients,
      optimizer: adam + stepTemp,
      method: methodHeld + methodStep,
      activations,
      activationsPlain: plainActivations * slack,
      activationsCheckpointed: ckptActivations * slack,
      evalBatch,
      runtime,
    },
    train,
    eval: evalPeak,
    peak: Math.max(train, evalPeak),
    minimum: {
      states: minStates + weightCopies,
      activations: minAct,
      total: minStates + weightCopies + minAct,
    },
    shape: { batch: input.batchSize, rows, len, evalRows, evalLen },
  };
}

// ---------------------------------------------------------------------------------------------
// Devices

/** A device's memory: the CUDA total, or RAM on CPU; null when it cannot be found out. */
export interface DeviceMemory {
  device: string;
  bytes: number | null;
  /** Where the figure comes from (or why it is missing). */
  source: string;
}

/**
 * The memory of `device`: RAM for "cpu"; for "cuda[:n]" the total nvidia-smi reports for that
 * GPU (CUDA_VISIBLE_DEVICES respected). `gib` (`--memory-gb`) overrides it, so a plan can be made
 * for another machine.
 */
export function deviceMemory(device: string, gib?: number): DeviceMemory {
  if (gib !== undefined) return { device, bytes: gib * 2 ** 30, source: "--memory-gb" };
  if (!isCuda(device)) return { device, bytes: totalmem(), source: "RAM" };
  const m = gpuMemory(device, "total");
  if (m.bytes === null || m.bytes === 0)
    return { device, bytes: null, source: `${m.source} (give --memory-gb)` };
  return { device, ...m };
}

// ---------------------------------------------------------------------------------------------
// Verdicts and knobs

export interface Verdict {
  fits: boolean;
  /** The peak the run needs and what the device has. */
  need: number;
  have: number;
  /** Changes that make a run that does not fit fit, each with the peak it would need. */
  knobs: { change: string; peak: number }[];
}

/** A setting that lowers memory: its values from the mildest to the strongest. */
interface Knob {
  values: number[];
  apply(i: PlanInput, v: number): PlanInput;
  text(i: PlanInput, v: number): string;
}

/** n/2, n/4, …, 1 (a ladder of smaller sizes). */
const halves = (n: number, floor = 1) => {
  const out: number[] = [];
  for (let b = Math.floor(n / 2); b >= floor; b = Math.floor(b / 2)) out.push(b);
  return out;
};

/** The knobs that apply to a run (what it does not already use). */
function knobsOf(input: PlanInput): Knob[] {
  const precision = resolvePrecision(input.precision, input.modelDtype);
  const knobs: Knob[] = [];
  const flag = (apply: (i: PlanInput) => PlanInput, text: string): Knob => ({
    values: [1],
    apply: (i) => apply(i),
    text: () => text,
  });
  if (!input.gradientCheckpointing)
    knobs.push(
      flag((i) => ({ ...i, gradientCheckpointing: true }), "train.gradientCheckpointing: true"),
    );
  if (precision === "32-true")
    knobs.push(flag((i) => ({ ...i, precision: "bf16-mixed" }), "train.precision: bf16-mixed"));
  if (
    input.tuning.kind === "full" &&
    (input.method.parts ?? [input.method]).every((m) =>
      (methodOf(m.name).supports as readonly string[]).includes("lora"),
    )
  )
    knobs.push(
      flag(
        (i) => ({ ...i, tuning: { ...i.tuning, kind: "lora" } }),
        `tuning.kind: lora (r ${input.tuning.r})`,
      ),
    );
  if (input.batchSize > 1)
    knobs.push({
      values: halves(input.batchSize),
      apply: (i, b) => ({ ...i, batchSize: b }),
      text: (i, b) =>
        `train.batchSize: ${b}, gradAccum: ${Math.ceil((i.batchSize * i.gradAccum) / b)}`,
    });
  if (input.eval.batchSize > 1)
    knobs.push({
      values: halves(input.eval.batchSize),
      apply: (i, b) => ({ ...i, eval: { ...i.eval, batchSize: b } }),
      text: (_i, b) => `eval.batchSize: ${b}`,
    });
  const evalLen = input.eval.maxLength ?? maxLengthOf(input.config);
  if (evalLen > 256)
    knobs.push({
      values: halves(evalLen, 256),
      apply: (i, L) => ({ ...i, eval: { ...i.eval, maxLength: L } }),
      text: (_i, L) => `eval.maxLength: ${L} (longer contexts are cut on the left)`,
    });
  if (isCuda(input.device) && (input.zero ?? "none") === "none")
    knobs.push({
      values: [2, 4, 8],
      apply: (i, n) => ({ ...i, worldSize: n, zero: "zero1" }),
      text: (_i, n) => `train.distributed: zero1 with --nproc-per-node ${n}`,
    });
  return knobs;
}

/**
 * Whether the run fits in `have` bytes, and if not, which changes make it fit, each found by
 * planning again: every single knob (gradient checkpointing, bf16-mixed, LoRA, a smaller
 * micro-batch with more accumulation, a smaller eval batch or max length, zero1 sharding) at its
 * mildest setting that fits; when none fits alone, the smallest combinations that do.
 */
export function verdict(input: PlanInput, have: number, source = "config.json"): Verdict {
  const peak = (i: PlanInput) => planMemory(i, source).peak;
  const need = peak(input);
  if (need <= have) return { fits: true, need, have, knobs: [] };
  const knobs = knobsOf(input);
  // Applies the chosen knobs, each at its mildest value that still fits with the others.
  const settle = (chosen: Knob[]): Verdict["knobs"][number] | null => {
    const strongest = (k: Knob) => k.values[k.values.length - 1];
    const all = (values: number[]) => chosen.reduce((i, k, j) => k.apply(i, values[j]), input);
    const values = chosen.map(strongest);
    if (peak(all(values)) > have) return null;
    chosen.forEach((k, j) => {
      values[j] = k.values.find((v) => peak(all(values.map((w, m) => (m === j ? v : w)))) <= have)!;
    });
    const applied = all(values);
    return {
      change: chosen.map((k, j) => k.text(input, values[j])).join(" + "),
      peak: peak(applied),
    };
  };
  for (let size = 1; size <= knobs.length; size++) {
    const found: Verdict["knobs"] = [];
    const pick = (start: number, chosen: Knob[]) => {
      if (size > 1 && found.length >= 3) return; // every single knob; a few combinations
      if (chosen.length === size) {
        const k = settle(chosen);
        if (k) found.push(k);
        return;
      }
      for (let j = start; j < knobs.length; j++) pick(j + 1, [...chosen, knobs[j]]);
    };
    pick(0, []);
    if (found.length > 0) return { fits: false, need, have, knobs: found };
  }
  return { fits: false, need, have, knobs: [] };
}

// ---------------------------------------------------------------------------------------------
// A study

/** A model's config.json, read without loading the model, or why it cannot be. */
export async function modelConfig(
  spec: ModelSpec,
  o: { fetch?: boolean } = {},
): Promise<{ config: Record<string, unknown>; source: string } | { unknown: string }> {
  if (spec.build) return { config: spec.build.config, source: `model "${spec.name}" build.config` };
  const where = parseModelRef(spec.ref!);
  let file: string;
  if ("dir" in where) {
    file = join(where.dir, "config.json");
    if (!existsSync(file)) return { unknown: `${file} not found` };
  } else {
    try {
      const got = await downloadFile({
        repo: where.repo,
        path: "config.json",
        revision: where.revision ?? undefined,
        offline: !o.fetch,
      });
      if (got === null) return { unknown: `hf:${where.repo} has no config.json` };
      file = got;
    } catch (e) {
      return {
        unknown: o.fetch
          ? (e as Error).message
          : `config.json of hf:${where.repo} is not in the hub cache (--fetch downloads it)`,
      };
    }
  }
  try {
    return {
      config: JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>,
      source: file,
    };
  } catch (e) {
    return { unknown: `${file}: not valid JSON (${(e as Error).message})` };
  }
}

/** The plan input of one run of a study. */
export function planInput(
  study: Study,
  run: RunSpec,
  config: Record<string, unknown>,
  device = run.model.device,
  worldSize = 1,
): PlanInput {
  const c = runConfig(study, run); // the model's train overrides merged
  const zero = (c.train as { distributed?: string }).distributed;
  return {
    config,
    modelDtype: run.model.dtype,
    precision: c.train.precision,
    tuning: {
      kind: c.tuning.kind,
      r: c.tuning.lora.r,
      dropout: c.tuning.lora.dropout,
      targetModules: c.tuning.lora.targetModules,
    },
    gradientCheckpointing: c.train.gradientCheckpointing ?? false,
    batchSize: c.train.batchSize,
    maxLength: c.train.maxLength,
    gradAccum: c.train.gradAccum,
    method: { name: run.method.name, options: run.method.options, parts: run.method.parts },
    stages: run.order.tasks.length,
    eval: {
      batchSize: c.eval.batchSize,
      maxLength: c.eval.maxLength,
      maxGenToks: c.tasks.maxGenToks,
    },
    device,
    worldSize,
    zero: zero === "zero1" || zero === "zero2" ? zero : "none",
  };
}

/** One run's row of `lethe plan`: its plan and verdict, or why there is none. */
export interface RunPlan {
  run: string;
  device: DeviceMemory;
  plan: MemoryPlan | null;
  verdict: Verdict | null;
  /** Why there is no plan (config.json not at hand) or no verdict (device memory unknown). */
  note: string | null;
}

export interface StudyPlanOptions {
  /** Plan every run for this device instead of its model's `device`. */
  device?: string;
  /** The device's memory in GiB, instead of asking the device. */
  memoryGiB?: number;
  /** Download config.json of `hf:` models missing from the hub cache. */
  fetch?: boolean;
  /** Data-parallel ranks (`--nproc-per-node`; WORLD_SIZE under a launcher). @default 1 */
  worldSize?: number;
}

/** The plan of every run of a study's grid (config.json read once per model). */
export async function planStudy(study: Study, o: StudyPlanOptions = {}): Promise<RunPlan[]> {
  const configs = new Map<string, Awaited<ReturnType<typeof modelConfig>>>();
  const devices = new Map<string, DeviceMemory>();
  const out: RunPlan[] = [];
  for (const run of expandGrid(study)) {
    const device = o.device ?? run.model.device;
    if (!devices.has(device)) devices.set(device, deviceMemory(device, o.memoryGiB));
    const mem = devices.get(device)!;
    if (!configs.has(run.model.name)) configs.set(run.model.name, await modelConfig(run.model, o));
    const got = configs.get(run.model.name)!;
    if ("unknown" in got) {
      out.push({ run: run.name, device: mem, plan: null, verdict: null, note: got.unknown });
      continue;
    }
    const input = planInput(study, run, got.config, device, o.worldSize);
    const plan = planMemory(input, got.source);
    const v = mem.bytes === null ? null : verdict(input, mem.bytes, got.source);
    out.push({ run: run.name, device: mem, plan, verdict: v, note: v ? null : mem.source });
  }
  return out;
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;

/** A verdict in words: "fits (12.3 of 80.0 GiB)" or "does not fit (… > …); fits with: …". */
export function verdictText(v: Verdict): string {
  if (v.fits) return `fits (${gib(v.need)} of ${gib(v.have)})`;
  const head = `does not fit (${gib(v.need)} > ${gib(v.have)})`;
  if (v.knobs.length === 0) return `${head}; nothing lethe offers makes it fit`;
  return `${head}; fits with: ${v.knobs.map((k) => `${k.change} (${gib(k.peak)})`).join("; or ")}`;
}

/**
 * `lethe run`'s check before anything loads: the runs whose plan does not fit their device, as
 * one message naming each and the changes that would make it fit; null when all fit (or cannot
 * be planned: no config.json at hand, device memory unknown).
 */
export async function unfitMessage(
  study: Study,
  file: string,
  o: { worldSize?: number } = {},
): Promise<string | null> {
  const rows = (await planStudy(study, o)).filter((r) => r.verdict && !r.verdict.fits);
  if (rows.length === 0) return null;
  return (
    rows.map((r) => `${r.run} on ${r.device.device}: ${verdictText(r.verdict!)}`).join("\n") +
    `\n\`lethe plan ${file}\` shows where the memory goes; --ignore-plan starts anyway`
  );
}
