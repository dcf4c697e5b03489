/**
 * The study config: one YAML (or JSON) file naming the base model(s), mitigation method(s), task
 * orders, seeds, the evaluation suite (lm-eval benchmarks + the continual tasks), training
 * hyper-parameters and the data budget. Every default lives in the schema below; unknown or
 * misspelled keys are errors that name the field and suggest the right one (STYLE.md #18).
 * `expandGrid` turns a study into its runs (models × methods × orders × seeds); each run's own
 * config is the same schema with one entry per list, so a run directory resumes on its own.
 *
 * References: Luo et al. 2023, arXiv 2308.08747 (the paper's setup: Alpaca template, lr 2e-5,
 * 3 epochs, MMLU 5-shot and the other benchmarks 0-shot, the four FG categories); nanoGPT
 * `configurator.py` ("Unknown config key"); lm-eval task names verbatim.
 *
 * Paths in a config are relative to the config file; `${VAR}` and `${VAR:-default}` are replaced
 * from the environment first (e.g. `${LETHE_DATA:-../../shared/data}`).
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { TrainConfigSchema } from "../train/config.js";
import {
  expandTaskNames,
  getGroup as getEvalGroup,
  getTask as getEvalTask,
} from "../eval/tasks/index.js";
import {
  combinationProblem,
  methodOf,
  MethodOptionError,
  parseOptions,
  settingProblem,
  type MethodPart,
} from "./methods/index.js";
import { LrControlSchema, type LrControl } from "./methods/method.js";
import { getSequence, getTask, isBuiltinTask } from "./tasks/index.js";
import { TaskDeclSchema, type TaskDeclaration } from "./tasks/declare.js";
import { getGenerationMetric } from "../eval/metrics/index.js";
import { formatIssue } from "../util/schema.js";
import { didYouMean } from "../util/suggest.js";

/** Names that become folder names: letters, digits, `.`, `_`, `-`. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const name = z.string().regex(NAME, "use letters, digits, '.', '_' and '-' only");

/**
 * The train fields a model entry may set for its own runs (the paper trains BLOOMZ/mT0 at a
 * constant lr and LLaMA/Alpaca on a cosine schedule). No defaults: unset fields keep the study's.
 */
const t = TrainConfigSchema.shape;
const ModelTrainSchema = z.strictObject({
  lr: t.lr.unwrap().optional(),
  schedule: t.schedule.unwrap().optional(),
  warmup: t.warmup.unwrap().optional(),
  epochs: t.epochs.unwrap().optional(),
  batchSize: t.batchSize.unwrap().optional(),
  gradAccum: t.gradAccum.unwrap().optional(),
  precision: t.precision,
});

const ModelSchema = z
  .strictObject({
    name, // names the run folders and results.json `run.model`
    ref: z.string().optional(), // `hf:org/name[@rev]` or a model directory
    // A PEFT LoRA adapter it starts from (a folder or hf:org/name[@rev]): LoRA runs train it on,
    // full fine-tuning merges it into the weights first.
    adapter: z.string().optional(),
    build: z // a model with seeded random weights built by lethe (tests, benchmarks)
      .strictObject({
        config: z.record(z.string(), z.unknown()), // config.json fields, `model_type` first
        seed: z.number().int().min(0).default(0),
        tokenizer: z.string(), // a tokenizer file or directory
      })
      .optional(),
    // The dtype the weights load in. Without train.precision it is also the policy (bfloat16 =
    // bf16-true); a stated precision casts to its own (mixed modes: float32 master weights).
    dtype: z.enum(["float32", "float16", "bfloat16"]).default("float32"),
    device: z.string().default("cpu"),
    base: name.optional(), // the model it was instruction-tuned from: the report pairs their runs
    methods: z.array(z.string()).min(1).optional(), // labels of the methods it runs; default all
    train: ModelTrainSchema.optional(), // overrides of the study's train section for this model's runs
  })
  .refine((m) => (m.ref === undefined) !== (m.build === undefined), {
    message: 'give exactly one of "ref" and "build"',
  });

