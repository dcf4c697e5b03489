/**
 * Instruction tasks: a named set of (instruction, input → output) examples with train/test
 * splits, a generation metric and a prompt template; rows come from the shared dataset reader
 * (src/io/dataset.ts: JSON Lines, JSON, CSV/TSV, Parquet, the Hugging Face Hub layout).
 *
 * References:
 * - Stanford Alpaca `train.py` PROMPT_DICT (tatsu-lab/stanford_alpaca): the default template,
 *   reproduced character for character, as used by Luo et al. 2023 (arXiv 2308.08747).
 */
import { field, type FileRows, mapRows, readDataset } from "../io/dataset.js";
import { LUO_TEMPLATE } from "./ct0.js";
import { makeRng, shuffled } from "./rng.js";
import { lookup } from "../util/suggest.js";

export { lookup };

/** One example. `references` holds every gold output when there are several (ASSET, e-SNLI). */
export interface InstructionExample {
  instruction: string;
  input: string;
  output: string;
  references?: string[];
}

/** Generation metrics by their lm-eval / HF `evaluate` names; the eval layer implements them. */
export const GENERATION_METRICS = [
  "rouge1",
  "rougeL",
  "bleu",
  "sari",
  "exact_match",
  "f1",
  "accuracy",
] as const;
export type GenerationMetric = (typeof GENERATION_METRICS)[number];

/**
 * A prompt wrapper. `{instruction}` and `{input}` are replaced; the model's response follows the
 * rendered prompt directly (training appends `output`, generation starts there).
 */
export interface PromptTemplate {
  name: string;
  /** Used when the example's input is non-empty. */
  withInput: string;
  /** Used when the input is empty. */
  withoutInput: string;
}

export interface InstructionTask {
  name: string;
  train: InstructionExample[];
  test: InstructionExample[];
  metric: GenerationMetric;
  template: PromptTemplate;
}

/** Options every built-in task's `load` accepts. */
export interface TaskOptions {
  /** Seed of every split and subsample. @default 0 */
  seed?: number;
  /** Keep at most this many training examples (a seeded subsample). @default all */
  maxTrain?: number;
  /** Keep at most this many test examples (a seeded subsample). @default all */
  maxTest?: number;
  /** Share of examples held out when the data ships without a test split. @default 0.1 */
  testFraction?: number;
  /** @default TEMPLATES.alpaca */
  template?: PromptTemplate;
}

/** A built-in task: `load` takes the shared data root (the folder holding `instructions/`). */
export interface TaskDefinition {
  name: string;
  description: string;
  metric: GenerationMetric;
  load(dataDir: string, options?: TaskOptions): Promise<InstructionTask>;
}

// ---------------------------------------------------------------------------------------------
// Templates

/** Built-in templates. `alpaca` is Stanford Alpaca's PROMPT_DICT verbatim (the paper's wrapper). */
export const TEMPLATES = {
  alpaca: {
    name: "alpaca",
    withInput:
      "Below is an instruction that describes a task, paired with an input that provides further context. " +
      "Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:",
    withoutInput:
      "Below is an instruction that describes a task. " +
      "Write a response that appropriately completes the request.\n\n" +
      "### Instruction:\n{instruction}\n\n### Response:",
  },
  plain: { name: "plain", withInput: "{instruction}\n{input}\n", withoutInput: "{instruction}\n" },
  /** Luo et al.'s own wrapper around CT0 prompts, 25-space quirk included (see ct0.ts). */
  luo2023: LUO_TEMPLATE,
} as const satisfies Record<string, PromptTemplate>;

const PLACEHOLDER = /\{([A-Za-z_]+)\}/g;

/**
 * A template from a string with `{instruction}` and optionally `{input}`; when the input is empty
 * `{input}` renders as "". Any other `{name}` is an error.
 */
export function templateFromString(text: string, name = "custom"): PromptTemplate {
  for (const [, key] of text.matchAll(PLACEHOLDER)) {
    if (key !== "instruction" && key !== "input") {
      throw new Error(
        `template "${name}": unknown placeholder {${key}} (use {instruction} and {input})`,
      );
    }
  }
  if (!text.includes("{instruction}"))
    throw new Error(`template "${name}": must contain {instruction}`);
  return { name, withInput: text, withoutInput: text };
}

/** A built-in template by name, or a template string (anything containing `{instruction}`). */
export function resolveTemplate(nameOrText: string): PromptTemplate {
  if (nameOrText.includes("{")) return templateFromString(nameOrText);
  return lookup(TEMPLATES, nameOrText, "template");
}

