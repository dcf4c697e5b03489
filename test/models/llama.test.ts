/**
 * LLaMA family (src/models/llama.ts) against transformers' rules: HF parameter names, padding
 * invariance (left and right), cached = uncached logits, GQA, RoPE scaling, tied heads, qwen2
 * biases, mistral's sliding window, config parsing and the registry. The real-checkpoint check
 * (stories260K reproducing llama2.c) is in test/io/llama2c.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  LlamaForCausalLM,
  parseLlamaConfig,
  ropeInvFreq,
  type LlamaConfig,
} from "../../src/models/llama.js";
import { createModel, familyOf, parseModelConfig } from "../../src/models/index.js";
import { AdamW } from "../../src/optim/index.js";
import { cat, crossEntropy, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { assertNear, F32, relDiff, type Tol } from "../helpers/close.js";

function small(extra: Record<string, unknown> = {}): LlamaConfig {
  return parseLlamaConfig({
    model_type: "llama",
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    ...extra,
  });
}

const ids = (rows: number[][]) => tensor(rows, { dtype: "int64" });
const maxDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());
const rel = (x: number) => x.toExponential(2);

function logits(m: LlamaForCausalLM, rows: number[][], mask?: number[][]): Tensor {
  return m.forward({ inputIds: ids(rows), attentionMask: mask ? ids(mask) : null }).logits;
}

const A = [5, 9, 13, 2, 40];
const B = [7, 3, 3, 21, 60, 11, 8];

test("stateDict keys are Hugging Face's names for a 2-layer GQA config", () => {
  const m = new LlamaForCausalLM(small(), { seed: 1 });
  const layer = (i: number) => [
    `model.layers.${i}.self_attn.q_proj.weight`,
    `model.layers.${i}.self_attn.k_proj.weight`,
    `model.layers.${i}.self_attn.v_proj.weight`,
    `model.layers.${i}.self_attn.o_proj.weight`,
    `model.layers.${i}.mlp.gate_proj.weight`,
    `model.layers.${i}.mlp.up_proj.weight`,
    `model.layers.${i}.mlp.down_proj.weight`,
    `model.layers.${i}.input_layernorm.weight`,
    `model.layers.${i}.post_attention_layernorm.weight`,
  ];
  assert.deepEqual(
    [...m.stateDict().keys()],
    ["model.embed_tokens.weight", ...layer(0), ...layer(1), "model.norm.weight", "lm_head.weight"],
  );
  const sd = m.stateDict();
  assert.deepEqual(sd.get("model.layers.0.self_attn.q_proj.weight")!.shape, [32, 32]);
  assert.deepEqual(sd.get("model.layers.0.self_attn.k_proj.weight")!.shape, [16, 32]); // 2 kv heads × 8
  assert.deepEqual(sd.get("model.layers.1.mlp.down_proj.weight")!.shape, [32, 48]);
  m.dispose();
});

test("HF init: normal(0, initializer_range) weights, unit norms, same seed same weights", () => {
  const a = new LlamaForCausalLM(small({ initializer_range: 0.05 }), { seed: 3 });
  const b = new LlamaForCausalLM(small({ initializer_range: 0.05 }), { seed: 3 });
  const c = new LlamaForCausalLM(small({ initializer_range: 0.05 }), { seed: 4 });
  const w = (m: LlamaForCausalLM) => m.stateDict().get("model.layers.0.mlp.gate_proj.weight")!;
  assert.equal(maxDiff(w(a), w(b)), 0);
  assert.ok(maxDiff(w(a), w(c)) > 0);
  const std = tidy(() => w(a).pow(2).mean().sqrt().item());
  assert.ok(Math.abs(std - 0.05) < 0.005, `std ${std}`);
  assert.equal(
    tidy(() => a.stateDict().get("model.norm.weight")!.sub(1).abs().max().item()),
    0,
  );
  for (const m of [a, b, c]) m.dispose();
});

test("padding invariance: left- and right-padded rows match the row alone within 1e-5 relative", () => {
  const m = new LlamaForCausalLM(small(), { seed: 2 }).eval();
  noGrad(() =>
    tidy(() => {
      const aloneA = logits(m, [A]);
      const aloneB = logits(m, [B]);
      const pad = B.length - A.length;
      const left = logits(
        m,
        [[...Array(pad).fill(0), ...A], B],
        [[...Array(pad).fill(0), ...A.map(() => 1)], B.map(() => 1)],
      );
      const right = logits(
        m,
        [[...A, ...Array(pad).fill(0)], B],
        [[...A.map(() => 1), ...Array(pad).fill(0)], B.map(() => 1)],
      );
      assert.ok(left.isfinite().all().item(), "no NaN or inf anywhere, padded queries included");
      const dl = relDiff(left.select(0, 0).slice(0, pad), aloneA.select(0, 0));
      const dr = relDiff(right.select(0, 0).slice(0, 0, A.length), aloneA.select(0, 0));
      const db = Math.max(
        relDiff(left.select(0, 1), aloneB.select(0, 0)),
        relDiff(right.select(0, 1), aloneB.select(0, 0)),
      );
      console.log(
        `# padding relative diff: left ${rel(dl)}, right ${rel(dr)}, unpadded ${rel(db)}`,
      );
      assert.ok(dl <= F32.rtol && dr <= F32.rtol && db <= F32.rtol);
    }),
  );
  m.dispose();
});

/**
 * Uncached logits vs. prefill + cached steps (a chunk of 2, then 1 by 1), at unpadded positions:
 * max diff relative to the logits' magnitude.
 */
