/**
 * `lethe eval`: scores a model on lm-eval tasks and writes lm-evaluation-harness v0.4.x's results
 * JSON (results, groups, group_subtasks, configs, versions, n-shot, higher_is_better, n-samples,
 * samples with --log-samples, and a `config` block like lm-eval's `simple_evaluate`), then prints
 * lm-eval's table.
 *
 *   lethe eval --model DIR|hf:org/name[@rev] [--adapter DIR] --tasks mmlu,hellaswag,piqa,…
 *              --data-dir DIR --output OUT.json [--shots K] [--limit N] [--batch-size B]
 *              [--device D] [--dtype float32|float16|bfloat16] [--max-length L] [--log-samples]
 *              [--cache-dir DIR | --no-cache]
 *
 * Results are cached by request under --cache-dir (default $LETHE_CACHE/eval, else
 * ~/.cache/lethe/eval), keyed by the model's fingerprint: sha256 over every file of the model
 * directory and of the adapter directory (names and contents), the dtype and the device, so a
 * rerun on unchanged files scores nothing again. OUT's folder is checked before anything loads
 * (it must exist and be writable); OUT is written to a temp file and renamed.
 */
import { readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { filesFingerprint, ResultCache } from "../eval/cache.js";
import { checkWritable, writeAtomic } from "../util/fs.js";
import { evaluate, formatResults } from "../eval/evaluate.js";
import { ModelLM, type ModelLMOptions } from "../eval/model_lm.js";
import { loadLoraAdapter } from "../io/peft.js";
import { type ComputeDtype, loadPretrained } from "../io/pretrained.js";
import { parseFlags } from "./flags.js";

const USAGE = `lethe eval --model DIR|hf:org/name[@rev] [--adapter DIR] --tasks T1,T2,… --data-dir DIR
           --output OUT.json [--shots K] [--limit N] [--batch-size B] [--device D]
           [--dtype float32|float16|bfloat16] [--max-length L] [--log-samples]
           [--cache-dir DIR | --no-cache]`;

const OPTIONS = {
  model: { type: "string" },
  adapter: { type: "string" },
  tasks: { type: "string" },
  "data-dir": { type: "string" },
  output: { type: "string" },
  shots: { type: "string", default: "0" },
  limit: { type: "string" },
  "batch-size": { type: "string", default: "32" },
  device: { type: "string", default: "cpu" },
  dtype: { type: "string", default: "float32" },
  "max-length": { type: "string" },
  "log-samples": { type: "boolean", default: false },
  "cache-dir": { type: "string" },
  "no-cache": { type: "boolean", default: false },
} as const;

const DTYPES: readonly ComputeDtype[] = ["float32", "float16", "bfloat16"];

function required(v: string | undefined, name: string): string {
  if (v === undefined || v === "") throw new Error(`--${name} is required\nusage: ${USAGE}`);
  return v;
}

function positiveInt(v: string | undefined, name: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === "" || !Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

/** Regular files directly in `dir`, sorted (hub snapshots hold symlinks to blobs: followed). */
function filesIn(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .map((f) => join(dir, f))
    .filter((p) => statSync(p).isFile());
}

export async function evalCommand(argv: string[]): Promise<number> {
  const v = parseFlags(argv, OPTIONS, USAGE).values;
  const modelRef = required(v.model, "model");
  const taskNames = required(v.tasks, "tasks")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const dataDir = resolve(required(v["data-dir"], "data-dir"));
  const output = resolve(required(v.output, "output"));
  checkWritable(output, "--output"); // now, not after the whole evaluation
  const shots = positiveInt(v.shots, "shots", 0)!;
  const limit = positiveInt(v.limit, "limit");
  const batchSize = positiveInt(v["batch-size"], "batch-size")!;
  const maxLength = positiveInt(v["max-length"], "max-length");
  const dtype = v.dtype as ComputeDtype;
  if (!DTYPES.includes(dtype))
    throw new Error(`--dtype must be one of ${DTYPES.join(", ")}, got "${v.dtype}"`);
  if (v["no-cache"] && v["cache-dir"] !== undefined)
    throw new Error("--no-cache and --cache-dir exclude each other");

  const loaded = await loadPretrained(modelRef, { dtype, device: v.device });
  const { model } = loaded;
  try {
    if (!loaded.tokenizer)
      throw new Error(`${loaded.dir}: no tokenizer files (tokenizer.json, tokenizer.model, …)`);
    const adapter = v.adapter === undefined ? null : resolve(v.adapter);
    if (adapter) loadLoraAdapter(model, adapter);
    model.eval();

    let cache: ModelLMOptions["cache"] = null;
    if (!v["no-cache"]) {
      const files = [...filesIn(loaded.dir), ...(adapter ? filesIn(adapter) : [])];
      const fingerprint = `${filesFingerprint(files)}:${dtype}:${v.device}`;
      const base = process.env.LETHE_CACHE ?? join(homedir(), ".cache", "lethe");
      cache = { store: ResultCache.open(v["cache-dir"] ?? join(base, "eval")), fingerprint };
    }
    const lm = new ModelLM(model, loaded.tokenizer, { batchSize, maxLength, cache });
    const t0 = performance.now();
    const res = await evaluate(lm, taskNames, {
      dataDir,
      shots,
      limit,
      logSamples: v["log-samples"],
    });
    const seconds = (performance.now() - t0) / 1000;
    const out = {
      ...res,
      config: {
        model: "lethe",
        model_args: `pretrained=${modelRef}${adapter ? `,peft=${adapter}` : ""},dtype=${dtype}`,
        batch_size: batchSize,
        device: v.device,
        limit: limit ?? null,
        max_length: lm.maxLength,
        num_fewshot: shots,
        fewshot_seed: 1234,
      },
    };
    writeAtomic(output, JSON.stringify(out, null, 2) + "\n");
    process.stdout.write(formatResults(res) + "\n");
    process.stdout.write(
      `${lm.stats.computed} requests scored, ${lm.stats.cached} from cache, ${seconds.toFixed(1)}s → ${output}\n`,
    );
    return 0;
  } finally {
    model.dispose();
  }
}
