/**
 * The miniature study's model zoo: small LLaMA-style decoders at three sizes and T5-style
 * encoder-decoders at two, pretrained on the world's corpus in the run, plus one decoder that is
 * also tuned on the general instruction set (the Alpaca analogue next to its LLaMA analogue).
 * Each model is saved as a Hugging Face model directory (config.json, model.safetensors,
 * tokenizer.json) under `cacheDir/<sha256 of the zoo's inputs>/<name>/`: the world's seed and
 * sizes, the spec, the vocabulary and every training row each model learns from. So a second
 * build with the same inputs trains nothing, and any change to what pretraining sees (a new
 * format document, other cuts) is a new folder, with no version number to remember to bump.
 *
 * References: Luo et al. 2023 (arXiv 2308.08747) compare BLOOMZ, mT0, LLaMA and Alpaca across
 * sizes. Pretraining:
 * decoders learn the next token of each corpus document ("doc </s>", one per row, unpacked);
 * encoder-decoders learn prefix-to-next-sentence denoising instead of T5's span corruption
 * (Raffel et al. 2020, §3.1.4): each document is cut at seeded word boundaries, the encoder reads
 * the prefix and the decoder writes the rest of that sentence, so every target leans on the
 * encoder (with the whole rest as target, the decoder mostly models language on its own and is
 * slow to read the encoder); quiz pages and worked inferences are cut at their answer. Both go
 * through src/train/trainer.ts `trainStage` (full fine-tuning, AdamW, cosine schedule), as does
 * the instruction tuning (Stanford Alpaca's prompt template, response-only loss), so every model
 * is seeded and deterministic on CPU.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { renderPrompt, TEMPLATES } from "../continual/instruction.js";
import { buildRequests } from "../eval/evaluate.js";
import { loadPretrained, savePretrained } from "../io/pretrained.js";
import { loadTokenizer } from "../io/tokenizer.js";
import { createModel, parseModelConfig, type LanguageModel } from "../models/index.js";
import type { ProgressEvent } from "../train/progress.js";
import { trainStage } from "../train/trainer.js";
import type { TrainConfigInput } from "../train/config.js";
import { pretrainCorpus, SO } from "./corpus.js";
import { continualTasks, generalInstructions, type InstructionRow } from "./instructions.js";
import { miniTasks } from "./benchmarks.js";
import { Rng } from "./rng.js";
import { SPECIAL_TOKENS, vocabularyOf, writeTokenizer, type TokenizerKind } from "./tokenizer.js";
import type { World } from "./world.js";

/** The format version of zoo.json (the cache key is a content hash, see `zooKey`). */
const MANIFEST_VERSION = 1;
/** Reading-format practice passages per evaluated passage (`formatDocs`). */
const READING_PRACTICE = 5 / 3;
/** Tokens per training row and the models' context: a RACE passage with its questions fits. */
export const MAX_LENGTH = 128;

export interface ZooModelSpec {
  /** config.json fields; vocab_size and the special-token ids come from the world's tokenizer. */
  config: Record<string, unknown>;
  /** `trainStage` config of its pretraining, or of its instruction tuning when `base` is set. */
  train: TrainConfigInput;
  /** Instead of pretraining: tune this (earlier, decoder) zoo model on generalInstructions(world). */
  base?: string;
}

const decoder = (hidden: number, layers: number, heads: number) => ({
  model_type: "llama",
  hidden_size: hidden,
  intermediate_size: 4 * hidden, // wider than LLaMA's 8/3: the MLPs hold the world's facts
  num_hidden_layers: layers,
  num_attention_heads: heads,
  max_position_embeddings: MAX_LENGTH,
  tie_word_embeddings: true, // at this size the embedding is most of the model
  // LLaMA's 0.02 is ~1/√4096; at width 64 it leaves rare words (names) too small to be copied
  initializer_range: Math.round(1000 / Math.sqrt(hidden)) / 1000,
});

const encoderDecoder = (d: number, layers: number, heads: number) => ({
  model_type: "t5",
  d_model: d,
  d_kv: d / heads,
  d_ff: 4 * d,
  num_layers: layers,
  num_heads: heads,
  feed_forward_proj: "relu", // T5 v1.0
  dropout_rate: 0, // a few epochs of a small corpus: nothing to regularise
  tie_word_embeddings: true,
});

