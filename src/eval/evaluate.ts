/**
 * Request building and scoring, as lm-evaluation-harness v0.4.x (`ConfigurableTask.fewshot_context`,
 * `construct_requests`, `process_results`; `ContextSampler` / `FirstNSampler`; `evaluator.evaluate`):
 *  - context = description + few-shot examples + docToText(doc); each example is its text (or, for
 *    multiple inputs, its gold choice) + targetDelimiter + its target (the choice text when the
 *    target is an index) + fewshotDelimiter;
 *  - few-shot docs come from one `random.Random(seed)` per task, advanced doc by doc: `sample(k)`
 *    (k + 1 when the few-shot split is the evaluated split, the doc itself then dropped), or the
 *    first k docs for the `first_n` sampler (MMLU);
 *  - multiple_choice: one (context, targetDelimiter + choice) per choice, or for multiple inputs
 *    (context + choice, targetDelimiter + target); acc = argmax ll is gold, acc_norm = argmax of
 *    ll / len(choice) in characters (code points, as Python's len);
 *  - loglikelihood: (context, target); perplexity item = ll, acc = is_greedy;
 *  - `limit` keeps the first N docs of each task.
 * `evaluate` returns lm-eval's results object (results, groups, group_subtasks, configs, versions,
 * n-shot, higher_is_better, n-samples and, with logSamples, samples). Unlike lm-eval, a NaN or
 * infinite log-likelihood is an error naming the model, task, doc and request, not a score.
 */
import { shown, type LM, type LoglikelihoodResult } from "./lm.js";
import { PyRandom } from "./pyrandom.js";
import {
  aggregateGroup,
  aggregateMetric,
  makeTable,
  type Stderr,
  type TableRow,
} from "./aggregate.js";
import {
  evalSplit,
  fewshotSplit,
  loadEvalDocs,
  loadFewshotDocs,
  type Doc,
  type Task,
} from "./task.js";
import { expandTaskNames, getGroup, getTask } from "./tasks/index.js";

export interface BuildOptions {
  /** Few-shot examples per doc (the task's fixed `numFewshot` wins, as in lm-eval). */
  shots: number;
  /** lm-eval `fewshot_random_seed`. @default 1234 */
  seed?: number;
  /** Keep the first `limit` docs. */
  limit?: number;
  /** Docs of the task's few-shot split; required when shots > 0. */
  fewshotDocs?: Doc[];
}

export interface DocRequests {
  doc_id: number;
  doc: Doc;
  target: string | number;
  /** (context, continuation) pairs sent to `LM.loglikelihood`, in lm-eval's order. */
  arguments: Array<[string, string]>;
}

const sameDoc = (a: Doc, b: Doc) => JSON.stringify(a) === JSON.stringify(b);

function choicesOf(task: Task, doc: Doc): string[] {
  if (!task.docToChoice) throw new Error(`${task.task}: needs docToChoice`);
  return task.docToChoice(doc);
}

function fewshotContext(task: Task, doc: Doc, shots: number, rnd: PyRandom, pool: Doc[]): string {
  // lm-eval 0.4.7 (api/samplers.py) compares the declared splits, absent ones included: k+1 are
  // drawn when fewshot_split == test_split as written (None == None too), else k, even when the
  // few-shot docs fall back to the test split, which can then leave k-1 examples.
  const sameSplit = (task.fewshotSplit ?? null) === (task.testSplit ?? null);
  const n = sameSplit ? shots + 1 : shots;
  if (n > pool.length)
    throw new Error(`${task.task}: ${n} few-shot examples requested, ${pool.length} available`);
  const drawn = task.fewshotSampler === "first_n" ? pool.slice(0, n) : rnd.sample(pool, n);
  let out = "";
  for (const ex of drawn.filter((d) => !sameDoc(d, doc)).slice(0, shots)) {
    const text = task.docToText(ex);
    const target = task.docToTarget(ex);
    out += typeof text === "number" ? choicesOf(task, ex)[text] : text;
    if (target !== "") {
      const shown =
        typeof target === "number" && task.docToChoice
          ? choicesOf(task, ex)[target]
          : String(target);
      out += task.targetDelimiter + shown + task.fewshotDelimiter;
    }
  }
  return out;
}

