/**
 * Autograd: analytic gradients from libtorch's backward against central finite differences in
 * float64 (the method of torch.autograd.gradcheck), the fused attention kernel against the
 * explicit math (forward and backward), and PyTorch's autograd semantics: accumulation over
 * backward calls, retain_graph, no_grad, detach and requires_grad_.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  attentionMath,
  crossEntropy,
  isGradEnabled,
  layerNorm,
  noGrad,
  ones,
  rmsNorm,
  scaledDotProductAttention,
  type Tensor,
  tensor,
  tidy,
  TorchError,
} from "../../src/tensor/index.js";
import { assertAllClose, type Tol } from "../helpers/close.js";
import { jsRandom } from "./helpers.js";

interface Input {
  shape: number[];
  values: number[];
}

const input = (seed: number, ...shape: number[]): Input => ({
  shape,
  values: jsRandom(
    seed,
    shape.reduce((a, b) => a * b, 1),
  ),
});

/**
 * Checks d/dx of sum(f(x) · R) (R a fixed random weight, so every output element counts)
 * against central differences with step h: error O(h²) ≈ 1e-12 plus rounding ≈ 1e-10 (both
 * relative to the loss's size, hence atol), relative to the gradient where it is large.
 */
function gradcheck(
  name: string,
  inputs: Input[],
  f: (xs: Tensor[]) => Tensor,
  tol: Tol = { rtol: 1e-6, atol: 1e-6 },
): void {
  tidy(() => {
    const make = (vals: number[][]) =>
      inputs.map((x, i) => tensor(Float64Array.from(vals[i]), { shape: x.shape }));
    const xs = make(inputs.map((x) => x.values)).map((t) => t.requiresGrad_(true));
    const out = f(xs);
    const R = tensor(Float64Array.from(jsRandom(99, out.numel())), { shape: out.shape });
    out.mul(R).sum().backward();
    const loss = (vals: number[][]) => noGrad(() => tidy(() => f(make(vals)).mul(R).sum().item()));
    const h = 1e-6;
    inputs.forEach((x, k) => {
      const numeric = x.values.map((_, i) => {
        const plus = inputs.map((y) => y.values.slice());
        const minus = inputs.map((y) => y.values.slice());
        plus[k][i] += h;
        minus[k][i] -= h;
        return (loss(plus) - loss(minus)) / (2 * h);
      });
      const g = xs[k].grad;
      assert.ok(g, `${name}: input ${k} has no gradient`);
      assertAllClose(g.toNumbers(), numeric, tol, `${name} d/dinput${k}`);
    });
  });
}

test("finite differences: matmul, softmax, logSoftmax, layerNorm", () => {
  gradcheck("matmul", [input(1, 2, 3, 4), input(2, 4, 5)], ([a, b]) => a.matmul(b));
  gradcheck("softmax", [input(3, 3, 5)], ([x]) => x.mul(3).softmax(-1));
  gradcheck("logSoftmax", [input(4, 3, 5)], ([x]) => x.mul(3).logSoftmax(1));
  gradcheck("layerNorm", [input(5, 3, 6), input(6, 6), input(7, 6)], ([x, w, b]) =>
    layerNorm(x, [6], w, b, 1e-5),
  );
});

test("finite differences: gelu (exact and tanh), silu", () => {
  const wide = { shape: [12], values: jsRandom(8, 12).map((v) => 4 * v) };
  gradcheck("gelu", [wide], ([x]) => x.gelu());
  gradcheck("gelu tanh", [wide], ([x]) => x.gelu("tanh"));
  gradcheck("silu", [wide], ([x]) => x.silu());
});

test("finite differences: rmsNorm", () => {
  gradcheck("rmsNorm", [input(9, 3, 6), input(10, 6)], ([x, w]) => rmsNorm(x, w, 1e-6));
});

test("finite differences: crossEntropy with label smoothing and an ignored target", () => {
  const target = [1, 4, -100, 0];
  gradcheck("crossEntropy", [input(11, 4, 5)], ([x]) =>
    crossEntropy(x.mul(2), tensor(target, { dtype: "int64" }), { labelSmoothing: 0.1 }),
  );
  gradcheck("crossEntropy sum", [input(12, 4, 5)], ([x]) =>
    crossEntropy(x, tensor(target, { dtype: "int64" }), { reduction: "sum" }),
  );
});

