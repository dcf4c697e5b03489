/**
 * Determinism: the same seeds give the same run, bit for bit. Two runs of a few AdamW steps of a
 * tiny GPT2LMHeadModel with dropout on (default generator seeded by manualSeed, weights by the
 * model's seed, data by its own Generator) produce identical losses and identical weight bytes;
 * a different dropout seed gives a different run (so the check can fail).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  crossEntropy,
  dropout,
  Generator,
  getRngState,
  manualSeed,
  ones,
  randint,
  randn,
  setRngState,
  tidy,
} from "../../src/tensor/index.js";
import { GPT2LMHeadModel, gpt2Config } from "../../src/models/gpt2.js";
import { AdamW } from "../../src/optim/index.js";

function run(dropoutSeed: number): { losses: number[]; weights: Map<string, Uint8Array> } {
  const cfg = gpt2Config({ vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 4 });
  assert.ok(cfg.resid_pdrop > 0 && cfg.attn_pdrop > 0 && cfg.embd_pdrop > 0, "dropout is on");
  const model = new GPT2LMHeadModel(cfg, { seed: 3 });
  model.train();
  const opt = new AdamW([{ params: model.parameters() }], { lr: 1e-2 });
  const data = new Generator(11);
  manualSeed(dropoutSeed);
  const losses: number[] = [];
  try {
    for (let s = 0; s < 4; s++)
      tidy(() => {
        const ids = randint(0, 50, [3, 13], { generator: data });
        const { logits } = model.forward({ inputIds: ids.narrow(1, 0, 12) });
        const loss = crossEntropy(logits.reshape(-1, 50), ids.narrow(1, 1, 12).reshape(-1));
        loss.backward();
        opt.step();
        opt.zeroGrad();
        losses.push(loss.item());
      });
    return { losses, weights: new Map([...model.stateDict()].map(([k, t]) => [k, t.toBytes()])) };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

test("two seeded training runs with dropout are bitwise identical", () => {
  const a = run(1234);
  const b = run(1234);
  console.log(`# losses ${a.losses.map((l) => l.toFixed(6)).join(", ")}`);
  assert.deepEqual(b.losses, a.losses);
  assert.deepEqual([...b.weights.keys()], [...a.weights.keys()]);
  for (const [k, bytes] of a.weights) assert.deepEqual(b.weights.get(k), bytes, `${k} differs`);
  const c = run(4321);
  assert.notDeepEqual(c.losses, a.losses, "a different dropout seed changes the run");
});

test("getRngState/setRngState: a restored state repeats the same draws (dropout masks included)", () => {
  tidy(() => {
    manualSeed(9);
    const state = getRngState();
    assert.equal(state.dtype, "uint8");
    const a = randn([6]).toNumbers();
    const m = dropout(ones([32]), 0.5, true).toNumbers();
    setRngState(state);
    assert.deepEqual(randn([6]).toNumbers(), a);
    assert.deepEqual(dropout(ones([32]), 0.5, true).toNumbers(), m);
    assert.notDeepEqual(randn([6]).toNumbers(), a, "and the stream goes on from there");
  });
});
