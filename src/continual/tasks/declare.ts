/**
 * Task declarations: the one form an instruction task is written in, whether built in
 * (src/continual/tasks/*.ts) or declared in a study config's `tasks:` list.
 *
 *     - name: my_simplification
 *       source: {path: data/simp.jsonl}     # .jsonl/.json/.csv/.tsv/.parquet, a Hub-layout folder,
 *                                           # or {hub: org/dataset, config: x, split: train}
 *       prompt: 'Make this text simpler: "{normal_sentence}"'
 *       target: simple_sentence             # a field, or a template
 *       metric: sari
 *       max_train: 100000
 *       test_split: {path: data/simp_test.jsonl}   # or {fraction: 0.05}, {split: test}, {hub: …}
 *
 * A row becomes an example: `prompt` renders the instruction, `input` (optional) the input,
 * `target` the output; `{field}` reads a row's field (`{a.b}` a nested one), `{{` and `}}` are
 * literal braces. A declaration may carry a `process` function (built-in tasks only) that turns
 * each raw row into zero or more rows before rendering: the place for processing the form cannot
 * state (a seeded constraint word, a dialogue expanded per turn). Rows are read by the shared
 * reader (src/io/dataset.ts); every error names the file, the row and the field.
 *
 * Splits: with `{fraction: f}` a seeded share f of the rows (or of the groups of `group`, so no
 * group sits on both sides) is held out for test; `max_train` keeps a seeded subsample of the
 * training rows, the way Luo et al. 2023 (arXiv 2308.08747) drew 100,000 examples per task.
 */
import { stat } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { z } from "zod";
import {
  concatRows,
  type FileRows,
  isObject,
  readDataset,
  readRows,
  type Row,
  describe,
  fieldValue,
} from "../../io/dataset.js";
import { resolveHubDataset } from "../../io/hub_datasets.js";
import {
  GENERATION_METRICS,
  type InstructionExample,
  makeTask,
  seededSplit,
  type TaskDefinition,
} from "../instruction.js";
import { makeRng, type Rng } from "../rng.js";

const FileSource = z.strictObject({
  path: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]), // files, or a Hub-layout folder
  split: z.string().min(1).optional(), // for a folder: which split; default train (test for test_split)
});
const HubSource = z.strictObject({
  hub: z.string().regex(/^[^/\s]+(\/[^/\s]+)?$/, "use org/dataset"), // the Hub's parquet export
  config: z.string().min(1).default("default"),
  split: z.string().min(1).optional(), // default train (test for test_split)
  revision: z.string().min(1).optional(),
});
const SourceSchema = z.union([FileSource, HubSource]);

const TestSplitSchema = z.union([
  FileSource,
  HubSource,
  z.strictObject({
    fraction: z.number().gt(0).lt(1), // seeded share held out of the source
    group: z.string().min(1).optional(), // a field or template: rows sharing it stay on one side
  }),
  z.strictObject({ split: z.string().min(1) }), // another split of the same folder or Hub dataset
]);

/** The declaration form of a config's `tasks:` entry (YAML keys as written). */
export const TaskDeclSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits, '.', '_' and '-'"),
  description: z.string().optional(),
  source: SourceSchema,
  prompt: z.string().min(1), // the instruction: a template over the row's fields
  input: z.string().optional(), // the input: a template; default none ("")
  target: z.string().min(1), // the output: a field name, or a template with {field}
  references: z.string().optional(), // a field holding a list of gold outputs
  metric: z.enum(GENERATION_METRICS),
  max_train: z.number().int().positive().optional(), // a seeded subsample of the training rows
  test_split: TestSplitSchema.nullable().default({ fraction: 0.1 }), // null: no test split
});

export type SourceDecl = z.output<typeof SourceSchema>;
export type TestSplitDecl = z.output<typeof TestSplitSchema>;

/** What `process` gets besides the row: a seeded stream shared by all rows, in order. */
export interface ProcessContext {
  rng: Rng;
}

/** A declaration; built-in ones may add `process`. */
export type TaskDeclaration = z.input<typeof TaskDeclSchema> & {
  /** Turns one raw row into rows to render (none to drop it); errors name `where`. */
  process?(row: Row, where: string, ctx: ProcessContext): Row | Row[] | null;
};

// ---------------------------------------------------------------------------------------------
// Templates over row fields

const TOKEN = /\{\{|\}\}|\{([^{}]*)\}/g;

/** The `{field}` names of a template. */
export function templateFields(template: string): string[] {
  return [...template.matchAll(TOKEN)].filter((m) => m[1] !== undefined).map((m) => m[1]);
}

function fieldText(row: Row, path: string, where: string, role: string): string {
  let v: unknown = row;
  for (const key of path.split(".")) {
    if (!isObject(v) || !Object.hasOwn(v, key))
      throw new Error(`${where}: ${role}: missing field "${path}"`);
    v = v[key];
  }
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error(`${where}: ${role}: field "${path}" must be text, got ${describe(v)}`);
}

/** Renders `template` over `row`; `role` ("prompt", "target") names the template in errors. */
export function renderTemplate(template: string, row: Row, where: string, role: string): string {
  // One pass, so braces inside field values are never re-expanded.
  return template.replace(TOKEN, (m, path: string | undefined) =>
    m === "{{" ? "{" : m === "}}" ? "}" : fieldText(row, path!.trim(), where, role),
  );
}

/** `target` is a template when it holds a brace, else a field name. */
const asTemplate = (target: string) => (target.includes("{") ? target : `{${target}}`);

