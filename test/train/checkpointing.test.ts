/**
 * Tests for src/train/checkpointing.ts: per family, one step's gradients through checkpointed
 * blocks equal those of the model's own forward (the oracle, STYLE.md #19) to 1e-6 of each
 * parameter's max |grad|, with left and right padding in the batch; with dropout, the recompute
 * sees the forward's masks (gradients equal a straight pass over the same segments and seeds);
 * checkpointing holds fewer live tensors between forward and backward and a lower peak RSS on an
 * 8-layer model at 128 tokens; the trainer's losses with `gradientCheckpointing` equal those
 * without. T5 and mT5 (decoder blocks checkpointed, the position bias and the encoder output
 * shared by every block) likewise, with a padded encoder batch and with dropout.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { families } from "../../src/models/index.js";
import type { CausalLM, LanguageModel, ModelFamily, Seq2SeqLM } from "../../src/models/types.js";
import {
  liveTensors,
  manualSeed,
  randint,
  tensor,
  tidy,
  type Tensor,
} from "../../src/tensor/index.js";
import { checkpointed, supportsCheckpointing } from "../../src/train/checkpointing.js";
import type { Batch } from "../../src/train/data.js";
import { checkpointedTokenLossSum, tokenLossSum, trainStage } from "../../src/train/trainer.js";
import type { TrainConfigInput } from "../../src/train/config.js";
import { applyLora, loraConfigOf } from "../../src/models/lora.js";
import { TINY_CONFIGS } from "../models/tiny.js";
import { t5Family } from "../../src/models/t5.js";
import { BASE_CONFIG, examples, tinyLlama, wordTokenizer } from "./helpers.js";

const CAUSAL = ["gpt2", "llama", "mistral", "qwen2", "bloom", "gpt_neox"];
const GRAD_RTOL = 1e-6;

/** A causal batch (B = 3, T = 10): row 0 full, row 1 left-padded by 3, row 2 right-padded by 4. */
function paddedBatch(vocab: number): Batch {
  manualSeed(11);
  const inputIds = randint(0, vocab, [3, 10]);
  const rows = [
    Array(10).fill(1),
    [0, 0, 0, ...Array(7).fill(1)],
    [...Array(6).fill(1), 0, 0, 0, 0],
  ];
  const attentionMask = tensor(rows, { dtype: "int64" });
  const labels = inputIds.maskedFill(attentionMask.eq(0), -100);
  return { inputIds, attentionMask, labels, decoderInputIds: null };
}

/** A seq2seq batch: encoder (B = 3, S = 9) with rows 1 and 2 padded, decoder (B = 3, L = 6). */
function seq2seqBatch(vocab: number): Batch {
  manualSeed(12);
  const inputIds = randint(0, vocab, [3, 9]);
  const attentionMask = tensor(
    [Array(9).fill(1), [...Array(5).fill(1), 0, 0, 0, 0], [...Array(7).fill(1), 0, 0]],
    { dtype: "int64" },
  );
  const labels = randint(1, vocab, [3, 6]).maskedFill(
    tensor(
      [
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 1],
        [0, 0, 0, 1, 1, 1],
      ],
      { dtype: "int64" },
    ).eq(1),
    -100,
  );
  const decoderInputIds = randint(1, vocab, [3, 6]);
  return { inputIds, attentionMask, labels, decoderInputIds };
}

const SEQ2SEQ: Record<string, Record<string, unknown>> = {
  t5: TINY_CONFIGS.t5,
  mt5: {
    ...TINY_CONFIGS.t5,
    model_type: "mt5",
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
  },
};

function clearGrads(model: LanguageModel): void {
  for (const p of model.parameters()) p.grad = null;
}

/** name → gradient as a float64 array, after `step` runs one backward. */
function gradsOf(model: LanguageModel, step: () => void): Map<string, Float64Array> {
  clearGrads(model);
  tidy(step);
  const out = new Map<string, Float64Array>();
  tidy(() => {
    for (const [name, p] of model.namedParameters()) {
      const g = p.grad;
      if (g) out.set(name, Float64Array.from(g.float().toArray() as Float32Array));
    }
  });
  clearGrads(model);
  return out;
}

/** Every gradient within GRAD_RTOL of its tensor's max |grad|; returns the largest relative diff. */
function assertSameGrads(
  a: Map<string, Float64Array>,
  b: Map<string, Float64Array>,
  what: string,
): number {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort(), `${what}: parameters with grads`);
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < x.length; i++) {
      scale = Math.max(scale, Math.abs(x[i]), Math.abs(y[i]));
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
    }
    const rel = scale === 0 ? diff : diff / scale;
    worst = Math.max(worst, rel);
    assert.ok(
      rel <= GRAD_RTOL,
      `${what}: ${name} max diff ${diff.toExponential(2)} (${rel.toExponential(2)} of max |grad|)`,
    );
  }
  return worst;
}

