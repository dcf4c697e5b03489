/**
 * bench/eval_vs_lmeval: lethe's evaluation against lm-evaluation-harness v0.4.x (HF backend,
 * lm_eval/models/huggingface.py `HFLM`) on one random GPT-2 (Radford et al. 2019; n_embd 256,
 * 4 layers, 4 heads, the full 50,257-token vocabulary, seed 0) and the shared data:
 *  - 0-shot hellaswag, piqa, boolq, arc_easy, winogrande, limit 50;
 *  - MMLU 5-shot, limit 5 (all 57 subjects).
 * In one run it times, per workload, through `evaluate()` (documents loaded, requests built,
 * scored, metrics computed; no result cache):
 *  1. lethe's default path: the prefix tree over every request (src/eval/prefix.ts) with
 *     positions-only logits;
 *  2. the same with the prefix tree switched off (`prefixTree: false`: only requests with one
 *     whole context share it), alternated with 1 in rounds (A B A B) so machine drift hits both;
 *  3. the one-request oracle (`fast: false`), once: the reference every log-likelihood is held to.
 * Metrics of 1, 2 and 3 must be identical, and 1's log-likelihoods within 1e-6 relative of 3's.
 * When the reference Python (`.venv/bin/python`, or `LETHE_PYTHON`) imports lm_eval, the model is
 * saved (safetensors + GPT-2 tokenizer) and lm-eval's `HFLM` (float32, batch 8, same thread count)
 * scores the same request strings lethe built, in its own process; its whole-process wall time
 * (imports and model load included, lm-eval's task building excluded) is reported. Otherwise it
 * prints "lm-eval not installed: reference figures in bench/RESULTS.md".
 * The last line is one JSON object: lethe_s, flag_off_s, oracle_s, speedup_vs_flag_off,
 * mmlu5_speedup_vs_flag_off, lmeval_bs8_s (null without lm-eval), max_rel_ll_diff, peak_rss_mb.
 * Run: `npm run bench:eval-lmeval -- [--quick] [--rounds N] [--threads N] [--data-dir DIR] [--no-lmeval]`.
 * `--quick`: 0-shot limit 5 and three MMLU subjects, for smoke tests.
 * `--no-oracle`: skip the oracle (it feeds every request's whole input with logits at every
 *   position: an hour on 2 cores for this workload); oracle_s and max_rel_ll_diff are then null.
 * `--threads N`: libtorch threads (default: every core; 1 on a machine other jobs load).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isDeepStrictEqual } from "node:util";
import { evaluate, type EvalResults } from "../src/eval/evaluate.js";
import { ModelLM, type ModelLMOptions } from "../src/eval/model_lm.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { savePretrained } from "../src/io/pretrained.js";
import { gpt2Config, gpt2Family } from "../src/models/gpt2.js";
import { build, setNumThreads } from "../src/tensor/index.js";
import { PYTHON, pythonHas } from "../src/util/python.js";

/** lm-eval's HFLM over the saved model, scoring the request strings lethe built. */
const LM_EVAL = String.raw`
import json, sys, time
t_start = time.perf_counter()
import importlib.metadata, torch, transformers
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

d = sys.argv[1]
job = json.load(open(d + "/job.json"))
torch.set_num_threads(job["threads"])
lm = HFLM(pretrained=d + "/hf", device="cpu", dtype="float32", batch_size=job["batch"])
out = {}
for name, reqs in job["workloads"].items():
    inst = [Instance(request_type="loglikelihood", doc={}, arguments=(c, x), idx=i)
            for i, (c, x) in enumerate(reqs)]
    t0 = time.perf_counter()
    res = lm.loglikelihood(inst, disable_tqdm=True)
    out[name] = {"seconds": time.perf_counter() - t0, "logprobs": [r[0] for r in res]}
out["wall"] = time.perf_counter() - t_start
out["versions"] = {"lm_eval": importlib.metadata.version("lm_eval"),
                   "transformers": transformers.__version__, "torch": torch.__version__}
json.dump(out, open(d + "/out.json", "w"))
`;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string", default: "1" },
    "data-dir": {
      type: "string",
      default: process.env.LETHE_DATA ?? join(repoRoot, "..", "shared", "data"),
    },
    "no-lmeval": { type: "boolean", default: false },
    "hf-batch": { type: "string", default: "8" },
    threads: { type: "string" },
    "no-oracle": { type: "boolean", default: false },
  },
});
const quick = values.quick!;
const rounds = Number(values.rounds);
const dataDir = values["data-dir"]!;
const bench = join(dataDir, "benchmarks");
// On a loaded machine, 1 thread avoids OpenMP oversubscription (each op waiting for a
// descheduled worker), which otherwise dominates every forward pass.
const threads = values.threads === undefined ? availableParallelism() : Number(values.threads);
setNumThreads(threads);

