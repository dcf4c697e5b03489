/**
 * Tests for src/models/blocks.ts over every registered architecture: a forward pass holds one
 * block's tensors at a time (the JS handles alive after a forward do not grow with the number of
 * blocks, with or without autograd), keys and values survive only when asked for, and
 * `consume` lets a handle go while the tensor made from it keeps its storage. The numerics of
 * the block-by-block forward are checked by the families' parity tests (test/models/*.test.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createModel, parseModelConfig } from "../../src/models/index.js";
import { consume, runBlocks } from "../../src/models/blocks.js";
import type { LanguageModel } from "../../src/models/types.js";
import { liveTensors, noGrad, ones, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { TINY_CONFIGS, tinyFamilies } from "./tiny.js";

/** The tiny config of `modelType` with `n` blocks (T5: n encoder and n decoder blocks). */
function withBlocks(modelType: string, n: number): LanguageModel {
  const raw = TINY_CONFIGS[modelType];
  const key = ["n_layer", "num_hidden_layers", "num_layers"].find((k) => k in raw)!;
  const extra = modelType === "t5" ? { num_decoder_layers: n } : {};
  return createModel(parseModelConfig({ ...raw, [key]: n, ...extra }), { seed: 0 });
}

const ids = (rows: number[][]): Tensor => tensor(rows, { dtype: "int64" });

/** Live tensors right after a forward (and the number of cache layers it returned). */
function afterForward(model: LanguageModel, useCache: boolean): { live: number; layers: number } {
  return tidy(() => {
    const start = liveTensors();
    const inputIds = ids([
      [5, 7, 9, 11, 13, 2],
      [3, 4, 5, 6, 7, 8],
    ]);
    const out =
      model.kind === "causal"
        ? model.forward({ inputIds, useCache })
        : model.forward({
            inputIds,
            decoderInputIds: ids([
              [0, 5, 6],
              [0, 8, 9],
            ]),
            useCache,
          });
    return { live: liveTensors() - start, layers: out.cache?.length ?? 0 };
  });
}

for (const { modelType } of tinyFamilies()) {
  test(`${modelType}: live tensors after a forward do not grow with the blocks (eval and train)`, () => {
    const [small, big] = [2, 6].map((n) => withBlocks(modelType, n));
    for (const mode of ["eval", "train"] as const) {
      for (const m of [small, big]) m.train(mode === "train");
      const run = (m: LanguageModel) =>
        mode === "eval" ? noGrad(() => afterForward(m, false)) : afterForward(m, false);
      const [a, b] = [run(small), run(big)];
      console.log(
        `# ${modelType} ${mode}: live after forward, 2 blocks ${a.live}, 6 blocks ${b.live}`,
      );
      assert.equal(b.live, a.live, `${mode}: 6 blocks hold ${b.live} tensors, 2 blocks ${a.live}`);
    }
    small.dispose();
    big.dispose();
  });

  test(`${modelType}: keys and values come back only with useCache, one pair per block`, () => {
    const model = withBlocks(modelType, 3).eval();
    noGrad(() => {
      const plain = afterForward(model, false);
      const cached = afterForward(model, true);
      assert.equal(plain.layers, 0);
      assert.equal(cached.layers, 3);
      assert.ok(cached.live > plain.live, "the cache's tensors outlive the forward");
    });
    model.dispose();
  });
}

test("runBlocks disposes the hidden states between blocks, not the caller's input", () => {
  tidy(() => {
    const x = ones([2, 3]);
    const seen: Tensor[] = [];
    const { hidden, cache } = runBlocks(3, x, false, (_, h) => {
      seen.push(h);
      return { h: h.add(1), kv: { k: h.mul(2), v: h.mul(3) } };
    });
    assert.deepEqual(hidden.toNumbers(), new Array(6).fill(4));
    assert.equal(cache.length, 0);
    assert.equal(x.toNumbers()[0], 1, "the input is still usable");
    for (const h of seen.slice(1))
      assert.throws(() => h.toNumbers(), /after dispose/, "an intermediate hidden state is gone");
  });
});

test("consume lets the input's handle go; a view made from it keeps the storage", () => {
  tidy(() => {
    const x = tensor([1, 2, 3, 4]);
    const y = consume(x, (t) => t.view(2, 2));
    assert.throws(() => x.toNumbers(), /after dispose/);
    assert.deepEqual(y.toNumbers(), [1, 2, 3, 4]);
    const z = consume(y, (t) => t); // the same tensor back: nothing to let go
    assert.equal(z, y);
    assert.deepEqual(z.toNumbers(), [1, 2, 3, 4]);
  });
});
