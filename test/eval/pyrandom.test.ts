/**
 * PyRandom against values printed by CPython's `random` module (3.11.7), e.g.
 * `random.Random(1234).random()` and `random.Random(42).sample(range(10), 3)`; every value here
 * is printed by `.venv/bin/python test/eval/reference/print_references.py`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { PyRandom } from "../../src/eval/pyrandom.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test("random() equals CPython for small and multi-word seeds", () => {
  assert.equal(new PyRandom(1234).random(), 0.9664535356921388);
  assert.equal(new PyRandom(2 ** 40 + 5).random(), 0.5043802970418443);
});

test("sample() equals CPython on both of its branches (pool and set)", () => {
  assert.deepEqual(new PyRandom(42).sample(range(10), 3), [1, 0, 4]);
  assert.deepEqual(new PyRandom(1234).sample(range(20), 8), [14, 3, 0, 2, 1, 10, 11, 15]);
  const r = new PyRandom(1234);
  assert.deepEqual(r.sample(range(1000), 5), [989, 796, 451, 119, 7]);
  assert.equal(r.getrandbits(32), 389311301); // the stream continues where sample() left it
});

test("choices() equals CPython", () => {
  assert.deepEqual(new PyRandom(0).choices(range(100), 5), [84, 75, 42, 25, 51]);
});

test("sample() rejects k larger than the population", () => {
  assert.throws(() => new PyRandom(1).sample([1, 2], 3), /larger than population/);
});
