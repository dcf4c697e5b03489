/**
 * `logitsToKeep` (transformers' `logits_to_keep`): the head runs on the last N positions only,
 * and those logits are the last N rows of the full forward's, for every architecture (decoder
 * positions for T5), with and without padding and a cache.
 */
import assert from "node:assert/strict";
import test from "node:test";
import { randint, Generator, tensor, tidy } from "../../src/tensor/index.js";
import { assertTensorClose, F32 } from "../helpers/close.js";
import { tinyFamilies, tinyModel } from "./tiny.js";

for (const { modelType } of tinyFamilies()) {
  test(`${modelType}: logitsToKeep N gives the last N rows of every position's logits`, () => {
    const model = tinyModel(modelType, 3);
    try {
      tidy(() => {
        const ids = randint(0, 61, [2, 7], { generator: new Generator(5) });
        const mask = tensor([
          [0, 0, 1, 1, 1, 1, 1],
          [1, 1, 1, 1, 1, 1, 1],
        ]);
        for (const keep of [1, 3]) {
          const run = (logitsToKeep?: number) =>
            model.kind === "causal"
              ? model.forward({ inputIds: ids, attentionMask: mask, logitsToKeep }).logits
              : model.forward({
                  inputIds: ids,
                  attentionMask: mask,
                  decoderInputIds: ids,
                  logitsToKeep,
                }).logits;
          const all = run();
          const some = run(keep);
          assert.deepEqual(some.shape, [2, keep, 61]);
          assertTensorClose(some, all.narrow(1, 7 - keep, keep), F32, `${modelType} keep ${keep}`);
          assert.deepEqual(run(0).shape, all.shape, "0 keeps every position");
          assert.deepEqual(run(99).shape, all.shape, "more than T keeps every position");
        }
      });
    } finally {
      model.dispose();
    }
  });
}