test("finite differences: scaledDotProductAttention, causal and with a boolean or additive mask", () => {
  const qkv = () => [input(13, 1, 2, 4, 3), input(14, 1, 2, 4, 3), input(15, 1, 2, 4, 3)];
  gradcheck("sdpa causal", qkv(), ([q, k, v]) =>
    scaledDotProductAttention(q, k, v, { isCausal: true }),
  );
  // Padding on the left of batch row 0's keys; every query keeps at least one key.
  const keep = [
    [1, 1, 1, 1],
    [0, 1, 1, 1],
  ];
  const boolMask = () => tensor(keep.map((r) => r.map(Boolean))).view(2, 1, 1, 4);
  const q2 = () => [input(16, 2, 2, 4, 3), input(17, 2, 2, 4, 3), input(18, 2, 2, 4, 3)];
  gradcheck("sdpa bool mask", q2(), ([q, k, v]) =>
    scaledDotProductAttention(q, k, v, { mask: boolMask() }),
  );
  const additive = () =>
    tensor(
      keep.flat().map((m) => (m ? 0 : -Infinity)),
      { dtype: "float64" },
    ).view(2, 1, 1, 4);
  gradcheck("sdpa additive mask", q2(), ([q, k, v]) =>
    scaledDotProductAttention(q, k, v, { mask: additive() }),
  );
  gradcheck("sdpa scale", qkv(), ([q, k, v]) =>
    scaledDotProductAttention(q, k, v, { isCausal: true, scale: 0.3 }),
  );
});

/** Two float64 kernels (fused attention vs the explicit math) that sum in different orders. */
const SDPA_VS_MATH: Tol = { rtol: 1e-12, atol: 1e-12 };

test("scaledDotProductAttention equals attentionMath, values and gradients", () => {
  const cases = [
    () => ({ isCausal: true }),
    () => ({ mask: null }),
    () => ({ isCausal: true, scale: 0.5 }),
    () => ({ mask: tensor([1, 1, 0, 1, 1, 0, 1, 1, 1, 1]).view(2, 1, 1, 5).bool() }),
  ];
  for (const make of cases) {
    tidy(() => {
      const o: { isCausal?: boolean; scale?: number; mask?: Tensor | null } = make();
      const run = (f: typeof attentionMath) => {
        const [q, k, v] = [21, 22, 23].map((s) =>
          tensor(Float64Array.from(jsRandom(s, 120)), { shape: [2, 3, 5, 4] }).requiresGrad_(true),
        );
        const y = f(q, k, v, o);
        y.pow(2).sum().backward();
        return [y, q.grad!, k.grad!, v.grad!].map((t) => t.toNumbers());
      };
      const fused = run(scaledDotProductAttention);
      const math = run(attentionMath);
      ["out", "dq", "dk", "dv"].forEach((n, i) =>
        assertAllClose(fused[i], math[i], SDPA_VS_MATH, `sdpa vs math ${Object.keys(o)} ${n}`),
      );
    });
  }
});

test("gradients accumulate over backward calls; a freed graph cannot be reused", () => {
  tidy(() => {
    const x = tensor([1, 2, 3]).requiresGrad_(true);
    assert.equal(x.grad, null);
    x.mul(2).sum().backward();
    assert.deepEqual(x.grad!.toNumbers(), [2, 2, 2]);
    x.pow(2).sum().backward();
    assert.deepEqual(x.grad!.toNumbers(), [4, 6, 8], "2 + 2x");
    const y = x.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assert.deepEqual(x.grad!.toNumbers(), [8, 14, 20], "4 + 2·2x, 6 + 2·4, …");
    assert.throws(() => y.backward(), TorchError);
    x.grad = null;
    assert.equal(x.grad, null);
    x.sum().backward(undefined);
    assert.deepEqual(x.grad!.toNumbers(), [1, 1, 1]);
    // Non-scalar roots take an explicit gradient.
    x.grad = null;
    x.mul(3).backward(tensor([1, 0, 2]));
    assert.deepEqual(x.grad!.toNumbers(), [3, 0, 6]);
  });
});

test("noGrad, detach and requiresGrad_", () => {
  tidy(() => {
    const x = tensor([1, 2]).requiresGrad_(true);
    assert.equal(x.requiresGrad, true);
    assert.equal(isGradEnabled(), true);
    const inside = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      return x.mul(2);
    });
    assert.equal(isGradEnabled(), true);
    assert.equal(inside.requiresGrad, false);
    assert.throws(() => inside.sum().backward(), TorchError);
    assert.throws(
      () =>
        noGrad(() => {
          throw new Error("boom");
        }),
      /boom/,
    );
    assert.equal(isGradEnabled(), true, "noGrad restores the flag after a throw");
    assert.equal(
      noGrad(() => noGrad(() => isGradEnabled())),
      false,
    );
    assert.equal(x.mul(2).requiresGrad, true);

    const d = x.detach();
    assert.equal(d.requiresGrad, false);
    d.fill_(5); // detach shares storage
    assert.deepEqual(x.toNumbers(), [5, 5]);
    const z = x.detach().mul(3).add(x).sum();
    z.backward();
    assert.deepEqual(x.grad!.toNumbers(), [1, 1], "no gradient flows through the detached branch");

    const w = ones([2]);
    assert.equal(w.requiresGrad, false);
    w.requiresGrad_();
    assert.equal(w.requiresGrad, true);
    w.requiresGrad_(false);
    assert.equal(w.requiresGrad, false);
  });
});