for (const modelType of CAUSAL) {
  test(`${modelType}: checkpointed gradients equal the forward's (padded batch)`, () => {
    const family = (families as Record<string, ModelFamily>)[modelType];
    const raw = TINY_CONFIGS[modelType] ?? { ...TINY_CONFIGS.llama, model_type: modelType };
    const model = family.create(family.parseConfig(raw), { seed: 3 }).eval(); // eval: dropout off
    assert.ok(supportsCheckpointing(model));
    const batch = paddedBatch(model.config.vocab_size);
    const plain = gradsOf(model, () => tokenLossSum(model, batch).sum.backward());
    const ckpt = gradsOf(model, () => {
      const r = checkpointedTokenLossSum(model, batch);
      r.backward(r.sum);
    });
    assert.equal(plain.size, model.parameters().length, "every parameter got a gradient");
    const worst = assertSameGrads(plain, ckpt, modelType);
    console.log(
      `# ${modelType}: ${plain.size} gradients, max diff ${worst.toExponential(2)} of max |grad|`,
    );
  });
}

for (const [modelType, raw] of Object.entries(SEQ2SEQ)) {
  test(`${modelType}: checkpointed gradients equal the forward's (padded encoder batch)`, () => {
    const family = (families as Record<string, ModelFamily>)[modelType];
    const model = family.create(family.parseConfig(raw), { seed: 3 }).eval();
    assert.ok(supportsCheckpointing(model));
    const batch = seq2seqBatch(model.config.vocab_size);
    const plain = gradsOf(model, () => tokenLossSum(model, batch).sum.backward());
    const ckpt = gradsOf(model, () => {
      const r = checkpointedTokenLossSum(model, batch);
      r.backward(r.sum);
    });
    assert.equal(plain.size, model.parameters().length, "every parameter got a gradient");
    const worst = assertSameGrads(plain, ckpt, modelType);
    console.log(
      `# ${modelType}: ${plain.size} gradients, max diff ${worst.toExponential(2)} of max |grad|`,
    );
  });
}

test("t5 dropout: the recompute sees the forward's masks; gradients equal the plain forward's", () => {
  const family = (families as Record<string, ModelFamily>).t5;
  const model = family
    .create(family.parseConfig({ ...TINY_CONFIGS.t5, dropout_rate: 0.3 }), { seed: 1 })
    .train() as Seq2SeqLM;
  const batch = seq2seqBatch(model.config.vocab_size);
  const inputs = {
    inputIds: batch.inputIds,
    attentionMask: batch.attentionMask,
    decoderInputIds: batch.decoderInputIds!,
  };
  const lossOf = (logits: Tensor) => logits.reshape(-1, logits.size(-1)).logSoftmax(-1).mean();
  const ckpt = gradsOf(model, () => {
    manualSeed(5);
    const c = checkpointed(() => model.segments!(inputs), {});
    c.backward(lossOf(c.logits));
  });
  const plain = gradsOf(model, () => {
    manualSeed(5);
    lossOf(model.forward(inputs).logits).backward();
  });
  const worst = assertSameGrads(plain, ckpt, "t5 dropout 0.3");
  console.log(`# t5 dropout 0.3: max diff ${worst.toExponential(2)} of max |grad|`);
});

test("dropout: the recompute sees the forward's masks; gradients equal the plain forward's", () => {
  const family = (families as Record<string, ModelFamily>).gpt2;
  const model = family
    .create(family.parseConfig({ ...TINY_CONFIGS.gpt2, resid_pdrop: 0.3, attn_pdrop: 0.3 }), {
      seed: 1,
    })
    .train() as CausalLM;
  const batch = paddedBatch(model.config.vocab_size);
  const inputs = { inputIds: batch.inputIds, attentionMask: batch.attentionMask };
  const lossOf = (logits: Tensor) =>
    logits.slice(1, 0, -1).reshape(-1, logits.size(-1)).logSoftmax(-1).mean();
  const ckpt = gradsOf(model, () => {
    manualSeed(5);
    const c = checkpointed(() => model.segments!(inputs), {});
    c.backward(lossOf(c.logits));
  });
  // The oracle: the model's own forward, one graph, the same RNG stream.
  const plain = gradsOf(model, () => {
    manualSeed(5);
    lossOf(model.forward(inputs).logits).backward();
  });
  const worst = assertSameGrads(plain, ckpt, "gpt2 dropout 0.3");
  console.log(`# gpt2 dropout 0.3: max diff ${worst.toExponential(2)} of max |grad|`);
  const other = gradsOf(model, () => {
    manualSeed(6);
    const c = checkpointed(() => model.segments!(inputs), {});
    c.backward(lossOf(c.logits));
  });
  const w = other.get("transformer.h.0.mlp.c_fc.weight")!;
  const v = ckpt.get("transformer.h.0.mlp.c_fc.weight")!;
  assert.ok(
    w.some((x, i) => x !== v[i]),
    "another seed draws other masks (dropout is on)",
  );
});

