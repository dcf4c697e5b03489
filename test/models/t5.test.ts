/**
 * Tests for src/models/t5.ts (T5 v1.0, v1.1 / mT5 / mT0 as transformers' modeling_t5.py):
 * HF parameter names for a tiny config of each variant, config parsing, the relative position
 * buckets against hand-computed values, padding invariance of encoder and decoder, cached decoding
 * against the uncached oracle, one training step, and the tied head's d_model^-0.5 rescale.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  parseT5Config,
  relativePositionBucket,
  t5Family,
  T5ForConditionalGeneration,
  type T5Config,
} from "../../src/models/t5.js";
import { AdamW } from "../../src/optim/index.js";
import { cat, crossEntropy, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { assertTensorClose, F32, relDiff } from "../helpers/close.js";
import type { LayerCache } from "../../src/models/types.js";

/** A tiny v1.0 config (ReLU, tied head), 2 encoder blocks and 1 decoder block. */
const V10 = parseT5Config({
  model_type: "t5",
  vocab_size: 40,
  d_model: 16,
  d_kv: 4,
  d_ff: 24,
  num_layers: 2,
  num_decoder_layers: 1,
  num_heads: 2,
  relative_attention_num_buckets: 8,
  relative_attention_max_distance: 20,
  dropout_rate: 0,
});

/** A tiny mT5 / v1.1 config (gated-gelu, untied lm_head), 2 blocks each. */
const MT5 = parseT5Config({
  model_type: "mt5",
  vocab_size: 40,
  d_model: 16,
  d_kv: 4,
  d_ff: 24,
  num_layers: 2,
  num_heads: 2,
  relative_attention_num_buckets: 8,
  relative_attention_max_distance: 20,
  dropout_rate: 0,
});

const ids = (rows: number[][]) => tensor(rows, { dtype: "int64" });

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

function build(cfg: T5Config, seed = 3): T5ForConditionalGeneration {
  return t5Family.create(cfg, { seed }) as T5ForConditionalGeneration;
}

const attention = (p: string) => ["q", "k", "v", "o"].map((x) => `${p}.${x}.weight`);

test("v1.0 parameter names are Hugging Face's, with the head tied to shared", () => {
  const model = build(V10);
  const expected = [
    "shared.weight",
    "encoder.block.0.layer.0.SelfAttention.q.weight",
    "encoder.block.0.layer.0.SelfAttention.k.weight",
    "encoder.block.0.layer.0.SelfAttention.v.weight",
    "encoder.block.0.layer.0.SelfAttention.o.weight",
    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    "encoder.block.0.layer.0.layer_norm.weight",
    "encoder.block.0.layer.1.DenseReluDense.wi.weight",
    "encoder.block.0.layer.1.DenseReluDense.wo.weight",
    "encoder.block.0.layer.1.layer_norm.weight",
    "encoder.block.1.layer.0.SelfAttention.q.weight",
    "encoder.block.1.layer.0.SelfAttention.k.weight",
    "encoder.block.1.layer.0.SelfAttention.v.weight",
    "encoder.block.1.layer.0.SelfAttention.o.weight",
    "encoder.block.1.layer.0.layer_norm.weight",
    "encoder.block.1.layer.1.DenseReluDense.wi.weight",
    "encoder.block.1.layer.1.DenseReluDense.wo.weight",
    "encoder.block.1.layer.1.layer_norm.weight",
    "encoder.final_layer_norm.weight",
    "decoder.block.0.layer.0.SelfAttention.q.weight",
    "decoder.block.0.layer.0.SelfAttention.k.weight",
    "decoder.block.0.layer.0.SelfAttention.v.weight",
    "decoder.block.0.layer.0.SelfAttention.o.weight",
    "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    "decoder.block.0.layer.0.layer_norm.weight",
    "decoder.block.0.layer.1.EncDecAttention.q.weight",
    "decoder.block.0.layer.1.EncDecAttention.k.weight",
    "decoder.block.0.layer.1.EncDecAttention.v.weight",
    "decoder.block.0.layer.1.EncDecAttention.o.weight",
    "decoder.block.0.layer.1.layer_norm.weight",
    "decoder.block.0.layer.2.DenseReluDense.wi.weight",
    "decoder.block.0.layer.2.DenseReluDense.wo.weight",
    "decoder.block.0.layer.2.layer_norm.weight",
    "decoder.final_layer_norm.weight",
  ];
  const state = model.stateDict();
  assert.deepEqual([...state.keys()], expected);
  assert.deepEqual(state.get("shared.weight")!.shape, [40, 16]);
  assert.deepEqual(state.get("encoder.block.0.layer.0.SelfAttention.q.weight")!.shape, [8, 16]);
  assert.deepEqual(state.get("encoder.block.0.layer.0.SelfAttention.o.weight")!.shape, [16, 8]);
  assert.deepEqual(
    state.get("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")!.shape,
    [8, 2],
  );
  assert.deepEqual(state.get("decoder.block.0.layer.2.DenseReluDense.wi.weight")!.shape, [24, 16]);
  // encoder.embed_tokens / decoder.embed_tokens are the shared table itself.
  assert.equal(model.encoder.embed_tokens.weight, model.shared.weight);
  assert.equal(model.decoder.embed_tokens.weight, model.shared.weight);
  assert.equal(model.lm_head, null);
  assert.deepEqual(t5Family.tiedWeights(V10), [
    ["encoder.embed_tokens.weight", "shared.weight"],
    ["decoder.embed_tokens.weight", "shared.weight"],
    ["lm_head.weight", "shared.weight"],
  ]);
  model.dispose();
});

