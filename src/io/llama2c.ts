/**
 * Reads a llama2.c checkpoint in its legacy format (karpathy/llama2.c `export.py`
 * `legacy_export`, read by `run.c` `read_checkpoint` / `memory_map_weights`) into a Hugging Face
 * layout LlamaForCausalLM, e.g. the tinyllamas `stories260K.bin`.
 *
 * Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means an unshared classifier), then float32 tensors, each
 * stacked over layers: token embedding, attention RMSNorm, wq, wk, wv, wo, FFN RMSNorm, w1, w2,
 * w3, final RMSNorm, the RoPE cos/sin tables (skipped), and the classifier when unshared.
 * RMSNorm eps is 1e-5 and RoPE base 10000 (run.c's constants).
 *
 * llama2.c rotates interleaved pairs (2i, 2i+1) of each head; HF rotates (i, i + head_dim/2)
 * (`rotate_half`). The q and k rows are permuted as transformers'
 * `convert_llama_weights_to_hf.py` `permute` does (the inverse of llama2.c's export), so the HF
 * model computes exactly what run.c computes.
 */
import { readFile } from "node:fs/promises";
import { fromBytes, type Tensor } from "../tensor/index.js";
import { LlamaForCausalLM, parseLlamaConfig } from "../models/llama.js";

/** Header fields above this are not a llama2.c model (a 70B Llama has dim 8192, vocab 32000). */
const MAX_HEADER_VALUE = 1 << 20;
/** llama2.c's versioned exports (v1 fp32, v2 int8) start with this magic ("ak42"). */
const VERSIONED_MAGIC = 0x616b3432;
const HEADER_FIELDS = [
  "dim",
  "hidden_dim",
  "n_layers",
  "n_heads",
  "n_kv_heads",
  "vocab_size",
  "seq_len",
] as const;

export class Llama2cFileError extends Error {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "Llama2cFileError";
  }
}

/** Loads a legacy llama2.c `.bin` as an HF-layout LLaMA in eval mode. */
export async function loadLlama2c(file: string): Promise<LlamaForCausalLM> {
  const bytes = await readFile(file);
  if (bytes.length < 28)
    throw new Llama2cFileError(file, `${bytes.length} bytes is shorter than the 28-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getInt32(0, true) === VERSIONED_MAGIC)
    throw new Llama2cFileError(
      file,
      `llama2.c versioned export (version ${view.getInt32(4, true)}) is not supported; export with legacy_export`,
    );
  const h = Object.fromEntries(
    HEADER_FIELDS.map((k, i) => [k, view.getInt32(4 * i, true)]),
  ) as Record<(typeof HEADER_FIELDS)[number], number>;
  const shared = h.vocab_size > 0;
  const vocab = Math.abs(h.vocab_size);
  for (const k of HEADER_FIELDS) {
    const v = k === "vocab_size" ? vocab : h[k];
    if (v <= 0 || v > MAX_HEADER_VALUE)
      throw new Llama2cFileError(
        file,
        `header field "${k}" = ${h[k]} is outside 1..${MAX_HEADER_VALUE}`,
      );
  }
  const { dim, hidden_dim: hidden, n_layers: L, n_heads: nh, n_kv_heads: nkv, seq_len: seq } = h;
  if (dim % nh !== 0 || nh % nkv !== 0 || (dim / nh) % 2 !== 0)
    throw new Llama2cFileError(
      file,
      `header dim ${dim}, n_heads ${nh}, n_kv_heads ${nkv} do not form even heads`,
    );
  const hs = dim / nh;

  const config = parseLlamaConfig(
    {
      model_type: "llama",
      vocab_size: vocab,
      hidden_size: dim,
      intermediate_size: hidden,
      num_hidden_layers: L,
      num_attention_heads: nh,
      num_key_value_heads: nkv,
      max_position_embeddings: seq,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: shared,
      bos_token_id: 1,
      eos_token_id: 2,
    },
    file,
  );

  // Tensors in file order, each (layers?, ...shape); the RoPE tables are skipped.
  const layout: [string, number[]][] = [
    ["tok_embeddings", [vocab, dim]],
    ["rms_att", [L, dim]],
    ["wq", [L, nh * hs, dim]],
    ["wk", [L, nkv * hs, dim]],
    ["wv", [L, nkv * hs, dim]],
    ["wo", [L, dim, nh * hs]],
    ["rms_ffn", [L, dim]],
    ["w1", [L, hidden, dim]],
    ["w2", [L, dim, hidden]],
    ["w3", [L, hidden, dim]],
    ["rms_final", [dim]],
    ["freq_cis", [seq, hs]],
    ...(shared ? [] : ([["wcls", [vocab, dim]]] as [string, number[]][])),
  ];
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  const expected = 28 + 4 * layout.reduce((n, [, s]) => n + numel(s), 0);
  if (bytes.length !== expected)
    throw new Llama2cFileError(
      file,
      `size ${bytes.length} bytes, but the header (${HEADER_FIELDS.map((k) => `${k} ${h[k]}`).join(", ")}) needs ${expected}`,
    );

  const w = new Map<string, Tensor>();
  let offset = 28;
  for (const [name, shape] of layout) {
    const n = 4 * numel(shape);
    w.set(name, fromBytes(bytes.subarray(offset, offset + n), "float32", shape));
    offset += n;
  }
  /** Interleaved-pair rows → rotate_half rows, per head (convert_llama_weights_to_hf.py). */
  const permute = (t: Tensor, heads: number) =>
    t
      .view(heads, hs / 2, 2, dim)
      .transpose(1, 2)
      .reshape(heads * hs, dim);

  const state = new Map<string, Tensor>([["model.embed_tokens.weight", w.get("tok_embeddings")!]]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    const at = (name: string) => w.get(name)!.select(0, i);
    state.set(`${p}.self_attn.q_proj.weight`, permute(at("wq"), nh));
    state.set(`${p}.self_attn.k_proj.weight`, permute(at("wk"), nkv));
    state.set(`${p}.self_attn.v_proj.weight`, at("wv"));
    state.set(`${p}.self_attn.o_proj.weight`, at("wo"));
    state.set(`${p}.mlp.gate_proj.weight`, at("w1"));
    state.set(`${p}.mlp.down_proj.weight`, at("w2"));
    state.set(`${p}.mlp.up_proj.weight`, at("w3"));
    state.set(`${p}.input_layernorm.weight`, at("rms_att"));
    state.set(`${p}.post_attention_layernorm.weight`, at("rms_ffn"));
  }
  state.set("model.norm.weight", w.get("rms_final")!);
  if (!shared) state.set("lm_head.weight", w.get("wcls")!);

  const model = new LlamaForCausalLM(config);
  try {
    model.loadStateDict(state, { source: file });
  } finally {
    for (const t of [...w.values(), ...state.values()]) t.dispose();
  }
  return model.eval();
}
