/**
 * `lethe eval`: scores a model on lm-eval tasks and writes lm-evaluation-harness v0.4.x's results
 * JSON (results, groups, group_subtasks, configs, versions, n-shot, higher_is_better, n-samples,
 * samples with --log-samples, and a `config` block like lm-eval's `simple_evaluate`), then prints
 * lm-eval's table.
 *
 *   lethe eval --model DIR|hf:org/name[@rev] [--adapter DIR] --tasks mmlu,hellaswag,piqa,…
 *              --data-dir DIR --output OUT.json [--shots K] [--limit N] [--batch-size B]
 *              [--device D] [--dtype float32|float16|bfloat16] [--max-length L] [--log-samples]
 *              [--cache-dir DIR | --no-cache] [--prefix-cache-mb MB | --no-prefix-cache]
 *
 * Results are cached by request under --cache-dir (default $LETHE_CACHE/eval, else
 * ~/.cache/lethe/eval), keyed by the model's fingerprint: sha256 over every file of the model
 * directory and of the adapter directory (names and contents), the dtype and the device, so a
 * rerun on unchanged files scores nothing again. OUT's folder is checked before anything loads
 * (it must exist and be writable); OUT is written to a temp file and renamed.
 */
import { applyPrecision, precisionView, type Precision } from "../train/precision.js";
import { readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { filesFingerprint, ResultCache } from "../eval/cache.js";
import { checkWritable, writeAtomic } from "../util/fs.js";
import { currentDist } from "../dist/index.js";
import { evaluate, formatResults } from "../eval/evaluate.js";
import { ModelLM, type ModelLMOptions } from "../eval/model_lm.js";
import { loadLoraAdapter } from "../io/peft.js";
import { type ComputeDtype, loadPretrained } from "../io/pretrained.js";
import { command } from "./commands.js";
import { intValue, numberValue, UsageError } from "./flags.js";

/** Regular files directly in `dir`, sorted (hub snapshots hold symlinks to blobs: followed). */
function filesIn(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .map((f) => join(dir, f))
    .filter((p) => statSync(p).isFile());
}

export const evalCommand = command("eval", async ({ values: v }) => {
  const modelRef = v.model;
  const taskNames = v.tasks
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (taskNames.length === 0) throw new UsageError(`--tasks names no task: "${v.tasks}"`);
  const dataDir = resolve(v["data-dir"]);
  const output = resolve(v.output);
  const shots = intValue(v.shots, "shots", 0)!;
  const limit = intValue(v.limit, "limit", 1);
  const batchSize = intValue(v["batch-size"], "batch-size", 1)!;
  const maxLength = intValue(v["max-length"], "max-length", 1);
  const prefixCacheMb = numberValue(v["prefix-cache-mb"], "prefix-cache-mb");
  if (prefixCacheMb !== undefined && !(prefixCacheMb >= 0))
    throw new UsageError(`--prefix-cache-mb must be >= 0, got ${v["prefix-cache-mb"]}`);
  const dtype = v.dtype as ComputeDtype;
  if (v["no-cache"] && v["cache-dir"] !== undefined)
    throw new UsageError("--no-cache and --cache-dir exclude each other");
  checkWritable(output, "--output"); // now, not after the whole evaluation

  const loaded = await loadPretrained(modelRef, { dtype, device: v.device });
  const { model } = loaded;
  try {
    if (!loaded.tokenizer)
      throw new Error(`${loaded.dir}: no tokenizer files (tokenizer.json, tokenizer.model, …)`);
    const adapter = v.adapter === undefined ? null : resolve(v.adapter);
    if (adapter) loadLoraAdapter(model, adapter);
    const precision = v.precision as Precision | undefined;
    if (precision) applyPrecision(model, precision); // mixed: fp32 weights, scored under autocast
    model.eval();

    let cache: ModelLMOptions["cache"] = null;
    // Under torchrun (or srun, or `WORLD_SIZE` ranks): the requests are shared among the ranks.
    const dist = currentDist();
    if (!v["no-cache"]) {
      const files = [...filesIn(loaded.dir), ...(adapter ? filesIn(adapter) : [])];
      const fingerprint = `${filesFingerprint(files)}:${dtype}:${v.device}${precision ? `:${precision}` : ""}`;
      const base = process.env.LETHE_CACHE ?? join(homedir(), ".cache", "lethe");
      const readOnly = !(dist?.isMain ?? true); // rank 0 writes the cache
      cache = {
        store: ResultCache.open(v["cache-dir"] ?? join(base, "eval"), { readOnly }),
        fingerprint,
      };
    }
    const lm = new ModelLM(precision ? precisionView(model, precision) : model, loaded.tokenizer, {
      batchSize,
      maxLength,
      prefixTree: !v["no-prefix-cache"],
      prefixCacheMb,
      cache,
      name: modelRef,
      dist,
    });
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
        model_args: `pretrained=${modelRef}${adapter ? `,peft=${adapter}` : ""},dtype=${dtype}${precision ? `,precision=${precision}` : ""}`,
        batch_size: batchSize,
        device: v.device,
        limit: limit ?? null,
        max_length: lm.maxLength,
        num_fewshot: shots,
        fewshot_seed: 1234,
      },
    };
    if (dist && !dist.isMain) return 0; // every rank scored its share; rank 0 writes
    writeAtomic(output, JSON.stringify(out, null, 2) + "\n");
    process.stdout.write(formatResults(res) + "\n");
    process.stdout.write(
      `${lm.stats.computed} requests scored, ${lm.stats.cached} from cache, ${seconds.toFixed(1)}s → ${output}\n`,
    );
    return 0;
  } finally {
    model.dispose();
  }
});
