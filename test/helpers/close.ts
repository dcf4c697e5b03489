/**
 * Float comparison for tests whose numbers come from libtorch kernels. Kernels differ between
 * CPUs (AVX2 vs AVX-512/AMX, MKL/oneDNN blocking, summation order), so results agree to a number
 * of ulps relative to their magnitude, never to an absolute number of decimals: −543.5788283 vs
 * −543.5788126 is 3e-8 relative. Semantics follow numpy.isclose / torch.testing.assert_close,
 * made symmetric: |a − b| ≤ atol + rtol·max(|a|, |b|); atol only covers values near zero.
 * Exact equality stays right where the guarantee is bit-exact (same seed, same process, same
 * kernels) and for integer results and metrics. Comparisons print the max diff (STYLE.md #19).
 */
import assert from "node:assert/strict";
import { tidy, type Tensor } from "../../src/tensor/index.js";

export interface Tol {
  /** Allowed difference per unit of magnitude. */
  rtol: number;
  /** Allowed difference near zero. @default 0 */
  atol?: number;
}

/**
 * Two float32 computations of one tensor by different kernels (padded vs alone, cached vs
 * not): max diff within 1e-5 of the tensor's magnitude, about 100 ulps.
 */
export const F32: Tol = { rtol: 1e-5 };
/** float64 kernels vs a JS float64 oracle summing in another order: a few hundred ulps. */
export const F64: Tol = { rtol: 1e-13, atol: 1e-13 };

/** |a − b| ≤ atol + rtol·max(|a|, |b|); NaN only matches NaN, ±Infinity only itself. */
export function isClose(a: number, b: number, tol: Tol): boolean {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return Object.is(a, b) || a === b;
  return Math.abs(a - b) <= (tol.atol ?? 0) + tol.rtol * Math.max(Math.abs(a), Math.abs(b));
}

const fmt = (x: number) => x.toExponential(2);

/** One number: fails with both values and the relative difference. */
export function assertNear(actual: number, expected: number, tol: Tol, what = ""): void {
  if (isClose(actual, expected, tol)) return;
  const rel = Math.abs(actual - expected) / Math.max(Math.abs(actual), Math.abs(expected));
  assert.fail(
    `${what}: got ${actual}, expected ${expected} (diff ${fmt(Math.abs(actual - expected))}, ` +
      `relative ${fmt(rel)}; allowed rtol ${tol.rtol}, atol ${tol.atol ?? 0})`,
  );
}

/** Elementwise `isClose` (lengths must match); prints the max absolute diff when `what` is set. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol,
  what = "",
): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: length ${actual.length} vs ${expected.length}`,
  );
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) {
    assertNear(actual[i], expected[i], tol, `${what}[${i}]`);
    if (Number.isFinite(expected[i]))
      maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
  }
  if (what) console.log(`# ${what}: max diff ${fmt(maxDiff)}`);
}

/** Max |a − b| and max(|a|, |b|) over two tensors of one shape. */
export function tensorDiff(a: Tensor, b: Tensor): { diff: number; scale: number } {
  return tidy(() => ({
    diff: a.sub(b).abs().max().item(),
    scale: Math.max(a.abs().max().item(), b.abs().max().item()),
  }));
}

/** max|a − b| relative to max(|a|, |b|) over two tensors (0 when both are zero). */
export function relDiff(a: Tensor, b: Tensor): number {
  const { diff, scale } = tensorDiff(a, b);
  return diff === 0 ? 0 : diff / scale;
}

/**
 * Two tensors agree relative to the tensor's magnitude: max|a − b| ≤ atol + rtol·max(|a|, |b|)
 * over all elements. Rounding of a matmul or a softmax scales with the size of the whole row,
 * so a logit near zero next to logits of 10 is held to the row's scale, not its own.
 */
export function assertTensorClose(actual: Tensor, expected: Tensor, tol: Tol, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shapes differ`);
  const { diff, scale } = tensorDiff(actual, expected);
  console.log(`# ${what}: max diff ${fmt(diff)} (scale ${fmt(scale)})`);
  const allowed = (tol.atol ?? 0) + tol.rtol * scale;
  assert.ok(
    diff <= allowed,
    `${what}: max diff ${fmt(diff)} > ${fmt(allowed)} (rtol ${tol.rtol} × scale ${fmt(scale)} + atol ${tol.atol ?? 0})`,
  );
}
