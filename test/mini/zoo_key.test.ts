/**
 * The zoo's cache key (src/mini/zoo.ts `zooKey`) is a content hash of what the models learn from,
 * as the world data's is of its files: the same inputs give the same folder, and a change to any
 * training row, the spec or the vocabulary gives another, with no version number to bump.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateWorld, QUICK_SIZES } from "../../src/mini/world.js";
import { ZOO_QUICK, zooKey } from "../../src/mini/zoo.js";

test("zooKey: same inputs, same key; any training row, spec field or word changes it", () => {
  const world = generateWorld(7, QUICK_SIZES);
  const vocab = ["<pad>", "<s>", "</s>", "alice", "red"];
  const rows = { prompt: "", response: "alice is red" };
  const examples = Object.fromEntries(Object.keys(ZOO_QUICK).map((n) => [n, [rows]]));
  const key = zooKey(world, ZOO_QUICK, vocab, examples);
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(zooKey(world, ZOO_QUICK, [...vocab], structuredClone(examples)), key);

  const first = Object.keys(ZOO_QUICK)[0];
  const otherRow = { ...examples, [first]: [{ prompt: "", response: "alice is blue" }] };
  assert.notEqual(zooKey(world, ZOO_QUICK, vocab, otherRow), key);
  const moreRows = { ...examples, [first]: [rows, rows] };
  assert.notEqual(zooKey(world, ZOO_QUICK, vocab, moreRows), key);
  assert.notEqual(zooKey(world, ZOO_QUICK, [...vocab, "blue"], examples), key);
  const spec = structuredClone(ZOO_QUICK) as Record<string, { train: { lr?: number } }>;
  spec[first].train.lr = 0.123;
  assert.notEqual(zooKey(world, spec as typeof ZOO_QUICK, vocab, examples), key);
  assert.notEqual(zooKey({ ...world, seed: 8 }, ZOO_QUICK, vocab, examples), key);
});