function cachedVsUncached(m: LlamaForCausalLM, rows: number[][], mask: number[][]): number {
  return noGrad(() =>
    tidy(() => {
      const full = logits(m, rows, mask);
      const T = rows[0].length;
      const cut = (r: number[][], a: number, b: number) => r.map((x) => x.slice(a, b));
      let out = m.forward({
        inputIds: ids(cut(rows, 0, 3)),
        attentionMask: ids(cut(mask, 0, 3)),
        useCache: true,
      });
      const steps: Tensor[] = [out.logits];
      for (let t = 3; t < T; t += t === 3 ? 2 : 1) {
        const end = t === 3 ? 5 : t + 1;
        out = m.forward({
          inputIds: ids(cut(rows, t, end)),
          attentionMask: ids(cut(mask, 0, end)),
          cache: out.cache,
          useCache: true,
        });
        steps.push(out.logits);
      }
      const real = ids(mask).unsqueeze(-1).float(); // padded queries' logits are garbage in both
      return relDiff(cat(steps, 1).mul(real), full.mul(real));
    }),
  );
}

test("cached logits equal uncached ones, with left padding too", () => {
  const m = new LlamaForCausalLM(small(), { seed: 5 }).eval();
  const dPlain = cachedVsUncached(m, [B], [B.map(() => 1)]);
  const dPad = cachedVsUncached(m, [[0, 0, ...A], B], [[0, 0, 1, 1, 1, 1, 1], B.map(() => 1)]);
  console.log(`# cache relative diff: ${rel(dPlain)}, left-padded ${rel(dPad)}`);
  assert.ok(dPlain <= F32.rtol && dPad <= F32.rtol);
  m.dispose();
});

