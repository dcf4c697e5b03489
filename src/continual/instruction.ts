/**
 * Instruction tasks: a named set of (instruction, input → output) examples with train/test
 * splits, a generation metric and a prompt template; plus the generic record reader they are
 * built from (JSON Lines, JSON, CSV/TSV, parquet, and the Hugging Face Hub dataset layout).
 *
 * References:
 * - Stanford Alpaca `train.py` PROMPT_DICT (tatsu-lab/stanford_alpaca): the default template,
 *   reproduced character for character, as used by Luo et al. 2023 (arXiv 2308.08747).
 * - Hugging Face Hub dataset layout (huggingface.co/docs/hub/datasets-file-names-and-splits):
 *   `{split}.{ext}`, `{split}-00000-of-00001.{ext}` and `data/…` variants.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, extname, join } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
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
export type GenerationMetric = "rougeL" | "sari" | "exact_match" | "bleu";

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
// Registries

// ---------------------------------------------------------------------------------------------
// Reading records

/** A raw record and where it came from, e.g. "data/x.jsonl:12" or "data/x.parquet row 3". */
export interface SourceRecord {
  fields: Record<string, unknown>;
  where: string;
}

/** Largest text file read whole: V8 strings stop at ~512 MiB (2^29 − 24 chars). */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

/** Reads a whole text file (UTF-8), refusing files past MAX_TEXT_FILE_BYTES. */
export function readText(file: string): string {
  if (!existsSync(file)) throw new Error(`${file}: file not found`);
  const size = statSync(file).size;
  if (size > MAX_TEXT_FILE_BYTES) {
    throw new Error(
      `${file}: ${size} bytes is over the ${MAX_TEXT_FILE_BYTES}-byte limit for text data`,
    );
  }
  return readFileSync(file, "utf8");
}

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(
      `${where}: expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

function readJsonLines(file: string, text: string): SourceRecord[] {
  const out: SourceRecord[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
    }
    out.push({ fields: asRecord(value, where), where });
  });
  return out;
}

function readJsonFile(file: string): SourceRecord[] {
  const text = readText(file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Several releases (CT0's haiku) are JSON Lines under a .json name.
    return readJsonLines(file, text);
  }
  if (!Array.isArray(value)) {
    throw new Error(
      `${file}: expected a JSON array of records (or JSON Lines), got a ${typeof value}`,
    );
  }
  return value.map((v, i) => ({
    fields: asRecord(v, `${file} record ${i}`),
    where: `${file} record ${i}`,
  }));
}

function readCsvFile(file: string): SourceRecord[] {
  const rows = parseCsv(readText(file), {
    columns: true,
    delimiter: extname(file) === ".tsv" ? "\t" : ",",
    skip_empty_lines: true,
    bom: true,
    info: true,
  }) as { record: Record<string, string>; info: { lines: number } }[];
  return rows.map(({ record, info }) => ({ fields: record, where: `${file}:${info.lines}` }));
}

async function readParquetFile(file: string): Promise<SourceRecord[]> {
  if (!existsSync(file)) throw new Error(`${file}: file not found`);
  const rows = await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors });
  return rows.map((fields, i) => ({ fields, where: `${file} row ${i}` }));
}

const DATA_EXTENSIONS = [".jsonl", ".json", ".csv", ".tsv", ".parquet"];

/** Reads one data file; the format comes from the extension. */
export async function readRecords(file: string): Promise<SourceRecord[]> {
  switch (extname(file)) {
    case ".jsonl":
      return readJsonLines(file, readText(file));
    case ".json":
      return readJsonFile(file);
    case ".csv":
    case ".tsv":
      return readCsvFile(file);
    case ".parquet":
      return readParquetFile(file);
    default:
      throw new Error(
        `${file}: unknown data format (expected one of ${DATA_EXTENSIONS.join(", ")})`,
      );
  }
}

/**
 * The files holding one split of a dataset in the Hugging Face Hub layout: `{split}.{ext}` or
 * shards `{split}-*.{ext}`, at the top or under `data/`, sorted by name.
 */
export function hfSplitFiles(dir: string, split: string): string[] {
  for (const sub of [dir, join(dir, "data")]) {
    if (!existsSync(sub)) continue;
    const files = readdirSync(sub)
      .filter((f) => DATA_EXTENSIONS.includes(extname(f)))
      .filter((f) => {
        const stem = basename(f, extname(f));
        return stem === split || stem.startsWith(`${split}-`);
      })
      .sort();
    if (files.length > 0) return files.map((f) => join(sub, f));
  }
  throw new Error(
    `${dir}: no "${split}" split found (looked for ${split}.* and ${split}-*.* here and in data/)`,
  );
}

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

/** The value at a field path; "a.b" reads field b of object field a (CT0's `translation.en1`). */
function fieldAt(rec: SourceRecord, path: string): unknown {
  let v: unknown = rec.fields;
  for (const key of path.split(".")) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, key)) {
      throw new Error(`${rec.where}: missing field "${path}"`);
    }
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

function stringField(rec: SourceRecord, path: string): string {
  const v = fieldAt(rec, path);
  if (typeof v !== "string")
    throw new Error(`${rec.where}: field "${path}" must be a string, got ${typeof v}`);
  return v;
}

/** Maps raw records to examples; errors name the file, row and field. */
export function toExamples(
  records: readonly SourceRecord[],
  options: ReadExamplesOptions,
): InstructionExample[] {
  const { fields, instructionText } = options;
  if ((fields.instruction === undefined) === (instructionText === undefined)) {
    throw new Error("examples: give exactly one of fields.instruction and instructionText");
  }
  return records.map((rec) => {
    const ex: InstructionExample = {
      instruction:
        fields.instruction === undefined ? instructionText! : stringField(rec, fields.instruction),
      input: fields.input === undefined ? "" : stringField(rec, fields.input),
      output: stringField(rec, fields.output),
    };
    if (fields.references !== undefined) {
      const refs = fieldAt(rec, fields.references);
      if (!Array.isArray(refs) || !refs.every((r) => typeof r === "string")) {
        throw new Error(`${rec.where}: field "${fields.references}" must be a list of strings`);
      }
      ex.references = refs;
    }
    return ex;
  });
}

/** Reads examples from a data file or an HF Hub layout directory. */
export async function readInstructionExamples(
  path: string,
  options: ReadExamplesOptions,
): Promise<InstructionExample[]> {
  const files =
    existsSync(path) && statSync(path).isDirectory()
      ? hfSplitFiles(path, options.split ?? "train")
      : [path];
  const records: SourceRecord[] = [];
  for (const f of files) records.push(...(await readRecords(f)));
  return toExamples(records, options);
}

/**
 * Reads files that hold one field per line, aligned by line number (e-SNLI, ASSET). A final
 * newline is optional; every file must have the same number of lines.
 */
export function readAlignedLines(files: readonly string[]): string[][] {
  const columns = files.map((f) => {
    const lines = readText(f).split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return lines;
  });
  columns.forEach((col, i) => {
    if (col.length !== columns[0].length) {
      throw new Error(
        `${files[i]}: ${col.length} lines, but ${files[0]} has ${columns[0].length} (files must align)`,
      );
    }
  });
  return columns[0].map((_, row) => columns.map((col) => col[row]));
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
