/**
 * Reads what a run leaves on disk for the report: `results.json` (format "lethe-results" v2 or
 * v1, the layout of src/continual/results.ts), `run-card.json` (a free-form object) and, when present,
 * `stages/<stage>/items/<benchmark>.jsonl` with one `{doc_id, correct, text?}` record per evaluated item.
 * A study directory holds one run per model × method × seed under `runs/<name>/`.
 *
 * Facts about the model that the findings need are read from the run card's `model` object:
 * `params` (parameter count), `architecture` ("decoder-only" | "encoder-decoder") and `base`
 * (for an instruction-tuned model, the name of the model it was tuned from, e.g. Alpaca → LLaMA)
 * and `family` (sizes of one family are compared by the scale finding).
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { z } from "zod";
import { RESULTS_FORMAT, type RunResults } from "../continual/results.js";
import { readRecord } from "../continual/slurm.js";
import { parseWith } from "../util/schema.js";

/** One evaluated item at one stage. */
export interface ItemRecord {
  doc_id: string;
  correct: boolean;
  text?: string;
}

export type Architecture = "decoder-only" | "encoder-decoder";

/** What the findings need to know about a model; null where the run card does not say. */
export interface ModelFacts {
  name: string;
  params: number | null;
  architecture: Architecture | null;
  /** For an instruction-tuned model: the model it was tuned from. */
  base: string | null;
  /** Model family (e.g. "bloomz"): the scale finding compares sizes within one family. */
  family: string | null;
}

export interface Run {
  dir: string;
  results: RunResults;
  card: Record<string, unknown>;
  model: ModelFacts;
  /** benchmark → stage → records, from `stages/<m>/items/` (empty when the run kept no items). */
  items: Record<string, Record<number, ItemRecord[]>>;
}

/** A benchmark's items file above this size is refused rather than held in memory. */
const MAX_ITEMS_FILE_BYTES = 256 * 1024 * 1024;

/** A metric: null in the file (a partial run's metric that needs more stages) reads as NaN. */
const metric = z
  .number()
  .nullable()
  .transform((v) => v ?? NaN);
const scores = z.record(z.string(), metric);
const resultsSchema = z.object({
  format: z.object({
    name: z.literal(RESULTS_FORMAT.name),
    // v1 is v2 plus `stages[].seconds`, which the report never read
    version: z.literal([1, RESULTS_FORMAT.version]).transform(() => RESULTS_FORMAT.version),
  }),
  run: z.object({
    name: z.string(),
    model: z.string(),
    method: z.string(),
    order: z.array(z.string()),
    seed: z.number(),
  }),
  progress: z.object({ stagesDone: z.number().int(), totalStages: z.number().int() }).optional(),
  categories: z.record(z.string(), z.string()),
  primaryMetric: z.record(z.string(), z.string()),
  stages: z.array(
    z.object({
      stage: z.number().int(),
      task: z.string().nullable(),
      general: z.record(z.string(), scores),
      tasks: z.record(z.string(), scores),
    }),
  ),
  fg: z.object({
    perCategory: scores,
    perBenchmark: scores,
    ci: z.record(z.string(), z.tuple([z.number(), z.number()])).optional(),
  }),
  matrix: z.array(z.array(metric)),
  avg_acc: metric,
  final_acc: z.array(metric),
  bwt: metric,
  fwt: metric,
  forgetting: metric,
  plasticity: metric,
  curves: z.record(z.string(), z.array(metric)),
  flips: z
    .record(
      z.string(),
      z.array(
        z.object({
          stage: z.number().int(),
          forgotten: z.array(z.string()),
          learned: z.array(z.string()),
        }),
      ),
    )
    .optional(),
}) satisfies z.ZodType<RunResults>;

const modelSchema = z.object({
  params: z.number().positive().optional(),
  architecture: z.enum(["decoder-only", "encoder-decoder"]).optional(),
  base: z.string().optional(),
  family: z.string().optional(),
});

