/**
 * Tests for src/train/trainer.ts on tiny random models driven by the miniature study's word-level
 * tokenizer over the tests' texts (test/train/helpers.ts, no shared data; llama2.c's tok512 for
 * the stuck-loss and packing tests, whose counts are its token statistics): the loss falls, 2×4
 * accumulation equals one batch of 8, a run killed (SIGKILL)
 * right after a checkpoint or mid-step resumes to byte-identical weights, a NaN loss names its
 * step and the last checkpoint, a loss stuck at ln(vocab) for a whole stage warns, checkpoints
 * are never left half-written, `keep` leaves the right checkpoint folders (and only in-progress
 * ones hold optimizer state), a finished stage reloads instead of retraining, and every plugin
 * hook is reached in order. Float comparisons of two computations are relative
 * (test/helpers/close.ts); a resumed run is held to bit equality (same kernels, same process).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { applyLora } from "../../src/models/lora.js";
import { t5Family } from "../../src/models/t5.js";
import type { LanguageModel } from "../../src/models/types.js";
import { tidy } from "../../src/tensor/index.js";
import type { TrainPlugin } from "../../src/train/plugin.js";
import { llamaFamily } from "../../src/models/llama.js";
import { formatProgress, type ProgressEvent } from "../../src/train/progress.js";
import {
  NonFiniteLossError,
  STUCK_MIN_STEPS,
  STUCK_RTOL,
  stuckLossWarning,
  trainStage,
} from "../../src/train/trainer.js";
import { parseTrainConfig } from "../../src/train/config.js";
import { assertNear, type Tol } from "../helpers/close.js";
import { dataPath, repoRoot, skipReason } from "../helpers/data.js";
import {
  BASE_CONFIG,
  examples,
  tinyGpt2,
  tinyLlama,
  tok512,
  weights,
  wordTokenizer,
  wordTokenizerDir,
} from "./helpers.js";

const dirs: string[] = [];
const tmp = () => {
  dirs.push(mkdtempSync(join(tmpdir(), "lethe-train-")));
  return dirs.at(-1)!;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function maxDiff(a: Map<string, number[]>, b: Map<string, number[]>): number {
  let d = 0;
  for (const [n, x] of a) x.forEach((v, i) => (d = Math.max(d, Math.abs(v - b.get(n)![i]))));
  return d;
}

/** Largest |weight|: what a difference between two trainings of the weights is relative to. */
function maxAbs(a: Map<string, number[]>): number {
  let m = 0;
  for (const x of a.values()) for (const v of x) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * 2×4 vs 8 rows per step: the same sums in other kernel shapes, so float32 rounding differs
 * (a few ulps per op, AdamW's 4 steps carry it into the weights).
 */
const ACCUM: Tol = { rtol: 1e-5, atol: 1e-7 };

test("the loss falls on a tiny task; one complete final checkpoint stays, no .tmp left", async (t) => {
  const tokenizer = await wordTokenizer();
  const dir = tmp();
  const model = tinyLlama();
  const r = trainStage({
    stage: "tiny",
    model,
    kind: "full",
    examples: examples(24),
    tokenizer,
    config: { ...BASE_CONFIG, lr: 1e-2, epochs: 6, checkpointEvery: 10 },
    dir,
  });
  assert.equal(r.steps, 36); // 24 rows / (2 × 2) = 6 steps per epoch
  assert.equal(r.losses.length, 36);
  const first = r.losses[0];
  const last = r.losses.slice(-6).reduce((a, b) => a + b, 0) / 6;
  console.log(`# loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  assert.ok(last < 0.4 * first, `loss ${first} → ${last}`);
  // keep: last (the default): the step checkpoints were pruned; a finished stage needs no optimizer.
  assert.deepEqual(readdirSync(dir).sort(), ["ckpt-36"]);
  assert.equal(r.checkpoint, join(dir, "ckpt-36"));
  assert.deepEqual(readdirSync(r.checkpoint).sort(), ["model.safetensors", "trainer_state.json"]);
  const state = JSON.parse(readFileSync(join(dir, "ckpt-36", "trainer_state.json"), "utf8"));
  assert.equal(state.step, 36);
  assert.equal(state.optimizerStep, 36);
  assert.deepEqual(state.losses, r.losses);
  assert.equal(model.training, false);
  assert.deepEqual(r.warnings, [], "a loss that falls is not stuck");
});

test("gradient accumulation 2×4 equals one batch of 8 (to 1e-5 relative)", async (t) => {
  const tokenizer = await wordTokenizer();
  const run = (batchSize: number, gradAccum: number) => {
    const model = tinyLlama(3);
    const r = trainStage({
      stage: "accum",
      model,
      kind: "full",
      examples: examples(16),
      tokenizer,
      config: { ...BASE_CONFIG, batchSize, gradAccum, epochs: 2, warmup: 0 },
      dir: tmp(),
    });
    return { w: weights(model), losses: r.losses };
  };
  const init = weights(tinyLlama(3));
  const a = run(4, 2);
  const b = run(8, 1);
  const d = maxDiff(a.w, b.w);
  const scale = maxAbs(b.w);
  console.log(
    `# 2×4 vs 8: max weight diff ${d.toExponential(2)} (max |w| ${scale.toExponential(2)}), ` +
      `moved ${maxDiff(a.w, init).toExponential(2)}`,
  );
  assert.ok(d <= ACCUM.atol! + ACCUM.rtol * scale, `max diff ${d}, max |w| ${scale}`);
  assert.ok(maxDiff(a.w, init) > 1e-3, "training moved the weights");
  assert.equal(a.losses.length, 4);
  a.losses.forEach((l, i) => assertNear(l, b.losses[i], ACCUM, `step ${i + 1} loss`));
});

test("killed (SIGKILL) after a checkpoint or mid-step, a resumed run ends byte-identical", async (t) => {
  const tokPath = await wordTokenizerDir();
  const fixture = join(repoRoot, "test", "train", "fixtures", "run-stage.ts");
  const child = (dir: string, killAt?: string) =>
    spawnSync(process.execPath, ["--import", "tsx", fixture, dir, tokPath], {
      cwd: repoRoot,
      encoding: "utf8",
      env: { ...process.env, LETHE_TEST_KILL_AT: killAt ?? "" },
    });
  const finalFiles = (dir: string) => {
    assert.ok(!existsSync(join(dir, "ckpt-12", "optimizer.safetensors")), "a finished stage's");
    return ["model.safetensors", "plugins.safetensors", "trainer_state.json"].map((f) =>
      readFileSync(join(dir, "ckpt-12", f)),
    );
  };

  const straight = tmp();
  const ok = child(straight);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).resumedFrom, null);
  const expected = finalFiles(straight);

  for (const [killAt, resumeStep] of [
    ["batch:6", 5],
    ["loss:11", 10],
  ] as const) {
    const dir = tmp();
    const killed = child(dir, killAt);
    assert.equal(killed.signal, "SIGKILL", `${killAt}: ${killed.stderr}`);
    assert.ok(!existsSync(join(dir, "ckpt-12")), "the killed run did not finish");
    const resumed = child(dir);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.equal(JSON.parse(resumed.stdout).resumedFrom, join(dir, `ckpt-${resumeStep}`));
    finalFiles(dir).forEach((bytes, i) =>
      assert.ok(
        bytes.equals(expected[i]),
        `${killAt}: file ${i} of ckpt-12 differs from the uninterrupted run`,
      ),
    );
  }
});

