/**
 * Tests for src/models/generate.ts over every registered architecture: cached decoding equals
 * the uncached oracle (greedy, and sampled with one seed), a left-padded batch equals each row
 * generated alone, stop tokens end a row, the same seed gives the same samples; the top-k/top-p
 * filters against hand-computed cases (transformers' TopKLogitsWarper / TopPLogitsWarper);
 * NaN weights are an error naming the model and the step, not an empty generation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  generate,
  NonFiniteLogitsError,
  topKFilter,
  topPFilter,
} from "../../src/models/generate.js";
import { liveTensors, noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { tinyFamilies, tinyModel } from "./tiny.js";

const ids = (rows: number[][]): Tensor => tensor(rows, { dtype: "int64" });

/** Left-pads rows with `pad` to one length; returns input ids and attention mask. */
function leftPad(rows: number[][], pad = 0): { inputIds: Tensor; attentionMask: Tensor } {
  const T = Math.max(...rows.map((r) => r.length));
  const padded = rows.map((r) => [...new Array(T - r.length).fill(pad), ...r]);
  const mask = rows.map((r) => [...new Array(T - r.length).fill(0), ...r.map(() => 1)]);
  return { inputIds: ids(padded), attentionMask: ids(mask) };
}

const PROMPTS = [
  [5, 17, 33, 2, 9],
  [40, 3],
  [11, 12, 13],
];

for (const { modelType } of tinyFamilies()) {
  test(`${modelType}: cached greedy decoding equals the uncached oracle`, () => {
    const model = tinyModel(modelType);
    const batch = leftPad(PROMPTS);
    const cached = generate(model, { ...batch, maxNewTokens: 8 });
    const uncached = generate(model, { ...batch, maxNewTokens: 8, useCache: false });
    assert.deepEqual(cached, uncached);
    assert.deepEqual(
      cached.map((r) => r.length),
      [8, 8, 8],
    );
    model.dispose();
  });

  test(`${modelType}: cached sampling equals uncached sampling with the same seed`, () => {
    const model = tinyModel(modelType);
    const batch = leftPad(PROMPTS);
    const o = {
      ...batch,
      maxNewTokens: 8,
      doSample: true,
      temperature: 1.5,
      topK: 20,
      topP: 0.9,
      seed: 7,
    };
    const cached = generate(model, o);
    assert.deepEqual(cached, generate(model, { ...o, useCache: false }));
    assert.deepEqual(cached, generate(model, o), "same seed, same samples");
    const other = generate(model, { ...o, seed: 8 });
    assert.notDeepEqual(cached, other, "another seed gives other samples");
    model.dispose();
  });

  test(`${modelType}: a left-padded batch equals each row generated alone`, () => {
    const model = tinyModel(modelType);
    const batched = generate(model, { ...leftPad(PROMPTS), maxNewTokens: 6 });
    const alone = PROMPTS.map((p) => generate(model, { inputIds: ids([p]), maxNewTokens: 6 })[0]);
    assert.deepEqual(batched, alone);
    model.dispose();
  });

  test(`${modelType}: a stop token ends its row and the others go on`, () => {
    const model = tinyModel(modelType);
    const batch = leftPad(PROMPTS);
    const free = generate(model, { ...batch, maxNewTokens: 6 });
    // Stop on row 0's third token: row 0 ends there (token kept); rows without it are unchanged.
    const stopId = free[0][2];
    const stopped = generate(model, { ...batch, maxNewTokens: 6, eosTokenId: [stopId, 999] });
    free.forEach((row, b) => {
      const at = row.indexOf(stopId);
      assert.deepEqual(stopped[b], at < 0 ? row : row.slice(0, at + 1), `row ${b}`);
    });
    assert.ok(stopped[0].length <= 3);
    model.dispose();
  });

  test(`${modelType}: NaN weights are an error naming the model and the step`, () => {
    const model = tinyModel(modelType);
    noGrad(() => model.parameters().forEach((p) => p.fill_(Number.NaN)));
    const batch = leftPad(PROMPTS);
    const before = liveTensors();
    for (const o of [{}, { useCache: false }, { doSample: true, seed: 1 }])
      assert.throws(
        () => generate(model, { ...batch, maxNewTokens: 4, name: "ckpt/diverged", ...o }),
        (e: Error) =>
          e instanceof NonFiniteLogitsError &&
          e.step === 1 &&
          e.message.startsWith("model ckpt/diverged: logits are NaN at generation step 1 (row 0)"),
      );
    assert.equal(liveTensors(), before, "a failed generation frees what it made");
    assert.throws(
      () => generate(model, { inputIds: ids([[1, 2]]), maxNewTokens: 1 }),
      new RegExp(
        `^NonFiniteLogitsError: model \\(a ${modelType} model\\): logits are NaN at generation step 1`,
      ),
    );
    model.dispose();
  });
}

test("generation frees every tensor it makes", () => {
  const model = tinyModel("llama");
  const batch = leftPad(PROMPTS);
  const before = liveTensors();
  generate(model, { ...batch, maxNewTokens: 5 });
  generate(model, { ...batch, maxNewTokens: 5, useCache: false, doSample: true });
  assert.equal(liveTensors(), before);
  model.dispose();
});

test("maxNewTokens 0 gives empty rows; right padding is refused for decoder-only models", () => {
  const model = tinyModel("llama");
  assert.deepEqual(
    generate(model, {
      inputIds: ids([
        [1, 2],
        [3, 4],
      ]),
      maxNewTokens: 0,
    }),
    [[], []],
  );
  assert.throws(
    () =>
      generate(model, { inputIds: ids([[1, 2]]), attentionMask: ids([[1, 0]]), maxNewTokens: 1 }),
    /left padding/,
  );
  assert.throws(
    () => generate(model, { inputIds: ids([[1]]), maxNewTokens: 1, doSample: true, topP: 0 }),
    /topP/,
  );
  model.dispose();
});

test("top-k keeps the k largest scores per row", () => {
  const out = tidy(() =>
    topKFilter(
      tensor([
        [1, 5, 3, 4],
        [0, -1, 2, 2],
      ]),
      2,
    ).tolist(),
  );
  assert.deepEqual(out, [
    [-Infinity, 5, -Infinity, 4],
    [-Infinity, -Infinity, 2, 2],
  ]);
});

test("top-p drops tokens whose ascending cumulative probability is <= 1 - top_p", () => {
  // probs 0.1, 0.2, 0.3, 0.4: ascending cumsum 0.1, 0.3, 0.6, 1.0.
  const logits = tensor([[0.1, 0.2, 0.3, 0.4]]).log();
  const keep = (p: number) =>
    tidy(() => (topPFilter(logits, p).tolist() as number[][])[0].map((x) => x !== -Infinity));
  assert.deepEqual(keep(0.75), [false, true, true, true]); // drops cumsum <= 0.25
  assert.deepEqual(keep(0.5), [false, false, true, true]); // drops cumsum <= 0.5
  assert.deepEqual(keep(0.05), [false, false, false, true]); // always keeps the most likely
});