const itemSchema = z.object({
  doc_id: z.union([z.string(), z.number()]),
  correct: z.boolean(),
  text: z.string().optional(),
});

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** Run directories under `dir`: `dir` itself when it holds results.json, else `dir/runs/*`. */
export function findRunDirs(dir: string): string[] {
  if (existsSync(join(dir, "results.json"))) return [dir];
  const runsDir = join(dir, "runs");
  if (!existsSync(runsDir) || !statSync(runsDir).isDirectory())
    throw new Error(`${dir}: neither a run (no results.json) nor a study (no runs/ folder)`);
  const dirs = readdirSync(runsDir)
    .sort()
    .map((name) => join(runsDir, name))
    .filter((d) => existsSync(join(d, "results.json")));
  if (dirs.length === 0) throw new Error(`${runsDir}: no run folder with a results.json`);
  return dirs;
}

function readItems(dir: string): Run["items"] {
  const root = join(dir, "stages");
  const out: Run["items"] = {};
  if (!existsSync(root)) return out;
  for (const stageName of readdirSync(root)) {
    const stage = Number(stageName);
    if (!Number.isInteger(stage) || stage < 0)
      throw new Error(`${join(root, stageName)}: folders under stages/ must be stage numbers`);
    const itemsDir = join(root, stageName, "items");
    if (!existsSync(itemsDir)) continue;
    for (const file of readdirSync(itemsDir).filter((f) => f.endsWith(".jsonl"))) {
      const path = join(itemsDir, file);
      if (statSync(path).size > MAX_ITEMS_FILE_BYTES)
        throw new Error(`${path}: larger than ${MAX_ITEMS_FILE_BYTES} bytes`);
      const records = readFileSync(path, "utf8")
        .split("\n")
        .flatMap((line, i) => {
          if (line.trim() === "") return [];
          let value: unknown;
          try {
            value = JSON.parse(line);
          } catch (e) {
            throw new Error(`${path}:${i + 1}: ${(e as Error).message}`);
          }
          const r = parseWith(itemSchema, value, `${path}:${i + 1}`);
          return [{ ...r, doc_id: String(r.doc_id) }];
        });
      const benchmark = file.slice(0, -".jsonl".length);
      (out[benchmark] ??= {})[stage] = records;
    }
  }
  return out;
}

/** Loads and checks one run directory. */
export function loadRun(dir: string): Run {
  const resultsFile = join(dir, "results.json");
  const results = parseWith(resultsSchema, readJson(resultsFile), resultsFile);
  const cardFile = join(dir, "run-card.json");
  const rawCard = existsSync(cardFile) ? readJson(cardFile) : {};
  if (typeof rawCard !== "object" || rawCard === null || Array.isArray(rawCard))
    throw new Error(`${cardFile}: must hold a JSON object`);
  const card = rawCard as Record<string, unknown>;
  const facts =
    card.model === undefined ? {} : parseWith(modelSchema, card.model, `${cardFile} field "model"`);
  return {
    dir,
    results,
    card,
    model: {
      name: results.run.model,
      params: facts.params ?? null,
      architecture: facts.architecture ?? null,
      base: facts.base ?? null,
      family: facts.family ?? null,
    },
    items: readItems(dir),
  };
}

/** A run of a study that has no results, or stopped on an error (its results are partial). */
export interface UnfinishedRun {
  name: string;
  dir: string;
  state: "failed" | "incomplete";
  /** failed.json's error, else the Slurm element's reason. */
  error: string | null;
  /** The Slurm element's log (runs/<run>/slurm-<job>.out), when it ran under `lethe submit`. */
  log: string | null;
}

/**
 * The runs under each study directory that failed (failed.json, or a failed Slurm element) or
 * have no results yet, by name. A run directory given directly is only checked for failure.
 */
export function unfinishedRuns(dirs: readonly string[]): UnfinishedRun[] {
  const out: UnfinishedRun[] = [];
  for (const d of dirs) {
    const runsDir = join(d, "runs");
    const runDirs = existsSync(join(d, "results.json"))
      ? [d]
      : existsSync(runsDir)
        ? readdirSync(runsDir)
            .sort()
            .map((n) => join(runsDir, n))
            .filter((r) => statSync(r).isDirectory())
        : [];
    for (const dir of runDirs) {
      const failedFile = join(dir, "failed.json");
      const failed = existsSync(failedFile)
        ? String((readJson(failedFile) as { error?: unknown }).error ?? "")
        : null;
      const record = readRecord(dir);
      const slurmFailed = record?.state === "failed";
      const hasResults = existsSync(join(dir, "results.json"));
      if (failed === null && !slurmFailed && hasResults) continue;
      out.push({
        name: basename(dir),
        dir,
        state: failed !== null || slurmFailed ? "failed" : "incomplete",
        error: failed ?? record?.reason ?? null,
        log: record?.log ?? null,
      });
    }
  }
  return out;
}