test("keep: last, all and none leave the right checkpoint folders; optimizer state only in progress", async (t) => {
  const tokenizer = await wordTokenizer();
  const run = (keep: "last" | "all" | "none") => {
    const dir = tmp();
    const seen: Record<number, string[]> = {}; // ckpt folders (with their files) before step k
    const look: TrainPlugin = {
      name: "look",
      supports: ["full"],
      batch: (ctx) => {
        if (ctx.micro !== 0 || seen[ctx.step]) return;
        seen[ctx.step] = readdirSync(dir)
          .sort()
          .map((c) => `${c}[${readdirSync(join(dir, c)).sort().join(",")}]`);
      },
    };
    trainStage({
      stage: `keep-${keep}`,
      model: tinyGpt2(),
      kind: "full",
      examples: examples(8),
      tokenizer,
      config: { ...BASE_CONFIG, epochs: 4, checkpointEvery: 2, keep },
      plugins: [look],
      dir,
    });
    const final = readdirSync(dir)
      .sort()
      .map((c) => `${c}[${readdirSync(join(dir, c)).sort().join(",")}]`);
    return { seen, final };
  };
  const inProgress = "model.safetensors,optimizer.safetensors,trainer_state.json";
  const done = "model.safetensors,trainer_state.json";
  const last = run("last");
  assert.deepEqual(last.seen[5], [`ckpt-4[${inProgress}]`], "only the latest step checkpoint");
  assert.deepEqual(last.seen[7], [`ckpt-6[${inProgress}]`]);
  assert.deepEqual(last.final, [`ckpt-8[${done}]`]);
  const all = run("all");
  assert.deepEqual(all.seen[5], [`ckpt-2[${inProgress}]`, `ckpt-4[${inProgress}]`]);
  assert.deepEqual(
    all.final,
    [2, 4, 6, 8].map((s) => `ckpt-${s}[${done}]`),
    "every one kept, optimizer state dropped at stage end",
  );
  // The trainer alone treats none as last; the study runner removes finished stages' folders.
  const none = run("none");
  assert.deepEqual(none.seen, last.seen);
  assert.deepEqual(none.final, last.final);
  assert.throws(() => parseTrainConfig({ keep: "some" }), /field "keep"/);
});

