/**
 * llama2.c import: the converted stories260K must decode greedily exactly as llama2.c's run.c
 * does (published output in karpathy/llama2.c doc/stories260K.md, `./run ... -t 0.0`), and bad
 * files must fail naming the file and the field.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadLlama2c } from "../../src/io/llama2c.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { noGrad, tensor, tidy } from "../../src/tensor/index.js";
import { dataPath, skipReason } from "../helpers/data.js";

/** llama2.c doc/stories260K.md, greedy output of run.c (first lines). */
const PUBLISHED =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
  "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n" +
  "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do.";

test("stories260K: greedy decoding from BOS reproduces llama2.c's run.c", async (t) => {
  const dir = dataPath("models", "stories260K");
  if (dir === null) return t.skip(skipReason("models", "stories260K"));
  const model = await loadLlama2c(join(dir, "stories260K.bin"));
  const tok = await loadTokenizer(join(dir, "tok512.bin"));
  const c = model.config;
  assert.deepEqual(
    [
      c.hidden_size,
      c.num_hidden_layers,
      c.num_attention_heads,
      c.num_key_value_heads,
      c.vocab_size,
    ],
    [64, 5, 8, 4, 512],
  );
  assert.equal(c.max_position_embeddings, 512);
  const ids = [1];
  noGrad(() => {
    for (let i = 0; i < 64; i++) {
      const next = tidy(() => {
        const { logits } = model.forward({ inputIds: tensor([ids], { dtype: "int64" }) });
        return logits.select(1, -1).argmax(-1).item();
      });
      ids.push(next);
    }
  });
  const text = tok.decode(ids, { skipSpecialTokens: true });
  assert.ok(
    text.startsWith(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.",
    ),
    text,
  );
  // The 64 tokens end on "\nLily" of the published second line.
  assert.equal(
    text,
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily",
  );
  assert.ok(PUBLISHED.startsWith(text));
  model.dispose();
});

test("loadLlama2c: a truncated file and a versioned export fail naming the file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-llama2c-"));
  const header = new Int32Array([64, 172, 2, 8, 4, 512, 16]);
  const short = join(dir, "short.bin");
  writeFileSync(short, Buffer.concat([Buffer.from(header.buffer), Buffer.alloc(400)]));
  await assert.rejects(
    loadLlama2c(short),
    (e: Error) => e.message.startsWith(short) && /needs \d+/.test(e.message),
  );
  const versioned = join(dir, "v1.bin");
  writeFileSync(versioned, Buffer.from(new Int32Array([0x616b3432, 1, 0, 0, 0, 0, 0]).buffer));
  await assert.rejects(loadLlama2c(versioned), /versioned export \(version 1\)/);
  const bad = join(dir, "bad.bin");
  writeFileSync(bad, Buffer.from(new Int32Array([64, 172, 2, 8, 4, 512, -3]).buffer));
  await assert.rejects(loadLlama2c(bad), /header field "seq_len" = -3/);
});