export function buildRequests(task: Task, docs: Doc[], opts: BuildOptions): DocRequests[] {
  const shots = task.numFewshot ?? opts.shots;
  if (shots > 0 && !opts.fewshotDocs)
    throw new Error(`${task.task}: ${shots}-shot needs fewshotDocs`);
  const rnd = new PyRandom(opts.seed ?? 1234);
  return docs.slice(0, opts.limit ?? docs.length).map((doc, doc_id) => {
    let ctx = task.description ?? "";
    if (shots > 0) ctx += fewshotContext(task, doc, shots, rnd, opts.fewshotDocs!);
    const text = task.docToText(doc);
    const target = task.docToTarget(doc);
    let args: Array<[string, string]>;
    if (task.outputType === "multiple_choice") {
      const choices = choicesOf(task, doc);
      args =
        typeof text === "number"
          ? choices.map((c): [string, string] => [ctx + c, task.targetDelimiter + target])
          : choices.map((c): [string, string] => [ctx + text, task.targetDelimiter + c]);
    } else if (task.outputType === "loglikelihood") {
      args = [[ctx + text, String(target)]];
    } else {
      throw new Error(
        `${task.task}: output type ${task.outputType} is not supported by lethe's harness yet`,
      );
    }
    return { doc_id, doc, target, arguments: args };
  });
}

const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/** Per-doc metric values for the metrics the task declares (lm-eval `process_results`). */
export function processResults(
  task: Task,
  doc: Doc,
  results: LoglikelihoodResult[],
): Record<string, number> {
  let all: Record<string, number>;
  if (task.processResults) {
    all = task.processResults(doc, results);
  } else if (task.outputType === "loglikelihood") {
    all = { perplexity: results[0].logprob, acc: results[0].isGreedy ? 1 : 0 };
  } else {
    const lls = results.map((r) => r.logprob);
    const lens = choicesOf(task, doc).map((c) => [...c].length);
    const text = task.docToText(doc);
    const gold = typeof text === "number" ? text : Number(task.docToTarget(doc));
    all = {
      acc: argmax(lls) === gold ? 1 : 0,
      acc_norm: argmax(lls.map((l, i) => l / lens[i])) === gold ? 1 : 0,
    };
  }
  const out: Record<string, number> = {};
  for (const m of task.metrics) {
    if (!(m.metric in all)) throw new Error(`${task.task}: scoring produced no "${m.metric}"`);
    out[m.metric] = all[m.metric];
  }
  return out;
}

export interface EvaluateOptions {
  /** Folder with one sub-folder per benchmark (see each task's `dir` and original reader). */
  dataDir: string;
  /** @default 0 */
  shots?: number;
  /** @default 1234 */
  seed?: number;
  limit?: number;
  /** Keep per-doc records in `samples`. @default false */
  logSamples?: boolean;
  /** lm-eval `bootstrap_iters`. @default 100000 */
  bootstrapIters?: number;
}

export interface Sample {
  doc_id: number;
  doc: Doc;
  target: string | number;
  arguments: Array<[string, string]>;
  resps: Array<[[number, boolean]]>;
  filtered_resps: Array<[number, boolean]>;
  [metric: string]: unknown;
}

export type MetricRecord = Record<string, number | string>;

export interface EvalResults {
  results: Record<string, MetricRecord>;
  groups: Record<string, MetricRecord>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number>;
  "n-shot": Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean>>;
  "n-samples": Record<string, { original: number; effective: number }>;
  samples?: Record<string, Sample[]>;
}

/** lm-eval's results layout with nothing in it (no `samples`). */
export function emptyResults(): Omit<EvalResults, "samples"> {
  return {
    results: {},
    groups: {},
    group_subtasks: {},
    configs: {},
    versions: {},
    "n-shot": {},
    higher_is_better: {},
    "n-samples": {},
  };
}