test("a NaN loss stops with an error naming the step and the last good checkpoint", async (t) => {
  const tokenizer = await wordTokenizer();
  const poison = (k: number): TrainPlugin => ({
    name: "poison",
    supports: ["full"],
    loss: (ctx, loss) => (ctx.step === k ? loss.mul(Number.NaN) : loss),
  });
  const dir = tmp();
  const opts = { stage: "nan", kind: "full" as const, examples: examples(24), tokenizer, dir };
  const config = { ...BASE_CONFIG, epochs: 2, checkpointEvery: 3 };
  assert.throws(
    () => trainStage({ ...opts, model: tinyLlama(), config, plugins: [poison(5)] }),
    (e: unknown) =>
      e instanceof NonFiniteLossError &&
      e.step === 5 &&
      e.lastCheckpoint === join(dir, "ckpt-3") &&
      /stage "nan": loss is NaN \(micro-batch 0\) at step 5; last good checkpoint: .*ckpt-3$/.test(
        e.message,
      ),
  );
  assert.throws(
    () => trainStage({ ...opts, dir: tmp(), model: tinyLlama(), config, plugins: [poison(2)] }),
    /loss is NaN \(micro-batch 0\) at step 2; last good checkpoint: none/,
  );
});

test("stuckLossWarning: every step within STUCK_RTOL of ln(vocab), at least STUCK_MIN_STEPS", () => {
  const u = Math.log(512);
  const near = (k: number) =>
    Array.from({ length: k }, (_, i) => u * (1 + (i % 2 ? 0.5 : -0.5) * STUCK_RTOL));
  const w = stuckLossWarning("s", near(STUCK_MIN_STEPS), 512, 1e6);
  assert.equal(
    w,
    `stage "s": the training loss stayed within 1% of ln(vocab) = ln(512) = 6.2383, ` +
      `a uniform prediction, for all 4 steps: the model learned nothing (lr 1000000 too high or too low?)`,
  );
  assert.equal(
    stuckLossWarning("s", near(STUCK_MIN_STEPS - 1), 512, 1e6),
    null,
    "too short to tell",
  );
  const moved = [...near(5), u * (1 - 2 * STUCK_RTOL)];
  assert.equal(stuckLossWarning("s", moved, 512, 1e6), null, "one step left the band");
  assert.equal(stuckLossWarning("s", [...near(5), Number.NaN], 512, 1e6), null);
});

/**
 * examples/tiny-study.yaml's model. At lr 1e6 its activations overflow within two steps, the
 * final RMSNorm's mean square is then inf, its output zero, and every logit exactly 0: the loss
 * is ln(512) to 1e-5 from step 3 on (float overflow, not rounding: the same on every CPU).
 */
function tinyStudyLlama(): LanguageModel {
  return llamaFamily.create(
    llamaFamily.parseConfig({
      model_type: "llama",
      vocab_size: 512,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
    }),
    { seed: 0 },
  );
}

test("a loss stuck at ln(vocab) for a whole stage (lr 1e6) warns on the last progress line and in the result", async (t) => {
  const tokenizer = await tok512(t);
  if (!tokenizer) return;
  const events: ProgressEvent[] = [];
  const dir = tmp();
  const opts = {
    stage: "absurd-lr",
    kind: "full" as const,
    examples: examples(48),
    tokenizer,
    config: { ...BASE_CONFIG, lr: 1e6, batchSize: 4, weightDecay: 0 },
    dir,
  };
  const model = tinyStudyLlama();
  const r = trainStage({ ...opts, model, onProgress: (e) => void events.push(e) });
  console.log(`# losses at lr 1e6: ${r.losses.map((l) => l.toFixed(5)).join(" ")}`);
  assert.equal(r.steps, 6);
  assert.equal(r.warnings.length, 1);
  assert.match(
    r.warnings[0],
    /^stage "absurd-lr": the training loss stayed within 1% of ln\(vocab\) = ln\(512\) = 6\.2383, a uniform prediction, for all 6 steps/,
  );
  assert.deepEqual(events.at(-1)!.warnings, r.warnings, "on the last progress event");
  assert.ok(events.slice(0, -1).every((e) => e.warnings === undefined));
  assert.ok(formatProgress(events.at(-1)!).endsWith(`\nWARNING: ${r.warnings[0]}`));
  // A finished stage reloaded reports it again; without a progress callback it goes to stderr.
  assert.deepEqual(trainStage({ ...opts, model }).warnings, r.warnings);
  const written: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => (written.push(s), true)) as typeof write;
  try {
    trainStage({ ...opts, dir: tmp(), model: tinyStudyLlama() });
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(written, [`WARNING: ${r.warnings[0]}\n`]);
});

