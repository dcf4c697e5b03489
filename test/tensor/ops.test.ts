/**
 * Values of the engine's ops (src/tensor/tensor.ts, ops.ts) against results computed here in JS
 * float64, never by the engine: creation and read-back in every dtype, shape ops, broadcasting,
 * reductions, matrix products, the torch.nn.functional ops, indexing, sampling and casting.
 * Reference semantics: PyTorch 2.x (torch.*, torch.nn.functional.*).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addmm,
  arange,
  baddbmm,
  cat,
  crossEntropy,
  type DType,
  dropout,
  embedding,
  full,
  Generator,
  layerNorm,
  manualSeed,
  multinomial,
  ones,
  rmsNorm,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
  zeros,
} from "../../src/tensor/index.js";
import { assertAllClose as assertClose, F64, type Tol } from "../helpers/close.js";
import { at, erf, fill, jsRandom } from "./helpers.js";

/**
 * A float32 kernel against a float64 JS oracle: the input's rounding to float32 (6e-8 relative)
 * carried through the op plus a few ulps of the kernel, which differ between AVX2 and AVX-512.
 */
const F32_ORACLE: Tol = { rtol: 1e-6, atol: 1e-6 };
/** The same where a float32 op chains several roundings (logSoftmax, layerNorm, gelu). */
const F32_CHAINED: Tol = { rtol: 1e-5, atol: 1e-5 };

const ALL: DType[] = [
  "float32",
  "float64",
  "float16",
  "bfloat16",
  "int64",
  "int32",
  "int16",
  "int8",
  "uint8",
  "bool",
];
const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));

test("creation: zeros, ones, full, arange in every dtype read back", () => {
  tidy(() => {
    for (const dtype of ALL) {
      const z = zeros([2, 3], { dtype });
      assert.equal(z.dtype, dtype);
      assert.deepEqual(z.shape, [2, 3]);
      assert.deepEqual(z.toNumbers(), [0, 0, 0, 0, 0, 0], dtype);
      assert.deepEqual(ones([4], { dtype }).toNumbers(), [1, 1, 1, 1], dtype);
      const v = dtype === "bool" ? true : 3;
      assert.deepEqual(full([2], v, { dtype }).toNumbers(), [Number(v), Number(v)], dtype);
      assert.equal(full([2], v, { dtype }).dtype, dtype);
    }
    assert.equal(full([1], true).dtype, "bool");
    assert.equal(full([1], 2.5).dtype, "float32");
    const r = arange(5);
    assert.equal(r.dtype, "int64");
    assert.deepEqual(r.toNumbers(), [0, 1, 2, 3, 4]);
    assert.deepEqual(arange(2, 8, 3).toNumbers(), [2, 5]);
    assert.deepEqual(arange(1, 2, 0.25, { dtype: "float32" }).toNumbers(), [1, 1.25, 1.5, 1.75]);
    assert.deepEqual(
      arange(3, undefined, 1, { dtype: "float64" }).toArray(),
      Float64Array.from([0, 1, 2]),
    );
  });
});

test("creation: tensor() from nested arrays and typed arrays, every dtype, exact read-back", () => {
  tidy(() => {
    const nested = [
      [1, 0, 3],
      [4, 5, 126],
    ];
    for (const dtype of ALL.filter((d) => d !== "bool")) {
      const t = tensor(nested, { dtype });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 3]);
      assert.deepEqual(t.toNumbers(), [1, 0, 3, 4, 5, 126], dtype);
      assert.deepEqual(t.tolist(), nested, dtype);
    }
    assert.deepEqual(
      tensor([
        [true, false],
        [false, true],
      ]).tolist(),
      [
        [1, 0],
        [0, 1],
      ],
    );
    // Defaults: numbers → float32, booleans → bool.
    assert.equal(tensor([1, 2]).dtype, "float32");
    assert.equal(tensor([[true], [false]]).dtype, "bool");
    assert.deepEqual(tensor(7).shape, []);
    assert.equal(tensor(7).item(), 7);
    assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
    // Typed arrays pick their dtype and may carry a shape.
    const cases: [ArrayBufferView, DType][] = [
      [Float32Array.from([1.5, -2, 3, 4]), "float32"],
      [Float64Array.from([0.1, 0.2, 0.3, 0.4]), "float64"],
      [Int32Array.from([-7, 8, 9, 2 ** 31 - 1]), "int32"],
      [BigInt64Array.from([-(2n ** 62n), 2n ** 53n + 1n, 0n, 5n]), "int64"],
      [Uint8Array.from([0, 255, 7, 1]), "uint8"],
    ];
    for (const [arr, dtype] of cases) {
      const t = tensor(arr, { shape: [2, 2] });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [2, 2]);
      assert.deepEqual(t.toArray(), arr, dtype); // bit-exact, int64 beyond 2^53 included
    }
    assert.throws(
      () => tensor(Float32Array.from([1, 2, 3]), { shape: [2, 2] }),
      /needs 4 values, got 3/,
    );
    // 16-bit floats read back as raw bits, rounded to nearest even.
    assert.deepEqual(
      tensor([1, -2, 0.1, 65504], { dtype: "float16" }).toArray(),
      Uint16Array.from([0x3c00, 0xc000, 0x2e66, 0x7bff]),
    );
    assert.deepEqual(
      tensor([1, -2, 0.1, 3e38], { dtype: "bfloat16" }).toArray(),
      Uint16Array.from([0x3f80, 0xc000, 0x3dcd, 0x7f62]),
    );
  });
});

