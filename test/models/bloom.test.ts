/**
 * Tests for src/models/bloom.ts against transformers' modeling_bloom.py: HF parameter names,
 * ALiBi slopes and mask-dependent positions of `build_alibi_tensor`, padding invariance, KV cache
 * equal to the uncached pass, and one AdamW step lowering the loss.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bloomFamily,
  BloomForCausalLM,
  buildAlibiTensor,
  parseBloomConfig,
} from "../../src/models/bloom.js";
import { AdamW } from "../../src/optim/index.js";
import { cat, crossEntropy, ones, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { assertNear, assertTensorClose, F32 } from "../helpers/close.js";

const tiny = { vocab_size: 40, hidden_size: 16, n_layer: 2, n_head: 4, initializer_range: 0.2 };

function model(extra: Record<string, unknown> = {}, seed = 1): BloomForCausalLM {
  return bloomFamily.create(
    { model_type: "bloom", ...tiny, ...extra },
    { seed },
  ) as BloomForCausalLM;
}

const ids = (rows: number[][]) => tensor(rows, { dtype: "int64" });

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

test("parameter names are BloomForCausalLM's, lm_head tied to word_embeddings", () => {
  const m = model();
  assert.deepEqual(
    [...m.stateDict().keys()],
    [
      "transformer.word_embeddings.weight",
      "transformer.word_embeddings_layernorm.weight",
      "transformer.word_embeddings_layernorm.bias",
      "transformer.h.0.input_layernorm.weight",
      "transformer.h.0.input_layernorm.bias",
      "transformer.h.0.self_attention.query_key_value.weight",
      "transformer.h.0.self_attention.query_key_value.bias",
      "transformer.h.0.self_attention.dense.weight",
      "transformer.h.0.self_attention.dense.bias",
      "transformer.h.0.post_attention_layernorm.weight",
      "transformer.h.0.post_attention_layernorm.bias",
      "transformer.h.0.mlp.dense_h_to_4h.weight",
      "transformer.h.0.mlp.dense_h_to_4h.bias",
      "transformer.h.0.mlp.dense_4h_to_h.weight",
      "transformer.h.0.mlp.dense_4h_to_h.bias",
      "transformer.h.1.input_layernorm.weight",
      "transformer.h.1.input_layernorm.bias",
      "transformer.h.1.self_attention.query_key_value.weight",
      "transformer.h.1.self_attention.query_key_value.bias",
      "transformer.h.1.self_attention.dense.weight",
      "transformer.h.1.self_attention.dense.bias",
      "transformer.h.1.post_attention_layernorm.weight",
      "transformer.h.1.post_attention_layernorm.bias",
      "transformer.h.1.mlp.dense_h_to_4h.weight",
      "transformer.h.1.mlp.dense_h_to_4h.bias",
      "transformer.h.1.mlp.dense_4h_to_h.weight",
      "transformer.h.1.mlp.dense_4h_to_h.bias",
      "transformer.ln_f.weight",
      "transformer.ln_f.bias",
    ],
  );
  const sd = m.stateDict();
  assert.deepEqual(
    sd.get("transformer.h.0.self_attention.query_key_value.weight")!.shape,
    [48, 16],
  );
  assert.deepEqual(sd.get("transformer.h.0.mlp.dense_h_to_4h.weight")!.shape, [64, 16]);
  assert.equal(m.lm_head.weight, m.transformer.word_embeddings.weight);
  assert.deepEqual(bloomFamily.tiedWeights(m.config), [
    ["lm_head.weight", "transformer.word_embeddings.weight"],
  ]);
  m.dispose();
});

test("config: BloomConfig defaults, attribute_map aliases, errors name file and field", () => {
  const c = parseBloomConfig({ model_type: "bloom" });
  assert.equal(c.vocab_size, 250880);
  assert.equal(c.hidden_size, 64);
  assert.equal(c.n_layer, 2);
  assert.equal(c.n_head, 8);
  assert.equal(c.layer_norm_epsilon, 1e-5);
  assert.equal(c.apply_residual_connection_post_layernorm, false);
  const a = parseBloomConfig({
    model_type: "bloom",
    n_embed: 32,
    num_attention_heads: 2,
    num_hidden_layers: 3,
  });
  assert.deepEqual([a.hidden_size, a.n_head, a.n_layer], [32, 2, 3]);
  assert.throws(
    () => parseBloomConfig({ n_head: "8" }, "bloom/config.json"),
    /bloom\/config\.json: field "n_head"/,
  );
  assert.throws(
    () => parseBloomConfig({ hidden_size: 30, n_head: 4 }),
    /"hidden_size" \(30\) must be divisible by "n_head"/,
  );
  assert.throws(() => parseBloomConfig({ model_type: "gpt2" }), /field "model_type"/);
});

// Expected values computed by hand from the ALiBi formula: n = largest power of two ≤ heads,
// slopes 2^(-8k/n) for k = 1..n, then 2^(-4(2k-1)/n) for the remaining heads. transformers'
// build_alibi_tensor under the venv's torch is compared in python_refs.test.ts.
test("ALiBi slopes for 8 and 12 heads (non-power of 2)", () => {
  const slopes = (heads: number) =>
    tidy(() =>
      buildAlibiTensor(ones([1, 2], { dtype: "int64" }), heads, "float32")
        .view(heads, 2)
        .select(1, 1)
        .toNumbers(),
    );
  const eight = [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128, 1 / 256];
  assert.deepEqual(slopes(8), eight);
  const twelve = [...eight, 2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5];
  const got = slopes(12);
  assert.equal(got.length, 12);
  // float32 pow: a few ulps (6e-8 at 0.7), relative.
  got.forEach((s, i) => assertNear(s, twelve[i], { rtol: 1e-6 }, `head ${i}`));
});

test("ALiBi positions follow the mask: (cumsum − 1) · mask", () => {
  // 3 heads: n = 2, slopes [2^-4, 2^-8], then extra 2^-2 (python check gave the same rows).
  const mask = ids([
    [0, 0, 1, 1, 1],
    [1, 1, 1, 0, 0],
  ]);
  const alibi = buildAlibiTensor(mask, 3, "float32");
  assert.deepEqual(alibi.shape, [6, 1, 5]);
  const s = [1 / 16, 1 / 256, 1 / 4];
  const pos = [
    [0, 0, 0, 1, 2],
    [0, 1, 2, 0, 0],
  ];
  const expected = pos.flatMap((p) => s.map((slope) => p.map((x) => x * slope)));
  assert.deepEqual(alibi.view(6, 5).tolist(), expected);
});

test("padding invariance: left- and right-padded rows equal the row alone", () => {
  const m = model().eval();
  const row = [5, 6, 7, 8, 9];
  const alone = m.forward({ inputIds: ids([row]) }).logits; // (1, 5, V)
  const other = [1, 2, 3, 4, 5, 6, 7];
  for (const side of ["left", "right"] as const) {
    const padded = side === "left" ? [0, 0, ...row] : [...row, 0, 0];
    const pmask = side === "left" ? [0, 0, 1, 1, 1, 1, 1] : [1, 1, 1, 1, 1, 0, 0];
    const out = m.forward({
      inputIds: ids([padded, other]),
      attentionMask: ids([pmask, [1, 1, 1, 1, 1, 1, 1]]),
    }).logits;
    const real = out.select(0, 0).narrow(0, side === "left" ? 2 : 0, 5);
    assertTensorClose(real, alone.select(0, 0), F32, `${side} padding`);
    const otherAlone = m.forward({ inputIds: ids([other]) }).logits;
    assertTensorClose(out.select(0, 1), otherAlone.select(0, 0), F32, `${side} padding, other row`);
  }
  m.dispose();
});

test("KV cache: prefill then one token at a time equals the uncached pass (with left padding)", () => {
  const m = model().eval();
  const input = ids([
    [0, 0, 3, 4, 5, 6, 7, 8],
    [9, 10, 11, 12, 13, 14, 15, 16],
  ]);
  const mask = ids([
    [0, 0, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1, 1, 1],
  ]);
  const full = m.forward({ inputIds: input, attentionMask: mask }).logits;
  let out = m.forward({
    inputIds: input.narrow(1, 0, 5),
    attentionMask: mask.narrow(1, 0, 5),
    useCache: true,
  });
  const steps = [out.logits];
  for (let t = 5; t < 8; t++) {
    out = m.forward({
      inputIds: input.narrow(1, t, 1),
      attentionMask: mask.narrow(1, 0, t + 1),
      cache: out.cache,
      useCache: true,
    });
    steps.push(out.logits);
  }
  assert.equal(out.cache!.length, 2);
  assert.deepEqual(out.cache![0].k.shape, [2, 4, 8, 4]);
  assertTensorClose(cat(steps, 1).narrow(1, 2, 6), full.narrow(1, 2, 6), F32, "cached vs uncached");
  m.dispose();
});

test("apply_residual_connection_post_layernorm changes the output", () => {
  const a = model({ initializer_range: 0.5 }, 3).eval();
  const b = model(
    { initializer_range: 0.5, apply_residual_connection_post_layernorm: true },
    3,
  ).eval();
  const x = ids([[1, 2, 3, 4]]);
  assert.ok(maxDiff(a.forward({ inputIds: x }).logits, b.forward({ inputIds: x }).logits) > 1e-3);
  a.dispose();
  b.dispose();
});

test("one AdamW step lowers the loss on a repeated batch", () => {
  const m = model({}, 2).train();
  const opt = new AdamW([{ params: m.parameters() }], { lr: 1e-2, weightDecay: 0 });
  const batch = ids([
    [1, 2, 3, 4, 5, 6],
    [6, 5, 4, 3, 2, 1],
  ]);
  const loss = () =>
    tidy(() => {
      const logits = m.forward({ inputIds: batch.narrow(1, 0, 5) }).logits;
      return crossEntropy(logits.reshape(-1, tiny.vocab_size), batch.narrow(1, 1, 5).reshape(-1));
    });
  const before = loss();
  before.backward();
  opt.step();
  opt.zeroGrad();
  const after = tidy(() => loss().item());
  console.log(`loss ${before.item()} -> ${after}`);
  assert.ok(after < before.item(), `loss did not drop: ${before.item()} -> ${after}`);
  opt.dispose();
  m.dispose();
});