function configOf(task: Task, shots: number): Record<string, unknown> {
  return {
    task: task.task,
    dataset_path: task.datasetPath,
    dataset_name: task.datasetName ?? null,
    training_split: task.trainingSplit ?? null,
    validation_split: task.validationSplit ?? null,
    test_split: task.testSplit ?? null,
    fewshot_split: task.fewshotSplit ?? null,
    description: task.description ?? "",
    target_delimiter: task.targetDelimiter,
    fewshot_delimiter: task.fewshotDelimiter,
    fewshot_config: { sampler: task.fewshotSampler },
    num_fewshot: shots,
    output_type: task.outputType,
    metric_list: task.metrics,
    metadata: { version: task.version },
  };
}

/** Groups named in `names` and every group below them. */
function groupsUnder(names: string[]): string[] {
  return names.flatMap((n) => {
    const g = getGroup(n);
    return g ? [n, ...groupsUnder(g.task)] : [];
  });
}

/** A task with its evaluation documents (and few-shot pool when shots > 0), ready to score. */
export interface PreparedTask {
  task: Task;
  docs: Doc[];
  fewshotDocs?: Doc[];
}

/** A log-likelihood that is NaN or infinite: the model, task, doc and request it came from. */
export class NonFiniteScoreError extends Error {
  constructor(
    readonly model: string,
    readonly task: string,
    readonly docId: number,
    readonly request: [string, string],
    value: number,
  ) {
    super(
      `model ${model}: log-likelihood is ${value} on task "${task}", doc ${docId} ` +
        `(context ${shown(request[0], "end")}, continuation ${shown(request[1], "start")}); ` +
        `the model's weights or activations are not finite, so no score is reported`,
    );
    this.name = "NonFiniteScoreError";
  }
}

/**
 * Stops on the first non-finite log-likelihood, in request order. Scored on, NaN weights would
 * pass for a model that answers choice 0 (argmax over NaN) and report a plausible accuracy.
 */
function checkFinite(
  lm: LM,
  built: { task: Task; requests: DocRequests[] }[],
  answers: LoglikelihoodResult[],
): void {
  let at = 0;
  for (const { task, requests } of built)
    for (const r of requests)
      for (const request of r.arguments) {
        const { logprob } = answers[at++];
        if (!Number.isFinite(logprob))
          throw new NonFiniteScoreError(
            lm.name ?? "(unnamed LM)",
            task.task,
            r.doc_id,
            request,
            logprob,
          );
      }
}

/**
 * Scores already-loaded tasks: builds every request, sends them to `lm.loglikelihood` in one
 * batch, and fills the per-task parts of lm-eval's results layout (no groups).
 */