test("tensor() converts numbers to the dtype as torch.tensor does (nonzero → true, truncation to int)", () => {
  tidy(() => {
    const b = tensor([2, 0, 0.5], { dtype: "bool" });
    assert.deepEqual(b.toNumbers(), [1, 0, 1]);
    assert.equal(b.sum().item(), 2);
    assert.deepEqual(tensor([-1.5, 2.7], { dtype: "int64" }).toNumbers(), [-1, 2]);
  });
});

test("shape ops: view reshape permute transpose contiguous narrow slice select", () => {
  tidy(() => {
    const S = [2, 3, 4];
    const base = fill(S, ([i, j, k]) => 100 * i + 10 * j + k);
    const a = tensor(base).view(2, 3, 4);
    assert.deepEqual(a.view(6, 4).shape, [6, 4]);
    assert.deepEqual(a.view(6, 4).toNumbers(), base);
    assert.deepEqual(a.reshape(4, -1).shape, [4, 6]);
    const p = a.permute(2, 0, 1);
    assert.deepEqual(p.shape, [4, 2, 3]);
    assert.deepEqual(
      p.toNumbers(),
      fill([4, 2, 3], ([k, i, j]) => base[at(S, [i, j, k])]),
    );
    assert.throws(() => p.view(24)); // not viewable: non-contiguous
    assert.deepEqual(p.contiguous().view(24).toNumbers(), p.toNumbers());
    assert.deepEqual(p.reshape(24).toNumbers(), p.toNumbers());
    assert.deepEqual(
      a.transpose(0, 2).toNumbers(),
      fill([4, 3, 2], ([k, j, i]) => base[at(S, [i, j, k])]),
    );
    assert.deepEqual(
      a.select(1, 2).toNumbers(),
      fill([2, 4], ([i, k]) => base[at(S, [i, 2, k])]),
    );
    assert.deepEqual(
      tensor([
        [1, 2],
        [3, 4],
      ])
        .t()
        .toNumbers(),
      [1, 3, 2, 4],
    );
    const n = a.narrow(2, 1, 2);
    assert.deepEqual(n.shape, [2, 3, 2]);
    assert.deepEqual(
      n.toNumbers(),
      fill([2, 3, 2], ([i, j, k]) => base[at(S, [i, j, k + 1])]),
    );
    assert.deepEqual(
      a.slice(1, 0, null, 2).toNumbers(),
      fill([2, 2, 4], ([i, j, k]) => base[at(S, [i, 2 * j, k])]),
    );
    assert.deepEqual(
      a.slice(2, 1, -1).toNumbers(),
      fill([2, 3, 2], ([i, j, k]) => base[at(S, [i, j, k + 1])]),
    );
    // narrow is a view: writing through it changes the base.
    a.narrow(0, 1, 1).fill_(-1);
    assert.deepEqual(
      a.toNumbers(),
      base.map((v, i) => (i >= 12 ? -1 : v)),
    );
  });
});

