/**
 * bench/memory: peak memory of full fine-tuning a ~100M-parameter LLaMA-style model (hidden 768,
 * 12 layers, 12 heads, SwiGLU 2048, vocab 32000; seq 512, batch 4, AdamW) in `32-true` and
 * `bf16-mixed`, each without and with gradient checkpointing, in lethe (the trainer's own loop,
 * src/train/trainer.ts) and in Python PyTorch (bench/memory_torch.py: transformers'
 * LlamaForCausalLM, torch.optim.AdamW, torch.autocast, `gradient_checkpointing_enable()`; the
 * venv's torch, the libtorch lethe links). Every measurement is a fresh child process, lethe and
 * PyTorch alternating (A B A B), so one process's allocator history never leaks into another's.
 *
 * Per configuration: the run's own memory (peak RSS minus that of a baseline process of the same
 * side that loaded its code and ran one warm-up step of a width-16 model but trained nothing),
 * per parameter; the theoretical minimum (src/continual/plan.ts: 16 bytes a parameter for
 * weights, gradients and AdamW, autocast's bf16 weight copies, plus the tensors autograd saves);
 * lethe / minimum and lethe / PyTorch. Activation memory (run − states) with and without
 * checkpointing gives the cut. Sizes are MiB (2^20 bytes; the JSON's `_mb` keys too). Last line:
 * one JSON object (bench/RESULTS.md).
 *
 *   npm run bench:memory                  the full-size run (about 20 minutes on 2 cores)
 *   npm run bench:memory -- --small       a 4-layer width-256 model at seq 128 (a minute)
 *   ... -- --repeat N                     N measurements per side and configuration, medians used
 *   ... -- --device cuda                  peak GPU memory (nvidia-smi, both sides) instead of RSS
 *   node --import tsx bench/memory.ts --child '<json>'   one lethe measurement, in-process (tests)
 *   node --import tsx bench/memory.ts --one lethe|torch '<json>'   one side in a child (gpu.sh)
 *
 * The child also reports steady-state tokens/s (steps after the first three), which
 * bench/gpu.sh uses for its throughput comparison.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createModel, parseModelConfig, type CausalLM } from "../src/models/index.js";
import { loadTokenizer } from "../src/io/tokenizer.js";
import { writeTokenizer, SPECIAL_TOKENS } from "../src/mini/tokenizer.js";
import { trainStage } from "../src/train/trainer.js";
import { crossEntropy, randint, tidy } from "../src/tensor/index.js";
import type { Precision } from "../src/train/precision.js";
import { planMemory } from "../src/continual/plan.js";
import { PYTHON } from "../src/util/python.js";

/** One measurement, as both sides' children take it. */
export interface ChildSpec {
  config: Record<string, unknown>;
  precision: Precision;
  checkpointing: boolean;
  batch: number;
  seq: number;
  steps: number;
  /** @default "cpu" */
  device?: string;
  /** Load the code, warm up on a micro model, train nothing. */
  baseline?: boolean;
}

export interface ChildResult {
  /** Peak RSS in bytes (VmHWM). */
  peak: number;
  params?: number;
  /** Tokens per second over the steps after the first three (all steps when fewer than five). */
  tokens_per_s?: number;
}

const MB = 2 ** 20;

