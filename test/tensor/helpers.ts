/**
 * Shared helpers for the engine tests: independent JS float64 oracles (erf, row-major index
 * maps, seeded random numbers). Float comparison is test/helpers/close.ts (relative tolerances).
 */
import { mulberry32 } from "../../src/util/random.js";

/** Row-major values of `shape` where element [i, j, ...] is `f([i, j, ...])`. */
export function fill(shape: number[], f: (idx: number[]) => number): number[] {
  const out: number[] = [];
  const idx = shape.map(() => 0);
  const n = shape.reduce((a, b) => a * b, 1);
  for (let k = 0; k < n; k++) {
    out.push(f(idx.slice()));
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** Flat offset of `idx` in a row-major array of `shape`. */
export function at(shape: number[], idx: number[]): number {
  let off = 0;
  for (let d = 0; d < shape.length; d++) off = off * shape[d] + idx[d];
  return off;
}

/** erf(x) by its Maclaurin series (|x| ≤ 4: error < 1e-13), the oracle for exact gelu. */
export function erf(x: number): number {
  if (Math.abs(x) > 4) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32), independent of the engine. */
export function jsRandom(seed: number, n: number): number[] {
  const next = mulberry32(seed);
  return Array.from({ length: n }, () => next() * 2 - 1); // ×2 is exact: u32 / 2^31 − 1
}