test("shape ops: cat stack split chunk expand unsqueeze squeeze flatten", () => {
  tidy(() => {
    const x = tensor([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const y = tensor([[7, 8, 9]]);
    assert.deepEqual(cat([x, y]).tolist(), [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ]);
    assert.deepEqual(cat([x, x.mul(-1)], 1).tolist(), [
      [1, 2, 3, -1, -2, -3],
      [4, 5, 6, -4, -5, -6],
    ]);
    const s = stack([x, x.add(10)], 1);
    assert.deepEqual(s.shape, [2, 2, 3]);
    assert.deepEqual(s.tolist(), [
      [
        [1, 2, 3],
        [11, 12, 13],
      ],
      [
        [4, 5, 6],
        [14, 15, 16],
      ],
    ]);
    assert.deepEqual(stack([x, x]).shape, [2, 2, 3]);
    const parts = arange(7).split(3);
    assert.deepEqual(
      parts.map((t) => t.toNumbers()),
      [[0, 1, 2], [3, 4, 5], [6]],
    );
    assert.deepEqual(
      x.split([1, 2], 1).map((t) => t.tolist()),
      [
        [[1], [4]],
        [
          [2, 3],
          [5, 6],
        ],
      ],
    );
    assert.deepEqual(
      arange(6)
        .chunk(3)
        .map((t) => t.toNumbers()),
      [
        [0, 1],
        [2, 3],
        [4, 5],
      ],
    );
    const e = tensor([[1], [2]]).expand(2, 3);
    assert.deepEqual(e.tolist(), [
      [1, 1, 1],
      [2, 2, 2],
    ]);
    assert.deepEqual(tensor([5, 6]).expandAs(x.t()).tolist(), [
      [5, 6],
      [5, 6],
      [5, 6],
    ]);
    assert.deepEqual(x.unsqueeze(1).shape, [2, 1, 3]);
    assert.deepEqual(x.unsqueeze(-1).shape, [2, 3, 1]);
    assert.deepEqual(zeros([1, 3, 1, 2]).squeeze().shape, [3, 2]);
    assert.deepEqual(zeros([1, 3, 1, 2]).squeeze(2).shape, [1, 3, 2]);
    assert.deepEqual(zeros([2, 3, 4, 5]).flatten(1).shape, [2, 60]);
    assert.deepEqual(zeros([2, 3, 4, 5]).flatten(1, 2).shape, [2, 12, 5]);
    assert.deepEqual(x.flatten().toNumbers(), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(tensor([1, 2]).repeat(2, 2).tolist(), [
      [1, 2, 1, 2],
      [1, 2, 1, 2],
    ]);
  });
});

test("broadcasting elementwise math matches JS", () => {
  tidy(() => {
    const xv = jsRandom(1, 6).map((v) => v * 2);
    const yv = jsRandom(2, 4).map((v) => v + 2); // positive: safe divisor
    const x = tensor(xv, { dtype: "float64" }).view(2, 1, 3);
    const y = tensor(yv, { dtype: "float64" }).view(4, 1);
    const out = [2, 4, 3];
    const X = (i: number, k: number) => xv[i * 3 + k];
    assertClose(
      x.add(y).toNumbers(),
      fill(out, ([i, j, k]) => X(i, k) + yv[j]),
      F64,
    );
    assertClose(
      x.add(y, 0.5).toNumbers(),
      fill(out, ([i, j, k]) => X(i, k) + 0.5 * yv[j]),
      F64,
    );
    assertClose(
      x.sub(y).toNumbers(),
      fill(out, ([i, j, k]) => X(i, k) - yv[j]),
      F64,
    );
    assertClose(
      x.mul(y).toNumbers(),
      fill(out, ([i, j, k]) => X(i, k) * yv[j]),
      F64,
    );
    assertClose(
      x.div(y).toNumbers(),
      fill(out, ([i, j, k]) => X(i, k) / yv[j]),
      F64,
    );
    assert.deepEqual(x.add(y).shape, out);
    assertClose(
      x.mul(3).add(1).toNumbers(),
      xv.map((v) => 3 * v + 1),
      F64,
    );
    assertClose(
      y.pow(2.5).toNumbers(),
      yv.map((v) => v ** 2.5),
      F64,
    );
    const unary: [string, (t: Tensor) => Tensor, (v: number) => number, number[]][] = [
      ["neg", (t) => t.neg(), (v) => -v, xv],
      ["abs", (t) => t.abs(), Math.abs, xv],
      ["exp", (t) => t.exp(), Math.exp, xv],
      ["log", (t) => t.log(), Math.log, yv],
      ["sqrt", (t) => t.sqrt(), Math.sqrt, yv],
      ["rsqrt", (t) => t.rsqrt(), (v) => 1 / Math.sqrt(v), yv],
      ["tanh", (t) => t.tanh(), Math.tanh, xv],
      ["sigmoid", (t) => t.sigmoid(), (v) => 1 / (1 + Math.exp(-v)), xv],
      ["sin", (t) => t.sin(), Math.sin, xv],
      ["reciprocal", (t) => t.reciprocal(), (v) => 1 / v, yv],
      ["clamp", (t) => t.clamp(-0.5, 0.5), (v) => Math.min(0.5, Math.max(-0.5, v)), xv],
    ];
    for (const [name, f, g, vs] of unary) {
      assertClose(
        f(tensor(vs, { dtype: "float64" })).toNumbers(),
        vs.map(g),
        F64,
        `float64 ${name}`,
      );
      assertClose(f(tensor(vs)).toNumbers(), vs.map(g), F32_ORACLE, `float32 ${name}`);
    }
    assert.deepEqual(
      tensor([1, 2, 3])
        .gt(tensor([[2], [0]]))
        .tolist(),
      [
        [0, 0, 1],
        [1, 1, 1],
      ],
    );
    assert.equal(tensor([1, 2, 3]).eq(2).dtype, "bool");
    assert.deepEqual(tensor([1, 2, 3]).le(2).toNumbers(), [1, 1, 0]);
    assert.deepEqual(tensor([true, false]).logicalNot().toNumbers(), [0, 1]);
    assert.deepEqual(
      tensor([1, 5])
        .maximum(tensor([3, 2]))
        .toNumbers(),
      [3, 5],
    );
    // int + float promotes to float, as in torch.
    assert.equal(tensor([1, 2], { dtype: "int64" }).add(tensor([0.5, 0.5])).dtype, "float32");
  });
});

test("reductions: sum mean max argmax logsumexp norm cumsum", () => {
  tidy(() => {
    const S = [2, 3, 4];
    const v = jsRandom(3, 24).map((x) => 3 * x);
    const a = tensor(v, { dtype: "float64" }).view(...S);
    const idx = (i: number, j: number, k: number) => v[at(S, [i, j, k])];
    assertClose([a.sum().item()], [v.reduce((s, x) => s + x, 0)], F64);
    assertClose([a.mean().item()], [v.reduce((s, x) => s + x, 0) / 24], F64);
    const s1 = a.sum(1);
    assert.deepEqual(s1.shape, [2, 4]);
    assertClose(
      s1.toNumbers(),
      fill([2, 4], ([i, k]) => idx(i, 0, k) + idx(i, 1, k) + idx(i, 2, k)),
      F64,
    );
    const s02 = a.sum([0, 2], true);
    assert.deepEqual(s02.shape, [1, 3, 1]);
    assertClose(
      s02.toNumbers(),
      [0, 1, 2].map((j) =>
        [0, 1].reduce((s, i) => s + [0, 1, 2, 3].reduce((t, k) => t + idx(i, j, k), 0), 0),
      ),
      F64,
    );
    assertClose(
      a.mean(-1).toNumbers(),
      fill([2, 3], ([i, j]) => [0, 1, 2, 3].reduce((s, k) => s + idx(i, j, k), 0) / 4),
      F64,
    );
    assert.equal(a.max().item(), Math.max(...v));
    assert.equal(a.min().item(), Math.min(...v));
    const { values, indices } = a.maxDim(2);
    const argmaxJs = fill([2, 3], ([i, j]) =>
      [0, 1, 2, 3].reduce((b, k) => (idx(i, j, k) > idx(i, j, b) ? k : b), 0),
    );
    assert.deepEqual(indices.toNumbers(), argmaxJs);
    assert.deepEqual(
      values.toNumbers(),
      fill([2, 3], ([i, j]) => idx(i, j, argmaxJs[i * 3 + j])),
    );
    assert.deepEqual(a.argmax(2).toNumbers(), argmaxJs);
    assert.equal(a.argmax().item(), v.indexOf(Math.max(...v)));
    assert.deepEqual(a.argmax(2, true).shape, [2, 3, 1]);
    const lse = (xs: number[]) => {
      const m = Math.max(...xs);
      return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
    };
    assertClose(
      a.logsumexp(1).toNumbers(),
      fill([2, 4], ([i, k]) => lse([0, 1, 2].map((j) => idx(i, j, k)))),
      F64,
    );
    // logsumexp stays finite where exp overflows.
    // float32 ulp at 1000 is 6e-5: relative, not 1e-4 absolute.
    assertClose(tensor([1000, 1000]).logsumexp(0).toNumbers(), [1000 + Math.log(2)], F32_ORACLE);
    assertClose([a.norm().item()], [Math.sqrt(v.reduce((s, x) => s + x * x, 0))], F64);
    assertClose(
      a.norm(1, 2).toNumbers(),
      fill([2, 3], ([i, j]) => [0, 1, 2, 3].reduce((s, k) => s + Math.abs(idx(i, j, k)), 0)),
      F64,
    );
    assert.deepEqual(tensor([1, 2, 3, 4]).cumsum(0).toNumbers(), [1, 3, 6, 10]);
    assert.equal(tensor([true, true]).all().item(), 1);
    assert.equal(tensor([false, false]).any().item(), 0);
  });
});

/** (n×k)·(k×m) in float64, row-major. */
function jsMatmul(a: number[], b: number[], n: number, k: number, m: number): number[] {
  return fill([n, m], ([i, j]) => {
    let s = 0;
    for (let l = 0; l < k; l++) s += a[i * k + l] * b[l * m + j];
    return s;
  });
}

test("matmul, mm, bmm, addmm, baddbmm match a JS triple loop", () => {
  tidy(() => {
    const o = { dtype: "float64" as const };
    const av = jsRandom(4, 2 * 3 * 5);
    const bv = jsRandom(5, 2 * 5 * 4);
    const cv = jsRandom(6, 2 * 3 * 4);
    const A = tensor(av, o).view(2, 3, 5);
    const B = tensor(bv, o).view(2, 5, 4);
    const C = tensor(cv, o).view(2, 3, 4);
    const per = [0, 1].flatMap((b) =>
      jsMatmul(av.slice(b * 15, b * 15 + 15), bv.slice(b * 20, b * 20 + 20), 3, 5, 4),
    );
    assertClose(A.bmm(B).toNumbers(), per, F64);
    assertClose(A.matmul(B).toNumbers(), per, F64);
    assertClose(
      baddbmm(C, A, B, 0.5, 2).toNumbers(),
      per.map((x, i) => 0.5 * cv[i] + 2 * x),
      F64,
    );
    const A0 = A.select(0, 0);
    const B0 = B.select(0, 0);
    const mm = jsMatmul(av.slice(0, 15), bv.slice(0, 20), 3, 5, 4);
    assertClose(A0.mm(B0).toNumbers(), mm, F64);
    assertClose(
      addmm(C.select(0, 0), A0, B0).toNumbers(),
      mm.map((x, i) => cv[i] + x),
      F64,
    );
    assertClose(
      addmm(tensor(cv.slice(0, 4), o), A0, B0, 2, -1).toNumbers(),
      mm.map((x, i) => 2 * cv[i % 4] - x),
      F64,
    );
    // Broadcast: (2, 3, 5) @ (5, 4).
    const bc = [0, 1].flatMap((b) =>
      jsMatmul(av.slice(b * 15, b * 15 + 15), bv.slice(0, 20), 3, 5, 4),
    );
    assertClose(A.matmul(B0).toNumbers(), bc, F64);
    // float32 path agrees to float32 precision.
    assertClose(A.float().bmm(B.float()).toNumbers(), per, F32_ORACLE, "float32 bmm");
  });
});

test("softmax, logSoftmax, layerNorm, rmsNorm, gelu (exact, tanh), silu, relu match JS", () => {
  tidy(() => {
    const v = jsRandom(7, 12).map((x) => 3 * x);
    const rows = [0, 1, 2].map((r) => v.slice(r * 4, r * 4 + 4));
    for (const dtype of ["float64", "float32"] as const) {
      const tol = dtype === "float64" ? F64 : F32_ORACLE;
      const chained = dtype === "float64" ? F64 : F32_CHAINED;
      const x = tensor(v, { dtype }).view(3, 4);
      const sm = rows.flatMap((r) => {
        const m = Math.max(...r);
        const z = r.reduce((s, a) => s + Math.exp(a - m), 0);
        return r.map((a) => Math.exp(a - m) / z);
      });
      assertClose(x.softmax(-1).toNumbers(), sm, tol, `${dtype} softmax`);
      assertClose(x.logSoftmax(1).toNumbers(), sm.map(Math.log), chained, `${dtype} logSoftmax`);
      const w = [0.5, -1, 2, 1.5];
      const b = [0.1, 0.2, -0.3, 0];
      const ln = rows.flatMap((r) => {
        const mu = r.reduce((s, a) => s + a, 0) / 4;
        const va = r.reduce((s, a) => s + (a - mu) ** 2, 0) / 4; // biased variance, as torch
        return r.map((a, i) => ((a - mu) / Math.sqrt(va + 1e-5)) * w[i] + b[i]);
      });
      assertClose(
        layerNorm(x, [4], tensor(w, { dtype }), tensor(b, { dtype })).toNumbers(),
        ln,
        chained,
        `${dtype} layerNorm`,
      );
      const rms = rows.flatMap((r) => {
        const ms = r.reduce((s, a) => s + a * a, 0) / 4;
        return r.map((a, i) => (a / Math.sqrt(ms + 1e-6)) * w[i]);
      });
      // rmsNorm computes in float32 whatever the input.
      assertClose(
        rmsNorm(x, tensor(w, { dtype }), 1e-6).toNumbers(),
        rms,
        F32_ORACLE,
        `${dtype} rmsNorm`,
      );
      assertClose(
        x.gelu().toNumbers(),
        v.map((a) => 0.5 * a * (1 + erf(a / Math.SQRT2))),
        chained,
        `${dtype} gelu`,
      );
      const c = Math.sqrt(2 / Math.PI);
      const geluTanh = v.map((a) => 0.5 * a * (1 + Math.tanh(c * (a + 0.044715 * a ** 3))));
      assertClose(x.gelu("tanh").toNumbers(), geluTanh, chained, `${dtype} gelu tanh`);
      assertClose(
        x.silu().toNumbers(),
        v.map((a) => a / (1 + Math.exp(-a))),
        tol,
        `${dtype} silu`,
      );
      assert.deepEqual(
        x.relu().toNumbers(),
        (dtype === "float32" ? f32(v) : v).map((a) => Math.max(0, a)),
      );
    }
    // rmsNorm of bfloat16 input computes in float32 and returns bfloat16.
    assert.equal(
      rmsNorm(ones([2, 4], { dtype: "bfloat16" }), ones([4], { dtype: "bfloat16" }), 1e-6).dtype,
      "bfloat16",
    );
  });
});

test("rmsNorm keeps float64 precision for float64 input", () => {
  tidy(() => {
    const v = [0.3, -1.2, 2.5, 0.7];
    const ms = v.reduce((s, a) => s + a * a, 0) / 4;
    const x = tensor(v, { dtype: "float64" });
    assertClose(
      rmsNorm(x, ones([4], { dtype: "float64" }), 1e-6).toNumbers(),
      v.map((a) => a / Math.sqrt(ms + 1e-6)),
      F64,
    );
  });
});

test("dropout: identity in eval or p=0; in training zeroes ~p and scales by 1/(1−p); seeded", () => {
  tidy(() => {
    const x = ones([20000]);
    assert.equal(dropout(x, 0.5, false), x);
    assert.equal(dropout(x, 0, true), x);
    manualSeed(123);
    const a = dropout(x, 0.3, true).toNumbers();
    const kept = a.filter((v) => v !== 0);
    for (const v of kept) assert.equal(v, Math.fround(1 / 0.7));
    const zeroFrac = 1 - kept.length / a.length;
    assert.ok(Math.abs(zeroFrac - 0.3) < 0.02, `zeroed fraction ${zeroFrac}`);
    manualSeed(123);
    assert.deepEqual(dropout(x, 0.3, true).toNumbers(), a, "same seed, same mask");
    assert.notDeepEqual(dropout(x, 0.3, true).toNumbers(), a, "next draw differs");
    assert.deepEqual(dropout(ones([5]), 1, true).toNumbers(), [0, 0, 0, 0, 0]);
  });
});

test("embedding gathers rows", () => {
  tidy(() => {
    const w = tensor(fill([5, 3], ([i, j]) => 10 * i + j)).view(5, 3);
    const ids = tensor(
      [
        [4, 0],
        [2, 2],
      ],
      { dtype: "int64" },
    );
    const e = embedding(w, ids);
    assert.deepEqual(e.shape, [2, 2, 3]);
    assert.deepEqual(e.toNumbers(), [40, 41, 42, 0, 1, 2, 20, 21, 22, 20, 21, 22]);
  });
});

test("crossEntropy with ignoreIndex, labelSmoothing and reductions matches a JS float64 computation", () => {
  tidy(() => {
    const N = 5;
    const C = 4;
    const v = jsRandom(8, N * C).map((x) => 4 * x);
    const target = [2, -100, 0, 3, 1];
    const logp = [...Array(N).keys()].map((i) => {
      const r = v.slice(i * C, i * C + C);
      const m = Math.max(...r);
      const lz = m + Math.log(r.reduce((s, a) => s + Math.exp(a - m), 0));
      return r.map((a) => a - lz);
    });
    const per = (eps: number, ignore: number) =>
      target.map((t, i) =>
        t === ignore ? 0 : -(1 - eps) * logp[i][t] - (eps / C) * logp[i].reduce((s, a) => s + a, 0),
      );
    const logits = tensor(v, { dtype: "float64" }).view(N, C);
    for (const eps of [0, 0.1]) {
      const ids = tensor(target, { dtype: "int64" });
      const p = per(eps, -100);
      const kept = target.filter((t) => t !== -100).length;
      const o = { labelSmoothing: eps };
      assertClose(
        [crossEntropy(logits, ids, o).item()],
        [p.reduce((s, a) => s + a, 0) / kept],
        F64,
        `CE mean ε=${eps}`,
      );
      assertClose(
        [crossEntropy(logits, ids, { ...o, reduction: "sum" }).item()],
        [p.reduce((s, a) => s + a, 0)],
        F64,
      );
      assertClose(crossEntropy(logits, ids, { ...o, reduction: "none" }).toNumbers(), p, F64);
      // A different ignoreIndex: class 3 is ignored and -100 is then an error (out of range).
      const t2 = tensor(
        target.map((t) => (t === -100 ? 3 : t)),
        { dtype: "int64" },
      );
      const p2 = target.map((t, i) => (t === -100 || t === 3 ? 0 : p[i]));
      assertClose(
        [crossEntropy(logits, t2, { ...o, ignoreIndex: 3 }).item()],
        [p2.reduce((s, a) => s + a, 0) / 3],
        F64,
      );
    }
    assert.throws(() =>
      crossEntropy(logits, tensor(target, { dtype: "int64" }), { ignoreIndex: 3 }),
    );
    // float32 logits agree to float32 precision.
    assertClose(
      [crossEntropy(logits.float(), tensor(target, { dtype: "int64" })).item()],
      [per(0, -100).reduce((s, a) => s + a, 0) / 4],
      F32_ORACLE,
    );
  });
});

test("maskedFill, triu, tril, where", () => {
  tidy(() => {
    const x = tensor(fill([3, 3], ([i, j]) => 3 * i + j + 1)).view(3, 3);
    assert.deepEqual(x.triu().tolist(), [
      [1, 2, 3],
      [0, 5, 6],
      [0, 0, 9],
    ]);
    assert.deepEqual(x.triu(1).tolist(), [
      [0, 2, 3],
      [0, 0, 6],
      [0, 0, 0],
    ]);
    assert.deepEqual(x.tril().tolist(), [
      [1, 0, 0],
      [4, 5, 0],
      [7, 8, 9],
    ]);
    assert.deepEqual(x.tril(-1).tolist(), [
      [0, 0, 0],
      [4, 0, 0],
      [7, 8, 0],
    ]);
    const mask = tensor([true, false, true]);
    assert.deepEqual(x.maskedFill(mask, -Infinity).tolist(), [
      [-Infinity, 2, -Infinity],
      [-Infinity, 5, -Infinity],
      [-Infinity, 8, -Infinity],
    ]);
    assert.deepEqual(x.maskedFill(mask.unsqueeze(1), tensor(0)).tolist(), [
      [0, 0, 0],
      [4, 5, 6],
      [0, 0, 0],
    ]);
    assert.deepEqual(where(x.gt(4), x, tensor(-1)).toNumbers(), [-1, -1, -1, -1, 5, 6, 7, 8, 9]);
    assert.deepEqual(where(x.gt(4), x, 0).toNumbers(), [0, 0, 0, 0, 5, 6, 7, 8, 9]);
    const y = x.clone();
    y.maskedFill_(y.lt(3), 0);
    assert.deepEqual(y.toNumbers(), [0, 0, 3, 4, 5, 6, 7, 8, 9]);
  });
});

test("gather, indexSelect, scatter, topk, sort", () => {
  tidy(() => {
    const x = tensor([
      [10, 11, 12],
      [20, 21, 22],
    ]);
    const idx = tensor(
      [
        [2, 0],
        [1, 1],
      ],
      { dtype: "int64" },
    );
    assert.deepEqual(x.gather(1, idx).tolist(), [
      [12, 10],
      [21, 21],
    ]);
    assert.deepEqual(x.indexSelect(1, tensor([2, 0], { dtype: "int64" })).tolist(), [
      [12, 10],
      [22, 20],
    ]);
    assert.deepEqual(x.indexSelect(0, tensor([1, 1, 0], { dtype: "int64" })).tolist(), [
      [20, 21, 22],
      [20, 21, 22],
      [10, 11, 12],
    ]);
    const z = zeros([2, 3]);
    assert.deepEqual(
      z
        .scatter(
          1,
          idx,
          tensor([
            [1, 2],
            [3, 4],
          ]),
        )
        .tolist(),
      [
        [2, 0, 1],
        [0, 4, 0],
      ],
    );
    assert.deepEqual(z.scatter(1, tensor([[0], [2]], { dtype: "int64" }), 7).tolist(), [
      [7, 0, 0],
      [0, 0, 7],
    ]);
    const v = tensor([3, 1, 4, 1, 5, 9, 2, 6]);
    const top = v.topk(3);
    assert.deepEqual(top.values.toNumbers(), [9, 6, 5]);
    assert.deepEqual(top.indices.toNumbers(), [5, 7, 4]);
    assert.deepEqual(v.topk(2, -1, false).values.toNumbers(), [1, 1]);
    const srt = v.sort(0, true);
    assert.deepEqual(srt.values.toNumbers(), [9, 6, 5, 4, 3, 2, 1, 1]);
    assert.equal(srt.indices.dtype, "int64");
  });
});

test("multinomial: seeded generators repeat; frequencies follow the probabilities", () => {
  tidy(() => {
    const probs = tensor([
      [0.2, 0.8, 0],
      [0, 0, 1],
    ]);
    const a = multinomial(probs, 2000, true, new Generator(42)).toNumbers();
    const b = multinomial(probs, 2000, true, new Generator(42)).toNumbers();
    assert.deepEqual(a, b, "same seed, same samples");
    const c = multinomial(probs, 2000, true, new Generator(43)).toNumbers();
    assert.notDeepEqual(a, c);
    const row0 = a.slice(0, 2000);
    assert.ok(!row0.includes(2), "zero-probability class drawn");
    const frac1 = row0.filter((s) => s === 1).length / 2000;
    assert.ok(Math.abs(frac1 - 0.8) < 0.04, `class 1 frequency ${frac1}`);
    assert.deepEqual(new Set(a.slice(2000)), new Set([2]));
    const noRep = multinomial(tensor([0.1, 0.2, 0.3, 0.4]), 4, false, new Generator(1)).toNumbers();
    assert.deepEqual([...noRep].sort(), [0, 1, 2, 3]);
    // The default generator follows manualSeed.
    manualSeed(7);
    const d1 = multinomial(tensor([0.25, 0.25, 0.25, 0.25]), 50, true).toNumbers();
    manualSeed(7);
    assert.deepEqual(multinomial(tensor([0.25, 0.25, 0.25, 0.25]), 50, true).toNumbers(), d1);
  });
});

test("casting and to(device) read back as torch does", () => {
  tidy(() => {
    const x = tensor([-1.7, -0.5, 0, 0.5, 2.9, 1 / 3]);
    assert.deepEqual(x.long().toNumbers(), [-1, 0, 0, 0, 2, 0]); // truncation toward zero
    assert.deepEqual(x.int().toArray(), Int32Array.from([-1, 0, 0, 0, 2, 0]));
    assert.deepEqual(x.bool().toNumbers(), [1, 1, 0, 1, 1, 1]);
    assert.equal(x.to("float64").toNumbers()[5], Math.fround(1 / 3)); // float32 → float64 is exact
    assert.deepEqual(x.to("float16").toArray()[5], 0x3555);
    assert.deepEqual(x.to("bfloat16").toArray()[5], 0x3eab);
    assert.deepEqual(tensor([300, -1], { dtype: "int64" }).to("uint8").toNumbers(), [44, 255]); // wraps
    const c = x.to("cpu");
    assert.equal(c.device, "cpu");
    assert.deepEqual(c.toNumbers(), x.toNumbers());
    // to(dtype, copy=true) is a new storage; without copy, the same dtype aliases.
    const alias = x.to("float32");
    const copy = x.to("float32", true);
    x.fill_(0);
    assert.deepEqual(alias.toNumbers(), [0, 0, 0, 0, 0, 0]);
    assert.notDeepEqual(copy.toNumbers(), [0, 0, 0, 0, 0, 0]);
  });
});