export async function scoreTasks(
  lm: LM,
  prepared: PreparedTask[],
  opts: Omit<EvaluateOptions, "dataDir">,
): Promise<EvalResults> {
  const built = prepared.map(({ task, docs, fewshotDocs }) => {
    const shots = task.numFewshot ?? opts.shots ?? 0;
    const requests = buildRequests(task, docs, {
      shots,
      seed: opts.seed,
      limit: opts.limit,
      fewshotDocs: shots > 0 ? fewshotDocs : undefined,
    });
    return { task, shots, original: docs.length, requests };
  });

  const flat = built.flatMap((b) => b.requests.flatMap((r) => r.arguments));
  const answers = await lm.loglikelihood(
    flat.map(([context, continuation]) => ({ context, continuation })),
  );
  if (answers.length !== flat.length)
    throw new Error(`LM returned ${answers.length} results for ${flat.length} requests`);
  checkFinite(lm, built, answers);

  const out: EvalResults = {
    ...emptyResults(),
    ...(opts.logSamples ? { samples: {} } : {}),
  };
  let at = 0;
  for (const { task, shots, original, requests } of built) {
    const perDoc = requests.map((r) => {
      const res = answers.slice(at, (at += r.arguments.length));
      return { r, res, metrics: processResults(task, r.doc, res) };
    });
    const record: MetricRecord = { alias: task.task };
    for (const m of task.metrics) {
      const agg = aggregateMetric(
        m.aggregation,
        perDoc.map((d) => d.metrics[m.metric]),
        opts.bootstrapIters ?? 100000,
      );
      record[`${m.metric},none`] = agg.value;
      record[`${m.metric}_stderr,none`] = agg.stderr;
    }
    out.results[task.task] = record;
    out.group_subtasks[task.task] = [];
    out.configs[task.task] = configOf(task, shots);
    out.versions[task.task] = task.version;
    out["n-shot"][task.task] = shots;
    out.higher_is_better[task.task] = Object.fromEntries(
      task.metrics.map((m) => [m.metric, m.higher_is_better]),
    );
    out["n-samples"][task.task] = { original, effective: requests.length };
    if (out.samples) {
      out.samples[task.task] = perDoc.map(({ r, res, metrics }) => ({
        doc_id: r.doc_id,
        doc: r.doc,
        target: r.target,
        arguments: r.arguments,
        resps: res.map((x): [[number, boolean]] => [[x.logprob, x.isGreedy]]),
        filtered_resps: res.map((x): [number, boolean] => [x.logprob, x.isGreedy]),
        ...metrics,
      }));
    }
  }

  return out;
}

export async function evaluate(
  lm: LM,
  taskNames: string[],
  opts: EvaluateOptions,
): Promise<EvalResults> {
  const prepared: PreparedTask[] = [];
  for (const name of [...new Set(taskNames.flatMap(expandTaskNames))]) {
    const task = getTask(name);
    const shots = task.numFewshot ?? opts.shots ?? 0;
    prepared.push({
      task,
      docs: await loadEvalDocs(task, opts.dataDir),
      fewshotDocs: shots > 0 ? await loadFewshotDocs(task, opts.dataDir) : undefined,
    });
  }
  const out = await scoreTasks(lm, prepared, opts);

  for (const name of [...new Set(groupsUnder(taskNames))].reverse()) {
    const g = getGroup(name)!;
    const members = expandTaskNames(name);
    const record: MetricRecord = { alias: g.alias ?? g.group };
    for (const { metric, weight_by_size } of g.aggregate) {
      const key = `${metric},none`;
      const skey = `${metric}_stderr,none`;
      const have = members.filter((t) => key in out.results[t]);
      const agg = aggregateGroup(
        have.map((t) => out.results[t][key] as number),
        have.map((t) => out["n-samples"][t].effective),
        have.map((t) => out.results[t][skey] as Stderr),
        weight_by_size,
      );
      record[key] = agg.value;
      record[skey] = agg.stderr;
    }
    out.results[name] = record;
    out.groups[name] = record;
    out.group_subtasks[name] = g.task;
    out.versions[name] = g.version;
    out.higher_is_better[name] = Object.fromEntries(g.aggregate.map((a) => [a.metric, true]));
  }
  return out;
}

/** lm-eval's printed summary: one table of tasks, then one of groups when there are any. */
export function formatResults(res: EvalResults): string {
  const rows = (names: string[]): TableRow[] =>
    names.flatMap((name) =>
      Object.keys(res.results[name])
        .filter((k) => k.endsWith(",none") && !k.includes("_stderr,"))
        .map((k) => {
          const metric = k.slice(0, -",none".length);
          return {
            name,
            version: res.versions[name],
            nShot: res["n-shot"][name] ?? "",
            metric,
            higherIsBetter: res.higher_is_better[name]?.[metric] ?? true,
            value: res.results[name][k] as number,
            stderr: res.results[name][`${metric}_stderr,none`] as Stderr,
          };
        }),
    );
  const tasks = Object.keys(res.results).filter((n) => !(n in res.groups));
  const groups = Object.keys(res.groups);
  return makeTable(rows(tasks)) + (groups.length > 0 ? "\n" + makeTable(rows(groups)) : "");
}
