/**
 * Tests for src/train/data.ts: the response-only label mask (hand-checked against GPT-2's
 * vocab.json), BOS/EOS placement with llama2.c's tok512, truncation that keeps the response
 * start, T5-style encoder/decoder rows, packing, the per-epoch length-grouped order, collation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import {
  collate,
  epochOrder,
  IGNORE_INDEX,
  labelTokens,
  pack,
  tokenizeAll,
  tokenizeSft,
} from "../../src/train/data.js";
import { tidy } from "../../src/tensor/index.js";
import { dataPath, skipReason } from "../helpers/data.js";
import { examples, TOK512, tok512Path } from "./helpers.js";

const M = IGNORE_INDEX;

test("labels mask exactly the prompt tokens (GPT-2, hand-checked ids)", async (t) => {
  const dir = dataPath("tokenizers", "gpt2");
  if (!dir) return t.skip(skipReason("tokenizers", "gpt2"));
  const tok = await loadTokenizer(dir);
  const f = tokenizeSft(
    tok,
    { prompt: "Q: 2+2?\nA:", response: " 4" },
    { kind: "causal", maxLength: 64 },
  );
  // vocab.json: Q=48 :=25 Ġ2=362 +=10 2=17 ?=30 Ċ=198 A=32 :=25 | Ġ4=604 <|endoftext|>=50256
  assert.deepEqual(f.inputIds, [48, 25, 362, 10, 17, 30, 198, 32, 25, 604, 50256]);
  assert.deepEqual(f.labels, [M, M, M, M, M, M, M, M, M, 604, 50256]);
  assert.equal(labelTokens(f, "causal"), 2);
});

test("llama2.c tok512: BOS opens the prompt, EOS closes the response", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const prompt = tok.encode("Hi:", { addSpecialTokens: false });
  const resp = tok.encode("yes", { addSpecialTokens: false });
  const f = tokenizeSft(tok, { prompt: "Hi:", response: "yes" }, { kind: "causal", maxLength: 64 });
  assert.deepEqual(f.inputIds, [1, ...prompt, ...resp, 2]);
  assert.deepEqual(f.labels, [M, ...prompt.map(() => M), ...resp, 2]);
});

test("truncation keeps BOS, the prompt's end and the response's start", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const ex = {
    prompt: "Once upon a time there was a little girl named Lily.",
    response: "She liked to play in the park.",
  };
  const body = tok.encode(ex.prompt, { addSpecialTokens: false });
  const resp = [...tok.encode(ex.response, { addSpecialTokens: false }), 2];
  assert.ok(body.length > 8 && resp.length > 8, "the example must be long enough to cut");
  const L = 12; // the response gets 12 - min(P, 6) = 6 tokens, the prompt BOS + its last 5
  const f = tokenizeSft(tok, ex, { kind: "causal", maxLength: L });
  assert.equal(f.inputIds.length, L);
  assert.deepEqual(f.inputIds, [1, ...body.slice(-5), ...resp.slice(0, 6)]);
  assert.deepEqual(f.labels, [M, M, M, M, M, M, ...resp.slice(0, 6)]);
  // A short prompt is kept whole and the response fills the rest.
  const g = tokenizeSft(
    tok,
    { prompt: "Hi", response: ex.response },
    { kind: "causal", maxLength: L },
  );
  const hi = tok.encode("Hi", { addSpecialTokens: false });
  assert.deepEqual(g.inputIds, [1, ...hi, ...resp.slice(0, L - 1 - hi.length)]);
});

test("seq2seq: prompt → encoder with the tokenizer's EOS, response + EOS → labels (t5-small)", async (t) => {
  const dir = dataPath("tokenizers", "t5-small");
  if (!dir) return t.skip(skipReason("tokenizers", "t5-small"));
  const tok = await loadTokenizer(dir);
  const f = tokenizeSft(
    tok,
    { prompt: "hi there", response: "yes" },
    { kind: "seq2seq", maxLength: 64 },
  );
  assert.deepEqual(f.inputIds, tok.encode("hi there"));
  assert.equal(f.inputIds.at(-1), 1);
  assert.deepEqual(f.labels, [...tok.encode("yes", { addSpecialTokens: false }), 1]);
  assert.equal(labelTokens(f, "seq2seq"), f.labels.length);
  const cut = tokenizeSft(
    tok,
    { prompt: "hi there", response: "yes" },
    { kind: "seq2seq", maxLength: 2 },
  );
  assert.deepEqual(cut.inputIds, [tok.encode("hi there", { addSpecialTokens: false })[0], 1]);
  assert.deepEqual(cut.labels, f.labels.slice(0, 2));
  tidy(() => {
    const b = collate([f, { inputIds: [5], labels: [7, 1] }], {
      kind: "seq2seq",
      padId: 0,
      decoderStartId: 0,
    });
    const L = Math.max(f.labels.length, 2);
    const row0 = [0, ...f.labels.slice(0, -1)];
    assert.deepEqual(b.decoderInputIds!.tolist(), [
      [...row0, ...Array(L - row0.length).fill(0)],
      [0, 7, ...Array(L - 2).fill(0)],
    ]);
    assert.deepEqual((b.labels.tolist() as number[][])[1], [7, 1, ...Array(L - 2).fill(M)]);
    assert.deepEqual((b.attentionMask.tolist() as number[][])[1], [
      1,
      ...Array(f.inputIds.length - 1).fill(0),
    ]);
  });
});

test("tokenizeAll names the bad example", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const bad = [{ prompt: "a", response: "b" }, { prompt: "a" }] as never;
  assert.throws(
    () => tokenizeAll(tok, bad, { kind: "causal", maxLength: 8 }),
    /examples\[1\]: needs string fields/,
  );
});

test("causal collate pads inputs with padId and labels with -100, on the right", () => {
  tidy(() => {
    const b = collate(
      [
        { inputIds: [1, 5, 6], labels: [M, M, 6] },
        { inputIds: [1, 9], labels: [M, 9] },
      ],
      { kind: "causal", padId: 0 },
    );
    assert.deepEqual(b.inputIds.tolist(), [
      [1, 5, 6],
      [1, 9, 0],
    ]);
    assert.deepEqual(b.attentionMask.tolist(), [
      [1, 1, 1],
      [1, 1, 0],
    ]);
    assert.deepEqual(b.labels.tolist(), [
      [M, M, 6],
      [M, 9, M],
    ]);
    assert.equal(b.inputIds.dtype, "int64");
    assert.equal(b.decoderInputIds, null);
  });
});

test("packing concatenates whole rows in order, each at most maxLength", async (t) => {
  const path = tok512Path();
  if (!path) return t.skip(skipReason(...TOK512));
  const tok = await loadTokenizer(path);
  const rows = tokenizeAll(tok, examples(20), { kind: "causal", maxLength: 128 });
  const packed = pack(rows, 128);
  assert.ok(packed.length < rows.length, `${rows.length} rows packed into ${packed.length}`);
  for (const r of packed)
    assert.ok(r.inputIds.length <= 128 && r.labels.length === r.inputIds.length, "row length");
  assert.deepEqual(
    packed.flatMap((r) => r.inputIds),
    rows.flatMap((r) => r.inputIds),
  );
  assert.deepEqual(
    packed.flatMap((r) => r.labels),
    rows.flatMap((r) => r.labels),
  );
  // Greedy: the next row's first example would not have fitted.
  let i = 0;
  for (const r of packed.slice(0, -1)) {
    let n = 0;
    while (n < r.inputIds.length) n += rows[i++].inputIds.length;
    assert.ok(r.inputIds.length + rows[i].inputIds.length > 128, "greedy packing");
  }
});

test("epochOrder: a seeded permutation, length-sorted within mega-batches", () => {
  const lengths = Array.from({ length: 400 }, (_, i) => (i * 37) % 101);
  const a = epochOrder(lengths, 4, 11);
  assert.deepEqual(epochOrder(lengths, 4, 11), a);
  assert.notDeepEqual(epochOrder(lengths, 4, 12), a);
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    lengths.map((_, i) => i),
  );
  // n / (4·batch) = 25 batches per mega-batch of 100 rows, each longest first.
  for (let s = 0; s < 400; s += 100) {
    const ls = a.slice(s, s + 100).map((i) => lengths[i]);
    assert.deepEqual(
      ls,
      [...ls].sort((x, y) => y - x),
    );
  }
  assert.ok(
    lengths[a[99]] < lengths[a[100]] || lengths[a[199]] < lengths[a[200]],
    "mega-batches are not one sorted run",
  );
});