/** The prompt for one example (without the response). */
export function renderPrompt(template: PromptTemplate, ex: InstructionExample): string {
  const text = ex.input === "" ? template.withoutInput : template.withInput;
  // One pass, so braces inside the example text are never re-expanded.
  return text.replace(PLACEHOLDER, (m, key: string) =>
    key === "instruction" ? ex.instruction : key === "input" ? ex.input : m,
  );
}

// ---------------------------------------------------------------------------------------------
// Reading examples

/** Which record field fills each example field; a path "a.b" reaches into nested objects. */
export interface FieldMapping {
  /** Field with the instruction; leave out and give `instructionText` for a fixed one. */
  instruction?: string;
  /** Field with the input; left out means every input is "". */
  input?: string;
  output: string;
  /** Field with a list of gold outputs. */
  references?: string;
}

export interface ReadExamplesOptions {
  fields: FieldMapping;
  /** The instruction of every example, when the data has no instruction field. */
  instructionText?: string;
  /** For a directory in the HF Hub layout: which split. @default "train" */
  split?: string;
}

/** Maps the rows of a file to examples; errors name the file, row and field. */
export function toExamples(file: FileRows, options: ReadExamplesOptions): InstructionExample[] {
  const { fields, instructionText } = options;
  if ((fields.instruction === undefined) === (instructionText === undefined)) {
    throw new Error("examples: give exactly one of fields.instruction and instructionText");
  }
  return mapRows(file, (row, where) => {
    const ex: InstructionExample = {
      instruction:
        fields.instruction === undefined
          ? instructionText!
          : field(row, fields.instruction, where, "string"),
      input: fields.input === undefined ? "" : field(row, fields.input, where, "string"),
      output: field(row, fields.output, where, "string"),
    };
    if (fields.references !== undefined)
      ex.references = field(row, fields.references, where, "string[]");
    return ex;
  });
}

/**
 * Reads examples from a data file or a folder in the HF Hub layout (io/dataset.ts). An empty
 * file gives no examples: a miniature task may have no test split.
 */
export async function readInstructionExamples(
  path: string,
  options: ReadExamplesOptions,
): Promise<InstructionExample[]> {
  return toExamples(
    await readDataset(path, { split: options.split ?? "train", nonEmpty: false }),
    options,
  );
}

// ---------------------------------------------------------------------------------------------
// Splits

/**
 * A seeded train/test split. With `groupOf`, whole groups go to one side (no source document or
 * sentence on both sides). The test side gets round(testFraction × groups) groups.
 */
export function seededSplit<T>(
  items: readonly T[],
  options: { testFraction: number; seed: number; groupOf?: (item: T) => string },
): { train: T[]; test: T[] } {
  const { testFraction, seed, groupOf } = options;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new Error(`split: testFraction must be in (0, 1), got ${testFraction}`);
  }
  const keys = items.map((item, i) => (groupOf ? groupOf(item) : String(i)));
  const groups = [...new Set(keys)];
  const nTest = Math.round(groups.length * testFraction);
  const testGroups = new Set(shuffled(groups, makeRng(seed)).slice(0, nTest));
  const train: T[] = [];
  const test: T[] = [];
  items.forEach((item, i) => (testGroups.has(keys[i]) ? test : train).push(item));
  return { train, test };
}

/** At most `max` items, a seeded subsample kept in the original order. */
export function takeAtMost<T>(items: readonly T[], max: number | undefined, seed: number): T[] {
  if (max === undefined || max >= items.length) return items.slice();
  if (!Number.isInteger(max) || max < 0)
    throw new Error(`max size must be a non-negative integer, got ${max}`);
  const keep = new Set(shuffled([...items.keys()], makeRng(seed)).slice(0, max));
  return items.filter((_, i) => keep.has(i));
}

/** Applies the size limits and template of `options` to loaded splits. */
export function makeTask(
  name: string,
  metric: GenerationMetric,
  splits: { train: InstructionExample[]; test: InstructionExample[] },
  options: TaskOptions = {},
): InstructionTask {
  const seed = options.seed ?? 0;
  return {
    name,
    metric,
    train: takeAtMost(splits.train, options.maxTrain, seed),
    test: takeAtMost(splits.test, options.maxTest, seed + 1),
    template: options.template ?? TEMPLATES.alpaca,
  };
}
