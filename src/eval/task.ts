/**
 * The typed declaration of an evaluation task, the counterpart of an lm-evaluation-harness v0.4.x
 * task YAML (lm_eval/api/task.py `TaskConfig`, `ConfigurableTask`): dataset and splits,
 * `docToText` / `docToTarget` / `docToChoice`, delimiters, output type, metrics with their
 * aggregation and `higher_is_better`, optional `processDocs` / `processResults` / `description`.
 * Field semantics follow lm-eval:
 *  - `docToText` returning a number means "multiple inputs" (WinoGrande): the choices are contexts,
 *    the number is the gold index, and `docToTarget` is the one shared continuation.
 *  - evaluation docs come from the test split, else the validation split; few-shot docs from
 *    `fewshotSplit`, else training, else validation, else test (`Task.fewshot_docs`).
 * Docs are in the schema of the Hugging Face dataset lm-eval loads (`datasetPath`/`datasetName`).
 * `loadSplit` reads the HF layout when present (`<dir>/[<config>/][data/]<split>.{jsonl,parquet,csv}`
 * or its `<split>-*` shards, found by io/dataset.ts's `hfSplitFiles`) and otherwise converts the benchmark's original release
 * files through the task's `original` reader. Rows of the HF layout are checked against the
 * task's `fields` (and `checkDoc`) as they are read, so a bad row is named by file, line and
 * field; an empty file, or a split with no documents, is an error.
 */
import { join } from "node:path";
import type { LoglikelihoodResult } from "./lm.js";
import { checkFields, type Fields, hfSplitFiles, readRows, type Row } from "../io/dataset.js";

export type Doc = Row;
export type OutputType =
  "multiple_choice" | "loglikelihood" | "loglikelihood_rolling" | "generate_until";

/** How per-document metric values become one number (lm-eval `register_aggregation`). */
export type Aggregation = "mean" | "perplexity";

export interface MetricSpec {
  metric: string;
  aggregation: Aggregation;
  higher_is_better: boolean;
}

export interface TaskConfig<D extends Doc = Doc> {
  task: string;
  /** lm-eval `metadata.version`: bump when a prompt or scoring rule changes. */
  version: number;
  /** The HF dataset lm-eval loads; the docs below are in its schema. */
  datasetPath: string;
  datasetName?: string;
  /** Folder under the data dir holding this benchmark in the HF layout. */
  dir: string;
  /**
   * Reads `split` from the original release files under `dataDir` into HF-schema rows (checking
   * every field it reads, with the file and line); null when absent.
   */
  original(dataDir: string, split: string): Promise<Doc[] | null>;
  /** The HF-schema fields the prompt and scoring read, with their types (dotted paths for nesting). */
  fields?: Fields;
  /** What `fields` cannot say (a value's range, a nested list): throws naming `where` and the field. */
  checkDoc?(doc: Doc, where: string): void;
  trainingSplit?: string;
  validationSplit?: string;
  testSplit?: string;
  fewshotSplit?: string;
  /** lm-eval `fewshot_config.sampler`: "default" = `rnd.sample`, "first_n" = the first k docs. */
  fewshotSampler?: "default" | "first_n";
  /** Fixed shot count that overrides the caller's (lm-eval `num_fewshot` in the YAML). */
  numFewshot?: number;
  processDocs?(docs: Doc[]): D[];
  description?: string;
  docToText(doc: D): string | number;
  docToTarget(doc: D): string | number;
  docToChoice?(doc: D): string[];
  /** Between context and continuation; lm-eval default " ". */
  targetDelimiter?: string;
  /** After each few-shot example; lm-eval default "\n\n". */
  fewshotDelimiter?: string;
  outputType: OutputType;
  metrics: MetricSpec[];
  /** Replaces the default scoring of `outputType` (lm-eval `process_results`). */
  processResults?(doc: D, results: LoglikelihoodResult[]): Record<string, number>;
  /**
   * The forgetting category a study averages this benchmark in (Luo et al. 2023's four:
   * domain_knowledge, reasoning, reading_comprehension, bias); none: its own name.
   */
  category?: string;
  /** The metric key forgetting and the matrix read (`<metric>,<filter>`). @default "acc,none" */
  primaryMetric?: string;
}