function vmHwm(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Trains `spec` with lethe's trainer (or only warms up, for a baseline); prints a ChildResult. */
async function child(spec: ChildSpec): Promise<void> {
  const device = spec.device ?? "cpu";
  const dir = mkdtempSync(join(tmpdir(), "lethe-bench-memory-"));
  try {
    // A word-level tokenizer; every example is longer than `seq`, so each row is `seq` tokens.
    const V = Number(spec.config.vocab_size);
    const words = Array.from(
      { length: Math.min(V, 2000) - SPECIAL_TOKENS.length },
      (_, i) => `w${i}`,
    );
    await writeTokenizer(join(dir, "tok"), [...SPECIAL_TOKENS, ...words], "causal");
    const tokenizer = await loadTokenizer(join(dir, "tok"));
    let s = 1;
    const word = () => words[(s = (s * 48271) % 2147483647) % words.length];
    const examples = Array.from({ length: spec.batch * spec.steps }, () => ({
      prompt: Array.from({ length: spec.seq }, word).join(" "),
      response: " " + Array.from({ length: 8 }, word).join(" "),
    }));
    // Warm libtorch up (autograd engine, kernels) on a 2-layer model of width 16, so that the
    // baseline holds what any training process holds before its own tensors.
    const micro = createModel(
      parseModelConfig({
        model_type: "llama",
        vocab_size: 64,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
      }),
    ) as CausalLM;
    if (device !== "cpu") micro.to(device);
    tidy(() => {
      const ids = randint(0, 64, [2, 17]).to(device);
      const { logits } = micro.forward({ inputIds: ids.slice(1, 0, -1) });
      crossEntropy(logits.reshape(-1, 64), ids.slice(1, 1).reshape(-1)).backward();
    });
    micro.dispose();
    if (spec.baseline) {
      console.log(JSON.stringify({ peak: vmHwm() } satisfies ChildResult));
      return;
    }
    const model = createModel(parseModelConfig(spec.config), { seed: 0 });
    if (device !== "cpu") model.to(device);
    const times: number[] = [];
    trainStage({
      stage: "memory",
      model,
      kind: "full",
      examples,
      tokenizer,
      config: {
        lr: 1e-4,
        steps: spec.steps,
        batchSize: spec.batch,
        gradAccum: 1,
        maxLength: spec.seq,
        checkpointEvery: 0,
        precision: spec.precision,
        gradientCheckpointing: spec.checkpointing,
        warmup: 0,
      },
      dir: join(dir, "ckpt"),
      onProgress: () => times.push(performance.now()),
    });
    const skip = spec.steps >= 5 ? 3 : 0;
    const t0 = skip === 0 ? times[0] - (times[1] - times[0]) : times[skip - 1];
    const seconds = (times[times.length - 1] - t0) / 1000;
    const result: ChildResult = {
      peak: vmHwm(),
      params: model.numParameters(),
      tokens_per_s: ((spec.steps - skip) * spec.batch * spec.seq) / seconds,
    };
    console.log(JSON.stringify(result));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Peak GPU memory of process `pid` while it runs, from nvidia-smi every 200 ms: its own
 * `used_memory` (CUDA context included, as for both sides alike); where a container hides
 * process ids from nvidia-smi, the device's `memory.used` above what it was at the start.
 */
function gpuPoller(pid: number): { stop(): number } {
  let own = 0;
  let device = 0;
  let start: number | null = null;
  const query = (args: string[], then: (out: string) => void) => {
    const p = spawn("nvidia-smi", [...args, "--format=csv,noheader,nounits"]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", () => then(out));
    p.on("error", () => {});
  };
  const poll = () => {
    query(["--query-compute-apps=pid,used_memory"], (out) => {
      for (const line of out.split("\n")) {
        const [who, mib] = line.split(",").map((x) => x.trim());
        if (Number(who) === pid) own = Math.max(own, Number(mib) * MB);
      }
    });
    query(["--query-gpu=memory.used", "--id=0"], (out) => {
      const used = Number(out.trim()) * MB;
      if (!Number.isFinite(used)) return;
      start ??= used;
      device = Math.max(device, used - start);
    });
  };
  poll();
  const timer = setInterval(poll, 200);
  return {
    stop() {
      clearInterval(timer);
      return own > 0 ? own : device;
    },
  };
}

/**
 * The run of median peak (the mean of the middle two for an even count). A process's peak RSS
 * varies by up to ~10% from run to run with the same code: glibc gives libtorch's worker threads
 * their own heaps, and which heap a tensor lands in depends on thread timing.
 */
function median(rs: ChildResult[]): ChildResult {
  const sorted = [...rs].sort((a, b) => a.peak - b.peak);
  const mid = Math.floor((sorted.length - 1) / 2);
  const peak = sorted.length % 2 ? sorted[mid].peak : (sorted[mid].peak + sorted[mid + 1].peak) / 2;
  return { ...sorted[mid], peak };
}

/** Runs one child (lethe or torch) and returns its result; on CUDA the peak is the GPU's. */
async function measure(side: "lethe" | "torch", spec: ChildSpec): Promise<ChildResult> {
  const [cmd, args] =
    side === "lethe"
      ? [process.execPath, ["--import", "tsx", new URL(import.meta.url).pathname, "--child"]]
      : [PYTHON, [new URL("./memory_torch.py", import.meta.url).pathname]];
  const p = spawn(cmd, [...args, JSON.stringify(spec)], { stdio: ["ignore", "pipe", "inherit"] });
  const gpu = (spec.device ?? "cpu").startsWith("cuda") ? gpuPoller(p.pid!) : null;
  let out = "";
  p.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number>((res) => p.on("close", (c) => res(c ?? 1)));
  const gpuPeak = gpu?.stop();
  if (code !== 0)
    throw new Error(
      `bench/memory: the ${side} child exited with ${code}` +
        (side === "torch"
          ? ` (${PYTHON} needs torch and transformers: scripts/setup.sh bench)`
          : ""),
    );
  const r = JSON.parse(out.trim().split("\n").at(-1)!) as ChildResult;
  return gpuPeak === undefined ? r : { ...r, peak: gpuPeak };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      small: { type: "boolean", default: false },
      device: { type: "string", default: "cpu" },
      steps: { type: "string", default: "3" },
      repeat: { type: "string", default: "1" },
    },
  });
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1)
    throw new Error(`bench/memory: --repeat must be an integer >= 1, got "${values.repeat}"`);
  const small = values.small!;
  const device = values.device!;
  const config = {
    model_type: "llama",
    vocab_size: small ? 8192 : 32000,
    hidden_size: small ? 256 : 768,
    intermediate_size: small ? 688 : 2048,
    num_hidden_layers: small ? 4 : 12,
    num_attention_heads: small ? 4 : 12,
    max_position_embeddings: 1024,
    tie_word_embeddings: false,
  };
  const shape = { batch: 4, seq: small ? 128 : 512, steps: Number(values.steps) };
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `lethe bench/memory — ${small ? "small" : "~100M"} LLaMA-style, batch ${shape.batch} × seq ${shape.seq}, ` +
      `${shape.steps} AdamW steps, ${device === "cpu" ? `peak RSS, ${cpu}` : "peak GPU memory (nvidia-smi)"}`,
  );
  const base = {
    config,
    precision: "32-true" as Precision,
    checkpointing: false,
    ...shape,
    device,
  };
  const baseline = {
    lethe: (await measure("lethe", { ...base, baseline: true })).peak,
    torch: (await measure("torch", { ...base, baseline: true })).peak,
  };
  console.log(
    `baselines (code loaded, nothing trained): lethe ${(baseline.lethe / MB).toFixed(0)} MiB, ` +
      `torch ${(baseline.torch / MB).toFixed(0)} MiB`,
  );
  type Row = {
    precision: Precision;
    checkpointing: boolean;
    lethe_peak_mb: number;
    lethe_run_mb: number;
    lethe_bytes_per_param: number;
    theory_mb: number;
    torch_peak_mb: number;
    torch_run_mb: number;
    theory_ratio: number;
    torch_ratio: number;
    lethe_activations_mb: number;
  };
  const rows: Row[] = [];
  let params = 0;
  for (const precision of ["32-true", "bf16-mixed"] as const)
    for (const checkpointing of [false, true]) {
      const spec = { ...base, precision, checkpointing };
      const runs: Record<"lethe" | "torch", ChildResult[]> = { lethe: [], torch: [] };
      for (let r = 0; r < repeat; r++) {
        runs.lethe.push(await measure("lethe", spec)); // A
        runs.torch.push(await measure("torch", spec)); // B
      }
      const [l, t] = [median(runs.lethe), median(runs.torch)];
      if (repeat > 1)
        console.log(
          `  ${precision} ckpt ${checkpointing ? "on" : "off"}: peaks MiB lethe ` +
            `${runs.lethe.map((x) => (x.peak / MB).toFixed(0)).join(" ")}, torch ` +
            `${runs.torch.map((x) => (x.peak / MB).toFixed(0)).join(" ")} (medians used)`,
        );
      params = l.params!;
      const plan = planMemory({
        config,
        modelDtype: "float32",
        precision,
        tuning: { kind: "full", r: 8, dropout: 0 },
        gradientCheckpointing: checkpointing,
        batchSize: shape.batch,
        maxLength: shape.seq,
        gradAccum: 1,
        method: { name: "sequential", options: {} },
        stages: 1,
        eval: { batchSize: 1, maxLength: 16, maxGenToks: 16 },
        device,
      });
      const run = l.peak - baseline.lethe;
      const torchRun = t.peak - baseline.torch;
      const row: Row = {
        precision,
        checkpointing,
        lethe_peak_mb: l.peak / MB,
        lethe_run_mb: run / MB,
        lethe_bytes_per_param: run / params,
        theory_mb: plan.minimum.total / MB,
        torch_peak_mb: t.peak / MB,
        torch_run_mb: torchRun / MB,
        theory_ratio: run / plan.minimum.total,
        torch_ratio: run / torchRun,
        lethe_activations_mb: (run - plan.minimum.states) / MB,
      };
      rows.push(row);
      console.log(
        `${precision.padEnd(10)} ckpt ${checkpointing ? "on " : "off"}: lethe ${row.lethe_run_mb.toFixed(0)} MiB ` +
          `(${row.lethe_bytes_per_param.toFixed(1)} B/param; peak ${row.lethe_peak_mb.toFixed(0)}), ` +
          `theory ${row.theory_mb.toFixed(0)} MiB (×${row.theory_ratio.toFixed(2)}), ` +
          `torch ${row.torch_run_mb.toFixed(0)} MiB (peak ${row.torch_peak_mb.toFixed(0)}; ×${row.torch_ratio.toFixed(2)})`,
      );
    }
  const cut = (p: Precision) => {
    const [off, on] = [false, true].map(
      (c) => rows.find((r) => r.precision === p && r.checkpointing === c)!.lethe_activations_mb,
    );
    return off / on;
  };
  const cuts = { "32-true": cut("32-true"), "bf16-mixed": cut("bf16-mixed") };
  console.log(
    `checkpointing cuts lethe's activation memory ${cuts["32-true"].toFixed(2)}× (32-true), ` +
      `${cuts["bf16-mixed"].toFixed(2)}× (bf16-mixed); targets: ≤ 1.15× theory, ≤ 1.0× torch, cut ≥ 3×`,
  );
  const r2 = (x: number) => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify({
      params,
      device,
      seq: shape.seq,
      batch: shape.batch,
      baseline_mb: { lethe: r2(baseline.lethe / MB), torch: r2(baseline.torch / MB) },
      configs: rows.map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([k, v]) => [k, typeof v === "number" ? r2(v) : v]),
        ),
      ),
      ckpt_activation_cut: r2(Math.min(cuts["32-true"], cuts["bf16-mixed"])),
    }),
  );
}

if (process.argv[2] === "--child") await child(JSON.parse(process.argv[3]) as ChildSpec);
else if (process.argv[2] === "--one") {
  // One measurement of one side, GPU peak polled on CUDA (bench/gpu.sh).
  const side = process.argv[3];
  if (side !== "lethe" && side !== "torch") throw new Error(`--one: lethe or torch, got "${side}"`);
  console.log(JSON.stringify(await measure(side, JSON.parse(process.argv[4]) as ChildSpec)));
} else await main();