test("mT5 / v1.1 parameter names: gated MLP and an untied lm_head", () => {
  const model = build(MT5);
  const gated = (p: string) => [
    `${p}.DenseReluDense.wi_0.weight`,
    `${p}.DenseReluDense.wi_1.weight`,
    `${p}.DenseReluDense.wo.weight`,
    `${p}.layer_norm.weight`,
  ];
  const expected = [
    "shared.weight",
    ...attention("encoder.block.0.layer.0.SelfAttention"),
    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    "encoder.block.0.layer.0.layer_norm.weight",
    ...gated("encoder.block.0.layer.1"),
    ...attention("encoder.block.1.layer.0.SelfAttention"),
    "encoder.block.1.layer.0.layer_norm.weight",
    ...gated("encoder.block.1.layer.1"),
    "encoder.final_layer_norm.weight",
    ...attention("decoder.block.0.layer.0.SelfAttention"),
    "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    "decoder.block.0.layer.0.layer_norm.weight",
    ...attention("decoder.block.0.layer.1.EncDecAttention"),
    "decoder.block.0.layer.1.layer_norm.weight",
    ...gated("decoder.block.0.layer.2"),
    ...attention("decoder.block.1.layer.0.SelfAttention"),
    "decoder.block.1.layer.0.layer_norm.weight",
    ...attention("decoder.block.1.layer.1.EncDecAttention"),
    "decoder.block.1.layer.1.layer_norm.weight",
    ...gated("decoder.block.1.layer.2"),
    "decoder.final_layer_norm.weight",
    "lm_head.weight",
  ];
  assert.deepEqual([...model.stateDict().keys()], expected);
  assert.deepEqual(model.lm_head!.weight.shape, [40, 16]);
  assert.deepEqual(t5Family.tiedWeights(MT5), [
    ["encoder.embed_tokens.weight", "shared.weight"],
    ["decoder.embed_tokens.weight", "shared.weight"],
  ]);
  model.dispose();
});

