/**
 * Shared pieces of the trainer tests: tiny models over a 512-token vocabulary, the word-level
 * tokenizer of the miniature study (src/mini/tokenizer.ts) over the tests' own texts, so the
 * trainer and method tests need no shared data, synthetic instruction examples, and a fixed
 * config. llama2.c's tok512 stays for the tests of its own tokenization (data.test.ts).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vocabularyOf, writeTokenizer } from "../../src/mini/tokenizer.js";
import { gpt2Family } from "../../src/models/gpt2.js";
import { llamaFamily } from "../../src/models/llama.js";
import type { LanguageModel } from "../../src/models/types.js";
import type { SftFeatures, SftText } from "../../src/train/data.js";
import type { TrainConfigInput } from "../../src/train/config.js";
import type { TrainPlugin, TuningKind } from "../../src/train/plugin.js";
import { trainStage } from "../../src/train/trainer.js";
import { loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { dataPath, skipReason } from "../helpers/data.js";

/** llama2.c's tok512 (BOS 1, EOS 2), the tokenizer of the stories260K model. */
export const TOK512 = ["models", "stories260K", "tok512.bin"] as const;
export const tok512Path = (): string | null => dataPath(...TOK512);

/**
 * stories260K's tokenizer, or null after skipping the test `t` with the reason: for the tests
 * whose expectations are counts of tok512's own token statistics (packed row counts, a loss
 * pinned at ln(512) over its full vocabulary, embedding rows never seen).
 */
export async function tok512(t: { skip(msg: string): void }): Promise<Tokenizer | null> {
  const path = tok512Path();
  if (!path) {
    t.skip(skipReason(...TOK512));
    return null;
  }
  return loadTokenizer(path);
}

/** Every text the trainer and method tests tokenize, so none of their words is <unk>. */
function testTexts(): string[] {
  const rows = examples(NAMES.length * THINGS.length);
  return [
    ...rows.flatMap((e) => [e.prompt, e.response, e.response.toUpperCase()]),
    ...Array.from({ length: 64 }, (_, i) => `Repeat the word ${i}:`),
    "Instruction: Yes.",
    "Replay: old task",
  ];
}

let wordLevelDir: string | null = null;
/**
 * The word-level tokenizer over `testTexts()` (EOS `</s>`, no BOS; at most 512 ids, so the tiny
 * models' embeddings cover it), written once per process: its folder, for loadTokenizer or a
 * child process.
 */
export async function wordTokenizerDir(): Promise<string> {
  if (wordLevelDir) return wordLevelDir;
  const vocab = vocabularyOf(testTexts());
  if (vocab.length > 512) throw new Error(`test vocabulary has ${vocab.length} words (> 512)`);
  const root = mkdtempSync(join(tmpdir(), "lethe-tok-"));
  process.once("exit", () => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, "tokenizer");
  await writeTokenizer(dir, vocab, "causal");
  return (wordLevelDir = dir);
}

/** The tests' word-level tokenizer (`wordTokenizerDir`), loaded. */
export async function wordTokenizer(): Promise<Tokenizer> {
  return loadTokenizer(await wordTokenizerDir());
}

/** Every parameter's values, by name. */
export function weights(model: LanguageModel): Map<string, number[]> {
  return new Map(model.namedParameters().map(([n, p]) => [n, p.toNumbers()]));
}

/** GPT-2 with dropout 0.1 everywhere (so per-step dropout seeding is exercised). */
export function tinyGpt2(seed = 0): LanguageModel {
  const config = gpt2Family.parseConfig({
    model_type: "gpt2",
    vocab_size: 512,
    n_positions: 128,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
  });
  return gpt2Family.create(config, { seed });
}

export function tinyLlama(seed = 0): LanguageModel {
  const config = llamaFamily.parseConfig({
    model_type: "llama",
    vocab_size: 512,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  });
  return llamaFamily.create(config, { seed });
}

const NAMES = ["Lily", "Tom", "Sue", "Ben", "Max", "Mia", "Sam", "Zoe", "Tim", "Ann", "Bob", "Eve"];
const THINGS = ["ball", "cat", "dog", "tree", "cake", "boat", "sun", "hat"];

/** `n` synthetic examples: "Who has the X?" with a name in the input → "<name> has the X." */
export function examples(n: number): SftText[] {
  return Array.from({ length: n }, (_, i) => {
    const name = NAMES[i % NAMES.length];
    const thing = THINGS[(i * 5) % THINGS.length];
    return {
      prompt: `Question: ${name} played with a ${thing}. What did ${name} play with?\nAnswer:`,
      response: ` ${name} played with the ${thing}.`,
    };
  });
}

/** Small, quick and deterministic; tests override what they exercise. */
export const BASE_CONFIG: TrainConfigInput = {
  lr: 3e-3,
  epochs: 1,
  batchSize: 2,
  gradAccum: 2,
  warmup: 0.1,
  schedule: "cosine",
  clip: 1,
  weightDecay: 0.01,
  seed: 7,
  maxLength: 64,
  checkpointEvery: 0,
};

/** One stage of `trainStages`: its losses, every micro-batch's rows as the plugins left them, its folder. */
export interface StageRun {
  losses: number[];
  rows: SftFeatures[][];
  dir: string;
}

/**
 * Trains `model` on `stages` in turn with `plugins`, as the study runner's stage loop does without
 * evaluation: each stage in its own checkpoint folder (`dirs[i]`, else a new temp folder named
 * after `label`), a recorder after the plugins keeping every micro-batch's rows, every loss
 * checked finite, and `afterStage` called with the model as the stage left it.
 */
export function trainStages(o: {
  model: LanguageModel;
  kind: TuningKind;
  tokenizer: Tokenizer;
  config: TrainConfigInput;
  stages: readonly { name: string; examples: readonly SftText[] }[];
  plugins: readonly TrainPlugin[];
  label: string;
  dirs?: readonly string[];
  afterStage?: (run: StageRun, i: number) => void;
}): StageRun[] {
  return o.stages.map((stage, i) => {
    const rows: SftFeatures[][] = [];
    const recorder: TrainPlugin = {
      name: "recorder",
      supports: ["full", "lora"],
      batch: (_, r) => void rows.push(r),
    };
    const dir = o.dirs?.[i] ?? mkdtempSync(join(tmpdir(), `lethe-${o.label}-`));
    const res = trainStage({
      stage: stage.name,
      model: o.model,
      kind: o.kind,
      examples: stage.examples,
      tokenizer: o.tokenizer,
      config: o.config,
      plugins: [...o.plugins, recorder],
      dir,
    });
    for (const l of res.losses)
      assert.ok(Number.isFinite(l), `${o.label}: stage ${stage.name} loss ${l}`);
    const run = { losses: res.losses, rows, dir };
    o.afterStage?.(run, i);
    return run;
  });
}
