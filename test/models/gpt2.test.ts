/**
 * GPT-2 (src/models/gpt2.ts) on the CausalLM interface, against transformers' rules: HF
 * parameter names, position ids from the attention mask (left padding), padding invariance,
 * cached = uncached logits, a training step, config parsing through the registry.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { GPT2LMHeadModel, gpt2Config } from "../../src/models/gpt2.js";
import { createModel, familyOf, parseModelConfig } from "../../src/models/index.js";
import { AdamW } from "../../src/optim/index.js";
import { cat, crossEntropy, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { F32, relDiff } from "../helpers/close.js";

const cfg = gpt2Config({
  vocab_size: 50,
  n_positions: 32,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  resid_pdrop: 0,
  embd_pdrop: 0,
  attn_pdrop: 0,
  initializer_range: 0.2,
});
const ids = (rows: number[][]) => tensor(rows, { dtype: "int64" });
const maxDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());
const rel = (x: number) => x.toExponential(2);
const A = [5, 9, 13, 2, 40];
const B = [7, 3, 3, 21, 49, 11, 8];

function logits(m: GPT2LMHeadModel, rows: number[][], mask?: number[][]): Tensor {
  return m.forward({ inputIds: ids(rows), attentionMask: mask ? ids(mask) : null }).logits;
}

test("stateDict keys are Hugging Face's GPT-2 names (head tied to wte)", () => {
  const m = new GPT2LMHeadModel(cfg, { seed: 1 });
  const block = (i: number) =>
    [
      "ln_1.weight",
      "ln_1.bias",
      "attn.c_attn.weight",
      "attn.c_attn.bias",
      "attn.c_proj.weight",
      "attn.c_proj.bias",
      "ln_2.weight",
      "ln_2.bias",
      "mlp.c_fc.weight",
      "mlp.c_fc.bias",
      "mlp.c_proj.weight",
      "mlp.c_proj.bias",
    ].map((k) => `transformer.h.${i}.${k}`);
  assert.deepEqual(
    [...m.stateDict().keys()],
    [
      "transformer.wte.weight",
      "transformer.wpe.weight",
      ...block(0),
      ...block(1),
      "transformer.ln_f.weight",
      "transformer.ln_f.bias",
    ],
  );
  assert.deepEqual(m.stateDict().get("transformer.h.0.attn.c_attn.weight")!.shape, [32, 96]); // Conv1D (in, out)
  assert.deepEqual(familyOf("gpt2").tiedWeights!(cfg), [
    ["lm_head.weight", "transformer.wte.weight"],
  ]);
  m.dispose();
});

test("padding invariance: left- and right-padded rows match the row alone within 1e-5 relative", () => {
  const m = new GPT2LMHeadModel(cfg, { seed: 2 }).eval();
  noGrad(() =>
    tidy(() => {
      const alone = logits(m, [A]).select(0, 0);
      const pad = B.length - A.length;
      const ones = A.map(() => 1);
      const zeros = Array(pad).fill(0);
      const left = logits(m, [[...zeros, ...A], B], [[...zeros, ...ones], B.map(() => 1)]);
      const right = logits(m, [[...A, ...zeros], B], [[...ones, ...zeros], B.map(() => 1)]);
      assert.ok(left.isfinite().all().item(), "no NaN or inf, padded queries included");
      const dl = relDiff(left.select(0, 0).slice(0, pad), alone);
      const dr = relDiff(right.select(0, 0).slice(0, 0, A.length), alone);
      const db = relDiff(left.select(0, 1), logits(m, [B]).select(0, 0));
      console.log(
        `# padding relative diff: left ${rel(dl)}, right ${rel(dr)}, unpadded ${rel(db)}`,
      );
      assert.ok(dl <= F32.rtol && dr <= F32.rtol && db <= F32.rtol);
      // Without the mask the left-padded row reads positions 2.. and the pads: it must differ.
      assert.ok(
        maxDiff(
          logits(m, [[...zeros, ...A]])
            .select(0, 0)
            .slice(0, pad),
          alone,
        ) > 1e-3,
      );
    }),
  );
  m.dispose();
});

test("cached logits equal uncached ones, with left padding too", () => {
  const m = new GPT2LMHeadModel(cfg, { seed: 3 }).eval();
  const check = (rows: number[][], mask: number[][]) =>
    noGrad(() =>
      tidy(() => {
        const cut = (r: number[][], a: number, b: number) => r.map((x) => x.slice(a, b));
        const full = logits(m, rows, mask);
        let out = m.forward({
          inputIds: ids(cut(rows, 0, 3)),
          attentionMask: ids(cut(mask, 0, 3)),
          useCache: true,
        });
        const steps = [out.logits];
        for (const [a, b] of [
          [3, 5],
          [5, 6],
          [6, 7],
        ]) {
          out = m.forward({
            inputIds: ids(cut(rows, a, b)),
            attentionMask: ids(cut(mask, 0, b)),
            cache: out.cache,
            useCache: true,
          });
          steps.push(out.logits);
        }
        assert.equal(out.cache![0].k.size(2), 7);
        const real = ids(mask).unsqueeze(-1).float(); // padded queries' logits are garbage in both
        return relDiff(cat(steps, 1).mul(real), full.mul(real));
      }),
    );
  const plain = check([B], [B.map(() => 1)]);
  const padded = check([[0, 0, ...A], B], [[0, 0, 1, 1, 1, 1, 1], B.map(() => 1)]);
  console.log(`# cache relative diff: ${rel(plain)}, left-padded ${rel(padded)}`);
  assert.ok(plain <= F32.rtol && padded <= F32.rtol);
  assert.throws(() => m.forward({ inputIds: ids([Array(33).fill(1)]) }), /exceed n_positions 32/);
  m.dispose();
});

test("one AdamW step on a repeated batch lowers the loss", () => {
  const m = createModel(parseModelConfig({ ...cfg }), { seed: 4 }) as GPT2LMHeadModel;
  const opt = new AdamW([{ params: m.parameters() }], { lr: 1e-2, weightDecay: 0 });
  const batch = ids([[...A, 1, 2], B]);
  const loss = () =>
    tidy(() => {
      const { logits } = m.forward({ inputIds: batch.slice(1, 0, -1) });
      return crossEntropy(logits.reshape(-1, 50), batch.slice(1, 1).reshape(-1));
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

test("config parsing: GPT-2 small defaults, errors naming the field", () => {
  const c = parseModelConfig({
    model_type: "gpt2",
    n_layer: 2,
    architectures: ["GPT2LMHeadModel"],
  });
  assert.equal(c.vocab_size, 50257);
  assert.equal((c as typeof cfg).n_layer, 2);
  assert.equal((c as typeof cfg).n_embd, 768);
  assert.throws(
    () => parseModelConfig({ model_type: "gpt2", n_head: 5 }, "m/config.json"),
    /m\/config\.json: field "n_head"/,
  );
  assert.throws(
    () => parseModelConfig({ model_type: "gpt2", activation_function: "swish" }),
    /field "activation_function"/,
  );
  assert.throws(() => parseModelConfig({ model_type: "gtp2" }), /Did you mean "gpt2"/);
});