/** A task with lm-eval's defaults filled in. */
export type Task<D extends Doc = Doc> = TaskConfig<D> &
  Required<Pick<TaskConfig<D>, "targetDelimiter" | "fewshotDelimiter" | "fewshotSampler">>;

export function defineTask<D extends Doc>(config: TaskConfig<D>): Task<D> {
  return { targetDelimiter: " ", fewshotDelimiter: "\n\n", fewshotSampler: "default", ...config };
}

/** A group averages `aggregate` metrics over all its leaf tasks (lm-eval `aggregate_metric_list`). */
export interface GroupConfig {
  group: string;
  alias?: string;
  version: number;
  /** Member task or group names, in lm-eval's order. */
  task: string[];
  aggregate: Array<{ metric: string; weight_by_size: boolean }>;
  /** As `TaskConfig.category`, for the group as one benchmark. */
  category?: string;
  /** As `TaskConfig.primaryMetric`. @default "acc,none" */
  primaryMetric?: string;
}

export const accMean: MetricSpec = { metric: "acc", aggregation: "mean", higher_is_better: true };
export const accNormMean: MetricSpec = {
  metric: "acc_norm",
  aggregation: "mean",
  higher_is_better: true,
};

/**
 * Formats of the HF layout a benchmark folder may hold. Not `.json`: MathQA's and TruthfulQA's
 * original releases are `<split>.json` files, read by the task's `original` reader.
 */
const HF_EXTENSIONS = [".jsonl", ".parquet", ".csv"];

/** The rows of one HF-layout file, each checked against the task's schema. */
async function readHfFile(task: Task, path: string): Promise<Doc[]> {
  const file = await readRows(path);
  file.rows.forEach((row, i) => checkDoc(task, row, file.where(i)));
  return file.rows;
}

/** Checks one row against `task.fields` and `task.checkDoc`, naming `where` in the error. */
export function checkDoc(task: Task, row: Row, where: string): void {
  if (task.fields) checkFields(row, task.fields, where);
  task.checkDoc?.(row, where);
}

/** The rows of `split` for `task` under `dataDir`, or null when neither layout has it. */
export async function loadSplit(task: Task, dataDir: string, split: string): Promise<Doc[] | null> {
  const dir = join(dataDir, task.dir);
  const bases = task.datasetName ? [join(dir, task.datasetName), dir] : [dir];
  for (const base of bases) {
    const files = hfSplitFiles(base, split, HF_EXTENSIONS);
    if (files.length > 0) return (await Promise.all(files.map((f) => readHfFile(task, f)))).flat();
  }
  return task.original(dataDir, split);
}

async function loadProcessed(task: Task, dataDir: string, split: string): Promise<Doc[]> {
  const rows = await loadSplit(task, dataDir, split);
  const where = join(dataDir, task.dir);
  if (rows === null) {
    throw new Error(
      `${task.task}: split "${split}" not found under ${where} ` +
        `(neither the HF layout [data/]<split>.jsonl|.parquet|.csv or its <split>-* shards, nor the original release files)`,
    );
  }
  const docs = task.processDocs ? task.processDocs(rows) : rows;
  if (docs.length === 0) {
    // A mean over no documents is null, which would read as a score; it is an error instead.
    throw new Error(
      `${task.task}: split "${split}" under ${where} has no documents` +
        (rows.length > 0 ? ` left after processDocs (of ${rows.length} rows)` : ""),
    );
  }
  return docs;
}

/** The split lm-eval evaluates on: test, else validation. */
export function evalSplit(task: Task): string {
  const split = task.testSplit ?? task.validationSplit;
  if (split === undefined)
    throw new Error(`${task.task}: declares neither testSplit nor validationSplit`);
  return split;
}

export function loadEvalDocs(task: Task, dataDir: string): Promise<Doc[]> {
  return loadProcessed(task, dataDir, evalSplit(task));
}

/** The split lm-eval draws few-shot examples from (`fewshot_docs`). */
export function fewshotSplit(task: Task): string {
  return task.fewshotSplit ?? task.trainingSplit ?? task.validationSplit ?? evalSplit(task);
}

export function loadFewshotDocs(task: Task, dataDir: string): Promise<Doc[]> {
  return loadProcessed(task, dataDir, fewshotSplit(task));
}