const MethodSchema = z.union([
  z.string(),
  z.strictObject({
    // A key of the methods registry, or a list of them: a combination, its hooks in this order.
    name: z.union([z.string(), z.array(z.string()).min(1)]),
    // The method's options; for a combination, each method's keyed by its name.
    options: z.record(z.string(), z.unknown()).default({}),
    // Names the runs; default: the method name(s), joined by "+" (allowed here: "replay+lwf").
    label: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, "use letters, digits, '.', '_', '+' and '-' only")
      .optional(),
    lr: LrControlSchema.optional(), // learning-rate control between stages (any method)
  }),
]);

const BenchmarkSchema = z.union([
  z.string(),
  z.strictObject({
    name: z.string(), // an lm-eval task or group name
    shots: z.number().int().min(0).default(0),
    limit: z.number().int().positive().nullable().default(null), // first N docs of each task
    metric: z.string().optional(), // the primary metric key, e.g. "acc_norm,none"
    category: z.string().optional(), // FG category; default: the benchmark's declared one
  }),
]);

/** What a run can export after each finished stage (src/continual/export.ts). */
export const EXPORT_FORMATS = ["hf", "peft"] as const;

/** `lethe submit`'s settings, the names of its flags in camelCase; its flags override them. */
export const SlurmSchema = z.strictObject({
  partition: z.string().min(1).optional(), // sbatch --partition
  account: z.string().min(1).optional(), // sbatch --account
  time: z // sbatch --time of each run: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS
    .string()
    .regex(/^(\d+-)?\d+(:\d+){0,2}$/, "use sbatch's --time format, e.g. 90, 4:00:00 or 1-12")
    .optional(),
  gpusPerRun: z.number().int().min(0).optional(), // sbatch --gpus-per-node
  cpusPerRun: z.number().int().positive().optional(), // sbatch --cpus-per-task
  mem: z // sbatch --mem, per node: e.g. 16G
    .string()
    .regex(/^\d+[KMGT]?$/, "use sbatch's --mem format, e.g. 16G or 4000M")
    .optional(),
  nodesPerRun: z.number().int().positive().optional(), // sbatch --nodes
  ranksPerNode: z.number().int().positive().optional(), // srun tasks per node (ranks); default gpusPerRun, else 1
  sbatchArgs: z.array(z.string().regex(/^-/, "an sbatch option, e.g. --qos=high")).optional(),
  maxRetries: z.number().int().min(0).optional(), // requeues of a failing run; default 2
});