test("RoPE scaling: linear, dynamic and llama3 follow modeling_rope_utils", () => {
  const base = small({ max_position_embeddings: 4 });
  const f = (c: LlamaConfig, seqLen = 0) => tidy(() => ropeInvFreq(c, seqLen).toNumbers());
  const plain = f(base);
  const hd = base.head_dim;
  // float32 pow: the exponent's rounding moves the result by ~1e-6 of itself.
  const ROPE: Tol = { rtol: 1e-5 };
  plain.forEach((x, i) => assertNear(x, 10000 ** (-(2 * i) / hd), ROPE, `inv_freq ${i}`));
  const linear = f(
    small({ max_position_embeddings: 4, rope_scaling: { type: "linear", factor: 2 } }),
  );
  linear.forEach((x, i) => assertNear(x, plain[i] / 2, { rtol: 1e-6 }, `linear ${i}`));
  const dyn = small({
    max_position_embeddings: 4,
    rope_scaling: { rope_type: "dynamic", factor: 2 },
  });
  assert.deepEqual(f(dyn, 4), plain, "dynamic is plain RoPE up to max_position_embeddings");
  const grown = 10000 * ((2 * 8) / 4 - 1) ** (hd / (hd - 2));
  f(dyn, 8).forEach((x, i) => assertNear(x, grown ** (-(2 * i) / hd), ROPE, `dynamic ${i}`));
  // old_len 64: wavelengths 6.3 (< 64/4, kept), 167 (between, smoothed), 4443 and 118k (> 64/0.25, divided).
  const [factor, low, high, oldLen] = [8, 0.25, 4, 64];
  const l3 = {
    rope_type: "llama3",
    factor,
    low_freq_factor: low,
    high_freq_factor: high,
    original_max_position_embeddings: oldLen,
  };
  const got = f(small({ rope_scaling: l3, rope_theta: 500000 }));
  const want = plain.map((_, i) => {
    const inv = 500000 ** (-(2 * i) / hd);
    const wavelen = (2 * Math.PI) / inv;
    if (wavelen < oldLen / high) return inv;
    if (wavelen > oldLen / low) return inv / factor;
    const s = (oldLen / wavelen - low) / (high - low);
    return ((1 - s) * inv) / factor + s * inv;
  });
  got.forEach((x, i) => assertNear(x, want[i], ROPE, `llama3 ${i}`));
  const ratios = want.map((x, i) => x / 500000 ** (-(2 * i) / hd));
  assert.ok(
    ratios[0] === 1 && ratios[1] > 1 / factor && ratios[1] < 1 && ratios[3] === 1 / factor,
    `all three llama3 regimes are exercised: ${ratios}`,
  );

  // Every variant runs end to end; linear scaling changes the logits, dynamic below the threshold does not.
  const seq = [[1, 2, 3, 4, 5, 6, 7, 8]];
  const run = (c: LlamaConfig) =>
    noGrad(() => {
      const m = new LlamaForCausalLM(c, { seed: 9 }).eval();
      const out = logits(m, seq);
      m.dispose();
      return out;
    });
  const p = run(small());
  assert.ok(maxDiff(run(small({ rope_scaling: { type: "linear", factor: 2 } })), p) > 1e-4);
  assert.equal(maxDiff(run(small({ rope_scaling: { type: "dynamic", factor: 2 } })), p), 0);
  assert.ok(
    run(small({ rope_scaling: l3 }))
      .isfinite()
      .all()
      .item(),
  );
});

test("tied vs untied heads: tied shares the embedding and trains it through the head", () => {
  const untied = new LlamaForCausalLM(small(), { seed: 1 });
  const tied = new LlamaForCausalLM(small({ tie_word_embeddings: true }), { seed: 1 });
  assert.ok(!tied.stateDict().has("lm_head.weight"));
  assert.equal(untied.numParameters() - tied.numParameters(), 64 * 32);
  assert.deepEqual(familyOf("llama").tiedWeights!(tied.config), [
    ["lm_head.weight", "model.embed_tokens.weight"],
  ]);
  // Token 63 is not in the input: only the head can give its embedding row a gradient.
  const rowGrad = (m: LlamaForCausalLM) =>
    tidy(() => {
      const l = m.forward({ inputIds: ids([[1, 2, 3]]) }).logits;
      crossEntropy(l.view(-1, 64), ids([[2, 3, 4]]).view(-1)).backward();
      return m.model.embed_tokens.weight.grad!.select(0, 63).abs().sum().item();
    });
  assert.ok(rowGrad(tied) > 0);
  assert.equal(rowGrad(untied), 0);
  untied.dispose();
  tied.dispose();
});