test("config parsing: T5 and mT5 defaults, feed_forward_proj, bad fields named", () => {
  const t5 = parseT5Config({ model_type: "t5" });
  assert.equal(t5.vocab_size, 32128);
  assert.equal(t5.feed_forward_proj, "relu");
  assert.equal(t5.tie_word_embeddings, true);
  assert.equal(t5.num_decoder_layers, 6);
  assert.equal(t5.decoder_start_token_id, 0);
  const mt5 = parseT5Config({ model_type: "mt5", num_decoder_layers: null });
  assert.equal(mt5.vocab_size, 250112);
  assert.equal(mt5.d_ff, 1024);
  assert.equal(mt5.num_layers, 8);
  assert.equal(mt5.num_decoder_layers, 8);
  assert.equal(mt5.num_heads, 6);
  assert.equal(mt5.feed_forward_proj, "gated-gelu");
  assert.equal(mt5.tie_word_embeddings, false);
  assert.throws(
    () => parseT5Config({ model_type: "t5", d_model: 0 }, "m/config.json"),
    /m\/config.json: field "d_model": Too small: expected number to be >0/,
  );
  assert.throws(
    () => parseT5Config({ feed_forward_proj: "gated-geluu" }),
    /field "feed_forward_proj": names unknown activation "geluu". Did you mean "gelu"/,
  );
  assert.throws(() => parseT5Config({ feed_forward_proj: "fast-relu" }), /"gated-\{act\}"/);
  assert.throws(
    () => parseT5Config({ model_type: "bart" }),
    /field "model_type": Invalid option: expected one of "t5"\|"mt5"/,
  );
  assert.throws(
    () => parseT5Config({ tie_word_embeddings: "yes" }),
    /field "tie_word_embeddings": Invalid input: expected boolean/,
  );
});

test("init follows _init_weights: std per tensor and initializer_factor", () => {
  const cfg = parseT5Config({
    vocab_size: 512,
    d_model: 64,
    d_kv: 16,
    d_ff: 256,
    num_layers: 1,
    num_heads: 4,
    initializer_factor: 2,
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
  });
  const model = build(cfg);
  const state = model.stateDict();
  const std = (k: string) =>
    tidy(() => {
      const t = state.get(k)!;
      return t.pow(2).mean().sqrt().item();
    });
  const close = (k: string, want: number) => {
    const got = std(k);
    assert.ok(Math.abs(got / want - 1) < 0.08, `${k}: std ${got}, want ${want}`);
  };
  close("shared.weight", 2);
  close("lm_head.weight", 2);
  close("encoder.block.0.layer.0.SelfAttention.q.weight", 2 * (64 * 16) ** -0.5);
  close("encoder.block.0.layer.0.SelfAttention.k.weight", 2 * 64 ** -0.5);
  close("encoder.block.0.layer.0.SelfAttention.o.weight", 2 * 64 ** -0.5);
  close("encoder.block.0.layer.1.DenseReluDense.wi_0.weight", 2 * 64 ** -0.5);
  close("encoder.block.0.layer.1.DenseReluDense.wo.weight", 2 * 256 ** -0.5);
  assert.deepEqual(
    state.get("decoder.final_layer_norm.weight")!.toNumbers(),
    new Array(64).fill(2),
  );
  // Same seed, same weights; another seed, other weights.
  const again = build(cfg);
  const other = build(cfg, 4);
  assert.equal(maxAbsDiff(state.get("shared.weight")!, again.stateDict().get("shared.weight")!), 0);
  assert.ok(maxAbsDiff(state.get("shared.weight")!, other.stateDict().get("shared.weight")!) > 0.1);
  for (const m of [model, again, other]) m.dispose();
});