export const StudySchema = z.strictObject({
  name, // the study's name: the default output folder
  dataDir: z.string(), // the shared data root: instructions/, benchmarks/
  benchmarksDir: z.string().optional(), // lm-eval data; default <dataDir>/benchmarks
  cacheDir: z.string().optional(), // the evaluation cache; default <study dir>/cache
  models: z.array(ModelSchema).min(1),
  methods: z.array(MethodSchema).min(1),
  orders: z // sequence names (SEQUENCES), task lists, or named task lists
    .array(
      z.union([
        z.string(),
        z.array(z.string()).min(1),
        z.strictObject({ name, tasks: z.array(z.string()).min(1) }),
      ]),
    )
    .min(1),
  seeds: z.array(z.number().int().min(0)).min(1).default([0]),
  train: TrainConfigSchema.default(TrainConfigSchema.parse({})), // the seed is each run's seed
  tuning: z
    .strictObject({
      kind: z.enum(["full", "lora"]).default("full"),
      lora: z // PEFT's LoraConfig fields
        .strictObject({
          r: z.number().int().positive().default(8),
          alpha: z.number().positive().default(16),
          dropout: z.number().min(0).lt(1).default(0.05),
          targetModules: z.array(z.string()).optional(), // default: the family's
        })
        .default({ r: 8, alpha: 16, dropout: 0.05 }),
    })
    .default({ kind: "full", lora: { r: 8, alpha: 16, dropout: 0.05 } }),
  // The task settings; `tasks: [...]` (a list of declarations) is short for `tasks: {define: [...]}`.
  tasks: z
    .strictObject({
      seed: z.number().int().min(0).default(0), // splits and subsamples
      template: z.string().default("alpaca"), // a TEMPLATES name or a string with {instruction}
      maxGenToks: z.number().int().positive().default(128), // generated tokens per test prompt
      until: z.array(z.string()).default([]), // stop strings besides EOS
      define: z.array(TaskDeclSchema).default([]), // tasks declared here (tasks/declare.ts), usable in orders
    })
    .default({ seed: 0, template: "alpaca", maxGenToks: 128, until: [], define: [] }),
  budget: z
    .strictObject({
      maxTrain: z.number().int().positive().nullable().default(null), // training examples per task
      maxTest: z.number().int().positive().nullable().default(null), // test examples per task
    })
    .default({ maxTrain: null, maxTest: null }),
  general: z // general instruction data for mix_general; null = none
    .strictObject({
      task: z.string().default("alpaca"),
      maxTrain: z.number().int().positive().nullable().default(null),
    })
    .nullable()
    .default(null),
  eval: z
    .strictObject({
      benchmarks: z.array(BenchmarkSchema).default([]),
      batchSize: z.number().int().positive().default(32),
      maxLength: z.number().int().positive().optional(), // default: the model's
      prefixCacheMb: z.number().min(0).optional(), // prefix-tree KV cache; default: ¼ free memory
      bootstrapIters: z.number().int().min(0).default(1000), // FG CIs over items; 0 = none
    })
    .default({ benchmarks: [], batchSize: 32, bootstrapIters: 1000 }),
  slurm: SlurmSchema.optional(), // `lethe submit`'s defaults (src/continual/slurm.ts); not in run configs
  // Written to runs/<run>/export/stage-<m>/<format> after each trained stage: hf (the full
  // weights, LoRA merged) and/or peft (the LoRA adapter). Default none (`lethe export` later).
  export: z.array(z.enum(EXPORT_FORMATS)).optional(),
});

export type StudyConfig = z.output<typeof StudySchema>;
export type ModelSpec = z.output<typeof ModelSchema>;

/**
 * A benchmark's forgetting category and primary metric key, as its declaration states them
 * (src/eval/tasks/*.ts: Luo et al.'s four categories; MuTual's r@1, CrowS-Pairs' share of
 * stereotypes); a benchmark that states none is its own category, scored by acc.
 */
function benchmarkDefaults(name: string): { category: string; metric: string } {
  const decl = getEvalGroup(name) ?? getEvalTask(name);
  return { category: decl.category ?? name, metric: decl.primaryMetric ?? "acc,none" };
}

export interface Benchmark {
  name: string;
  shots: number;
  limit: number | null;
  metric: string;
  category: string;
}

export interface Method {
  /** The method's name; a combination's names joined by "+" ("replay+lwf"). */
  name: string;
  /** As the config gives them: one method's options, or a combination's keyed by method name. */
  options: Record<string, unknown>;
  label: string;
  /** Each method with its own options, in the order their hooks run. */
  parts: MethodPart[];
  /** Learning-rate control between stages (src/continual/methods/method.ts); null = none. */
  lr: LrControl | null;
}

export interface Order {
  name: string;
  tasks: string[];
}

/** A study with its lists resolved: benchmarks, methods and orders in one shape each. */
export interface Study {
  config: StudyConfig;
  benchmarks: Benchmark[];
  methods: Method[];
  orders: Order[];
}

/** One cell of the grid. */
export interface RunSpec {
  name: string;
  model: ModelSpec;
  method: Method;
  order: Order;
  seed: number;
}