/** Loads every run under the given run or study directories, in order. */
export function loadRuns(dirs: readonly string[]): Run[] {
  if (dirs.length === 0) throw new Error("no run or study directory given");
  return dirs.flatMap(findRunDirs).map(loadRun);
}

const ARCH_ORDER: Record<string, number> = { "decoder-only": 0, "encoder-decoder": 1 };

/** Report order of models: decoder-only first, then by family, size, base before tuned, name. */
export function compareModels(a: ModelFacts, b: ModelFacts): number {
  return (
    (ARCH_ORDER[a.architecture ?? ""] ?? 2) - (ARCH_ORDER[b.architecture ?? ""] ?? 2) ||
    (a.family ?? "").localeCompare(b.family ?? "") ||
    (a.params ?? Infinity) - (b.params ?? Infinity) ||
    Number(a.base !== null) - Number(b.base !== null) ||
    a.name.localeCompare(b.name)
  );
}

/** The paper's categories in its order; others follow in first-seen order. */
export const PAPER_CATEGORIES = ["domain_knowledge", "reasoning", "reading_comprehension", "bias"];

export function categoriesOf(runs: readonly Run[]): string[] {
  const seen = new Set<string>();
  for (const r of runs) for (const c of Object.keys(r.results.fg.perCategory)) seen.add(c);
  return [
    ...PAPER_CATEGORIES.filter((c) => seen.has(c)),
    ...[...seen].filter((c) => !PAPER_CATEGORIES.includes(c)),
  ];
}

/** Runs grouped by model × method (seeds together), in report order. */
export function groupRuns(
  runs: readonly Run[],
): { model: ModelFacts; method: string; runs: Run[] }[] {
  const groups = new Map<string, { model: ModelFacts; method: string; runs: Run[] }>();
  for (const r of runs) {
    const key = JSON.stringify([r.model.name, r.results.run.method]);
    const g = groups.get(key) ?? { model: r.model, method: r.results.run.method, runs: [] };
    g.runs.push(r);
    groups.set(key, g);
  }
  return [...groups.values()].sort(
    (a, b) => compareModels(a.model, b.model) || a.method.localeCompare(b.method),
  );
}

/** An item right at stage 0 and wrong at one or more later stages. */
export interface ForgottenItem {
  doc_id: string;
  text?: string;
  /** The stages (≥ 1) at which it was wrong. */
  wrong: number[];
}

/**
 * Forgotten items per benchmark: from `stages/<m>/items/` when the run kept them (with text), else from
 * results.json `flips` (ids only).
 */
export function forgottenItems(run: Run): Record<string, ForgottenItem[]> {
  const out: Record<string, ForgottenItem[]> = {};
  for (const [benchmark, byStage] of Object.entries(run.items)) {
    const base = byStage[0];
    if (!base) continue;
    const items = new Map(
      base
        .filter((r) => r.correct)
        .map((r) => [r.doc_id, { doc_id: r.doc_id, text: r.text, wrong: [] as number[] }]),
    );
    for (const stage of Object.keys(byStage)
      .map(Number)
      .filter((s) => s > 0)
      .sort((a, b) => a - b))
      for (const r of byStage[stage]) if (!r.correct) items.get(r.doc_id)?.wrong.push(stage);
    out[benchmark] = [...items.values()].filter((i) => i.wrong.length);
  }
  for (const [benchmark, stages] of Object.entries(run.results.flips ?? {})) {
    if (benchmark in out) continue;
    const items = new Map<string, ForgottenItem>();
    for (const { stage, forgotten } of [...stages].sort((a, b) => a.stage - b.stage))
      for (const id of forgotten) {
        const item = items.get(id) ?? { doc_id: id, wrong: [] };
        item.wrong.push(stage);
        items.set(id, item);
      }
    out[benchmark] = [...items.values()];
  }
  return out;
}
