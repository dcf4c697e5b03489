/**
 * Shared pieces of the trainer tests: tiny models over llama2.c's 512-token vocabulary (so the
 * real tok512 tokenizer drives them), synthetic instruction examples, and a fixed config.
 */
import { gpt2Family } from "../../src/models/gpt2.js";
import { llamaFamily } from "../../src/models/llama.js";
import type { LanguageModel } from "../../src/models/types.js";
import type { SftText } from "../../src/train/data.js";
import type { TrainConfigInput } from "../../src/train/trainer.js";
import { loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { dataPath, skipReason } from "../helpers/data.js";

/** llama2.c's tok512 (BOS 1, EOS 2), the tokenizer of the stories260K model. */
export const TOK512 = ["models", "stories260K", "tok512.bin"] as const;
export const tok512Path = (): string | null => dataPath(...TOK512);

/** stories260K's tokenizer, or null after skipping the test `t` with the reason. */
export async function tok512(t: { skip(msg: string): void }): Promise<Tokenizer | null> {
  const path = tok512Path();
  if (!path) {
    t.skip(skipReason(...TOK512));
    return null;
  }
  return loadTokenizer(path);
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