/**
 * Pretraining: one document per row, no packing. Packed rows are cut once, so every document
 * would always sit behind the same neighbours and a toy model learns the rows by heart instead of
 * the facts (it then fails on a fact asked alone); length-grouped batches keep padding small.
 */
const pretrain = (steps: number, batchSize: number, lr: number): TrainConfigInput => ({
  lr,
  steps,
  batchSize,
  gradAccum: 1,
  warmup: 0.02,
  schedule: "cosine",
  clip: 1,
  weightDecay: 0,
  maxLength: MAX_LENGTH,
  packing: false,
  checkpointEvery: 0,
});

/** The Alpaca analogue of dec-m: its instruction tuning. */
const instruct = (steps: number): ZooModelSpec => ({
  base: "dec-m",
  config: {},
  train: pretrain(steps, 16, 1e-3),
});

/**
 * The default zoo: about 4 minutes of pretraining on 2 cores. Steps and learning rates were
 * measured on world 0: the wider models recall far less at 2e-3–3e-3 than at 1.5e-3, the
 * narrowest fall to chance above 3e-3, decoders answer reading questions only after about 500
 * steps, and encdec-s has three layers because with two its reasoning scores stayed near chance.
 */
export const ZOO = {
  "dec-s": { config: decoder(64, 2, 2), train: pretrain(500, 32, 3e-3) },
  "dec-m": { config: decoder(96, 3, 3), train: pretrain(500, 32, 1.5e-3) },
  "dec-l": { config: decoder(128, 3, 4), train: pretrain(500, 32, 1.5e-3) },
  "encdec-s": { config: encoderDecoder(64, 3, 2), train: pretrain(600, 32, 3e-3) },
  "encdec-m": { config: encoderDecoder(96, 3, 3), train: pretrain(550, 32, 1.5e-3) },
  "dec-m-instruct": instruct(80),
} satisfies Record<string, ZooModelSpec>;
export type ZooName = keyof typeof ZOO;

/** The quick preset's zoo (with `QUICK_SIZES`): the same names and families, narrower and shorter. */
export const ZOO_QUICK = {
  "dec-s": { config: decoder(48, 2, 2), train: pretrain(200, 32, 3e-3) },
  "dec-m": { config: decoder(64, 2, 2), train: pretrain(150, 32, 3e-3) },
  "dec-l": { config: decoder(96, 2, 3), train: pretrain(130, 32, 2e-3) },
  "encdec-s": { config: encoderDecoder(48, 2, 2), train: pretrain(100, 32, 3e-3) },
  "encdec-m": { config: encoderDecoder(64, 2, 2), train: pretrain(100, 32, 3e-3) },
  "dec-m-instruct": instruct(16),
} satisfies Record<ZooName, ZooModelSpec>;

/** Encoder-decoder pretraining examples cut per document (different cut points). */
const CUTS_PER_DOC = 2;
/** Where the answer of a quiz page (`QA_TEMPLATE`) or a worked inference (`SO`) starts. */
const ANSWER_MARKERS = ["\nAnswer:", ` ${SO} `];

/** What `buildZoo` writes beside the models (format name and version as lethe's files carry). */
export interface ZooManifest {
  format: "lethe-zoo";
  version: typeof MANIFEST_VERSION;
  seed: number;
  spec: Record<string, ZooModelSpec>;
  /** Per model built: wall seconds of its training, optimizer steps, mean loss of the last step. */
  models: Record<string, { seconds: number; steps: number; finalLoss: number }>;
}

export interface BuildZooOptions {
  /** Folder holding one sub-folder per zoo content hash. */
  cacheDir: string;
  /** Training progress; `stage` is the model's name. */
  onProgress?: (e: ProgressEvent) => void;
  /** @default ZOO */
  spec?: Record<string, ZooModelSpec>;
}

const rowText = (row: InstructionRow) => ({
  prompt: renderPrompt(TEMPLATES.alpaca, row),
  response: row.output,
});

