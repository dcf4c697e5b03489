/**
 * libtorch's fused scaled_dot_product_attention against the explicit math (attentionMath, the
 * eager path every model had before): causal, padded and grouped-query cases, in float32 and
 * bfloat16. Tolerances are relative to the output's magnitude and scaled to the dtype's epsilon.
 */
import assert from "node:assert/strict";
import test from "node:test";
import {
  attentionMath,
  randn,
  scaledDotProductAttention,
  tensor,
  tidy,
  manualSeed,
  type Tensor,
} from "../../src/tensor/index.js";

type Opts = Parameters<typeof scaledDotProductAttention>[3];

/** max |a − b| / max |b|, over float32 copies. */
function relDiff(a: Tensor, b: Tensor): number {
  const x = a.float();
  const y = b.float();
  return x.sub(y).abs().max().item() / Math.max(y.abs().max().item(), 1e-30);
}

// Left padding: batch row 1 has its first two keys masked (every query keeps a key).
const padMask = (T: number, S: number) =>
  tensor(
    [0, 1].flatMap((b) =>
      Array.from(
        { length: T * S },
        (_, i) => !(b === 1 && i % S < 2) && i % S <= ((i / S) | 0) + S - T,
      ),
    ),
  ).view(2, 1, T, S);

const cases: {
  name: string;
  shape: { nh: number; nkv: number; T: number; S: number };
  o: () => Opts;
}[] = [
  { name: "causal", shape: { nh: 4, nkv: 4, T: 7, S: 7 }, o: () => ({ isCausal: true }) },
  { name: "padded", shape: { nh: 4, nkv: 4, T: 5, S: 8 }, o: () => ({ mask: padMask(5, 8) }) },
  {
    name: "GQA causal",
    shape: { nh: 8, nkv: 2, T: 6, S: 6 },
    o: () => ({ isCausal: true, enableGqa: true }),
  },
  {
    name: "GQA padded",
    shape: { nh: 6, nkv: 3, T: 4, S: 9 },
    o: () => ({ mask: padMask(4, 9), enableGqa: true }),
  },
];

for (const dtype of ["float32", "bfloat16"] as const) {
  // float32: 1e-5 relative (a few float32 ulps summed over the head dimension); bfloat16: a few units of its epsilon (2^-8).
  const rtol = dtype === "float32" ? 1e-5 : 4 * 2 ** -8;
  for (const c of cases) {
    test(`SDPA equals the eager math: ${c.name}, ${dtype} (rtol ${rtol.toExponential(1)})`, () => {
      tidy(() => {
        manualSeed(7);
        const { nh, nkv, T, S } = c.shape;
        const q = randn([2, nh, T, 16]).to(dtype);
        const k = randn([2, nkv, S, 16]).to(dtype);
        const v = randn([2, nkv, S, 16]).to(dtype);
        const o = c.o();
        const fused = scaledDotProductAttention(q, k, v, o);
        const eager = attentionMath(q, k, v, o);
        assert.deepEqual(fused.shape, [2, nh, T, 16]);
        assert.equal(fused.dtype, dtype);
        const d = relDiff(fused, eager);
        console.log(`# ${c.name} ${dtype}: max relative diff ${d.toExponential(2)}`);
        assert.ok(d <= rtol, `${c.name} ${dtype}: relative diff ${d} > ${rtol}`);
        // And against float32 math on the same (rounded) inputs: both round only the output.
        if (dtype === "bfloat16") {
          const ref = attentionMath(q.float(), k.float(), v.float(), o);
          const dr = relDiff(fused, ref);
          assert.ok(dr <= rtol, `${c.name}: bf16 fused vs f32 math ${dr} > ${rtol}`);
        }
      });
    });
  }
}

test("GQA without enableGqa is refused by libtorch, with its message", () => {
  tidy(() => {
    const q = randn([1, 4, 3, 8]);
    const kv = randn([1, 2, 3, 8]);
    assert.throws(() => scaledDotProductAttention(q, kv, kv), /TorchError|size|dimension|match/i);
  });
});