test("relative position buckets match the formula worked by hand", () => {
  // Hand computation (HF `_relative_position_bucket`, n = num_buckets, halved when bidirectional,
  // max_exact = n // 2, large = max_exact + trunc(log(|rp| / max_exact) / log(max_distance /
  // max_exact) · (n − max_exact)), capped at n − 1):
  //   bidirectional, 32, 128: n = 16, max_exact = 8. rp = -20 → 8 + trunc(log 2.5 / log 16 · 8 =
  //   2.64) = 10; rp = 20 → 16 + 10 = 26; rp = 64 → 16 + 8 + trunc(log 8 / log 16 · 8 = 6) = 30;
  //   rp = 127 → 16 + min(8 + 7, 15) = 31; rp = -9 → 8 + trunc(0.34) = 8; rp = 7 → 16 + 7 = 23.
  //   unidirectional, 32, 128: n = 32, max_exact = 16, future (rp > 0) → 0. rp = -20 → 16 +
  //   trunc(log 1.25 / log 8 · 16 = 1.72) = 17; rp = -64 → 16 + trunc(10.67) = 26; rp = -128 → 31.
  //   unidirectional, 8, 20: max_exact = 4. rp = -9 → 4 + trunc(log 2.25 / log 5 · 4 = 2.02) = 6;
  //   rp = -8 → 4 + trunc(1.72) = 5; rp = -16 → 4 + trunc(3.45) = 7.
  //   bidirectional, 8, 20: n = 4, max_exact = 2. rp = 7 → 4 + min(2 + trunc(1.09), 3) = 7; rp = 1 → 5.
  // The same function under the venv's torch, verbatim, is checked in python_refs.test.ts.
  const rp = [
    -200, -128, -127, -64, -20, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 20, 64, 127, 128, 200,
  ];
  const cases: [boolean, number, number, number[]][] = [
    [
      true,
      32,
      128,
      [15, 15, 15, 14, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 26, 30, 31, 31, 31],
    ],
    [true, 8, 20, [3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 0, 5, 7, 7, 7, 7, 7, 7, 7, 7, 7]],
    [false, 32, 128, [31, 31, 31, 26, 17, 16, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
    [false, 8, 20, [7, 7, 7, 7, 7, 7, 6, 5, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [bidirectional, buckets, maxDistance, want] of cases) {
    const got = tidy(() =>
      relativePositionBucket(
        tensor(rp, { dtype: "int64" }),
        bidirectional,
        buckets,
        maxDistance,
      ).toNumbers(),
    );
    assert.deepEqual(
      got,
      want,
      `bidirectional=${bidirectional} buckets=${buckets} max=${maxDistance}`,
    );
  }
});

for (const [name, cfg] of [
  ["v1.0", V10],
  ["mT5", MT5],
] as const) {
  test(`${name}: encoder padding (right or left) leaves the unpadded row's logits unchanged`, () => {
    const model = build(cfg).eval();
    tidy(() => {
      const dec = ids([[0, 5, 9, 2]]);
      const alone = model.forward({ inputIds: ids([[7, 3, 11]]), decoderInputIds: dec }).logits;
      for (const [row, mask] of [
        [
          [7, 3, 11, 0, 0],
          [1, 1, 1, 0, 0],
        ],
        [
          [0, 0, 7, 3, 11],
          [0, 0, 1, 1, 1],
        ],
      ]) {
        const out = model.forward({
          inputIds: ids([[4, 8, 15, 16, 23], row]),
          attentionMask: ids([[1, 1, 1, 1, 1], mask]),
          decoderInputIds: cat([ids([[0, 1, 2, 3]]), dec]),
        }).logits;
        assertTensorClose(
          out.select(0, 1),
          alone.select(0, 0),
          F32,
          `${name} encoder padding ${row}`,
        );
        // Without the mask the padding is attended to and the logits move.
        const unmasked = model.forward({ inputIds: ids([row]), decoderInputIds: dec }).logits;
        assert.ok(maxAbsDiff(unmasked, alone) > 1e-3);
      }
    });
    model.dispose();
  });

  test(`${name}: decoder right padding leaves the real positions' logits unchanged`, () => {
    const model = build(cfg).eval();
    tidy(() => {
      const enc = ids([[7, 3, 11, 12]]);
      const alone = model.forward({ inputIds: enc, decoderInputIds: ids([[0, 5, 9]]) }).logits;
      const out = model.forward({
        inputIds: cat([ids([[1, 2, 3, 4]]), enc]),
        decoderInputIds: ids([
          [0, 6, 6, 6, 6],
          [0, 5, 9, 0, 0],
        ]),
        decoderAttentionMask: ids([
          [1, 1, 1, 1, 1],
          [1, 1, 1, 0, 0],
        ]),
      }).logits;
      const real = out.select(0, 1).narrow(0, 0, 3);
      assertTensorClose(real, alone.select(0, 0), F32, `${name} decoder padding`);
    });
    model.dispose();
  });

  test(`${name}: cached decoding equals the uncached forward step by step`, () => {
    const model = build(cfg).eval();
    tidy(() => {
      const inputIds = ids([
        [7, 3, 11, 12, 5],
        [9, 9, 2, 0, 0],
      ]);
      const attentionMask = ids([
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
      ]);
      const dec = [
        [0, 5, 9, 2, 17, 30],
        [0, 8, 1, 33, 4, 6],
      ];
      const full = model.forward({ inputIds, attentionMask, decoderInputIds: ids(dec) }).logits;
      let cache: LayerCache[] | null = null;
      let crossCache: LayerCache[] | null = null;
      let encoderHidden: Tensor | null = null;
      let worst = 0;
      for (let t = 0; t < dec[0].length; t++) {
        const out = model.forward({
          inputIds,
          attentionMask,
          encoderHidden,
          decoderInputIds: ids(dec.map((r) => [r[t]])),
          decoderAttentionMask: ids(dec.map(() => new Array(t + 1).fill(1))),
          cache,
          crossCache,
          useCache: true,
        });
        assert.equal(out.cache![0].k.size(2), t + 1);
        worst = Math.max(worst, relDiff(out.logits.select(1, 0), full.select(1, t)));
        ({ cache, crossCache } = out as { cache: LayerCache[]; crossCache: LayerCache[] });
        encoderHidden = out.encoderHidden;
      }
      console.log(`# ${name} cached vs uncached: relative diff ${worst.toExponential(2)}`);
      assert.ok(worst <= F32.rtol, `relative diff ${worst}`);
    });
    model.dispose();
  });

  test(`${name}: one AdamW step on a repeated batch lowers the loss`, () => {
    const model = build(cfg).train();
    const opt = new AdamW([{ params: model.parameters() }], { lr: 1e-2, weightDecay: 0 });
    const inputIds = ids([
      [7, 3, 11, 12, 5],
      [9, 9, 2, 1, 0],
    ]);
    const attentionMask = ids([
      [1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0],
    ]);
    const labels = ids([
      [5, 9, 2, 1],
      [8, 1, 1, -100],
    ]);
    const lossOf = (): Tensor => {
      const decoderInputIds = model.shiftRight(labels);
      const { logits } = model.forward({ inputIds, attentionMask, decoderInputIds });
      return crossEntropy(logits.reshape(-1, cfg.vocab_size), labels.reshape(-1));
    };
    const before = tidy(() => {
      const loss = lossOf();
      opt.zeroGrad();
      loss.backward();
      opt.step();
      return loss.item();
    });
    const after = tidy(() => noGrad(() => lossOf().item()));
    console.log(`# ${name} loss ${before} → ${after}`);
    assert.ok(Number.isFinite(before) && after < before - 1e-3, `loss ${before} → ${after}`);
    model.dispose();
  });
}

test("shiftRight: start token first, labels shifted, -100 becomes pad", () => {
  const model = build(V10);
  const got = tidy(() => model.shiftRight(ids([[5, 9, -100, -100]])).tolist());
  assert.deepEqual(got, [[0, 5, 9, 0]]);
  model.dispose();
});

test("tied head (v1.0) rescales by d_model^-0.5; the untied head does not", () => {
  for (const cfg of [V10, MT5]) {
    const model = build(cfg).eval();
    tidy(() => {
      const inputIds = ids([[7, 3, 11, 12]]);
      const decoderInputIds = ids([[0, 5, 9]]);
      const { logits } = model.forward({ inputIds, decoderInputIds });
      const enc = model.encoder.forward(inputIds, { mask: null, past: null, cross: null }).hidden;
      const kv = model.decoder.crossKeyValues(enc);
      const h = model.decoder.forward(decoderInputIds, {
        mask: null,
        past: null,
        cross: { kv, bias: null },
      }).hidden;
      if (cfg.tie_word_embeddings) {
        const manual = h.matmul(model.shared.weight.t()).mul(16 ** -0.5);
        assertTensorClose(logits, manual, F32, "tied head");
        assert.ok(maxAbsDiff(logits, h.matmul(model.shared.weight.t())) > 1e-2);
      } else {
        assertTensorClose(logits, h.matmul(model.lm_head!.weight.t()), F32, "untied head");
      }
    });
    model.dispose();
  }
});