test("one AdamW step on a repeated batch lowers the loss", () => {
  const m = new LlamaForCausalLM(small(), { seed: 11 });
  const opt = new AdamW([{ params: m.parameters() }], { lr: 1e-2, weightDecay: 0 });
  const batch = ids([A.concat([1, 2]), B]);
  const loss = () =>
    tidy(() => {
      const l = m.forward({ inputIds: batch.slice(1, 0, -1) }).logits;
      return crossEntropy(l.reshape(-1, 64), batch.slice(1, 1).reshape(-1));
    });
  const before = loss();
  before.backward();
  opt.step();
  opt.zeroGrad();
  const after = tidy(() => loss().item());
  console.log(`# loss ${before.item()} -> ${after}`);
  assert.ok(after < before.item());
  opt.dispose();
  m.dispose();
});

test("qwen2 has q/k/v biases and no o_proj bias; mistral's sliding window masks far keys", () => {
  const qwen = createModel(
    parseModelConfig({ ...small(), model_type: "qwen2", rope_scaling: null }),
    { seed: 1 },
  );
  const keys = [...qwen.stateDict().keys()].filter((k) => k.startsWith("model.layers.0.self_attn"));
  assert.deepEqual(keys, [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.k_proj.bias",
    "model.layers.0.self_attn.v_proj.weight",
    "model.layers.0.self_attn.v_proj.bias",
    "model.layers.0.self_attn.o_proj.weight",
  ]);
  qwen.dispose();

  const windowed = new LlamaForCausalLM(
    parseLlamaConfig({ ...small(), model_type: "mistral", sliding_window: 3 }),
    { seed: 4 },
  ).eval();
  const full = new LlamaForCausalLM(
    parseLlamaConfig({ ...small(), model_type: "mistral", sliding_window: null }),
    { seed: 4 },
  ).eval();
  noGrad(() =>
    tidy(() => {
      const w = logits(windowed, [B]);
      const f = logits(full, [B]);
      const inside = relDiff(w.slice(1, 0, 3), f.slice(1, 0, 3));
      assert.ok(inside <= F32.rtol, `within the window nothing changes (${rel(inside)})`);
      assert.ok(maxDiff(w.slice(1, 3), f.slice(1, 3)) > 1e-4, "beyond it far keys are masked");
    }),
  );
  const d = cachedVsUncached(windowed, [B], [B.map(() => 1)]);
  assert.ok(d <= F32.rtol, `windowed cache relative diff ${rel(d)}`);
  windowed.dispose();
  full.dispose();
});

test("config parsing: family defaults, aliases and errors naming the field", () => {
  const mistral = parseModelConfig({
    model_type: "mistral",
    architectures: ["MistralForCausalLM"],
  }) as LlamaConfig;
  assert.equal(mistral.num_key_value_heads, 8);
  assert.equal(mistral.head_dim, 128);
  assert.equal(mistral.sliding_window, 4096);
  const v5 = parseLlamaConfig({
    model_type: "llama",
    rope_parameters: { rope_type: "linear", rope_theta: 5e5, factor: 4 },
  });
  assert.equal(v5.rope_theta, 5e5);
  assert.deepEqual(v5.rope_scaling, { rope_type: "linear", factor: 4 });
  const padded = new LlamaForCausalLM(small({ pad_token_id: 0 }));
  assert.equal(
    tidy(() => padded.model.embed_tokens.weight.select(0, 0).abs().sum().item()),
    0,
  );
  padded.dispose();
  assert.throws(
    () => parseModelConfig({ model_type: "llama", hidden_size: "big" }, "x/config.json"),
    /x\/config\.json: field "hidden_size"/,
  );
  assert.throws(
    () => parseLlamaConfig({ model_type: "llama", rope_scaling: { type: "yarn", factor: 2 } }),
    /field "rope_scaling.rope_type"/,
  );
  assert.throws(
    () => parseLlamaConfig({ model_type: "llama", rope_scaling: { type: "llama3", factor: 8 } }),
    /llama3 needs/,
  );
  assert.throws(
    () => parseLlamaConfig({ model_type: "llama", num_key_value_heads: 5 }),
    /field "num_key_value_heads"/,
  );
  assert.throws(() => parseModelConfig({ model_type: "lama" }), /Did you mean "llama"/);
});