/** Every text the study feeds a zoo model: its vocabulary is the tokenizer's. */
async function worldTexts(world: World, corpus: string[]): Promise<string[]> {
  const rows = [
    ...generalInstructions(world),
    ...continualTasks(world).flatMap((t) => [...t.train, ...t.test]),
  ];
  const requests: string[] = [];
  for (const task of Object.values(miniTasks(world))) {
    const raw = (await task.original("", "test"))!;
    const docs = task.processDocs ? task.processDocs(raw) : raw;
    for (const r of buildRequests(task, docs, { shots: 0 })) requests.push(...r.arguments.flat());
  }
  return [
    ...corpus,
    ...rows.flatMap((r) => [renderPrompt(TEMPLATES.alpaca, r), r.output]),
    ...requests,
  ];
}

/**
 * Benchmark-format documents about what the corpus already teaches, the analogue of the QA text
 * web corpora hold: without them a toy model meets "Question:" and "Answer:" for the first time
 * in evaluation and scores at chance. They are the gold (context, continuation) of the mini
 * benchmarks of a mirror world whose demonstrated and held-out people are swapped, with another
 * seed: so no held-out person's conclusion appears, and its passages are about demonstrated
 * people while the evaluated ones are about held-out people. Reading takes the most practice (a
 * toy model learns to copy an answer out of a passage late), so it gets more passages than the
 * suite, one question each. CrowS-Pairs-format sentences and the knowledge questions (the corpus
 * has its own quiz pages) are left out.
 */
export async function formatDocs(world: World): Promise<{ prompt: string; response: string }[]> {
  const practice = Math.ceil(READING_PRACTICE * world.sizes.passages);
  const mirror: World = {
    ...world,
    seed: world.seed + 1,
    people: world.people.map((p) => ({ ...p, demonstrated: !p.demonstrated })),
    sizes: {
      ...world.sizes,
      passages: practice,
      evalItems: Math.max(world.sizes.evalItems, practice),
    },
  };
  const tasks = miniTasks(mirror);
  const out: { prompt: string; response: string }[] = [];
  for (const name of ["mini_piqa", "mini_hellaswag", "mini_race"] as const) {
    const task = tasks[name];
    const raw = (await task.original("", "test"))!;
    const docs = task.processDocs ? task.processDocs(raw) : raw;
    for (const r of buildRequests(task, docs, { shots: 0 })) {
      const [prompt, response] = r.arguments[Number(r.target)];
      out.push({ prompt, response: response.trimStart() });
    }
  }
  return out;
}

/**
 * Decoder rows: whole documents. Encoder-decoder rows: prefix → continuation, each corpus
 * document cut at seeded word boundaries, each quiz page, worked inference and format document
 * at its answer.
 */
async function pretrainExamples(world: World, corpus: string[], kind: TokenizerKind) {
  const formats = await formatDocs(world);
  if (kind === "causal")
    return [
      ...corpus.map((doc) => ({ prompt: "", response: doc })),
      ...formats.map((f) => ({ prompt: "", response: `${f.prompt} ${f.response}` })),
    ];
  const rng = new Rng(world.seed, "zoo:cuts");
  return [
    ...corpus.flatMap((doc) => {
      for (const marker of ANSWER_MARKERS) {
        const at = doc.lastIndexOf(marker);
        if (at < 0) continue;
        const cut = at + marker.length;
        return [{ prompt: doc.slice(0, cut), response: doc.slice(cut).trimStart() }];
      }
      const words = doc.split(" ");
      return Array.from({ length: CUTS_PER_DOC }, () => {
        const cut = 1 + rng.int(words.length - 1);
        let end = cut;
        while (end < words.length - 1 && !/[.?!]$/.test(words[end])) end++;
        return {
          prompt: words.slice(0, cut).join(" "),
          response: words.slice(cut, end + 1).join(" "),
        };
      });
    }),
    ...formats,
  ];
}

type Example = { prompt: string; response: string };

/**
 * The cache key: sha256 of the world's seed and sizes, the spec, the vocabulary and, per model in
 * spec order, the rows it trains on, as the world data's hash covers its files' content.
 */
export function zooKey(
  world: World,
  spec: Record<string, ZooModelSpec>,
  vocab: string[],
  examples: Record<string, readonly Example[]>,
): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ format: "lethe-zoo", seed: world.seed, sizes: world.sizes, spec }));
  h.update(JSON.stringify(vocab));
  for (const name of Object.keys(spec)) {
    h.update(`\0${name}\0`);
    for (const e of examples[name]) h.update(JSON.stringify([e.prompt, e.response]));
  }
  return h.digest("hex");
}