/** Replaces `${VAR}` and `${VAR:-default}` in every string of a parsed config. */
function expandEnv(value: unknown, source: string, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === "string")
    return value.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_, v: string, d?: string) => {
        const got = env[v];
        if (got !== undefined && got !== "") return got;
        if (d !== undefined) return d;
        throw new Error(
          `${source}: environment variable ${v} is not set (write \${${v}:-default})`,
        );
      },
    );
  if (Array.isArray(value)) return value.map((v) => expandEnv(v, source, env));
  if (value !== null && typeof value === "object")
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expandEnv(v, source, env)]),
    );
  return value;
}

/**
 * Validates a parsed config object: the schema, then names against the registries (methods,
 * their options, tasks, sequences, benchmarks). Paths resolve against `baseDir`.
 */
export function parseStudy(
  raw: unknown,
  source: string,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Study {
  const { value: expanded, listForm } = taskListForm(expandEnv(raw, source, env), source);
  const parsed = StudySchema.safeParse(expanded);
  if (!parsed.success) throw new Error(formatIssue(parsed.error.issues[0], StudySchema, source));
  const config = parsed.data;
  const abs = (p: string) => (isAbsolute(p) || p.startsWith("hf:") ? p : resolve(baseDir, p));
  config.dataDir = abs(config.dataDir);
  if (config.benchmarksDir !== undefined) config.benchmarksDir = abs(config.benchmarksDir);
  if (config.cacheDir !== undefined) config.cacheDir = abs(config.cacheDir);
  const field = (f: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      throw new Error(`${source}: field "${f}": ${(e as Error).message}`);
    }
  };

  config.models.forEach((m, i) => {
    if (m.ref !== undefined) m.ref = abs(m.ref);
    if (m.build) m.build.tokenizer = abs(m.build.tokenizer);
    if (m.build && !existsSync(m.build.tokenizer))
      throw new Error(
        `${source}: field "models.${i}.build.tokenizer": ${m.build.tokenizer} not found`,
      );
    if (m.adapter !== undefined) m.adapter = abs(m.adapter);
    if (m.adapter !== undefined && !m.adapter.startsWith("hf:") && !existsSync(m.adapter))
      throw new Error(`${source}: field "models.${i}.adapter": ${m.adapter} not found`);
  });
  unique(
    config.models.map((m) => m.name),
    "models",
    source,
  );

  const setting = {
    kind: config.tuning.kind,
    precision: config.train.precision,
    distributed: config.train.distributed,
  };
  const methods: Method[] = config.methods.map((m, i) => {
    const spec = typeof m === "string" ? { name: m, options: {} } : m;
    const combination = typeof spec.name !== "string";
    const names = typeof spec.name === "string" ? [spec.name] : spec.name;
    names.forEach((n, j) =>
      field(`methods.${i}.name${combination ? `.${j}` : ""}`, () => methodOf(n)),
    );
    if (combination)
      for (const key of Object.keys(spec.options))
        if (!names.includes(key))
          throw new Error(
            `${source}: field "methods.${i}.options.${key}": a combination's options are keyed by its methods (${names.join(", ")}).${didYouMean(key, names)}`,
          );
    const parts: MethodPart[] = names.map((n) => ({
      name: n,
      options: (combination ? (spec.options[n] ?? {}) : spec.options) as Record<string, unknown>,
    }));
    for (const p of parts) {
      try {
        parseOptions(p.name, p.options);
      } catch (e) {
        if (!(e instanceof MethodOptionError)) throw e;
        const at = `methods.${i}.options.${combination ? `${p.name}.` : ""}${e.path}`;
        throw new Error(`${source}: field "${at}": ${e.message}`);
      }
      const problem = settingProblem(p, setting);
      if (problem) throw new Error(`${source}: field "methods.${i}": ${problem}`);
    }
    const clash = combinationProblem(names);
    if (clash) throw new Error(`${source}: field "methods.${i}.name": ${clash}`);
    return {
      name: names.join("+"),
      options: spec.options,
      label: ("label" in spec && spec.label) || names.join("+"),
      parts,
      lr: ("lr" in spec && spec.lr) || null,
    };
  });
  unique(
    methods.map((m) => m.label),
    "methods (labels)",
    source,
  );
  unique(config.export ?? [], "export", source);
  if (config.export?.includes("peft")) {
    if (config.tuning.kind !== "lora")
      throw new Error(
        `${source}: field "export": peft writes a LoRA adapter, and tuning.kind is ${config.tuning.kind}; export hf, or set tuning.kind: lora`,
      );
    // OLoRA merges each finished task's adapter into the base weights: no one adapter holds them.
    const olora = methods.findIndex((m) => m.parts.some((p) => p.name === "olora"));
    if (olora >= 0)
      throw new Error(
        `${source}: field "export": peft cannot hold the later stages of method "olora" (methods.${olora}), which merges each finished task's adapter into the base weights; export hf`,
      );
  }
  const labels = methods.map((m) => m.label);
  config.models.forEach((m, i) => {
    m.methods?.forEach((label, j) => {
      if (!labels.includes(label))
        throw new Error(
          `${source}: field "models.${i}.methods.${j}": no method labelled "${label}".${didYouMean(label, labels)}`,
        );
    });
    if (m.base === m.name)
      throw new Error(`${source}: field "models.${i}.base": a model cannot be its own base`);
  });

  const declared = declaredTasks(config, abs, source, listForm);
  const orders: Order[] = config.orders.map((o, i) => {
    let tasks: string[] = [];
    field(`orders.${i}`, () => {
      tasks = typeof o === "string" ? [...getSequence(o)] : Array.isArray(o) ? o : o.tasks;
      tasks.forEach((t) => getTask(t, declared));
    });
    if (new Set(tasks).size !== tasks.length)
      throw new Error(
        `${source}: field "orders.${i}": a task appears twice in [${tasks.join(", ")}]`,
      );
    return { name: typeof o === "string" ? o : Array.isArray(o) ? `order${i}` : o.name, tasks };
  });
  unique(
    orders.map((o) => o.name),
    "orders",
    source,
  );
  unique(config.seeds.map(String), "seeds", source);
  if (config.general) field("general.task", () => getTask(config.general!.task, declared));

  const benchmarks: Benchmark[] = config.eval.benchmarks.map((b, i) => {
    const spec = typeof b === "string" ? { name: b, shots: 0, limit: null } : b;
    field(`eval.benchmarks.${i}.name`, () => expandTaskNames(spec.name));
    const stated = benchmarkDefaults(spec.name);
    return {
      name: spec.name,
      shots: spec.shots,
      limit: spec.limit,
      metric: ("metric" in spec && spec.metric) || stated.metric,
      category: ("category" in spec && spec.category) || stated.category,
    };
  });
  unique(
    benchmarks.map((b) => b.name),
    "eval.benchmarks",
    source,
  );
  methods.forEach((m, i) => {
    const rates = m.lr?.lr_per_stage;
    const order = orders.find((o) => rates && o.tasks.length !== rates.length);
    if (rates && order)
      throw new Error(
        `${source}: field "methods.${i}.lr.lr_per_stage": ${rates.length} rates, but order "${order.name}" trains ${order.tasks.length} stages`,
      );
  });
  return { config, benchmarks, methods, orders };
}