const WORKLOADS = {
  zero_shot: {
    tasks: ["hellaswag", "piqa", "boolq", "arc_easy", "winogrande"],
    shots: 0,
    limit: quick ? 5 : 50,
  },
  // --quick: three subjects at the full limit, so that questions still share their 5-shot block.
  mmlu5: {
    tasks: quick ? ["mmlu_anatomy", "mmlu_astronomy", "mmlu_virology"] : ["mmlu"],
    shots: 5,
    limit: 5,
  },
} as const;
type Workload = keyof typeof WORKLOADS;

const model = gpt2Family
  .create(gpt2Config({ n_embd: 256, n_layer: 4, n_head: 4 }), { seed: 0 })
  .eval();
const tokenizer = await loadTokenizer(join(dataDir, "tokenizers", "gpt2"));
console.log(
  `bench:eval-lmeval: random GPT-2 ${(model.numParameters() / 1e6).toFixed(1)}M params (n_embd 256, 4 layers, vocab 50257), ` +
    `libtorch ${build.torch}, ${threads} threads, ${cpus()[0]?.model ?? "?"}${quick ? ", --quick" : ""}`,
);

interface Run {
  seconds: Record<Workload, number>;
  results: Record<Workload, EvalResults["results"]>;
  logprobs: Record<Workload, number[]>;
  requests: Record<Workload, [string, string][]>;
  lm: ModelLM;
}