function checkSpec(spec: Record<string, ZooModelSpec>): void {
  const names = Object.keys(spec);
  names.forEach((name, i) => {
    const base = spec[name].base;
    if (base === undefined) return;
    const at = names.indexOf(base);
    if (at < 0 || at >= i)
      throw new Error(`zoo spec "${name}": field "base": "${base}" must name an earlier model`);
    if (spec[base].base !== undefined || spec[base].config.model_type !== "llama")
      throw new Error(`zoo spec "${name}": field "base": "${base}" must be a pretrained decoder`);
  });
}

/**
 * Builds (or finds in `cacheDir`) every model of `spec` for `world`; returns each model's
 * directory, loadable with `loadPretrained`. Models already saved are not trained again.
 */
export async function buildZoo(world: World, o: BuildZooOptions): Promise<Map<string, string>> {
  const spec: Record<string, ZooModelSpec> = o.spec ?? ZOO;
  checkSpec(spec);
  const corpus = pretrainCorpus(world);
  const vocab = vocabularyOf(await worldTexts(world, corpus));
  const pretrain = new Map<TokenizerKind, Example[]>();
  const examples: Record<string, Example[]> = {};
  for (const [name, m] of Object.entries(spec)) {
    const kind = m.base !== undefined || m.config.model_type !== "t5" ? "causal" : "seq2seq";
    if (m.base === undefined && !pretrain.has(kind))
      pretrain.set(kind, await pretrainExamples(world, corpus, kind));
    examples[name] =
      m.base !== undefined ? generalInstructions(world).map(rowText) : pretrain.get(kind)!;
  }
  const root = join(o.cacheDir, zooKey(world, spec, vocab, examples).slice(0, 16));
  const manifestFile = join(root, "zoo.json");
  const manifest: ZooManifest = existsSync(manifestFile)
    ? (JSON.parse(await readFile(manifestFile, "utf8")) as ZooManifest)
    : { format: "lethe-zoo", version: MANIFEST_VERSION, seed: world.seed, spec, models: {} };
  const tokenizerDir = (kind: TokenizerKind) => join(root, `tokenizer-${kind}`);
  for (const kind of ["causal", "seq2seq"] as const)
    if (!existsSync(join(tokenizerDir(kind), "tokenizer.json")))
      await writeTokenizer(tokenizerDir(kind), vocab, kind);

  const out = new Map<string, string>();
  for (const [name, m] of Object.entries(spec)) {
    const dir = join(root, name);
    out.set(name, dir);
    if (existsSync(join(dir, "config.json"))) continue; // savePretrained renames a complete folder
    const started = performance.now();
    let model: LanguageModel;
    let kind: TokenizerKind;
    if (m.base !== undefined) {
      model = (await loadPretrained(out.get(m.base)!)).model;
      kind = "causal";
    } else {
      kind = m.config.model_type === "t5" ? "seq2seq" : "causal";
      const [pad, bos, eos] = SPECIAL_TOKENS.map((_, i) => i);
      const ids =
        kind === "causal"
          ? { pad_token_id: pad, bos_token_id: bos, eos_token_id: eos }
          : { pad_token_id: pad, eos_token_id: eos, decoder_start_token_id: pad };
      const config = parseModelConfig({ ...m.config, vocab_size: vocab.length, ...ids }, name);
      model = createModel(config, { seed: world.seed });
    }
    const trainDir = join(root, ".train", name);
    try {
      await rm(trainDir, { recursive: true, force: true });
      const tokenizer = await loadTokenizer(tokenizerDir(kind));
      const result = trainStage({
        stage: name,
        model,
        kind: "full",
        examples: examples[name],
        tokenizer,
        config: { ...m.train, seed: world.seed },
        dir: trainDir,
        onProgress: o.onProgress,
      });
      await savePretrained(model, dir, { tokenizerDir: tokenizerDir(kind) });
      manifest.models[name] = {
        seconds: (performance.now() - started) / 1000,
        steps: result.steps,
        finalLoss: result.losses.at(-1)!,
      };
      await writeFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    } finally {
      model.dispose();
      await rm(trainDir, { recursive: true, force: true });
    }
  }
  return out;
}