/**
 * The short form `tasks: [declarations]` as the schema's `tasks: {define: [...]}`; the list is
 * checked on its own first, so an error names `tasks.<i>.<field>` as the user wrote it.
 */
function taskListForm(raw: unknown, source: string): { value: unknown; listForm: boolean } {
  if (raw === null || typeof raw !== "object" || !Array.isArray((raw as { tasks?: unknown }).tasks))
    return { value: raw, listForm: false };
  const list = (raw as { tasks: unknown[] }).tasks;
  const schema = z.object({ tasks: z.array(TaskDeclSchema) });
  const r = schema.safeParse({ tasks: list });
  if (!r.success) throw new Error(formatIssue(r.error.issues[0], schema, source));
  return { value: { ...raw, tasks: { define: list } }, listForm: true };
}

/**
 * The config's declared tasks: paths made absolute (against the config's folder), each source
 * file checked to exist, names unique and not a built-in task's, metrics implemented.
 */
function declaredTasks(
  config: StudyConfig,
  abs: (p: string) => string,
  source: string,
  listForm: boolean,
): TaskDeclaration[] {
  const decls = config.tasks.define;
  decls.forEach((d, i) => {
    const at = listForm ? `tasks.${i}` : `tasks.define.${i}`;
    for (const [key, s] of [
      ["source", d.source],
      ["test_split", d.test_split],
    ] as const) {
      if (s === null || !("path" in s)) continue;
      s.path = Array.isArray(s.path) ? s.path.map(abs) : abs(s.path);
      for (const p of [s.path].flat())
        if (!existsSync(p)) throw new Error(`${source}: field "${at}.${key}.path": ${p} not found`);
    }
    if (isBuiltinTask(d.name))
      throw new Error(
        `${source}: field "${at}.name": "${d.name}" is a built-in task; give yours another name`,
      );
    try {
      getGenerationMetric(d.metric);
    } catch (e) {
      throw new Error(`${source}: field "${at}.metric": ${(e as Error).message}`);
    }
  });
  unique(
    decls.map((d) => d.name),
    listForm ? "tasks (names)" : "tasks.define (names)",
    source,
  );
  return decls;
}

