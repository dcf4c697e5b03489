/**
 * Tests for src/models/gpt_neox.ts against transformers' modeling_gpt_neox.py: HF parameter
 * names, partial rotary (rotate_half on the first rotary_ndims dims) checked against angles
 * computed by hand, padding invariance with positions from the mask, KV cache equal to the
 * uncached pass, parallel vs sequential residual, and one AdamW step lowering the loss.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  applyRotary,
  gptNeoxFamily,
  GPTNeoXForCausalLM,
  parseGptNeoxConfig,
  rotaryCosSin,
  rotaryNdims,
} from "../../src/models/gpt_neox.js";
import { AdamW } from "../../src/optim/index.js";
import {
  arange,
  cat,
  crossEntropy,
  Generator,
  randn,
  tensor,
  tidy,
  type Tensor,
} from "../../src/tensor/index.js";
import { assertNear, assertTensorClose, F32 } from "../helpers/close.js";

const tiny = {
  vocab_size: 40,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 64,
  initializer_range: 0.2,
};

function model(extra: Record<string, unknown> = {}, seed = 1): GPTNeoXForCausalLM {
  return gptNeoxFamily.create(
    { model_type: "gpt_neox", ...tiny, ...extra },
    { seed },
  ) as GPTNeoXForCausalLM;
}

const ids = (rows: number[][]) => tensor(rows, { dtype: "int64" });

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

test("parameter names are GPTNeoXForCausalLM's, embed_out untied", () => {
  const m = model();
  const layer = (i: number) =>
    [
      "input_layernorm.weight",
      "input_layernorm.bias",
      "post_attention_layernorm.weight",
      "post_attention_layernorm.bias",
      "attention.query_key_value.weight",
      "attention.query_key_value.bias",
      "attention.dense.weight",
      "attention.dense.bias",
      "mlp.dense_h_to_4h.weight",
      "mlp.dense_h_to_4h.bias",
      "mlp.dense_4h_to_h.weight",
      "mlp.dense_4h_to_h.bias",
    ].map((n) => `gpt_neox.layers.${i}.${n}`);
  assert.deepEqual(
    [...m.stateDict().keys()],
    [
      "gpt_neox.embed_in.weight",
      ...layer(0),
      ...layer(1),
      "gpt_neox.final_layer_norm.weight",
      "gpt_neox.final_layer_norm.bias",
      "embed_out.weight",
    ],
  );
  const sd = m.stateDict();
  assert.deepEqual(sd.get("gpt_neox.layers.0.attention.query_key_value.weight")!.shape, [96, 32]);
  assert.deepEqual(sd.get("embed_out.weight")!.shape, [40, 32]);
  assert.notEqual(m.embed_out.weight, m.gpt_neox.embed_in.weight);
  assert.deepEqual(gptNeoxFamily.tiedWeights(m.config), []);
  m.dispose();

  const noBias = model({ attention_bias: false, tie_word_embeddings: true });
  const keys = [...noBias.stateDict().keys()];
  assert.ok(!keys.includes("gpt_neox.layers.0.attention.query_key_value.bias"));
  assert.ok(!keys.includes("gpt_neox.layers.0.attention.dense.bias"));
  assert.ok(keys.includes("gpt_neox.layers.0.mlp.dense_h_to_4h.bias"));
  assert.ok(!keys.includes("embed_out.weight"));
  assert.equal(noBias.embed_out.weight, noBias.gpt_neox.embed_in.weight);
  assert.deepEqual(gptNeoxFamily.tiedWeights(noBias.config), [
    ["embed_out.weight", "gpt_neox.embed_in.weight"],
  ]);
  noBias.dispose();
});

test("config: GPTNeoXConfig defaults, RoPE aliases, errors name file and field", () => {
  const c = parseGptNeoxConfig({ model_type: "gpt_neox" });
  assert.equal(c.rotary_pct, 0.25);
  assert.equal(c.rotary_emb_base, 10000);
  assert.equal(c.use_parallel_residual, true);
  assert.equal(c.tie_word_embeddings, false);
  assert.equal(c.hidden_act, "gelu");
  assert.equal(c.layer_norm_eps, 1e-5);
  assert.equal(rotaryNdims(c), 24); // int(96 · 0.25)
  const a = parseGptNeoxConfig({ rope_theta: 500, partial_rotary_factor: 0.5 });
  assert.deepEqual([a.rotary_emb_base, a.rotary_pct], [500, 0.5]);
  const n = parseGptNeoxConfig({
    rope_parameters: { rope_type: "default", rope_theta: 7, partial_rotary_factor: 1 },
  });
  assert.deepEqual([n.rotary_emb_base, n.rotary_pct], [7, 1]);
  assert.throws(
    () => parseGptNeoxConfig({ rope_scaling: { type: "linear", factor: 2 } }, "pythia/config.json"),
    /pythia\/config\.json: field "rope_scaling": RoPE scaling is not supported/,
  );
  assert.throws(() => parseGptNeoxConfig({ hidden_act: "gelu_neww" }), /field "hidden_act"/);
  assert.throws(
    () => parseGptNeoxConfig({ ...tiny, rotary_pct: 0.375 }),
    /rotary dims per head; they must be even/,
  );
});

test("partial rotary: the first rotary_ndims dims rotate by position · base^(-2i/d), the rest pass", () => {
  const T = 3;
  const hs = 8;
  const rd = 4; // rotary_pct 0.5 of a head of 8
  const base = 10000;
  const x = randn([1, 1, T, hs], { generator: new Generator(7) });
  const { cos, sin } = rotaryCosSin(arange(T).unsqueeze(0), rd, base, "float32");
  const y = applyRotary(x, cos, sin).view(T, hs).tolist() as number[][];
  const xs = x.view(T, hs).tolist() as number[][];
  for (let p = 0; p < T; p++) {
    for (let i = 0; i < rd / 2; i++) {
      const angle = p * base ** (-(2 * i) / rd);
      const [a, b] = [xs[p][i], xs[p][i + rd / 2]];
      // float32 cos/sin of a float32 angle vs float64: a few ulps of the inputs' size.
      const tol = { rtol: 1e-5, atol: 1e-6 };
      assertNear(y[p][i], a * Math.cos(angle) - b * Math.sin(angle), tol, `pos ${p} dim ${i}`);
      assertNear(y[p][i + rd / 2], b * Math.cos(angle) + a * Math.sin(angle), tol, `pos ${p}`);
    }
    for (let i = rd; i < hs; i++) assert.equal(y[p][i], xs[p][i]);
  }
});

test("rotary_pct 0.25 and 1.0 give different outputs from the same weights", () => {
  const partial = model({ rotary_pct: 0.25 }, 4).eval();
  const full = model({ rotary_pct: 1 }, 4).eval();
  const x = ids([[3, 1, 4, 1, 5, 9]]);
  const d = maxDiff(partial.forward({ inputIds: x }).logits, full.forward({ inputIds: x }).logits);
  assert.ok(d > 1e-3, `rotary_pct made no difference (${d})`);
  // At position 0 every rotation is the identity, so the first token's logits agree.
  const first = (m: GPTNeoXForCausalLM) => m.forward({ inputIds: x }).logits.narrow(1, 0, 1);
  assertTensorClose(first(partial), first(full), F32, "position 0, partial vs full rotary");
  partial.dispose();
  full.dispose();
});

test("parallel and sequential residual give different outputs from the same weights", () => {
  const par = model({ use_parallel_residual: true }, 5).eval();
  const seq = model({ use_parallel_residual: false }, 5).eval();
  const x = ids([[2, 7, 1, 8, 2, 8]]);
  const d = maxDiff(par.forward({ inputIds: x }).logits, seq.forward({ inputIds: x }).logits);
  assert.ok(d > 1e-3, `residual layout made no difference (${d})`);
  par.dispose();
  seq.dispose();
});

test("padding invariance: left- and right-padded rows equal the row alone", () => {
  for (const parallel of [true, false]) {
    const m = model({ use_parallel_residual: parallel }).eval();
    const row = [5, 6, 7, 8, 9];
    const alone = m.forward({ inputIds: ids([row]) }).logits.select(0, 0); // (5, V)
    const other = [1, 2, 3, 4, 5, 6, 7];
    for (const side of ["left", "right"] as const) {
      const padded = side === "left" ? [0, 0, ...row] : [...row, 0, 0];
      const pmask = side === "left" ? [0, 0, 1, 1, 1, 1, 1] : [1, 1, 1, 1, 1, 0, 0];
      const out = m.forward({
        inputIds: ids([padded, other]),
        attentionMask: ids([pmask, [1, 1, 1, 1, 1, 1, 1]]),
      }).logits;
      const real = out.select(0, 0).narrow(0, side === "left" ? 2 : 0, 5);
      assertTensorClose(real, alone, F32, `${side} padding (parallel ${parallel})`);
      const otherAlone = m.forward({ inputIds: ids([other]) }).logits.select(0, 0);
      assertTensorClose(out.select(0, 1), otherAlone, F32, `${side} padding, other row`);
    }
    m.dispose();
  }
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
  assert.deepEqual(out.cache![0].k.shape, [2, 4, 8, 8]);
  assertTensorClose(cat(steps, 1).narrow(1, 2, 6), full.narrow(1, 2, 6), F32, "cached vs uncached");

  // Without a mask, positions continue from the cache length.
  const plain = input.select(0, 1).unsqueeze(0);
  const whole = m.forward({ inputIds: plain }).logits;
  const pre = m.forward({ inputIds: plain.narrow(1, 0, 6), useCache: true });
  const next = m.forward({ inputIds: plain.narrow(1, 6, 2), cache: pre.cache });
  assertTensorClose(next.logits, whole.narrow(1, 6, 2), F32, "unmasked cache");
  m.dispose();
});

test("one AdamW step lowers the loss on a repeated batch", () => {
  const m = model({ initializer_range: 0.02 }, 2).train();
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