test("memory: fewer live tensors after the forward and a lower peak RSS (gpt2, 8 layers, 128 tokens)", () => {
  const family = (families as Record<string, ModelFamily>).gpt2;
  const model = family
    .create(
      family.parseConfig({
        model_type: "gpt2",
        vocab_size: 61,
        n_positions: 128,
        n_embd: 256,
        n_layer: 8,
        n_head: 4,
      }),
      { seed: 0 },
    )
    .eval();
  manualSeed(2);
  const inputIds = randint(0, 61, [8, 128]);
  const batch: Batch = {
    inputIds,
    attentionMask: tensor(
      Array.from({ length: 8 }, () => Array(128).fill(1)),
      { dtype: "int64" },
    ),
    labels: inputIds,
    decoderInputIds: null,
  };
  const maxRss = () => process.resourceUsage().maxRSS / 1024; // MiB
  const measure = (ckpt: boolean) => {
    const before = maxRss();
    let live = 0;
    tidy(() => {
      const start = liveTensors();
      if (ckpt) {
        const r = checkpointedTokenLossSum(model, batch);
        live = liveTensors() - start;
        r.backward(r.sum);
      } else {
        const { sum } = tokenLossSum(model, batch);
        live = liveTensors() - start;
        sum.backward();
      }
    });
    clearGrads(model);
    return { live, peakGrowth: maxRss() - before, peak: maxRss() };
  };
  measure(true); // warm-up: allocator, thread pools
  const ckpt = measure(true); // checkpointed first: the plain run must then raise the peak
  const plain = measure(false);
  console.log(
    `# live tensors after forward: plain ${plain.live}, checkpointed ${ckpt.live}; peak RSS: after checkpointed ${ckpt.peak.toFixed(0)} MiB, after plain ${plain.peak.toFixed(0)} MiB (+${plain.peakGrowth.toFixed(0)})`,
  );
  // Each block frees its own intermediates (src/models/blocks.ts), so both keep few handles;
  // the saving shows in the memory autograd holds, measured by the peak below.
  assert.ok(plain.live < 64 && ckpt.live < 64, `live tensors ${ckpt.live} and ${plain.live}`);
  assert.ok(
    plain.peak > ckpt.peak + 20,
    "the plain step needs a higher peak RSS than the checkpointed one",
  );
});

test("trainer: gradientCheckpointing gives the same losses (1e-6 relative) in 32-true, bf16-mixed, 16-mixed, with LoRA and for T5", async (t) => {
  const tokenizer = await wordTokenizer();
  const run = (model: LanguageModel, config: TrainConfigInput) => {
    const dir = mkdtempSync(join(tmpdir(), "lethe-ckpt-"));
    try {
      return trainStage({
        stage: "ckpt",
        model,
        kind: loraConfigOf(model) ? "lora" : "full",
        examples: examples(12),
        tokenizer,
        config: { ...BASE_CONFIG, steps: 3, ...config },
        dir,
      }).losses;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const lora = () => {
    const m = tinyLlama();
    applyLora(m, { r: 4, alpha: 8, dropout: 0, seed: 1 });
    return m;
  };
  const tinyT5 = () => t5Family.create({ ...TINY_CONFIGS.t5, vocab_size: 512 }, { seed: 0 });
  const cases: [string, () => LanguageModel, TrainConfigInput][] = [
    ["32-true", tinyLlama, {}],
    ["bf16-mixed", tinyLlama, { precision: "bf16-mixed" }],
    ["16-mixed", tinyLlama, { precision: "16-mixed" }],
    ["lora", lora, {}],
    ["t5", tinyT5, {}],
  ];
  for (const [what, make, config] of cases) {
    const plain = run(make(), config);
    const ckpt = run(make(), { ...config, gradientCheckpointing: true });
    console.log(
      `# ${what}: losses plain ${plain.map((x) => x.toFixed(6))} checkpointed ${ckpt.map((x) => x.toFixed(6))}`,
    );
    assert.equal(ckpt.length, 3);
    plain.forEach((x, i) =>
      assert.ok(
        Math.abs(x - ckpt[i]) <= 1e-6 * Math.abs(x),
        `${what} step ${i + 1}: ${x} vs ${ckpt[i]}`,
      ),
    );
  }
});