function unique(names: string[], what: string, source: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new Error(`${source}: field "${what}": "${n}" is given twice`);
    seen.add(n);
  }
}

/** Reads and validates a study config file (.yaml, .yml or .json). */
export function loadStudy(file: string, env: NodeJS.ProcessEnv = process.env): Study {
  const path = resolve(file);
  if (!existsSync(path)) throw new Error(`${path}: config file not found`);
  const text = readFileSync(path, "utf8");
  let raw: unknown;
  try {
    raw = extname(path) === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(
      `${path}: not valid ${extname(path) === ".json" ? "JSON" : "YAML"}: ${(e as Error).message}`,
    );
  }
  return parseStudy(raw, basename(path), dirname(path), env);
}

/** The runs of a study, models × methods × orders × seeds, each with its folder name. */
export function expandGrid(study: Study): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const model of study.config.models)
    for (const method of study.methods.filter((m) => model.methods?.includes(m.label) ?? true))
      for (const order of study.orders)
        for (const seed of study.config.seeds)
          runs.push({
            name: `${model.name}__${method.label}__${order.name}__seed${seed}`,
            model,
            method,
            order,
            seed,
          });
  return runs;
}

/**
 * A run's own config: the study's with this cell's model, method, order and seed only, and the
 * model's train overrides merged into `train`, so the run's config.yaml states what it trains with.
 */
export function runConfig(study: Study, run: RunSpec): StudyConfig {
  const m = run.method;
  return {
    ...study.config,
    models: [{ ...run.model, methods: undefined, train: undefined }],
    train: { ...study.config.train, ...run.model.train },
    methods: [
      {
        name: m.parts.length > 1 ? m.parts.map((p) => p.name) : m.name,
        options: m.options,
        label: m.label,
        ...(m.lr ? { lr: m.lr } : {}),
      },
    ],
    orders: [{ name: run.order.name, tasks: run.order.tasks }],
    seeds: [run.seed],
    slurm: undefined, // the study's, not the run's
    eval: {
      ...study.config.eval,
      benchmarks: study.benchmarks.map((b) => ({ ...b })),
    },
  };
}