async function runLethe(what: string, o: ModelLMOptions): Promise<Run> {
  const lm = new ModelLM(model, tokenizer, { ...o, cache: null });
  const run = { seconds: {}, results: {}, logprobs: {}, requests: {}, lm } as Run;
  for (const [name, w] of Object.entries(WORKLOADS) as [Workload, (typeof WORKLOADS)[Workload]][]) {
    const t0 = performance.now();
    const res = await evaluate(lm, [...w.tasks], {
      dataDir: bench,
      shots: w.shots,
      limit: w.limit,
      logSamples: true,
    });
    run.seconds[name] = (performance.now() - t0) / 1000;
    run.results[name] = res.results;
    const samples = Object.keys(res.samples!)
      .sort()
      .flatMap((t) => res.samples![t]);
    run.logprobs[name] = samples.flatMap((s) => s.filtered_resps.map((r) => r[0]));
    run.requests[name] = samples.flatMap((s) => s.arguments);
    const n = run.logprobs[name].length;
    console.log(
      `  ${what} ${name}: ${run.seconds[name].toFixed(2)}s, ${n} requests, ${(n / run.seconds[name]).toFixed(1)} requests/s`,
    );
  }
  return run;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const total = (r: Run) => r.seconds.zero_shot + r.seconds.mmlu5;

const news: Run[] = [];
const offs: Run[] = [];
for (let i = 0; i < rounds; i++) {
  console.log(`round ${i + 1}/${rounds}`);
  news.push(await runLethe("prefix tree", {}));
  offs.push(await runLethe("flag off   ", { prefixTree: false }));
}
let lmevalS: number | null = null;
let lmevalMmlu: number | null = null;
let lmevalScoring: number | null = null;
if (values["no-lmeval"]) console.log("lm-eval skipped (--no-lmeval)");
else if (!pythonHas("lm_eval"))
  console.log("lm-eval not installed: reference figures in bench/RESULTS.md");
else {
  const tmp = mkdtempSync(join(tmpdir(), "lethe-bench-lmeval-"));
  try {
    await savePretrained(model, join(tmp, "hf"));
    for (const f of ["vocab.json", "merges.txt"])
      copyFileSync(join(dataDir, "tokenizers", "gpt2", f), join(tmp, "hf", f));
    writeFileSync(
      join(tmp, "job.json"),
      JSON.stringify({
        threads,
        batch: Number(values["hf-batch"]),
        workloads: news[0].requests,
      }),
    );
    writeFileSync(join(tmp, "run.py"), LM_EVAL);
    const t0 = performance.now();
    const py = spawnSync(PYTHON, [join(tmp, "run.py"), tmp], {
      timeout: 2 * 3600 * 1000,
      encoding: "utf8",
      maxBuffer: 1 << 28,
      env: { ...process.env, HF_HUB_OFFLINE: "1", TRANSFORMERS_OFFLINE: "1" },
    });
    const wall = (performance.now() - t0) / 1000;
    if (py.status !== 0) throw new Error(`lm-eval HF backend failed (${py.status}): ${py.stderr}`);
    const out = JSON.parse(readFileSync(join(tmp, "out.json"), "utf8")) as Record<
      string,
      { seconds: number; logprobs: number[] }
    > & { versions: Record<string, string> };
    let hfRel = 0;
    for (const name of Object.keys(WORKLOADS) as Workload[])
      out[name].logprobs.forEach((lp, i) => {
        const o = news[0].logprobs[name][i];
        hfRel = Math.max(hfRel, Math.abs(lp - o) / Math.max(Math.abs(o), 1e-30));
      });
    lmevalS = wall;
    lmevalMmlu = out.mmlu5.seconds;
    lmevalScoring = out.zero_shot.seconds + out.mmlu5.seconds;
    console.log(
      `lm-eval HFLM bs${values["hf-batch"]} (${Object.entries(out.versions)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ", ",
        )}): whole process ${wall.toFixed(1)}s; scoring 0-shot ${out.zero_shot.seconds.toFixed(1)}s, ` +
        `MMLU 5-shot ${out.mmlu5.seconds.toFixed(1)}s; max relative diff vs lethe ${hfRel.toExponential(2)}`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// The oracle last: the slowest part; lethe and lm-eval's figures are printed before it.
// --no-oracle: the flag-off path stands in as the reference (oracle_s, max_rel_ll_diff: null).
const noOracle = values["no-oracle"]!;
const oracle = noOracle ? offs[0] : await runLethe("oracle     ", { fast: false });

let maxRel = 0;
let metricsSame = true;
for (const name of Object.keys(WORKLOADS) as Workload[]) {
  for (const r of [...news, ...offs]) {
    metricsSame &&= isDeepStrictEqual(r.results[name], oracle.results[name]);
    if (r.logprobs[name].length !== oracle.logprobs[name].length)
      throw new Error(`${name}: request counts differ`);
  }
  for (const r of news)
    r.logprobs[name].forEach((lp, i) => {
      const o = oracle.logprobs[name][i];
      maxRel = Math.max(maxRel, Math.abs(lp - o) / Math.max(Math.abs(o), 1e-30));
    });
}
const st = news[0].lm.prefixStats;
console.log(
  `metrics identical (prefix tree, flag off${noOracle ? "" : ", oracle"}): ${metricsSame}; ` +
    `max relative log-likelihood diff vs ${noOracle ? "flag off" : "oracle"} ${maxRel.toExponential(2)}`,
);
console.log(
  `prefix tree: ${st.forwards} forwards, ${st.tokens} tokens fed, ${st.evicted} evictions, peak cache ${(st.peakBytes / 2 ** 20).toFixed(1)} MB of ${news[0].lm.prefixCacheMb} MB budget`,
);

const letheS = median(news.map(total));
const offS = median(offs.map(total));
const mmluNew = median(news.map((r) => r.seconds.mmlu5));
const mmluOff = median(offs.map((r) => r.seconds.mmlu5));
console.log(
  `lethe ${letheS.toFixed(1)}s (min–max ${Math.min(...news.map(total)).toFixed(1)}–${Math.max(...news.map(total)).toFixed(1)}), ` +
    `flag off ${offS.toFixed(1)}s${noOracle ? "" : `, oracle ${total(oracle).toFixed(1)}s`}; speed-up vs flag off ${(offS / letheS).toFixed(2)}×, ` +
    `MMLU 5-shot part ${(mmluOff / mmluNew).toFixed(2)}×` +
    (lmevalS === null
      ? ""
      : `; lm-eval bs8 / lethe: whole process ${(lmevalS / letheS).toFixed(2)}×, ` +
        `scoring only ${(lmevalScoring! / letheS).toFixed(2)}×, MMLU scoring ${(lmevalMmlu! / mmluNew).toFixed(2)}× ` +
        `(lethe's times include loading documents and building requests)`),
);
const round = (x: number) => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify({
    lethe_s: round(letheS),
    flag_off_s: round(offS),
    oracle_s: noOracle ? null : round(total(oracle)),
    speedup_vs_flag_off: round(offS / letheS),
    mmlu5_speedup_vs_flag_off: round(mmluOff / mmluNew),
    lmeval_bs8_s: lmevalS === null ? null : round(lmevalS),
    max_rel_ll_diff: noOracle ? null : maxRel,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  }),
);
if (!metricsSame) process.exitCode = 1;