// ---------------------------------------------------------------------------------------------
// Reading

/** The rows of a source; `dataDir` anchors relative paths (config paths arrive absolute). */
async function readSource(
  source: SourceDecl,
  dataDir: string,
  defaultSplit: string,
): Promise<FileRows> {
  if ("hub" in source) {
    const split = source.split ?? defaultSplit;
    const files = await resolveHubDataset({
      repo: source.hub,
      config: source.config,
      split,
      revision: source.revision,
    });
    if (files.length === 0)
      throw new Error(`hub dataset ${source.hub} (${source.config}/${split}): no parquet files`);
    return concatRows(
      await Promise.all(files.map((f) => readRows(f))),
      `${source.hub} (${source.config}/${split})`,
    );
  }
  const paths = (Array.isArray(source.path) ? source.path : [source.path]).map((p) =>
    isAbsolute(p) ? p : resolve(dataDir, p),
  );
  const split = source.split ?? defaultSplit;
  return concatRows(
    await Promise.all(paths.map((p) => readDataset(p, { split, nonEmpty: false }))),
    paths.join(", "),
  );
}

interface Entry {
  row: Row;
  where: string;
}

function processed(file: FileRows, decl: TaskDeclaration, ctx: ProcessContext): Entry[] {
  const out: Entry[] = [];
  file.rows.forEach((raw, i) => {
    const where = file.where(i);
    if (!decl.process) return out.push({ row: raw, where });
    const got = decl.process(raw, where, ctx);
    if (got === null) return;
    for (const row of Array.isArray(got) ? got : [got]) out.push({ row, where });
  });
  return out;
}

function toExample(decl: TaskDeclaration, { row, where }: Entry): InstructionExample {
  const ex: InstructionExample = {
    instruction: renderTemplate(decl.prompt, row, where, "prompt"),
    input: decl.input === undefined ? "" : renderTemplate(decl.input, row, where, "input"),
    output: renderTemplate(asTemplate(decl.target), row, where, "target"),
  };
  if (decl.references !== undefined) {
    const refs = fieldValue(row, decl.references, `${where}: references`, "a list of strings");
    if (!Array.isArray(refs) || !refs.every((r) => typeof r === "string"))
      throw new Error(
        `${where}: references: field "${decl.references}" must be a list of strings, got ${describe(refs)}`,
      );
    ex.references = refs;
  }
  return ex;
}

/**
 * A task definition from a declaration: checks it (errors name the task and the field), and
 * loads its splits from `dataDir` (the shared data root; config paths are absolute already).
 */
export function declareTask(
  declaration: TaskDeclaration,
  source = "task declaration",
): TaskDefinition {
  const { process, ...form } = declaration;
  const parsed = TaskDeclSchema.safeParse(form);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `${source}: task "${String((declaration as { name?: unknown }).name)}": field "${issue.path.join(".")}": ${issue.message}`,
    );
  }
  const decl: TaskDeclaration = { ...parsed.data, process };
  const spec = parsed.data;
  return {
    name: spec.name,
    description: spec.description ?? `${spec.name} (declared task)`,
    metric: spec.metric,
    async load(dataDir, options = {}) {
      const seed = options.seed ?? 0;
      const ctx: ProcessContext = { rng: makeRng(seed) };
      const rows = processed(await readSource(spec.source, dataDir, "train"), decl, ctx);
      const ts = spec.test_split;
      let train: Entry[];
      let test: Entry[];
      if (ts === null) [train, test] = [rows, []];
      else if ("fraction" in ts) {
        const group = ts.group === undefined ? undefined : asTemplate(ts.group);
        ({ train, test } = seededSplit(rows, {
          testFraction: options.testFraction ?? ts.fraction,
          seed,
          groupOf:
            group === undefined
              ? undefined
              : (e) => renderTemplate(group, e.row, e.where, "test_split.group"),
        }));
      } else {
        if ("split" in ts && !("path" in ts || "hub" in ts))
          await needsSplits(spec.source, dataDir);
        const from: SourceDecl =
          "path" in ts || "hub" in ts ? ts : { ...spec.source, split: ts.split };
        train = rows;
        test = processed(await readSource(from, dataDir, "test"), decl, ctx);
      }
      if (train.length === 0)
        throw new Error(`${spec.name}: no training rows in ${describeSource(spec.source)}`);
      const maxTrain =
        spec.max_train === undefined
          ? options.maxTrain
          : Math.min(spec.max_train, options.maxTrain ?? Infinity);
      return makeTask(
        spec.name,
        spec.metric,
        { train: train.map((e) => toExample(decl, e)), test: test.map((e) => toExample(decl, e)) },
        { ...options, maxTrain },
      );
    },
  };
}

/** `test_split: {split}` reads another split: of a Hub-layout folder or a Hub dataset only. */
async function needsSplits(source: SourceDecl, dataDir: string): Promise<void> {
  if ("hub" in source) return;
  for (const p of [source.path].flat()) {
    const path = isAbsolute(p) ? p : resolve(dataDir, p);
    if (!(await stat(path).catch(() => null))?.isDirectory())
      throw new Error(
        `${path}: test_split {split} needs a folder in the Hub layout or a hub source; for a file, give test_split {path} or {fraction}`,
      );
  }
}

function describeSource(s: SourceDecl): string {
  return "hub" in s ? `hub ${s.hub} (${s.config})` : [s.path].flat().join(", ");
}