test("a half-written checkpoint is ignored and removed; a finished stage reloads, not retrains", async (t) => {
  const tokenizer = await wordTokenizer();
  const dir = tmp();
  mkdirSync(join(dir, "ckpt-99.tmp"));
  const calls: string[] = [];
  const spy: TrainPlugin = {
    name: "spy",
    supports: ["full"],
    stageStart: () => void calls.push("stageStart"),
  };
  const opts = {
    stage: "again",
    kind: "full" as const,
    examples: examples(8),
    tokenizer,
    dir,
    plugins: [spy],
  };
  const config = { ...BASE_CONFIG, epochs: 2 };
  const model = tinyGpt2();
  const first = trainStage({ ...opts, model, config });
  assert.equal(first.resumedFrom, null);
  assert.deepEqual(readdirSync(dir), ["ckpt-4"]);
  const fresh = tinyGpt2();
  assert.ok(maxDiff(weights(model), weights(fresh)) > 1e-3);
  const again = trainStage({ ...opts, model: fresh, config });
  assert.equal(again.resumedFrom, join(dir, "ckpt-4"));
  assert.deepEqual(again.losses, first.losses);
  assert.equal(maxDiff(weights(model), weights(fresh)), 0);
  assert.deepEqual(calls, ["stageStart"]);
  // The same folder with another config is another run.
  assert.throws(
    () => trainStage({ ...opts, model: tinyGpt2(), config: { ...config, lr: 1e-4 } }),
    /trainer_state\.json: checkpoint of a different run/,
  );
});

test("every hook is reached, in order, with the step and micro-batch it belongs to", async (t) => {
  const tokenizer = await wordTokenizer();
  const log: string[] = [];
  let rowsSeen = 0;
  const recorder: TrainPlugin = {
    name: "recorder",
    supports: ["full", "lora"],
    stageStart: (ctx) => void log.push(`stageStart ${ctx.step}/${ctx.totalSteps}`),
    batch: (ctx, rows) => {
      log.push(`batch ${ctx.step}`);
      return [...rows, ctx.tokenize({ prompt: "Replay:", response: " old task" })];
    },
    loss: (ctx, loss, { batch }) => {
      rowsSeen += batch.inputIds.size(0);
      log.push(`loss ${ctx.step}.${ctx.micro}/${ctx.microBatches}`);
      return loss;
    },
    afterBackward: (ctx) => void log.push(`afterBackward ${ctx.step}`),
    afterStep: (ctx) => void log.push(`afterStep ${ctx.step} opt=${ctx.optimizer.stepCount}`),
    stageEnd: (ctx) => void log.push(`stageEnd ${ctx.step}`),
  };
  trainStage({
    stage: "hooks",
    model: tinyGpt2(),
    kind: "full",
    examples: examples(6), // 6 rows / (2 × 2): a full step and a step of one micro-batch
    tokenizer,
    config: BASE_CONFIG,
    plugins: [recorder],
    dir: tmp(),
  });
  assert.deepEqual(log, [
    "stageStart 0/2",
    "batch 1",
    "batch 1",
    "loss 1.0/2",
    "loss 1.1/2",
    "afterBackward 1",
    "afterStep 1 opt=1",
    "batch 2",
    "loss 2.0/1",
    "afterBackward 2",
    "afterStep 2 opt=2",
    "stageEnd 2",
  ]);
  assert.equal(rowsSeen, 6 + 3, "each micro-batch carried the replayed row");
});

