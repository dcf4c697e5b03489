/**
 * GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners"): learned
 * positions, pre-LayerNorm blocks, gelu_new MLP, weight-tied LM head.
 * Reference: transformers/models/gpt2/modeling_gpt2.py (eager attention). Parameter names are
 * Hugging Face's (`transformer.h.0.attn.c_attn.weight`); its Conv1D stores weights as (in, out),
 * the transpose of nn.Linear, so projections are `x @ W + b`.
 */
import { Embedding, LayerNorm, Module, parameter } from "../nn/index.js";
import {
  addmm,
  arange,
  dropout,
  empty,
  Generator,
  scaledDotProductAttention,
  zeros,
  type Tensor,
} from "../tensor/index.js";

/** config.json fields of `model_type: "gpt2"`, with GPT-2 small's defaults. */
export interface GPT2Config {
  model_type: "gpt2";
  vocab_size: number; // 50257: byte-level BPE
  n_positions: number; // 1024: learned position table length
  n_embd: number; // 768: model width
  n_layer: number; // 12 blocks
  n_head: number; // 12 heads of n_embd / n_head
  n_inner: number | null; // null → 4 · n_embd
  activation_function: string; // "gelu_new" = tanh approximation
  resid_pdrop: number; // 0.1
  embd_pdrop: number; // 0.1
  attn_pdrop: number; // 0.1
  layer_norm_epsilon: number; // 1e-5
  initializer_range: number; // 0.02: std of normal init
  tie_word_embeddings: boolean; // true: lm_head shares wte
  bos_token_id?: number;
  eos_token_id?: number;
}

export function gpt2Config(c: Partial<GPT2Config>): GPT2Config {
  return {
    model_type: "gpt2",
    vocab_size: 50257,
    n_positions: 1024,
    n_embd: 768,
    n_layer: 12,
    n_head: 12,
    n_inner: null,
    activation_function: "gelu_new",
    resid_pdrop: 0.1,
    embd_pdrop: 0.1,
    attn_pdrop: 0.1,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    ...c,
  };
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

function activation(name: string, x: Tensor): Tensor {
  if (name === "gelu_new" || name === "gelu_pytorch_tanh") return x.gelu("tanh");
  if (name === "gelu") return x.gelu("none");
  if (name === "relu") return x.relu();
  throw new Error(`gpt2: activation_function "${name}" is not supported`);
}

class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  constructor(private cfg: GPT2Config, g: Generator) {
    super();
    const std = cfg.initializer_range;
    this.c_attn = new Conv1D(cfg.n_embd, 3 * cfg.n_embd, std, g);
    this.c_proj = new Conv1D(cfg.n_embd, cfg.n_embd, std / Math.sqrt(2 * cfg.n_layer), g);
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const [B, T, C] = x.shape;
    const nh = this.cfg.n_head;
    const [q, k, v] = this.c_attn
      .forward(x)
      .split(C, 2)
      .map((t) => t.view(B, T, nh, C / nh).transpose(1, 2)); // (B, nh, T, hs)
    const p = this.training ? this.cfg.attn_pdrop : 0;
    const y = mask
      ? scaledDotProductAttention(q, k, v, { mask, dropoutP: p })
      : scaledDotProductAttention(q, k, v, { isCausal: true, dropoutP: p }); // (B, nh, T, hs)
    const merged = y.transpose(1, 2).contiguous().view(B, T, C);
    return dropout(this.c_proj.forward(merged), this.cfg.resid_pdrop, this.training);
  }
}

class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  constructor(private cfg: GPT2Config, g: Generator) {
    super();
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = new Conv1D(cfg.n_embd, inner, cfg.initializer_range, g);
    this.c_proj = new Conv1D(inner, cfg.n_embd, cfg.initializer_range / Math.sqrt(2 * cfg.n_layer), g);
  }
  forward(x: Tensor): Tensor {
    const h = activation(this.cfg.activation_function, this.c_fc.forward(x));
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
  forward(x: Tensor, mask: Tensor | null): Tensor {
    x = x.add(this.attn.forward(this.ln_1.forward(x), mask));
    return x.add(this.mlp.forward(this.ln_2.forward(x)));
  }
}

class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: GPT2Block[];
  ln_f: LayerNorm;
  constructor(private cfg: GPT2Config, g: Generator) {
    super();
    this.wte = new Embedding(cfg.vocab_size, cfg.n_embd, { std: cfg.initializer_range, generator: g });
    this.wpe = new Embedding(cfg.n_positions, cfg.n_embd, { std: cfg.initializer_range, generator: g });
    this.h = Array.from({ length: cfg.n_layer }, () => new GPT2Block(cfg, g));
    this.ln_f = new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon);
  }
  forward(ids: Tensor, positions: Tensor, mask: Tensor | null): Tensor {
    let x = this.wte.forward(ids).add(this.wpe.forward(positions)); // (B, T, C)
    x = dropout(x, this.cfg.embd_pdrop, this.training);
    for (const block of this.h) x = block.forward(x, mask);
    return this.ln_f.forward(x);
  }
}

/** GPT2LMHeadModel: the transformer plus the tied LM head. */
export class GPT2LMHeadModel extends Module {
  transformer: GPT2Model;
  constructor(
    readonly config: GPT2Config,
    o: { seed?: number } = {},
  ) {
    super();
    const g = new Generator(o.seed ?? 0);
    this.transformer = new GPT2Model(config, g);
  }

  /** Logits (B, T, vocab) for input ids (B, T), causal attention. */
  forward(inputIds: Tensor): Tensor {
    const T = inputIds.size(1);
    const positions = arange(T).unsqueeze(0); // (1, T)
    const h = this.transformer.forward(inputIds, positions, null);
    return h.matmul(this.transformer.wte.weight.t()); // tied head: (B, T, vocab)
  }
}