test("bad plugins and configs are refused with the name at fault", async (t) => {
  const tokenizer = await wordTokenizer();
  const base = {
    stage: "bad",
    model: tinyGpt2(),
    kind: "full" as const,
    examples: examples(4),
    tokenizer,
    dir: tmp(),
  };
  assert.throws(
    () =>
      trainStage({
        ...base,
        config: BASE_CONFIG,
        plugins: [{ name: "olora", supports: ["lora"] }],
      }),
    /plugin "olora" does not support full fine-tuning/,
  );
  assert.throws(
    () => trainStage({ ...base, kind: "lora", config: BASE_CONFIG }),
    /no parameter is frozen/,
  );
  assert.throws(
    () => parseTrainConfig({ gradAcum: 1 }),
    /unknown field "gradAcum"\. Did you mean "gradAccum"\?/,
  );
  assert.throws(() => parseTrainConfig({ batchSize: 0 }), /field "batchSize"/);
  assert.equal(parseTrainConfig({}).schedule, "cosine");
  assert.throws(
    () => parseTrainConfig({ precision: "bf16" }),
    /field "precision".*32-true.*bf16-mixed.*16-mixed.*bf16-true/,
  );
});

test("packing trains on fewer, fuller rows", async (t) => {
  const tokenizer = await tok512(t);
  if (!tokenizer) return;
  const run = (packing: boolean) =>
    trainStage({
      stage: "pack",
      model: tinyLlama(),
      kind: "full",
      examples: examples(16),
      tokenizer,
      config: { ...BASE_CONFIG, packing, maxLength: 128, epochs: 3 },
      dir: tmp(),
    });
  const plain = run(false);
  const packed = run(true);
  assert.equal(plain.steps, 12);
  assert.equal(packed.steps, 6); // two ~50-token examples per 128-token row
  assert.ok(packed.losses.at(-1)! < packed.losses[0], "loss falls with packing");
});

test("an encoder-decoder (tiny T5, t5-small tokenizer) learns the responses", async (t) => {
  const dir = dataPath("tokenizers", "t5-small");
  if (!dir) return t.skip(skipReason("tokenizers", "t5-small"));
  const tokenizer = await loadTokenizer(dir);
  const config = t5Family.parseConfig({
    model_type: "t5",
    vocab_size: 32128,
    d_model: 16,
    d_kv: 4,
    d_ff: 32,
    num_layers: 1,
    num_heads: 4,
    dropout_rate: 0,
  });
  const model = t5Family.create(config, { seed: 0 });
  const r = trainStage({
    stage: "t5",
    model,
    kind: "full",
    examples: examples(8),
    tokenizer,
    config: { ...BASE_CONFIG, lr: 3e-2, epochs: 8, warmup: 0 },
    dir: tmp(),
  });
  console.log(`# t5 loss ${r.losses[0].toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)}`);
  assert.ok(r.losses.at(-1)! < 0.7 * r.losses[0], `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
  tidy(() => assert.equal(model.training, false));
});

test("LoRA: only adapters train and are saved; an interrupted run resumes bit for bit", async (t) => {
  const tokenizer = await wordTokenizer();
  const adapted = () => {
    const model = tinyLlama(5);
    applyLora(model, { r: 4, alpha: 8, dropout: 0.1, seed: 1 });
    return model;
  };
  const opts = { stage: "lora", kind: "lora" as const, examples: examples(16), tokenizer };
  const config = { ...BASE_CONFIG, lr: 1e-2, epochs: 3, checkpointEvery: 4 };
  const base = weights(tinyLlama(5));
  const model = adapted();
  const r = trainStage({ ...opts, model, config, dir: tmp() });
  assert.ok(r.losses.at(-1)! < r.losses[0], `loss ${r.losses[0]} → ${r.losses.at(-1)}`);
  const after = weights(model);
  for (const [n, w] of base) assert.deepEqual(after.get(n), w, `${n} is frozen`);
  const file = SafetensorsFile.open(join(r.checkpoint, "model.safetensors"));
  const saved = [...file.keys()];
  file.close();
  assert.ok(
    saved.length > 0 && saved.every((k) => /\.lora_[AB]\.weight$/.test(k)),
    saved.join(", "),
  );

  // Interrupted at step 6 (after checkpoint 4), then resumed on a fresh copy of the model.
  const dir = tmp();
  const stop: TrainPlugin = {
    name: "stop",
    supports: ["lora"],
    afterBackward: (ctx) => {
      if (ctx.step === 6) throw new Error("interrupted");
    },
  };
  assert.throws(
    () => trainStage({ ...opts, model: adapted(), config, dir, plugins: [stop] }),
    /interrupted/,
  );
  const resumedModel = adapted();
  const resumed = trainStage({
    ...opts,
    model: resumedModel,
    config,
    dir,
    plugins: [{ ...stop, afterBackward: undefined }],
  });
  assert.equal(resumed.resumedFrom, join(dir, "ckpt-4"));
  assert.equal(maxDiff(weights(resumedModel), after), 0);
  assert.deepEqual(resumed.losses, r.losses);
});
