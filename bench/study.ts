/**
 * bench/study, two modes.
 *
 * `npm run bench:study [-- PRESET [--runs N] [--keep DIR]]` (default preset "default", 2 runs):
 * times the built-in miniature study end to end as a user runs it, `bin/lethe.js study --preset
 * PRESET` in a fresh folder, N times one after the other, each from an empty cache (its own temp
 * `LETHE_CACHE`, so the zoo is pretrained again and nothing is read from an earlier run's
 * cache), and prints each run's wall time and the shares spent in pretraining the zoo,
 * fine-tuning, evaluation and reporting (the rest: world data, loading, checkpoints, metrics),
 * then the median and range. Targets for the default preset on the 2-core machine: median
 * ≤ 420 s, worst ≤ 600 s. With `--keep DIR` the last run's study folder is written to DIR
 * (replacing it) and kept, report included.
 *
 * `npm run bench:study -- CONFIG.yaml` (e.g. examples/tiny-study.yaml): runs that study into a
 * fresh folder and prints the wall time split into training, evaluation and bookkeeping (model
 * building, data loading and hashing, checkpoints at stage end, metrics, writes), the training
 * tokens/s of the runner, and next to it bench/engine's figure for the same model: the bare loop
 * of bench/engine.ts (forward, cross-entropy, backward, AdamW on random tokens, one flat
 * parameter buffer) on the study's model config at its batch size and max length. Bookkeeping
 * must stay under 10 % of wall time.
 *
 * Last line of either: one JSON object.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadStudy } from "../src/continual/config.js";
import { type Timings } from "../src/continual/run.js";
import { runStudy } from "../src/continual/study.js";
import { createModel, parseModelConfig } from "../src/models/index.js";
import { flattenParameters } from "../src/nn/index.js";
import { AdamW } from "../src/optim/index.js";
import { build, crossEntropy, Generator, randint, tidy } from "../src/tensor/index.js";

const arg = process.argv[2] ?? "default";
if (/\.(ya?ml|json)$/.test(arg)) await configBench(resolve(arg));
else miniRuns(arg, miniOptions(process.argv.slice(3)));

/** `--runs N` (default 2) and `--keep DIR` (the folder is replaced, so it must be named). */
function miniOptions(rest: string[]): { runs: number; keep: string | null } {
  let runs = 2;
  let keep: string | null = null;
  for (let i = 0; i < rest.length; i += 2) {
    const [flag, value] = [rest[i], rest[i + 1]];
    if (flag === "--runs" && value !== undefined && /^[1-9]\d*$/.test(value)) runs = Number(value);
    else if (flag === "--keep" && value !== undefined && value !== "") keep = resolve(value);
    else
      throw new Error(
        `bench/study: expected "--runs N" or "--keep DIR" after the preset, got ${rest.slice(i).join(" ")}`,
      );
  }
  return { runs, keep };
}

function miniRuns(preset: string, o: { runs: number; keep: string | null }): void {
  const walls: number[] = [];
  const results: Record<string, number | string>[] = [];
  for (let i = 0; i < o.runs; i++) {
    console.log(`bench/study: run ${i + 1} of ${o.runs}, empty cache`);
    const r = miniBench(preset, i === o.runs - 1 ? o.keep : null);
    walls.push(r.wall_s as number);
    results.push(r);
  }
  const sorted = [...walls].sort((a, b) => a - b);
  const m = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  const worst = sorted[sorted.length - 1];
  const ok = preset !== "default" || (median <= 420 && worst <= 600);
  console.log(
    `walls ${walls.map((w) => `${w.toFixed(1)} s`).join(", ")}: median ${median.toFixed(1)} s, worst ${worst.toFixed(1)} s`,
  );
  if (preset === "default")
    console.log(
      ok
        ? "default study: median ≤ 420 s and worst ≤ 600 s: ok"
        : "default study: median over 420 s or worst over 600 s: FAIL",
    );
  console.log(
    JSON.stringify({ preset, walls_s: walls, median_s: median, worst_s: worst, runs: results }),
  );
  process.exitCode = ok ? 0 : 1;
}

/** Seconds of training and evaluation summed over the runs' timings.json, and tokens/s. */
function runTimes(dirs: string[]) {
  let train = 0;
  let evalSeconds = 0;
  const speeds: number[] = [];
  for (const d of dirs) {
    const t = JSON.parse(readFileSync(join(d, "timings.json"), "utf8")) as Timings;
    for (const s of t.stages) {
      train += s.train;
      evalSeconds += s.eval;
      if (s.tokensPerSecond !== null) speeds.push(s.tokensPerSecond);
    }
  }
  const tps = speeds.reduce((a, b) => a + b, 0) / Math.max(1, speeds.length);
  return { train, evalSeconds, tps };
}

function miniBench(preset: string, keep: string | null): Record<string, number | string> {
  const dir = mkdtempSync(join(tmpdir(), "lethe-bench-mini-"));
  const out = keep ?? join(dir, "study");
  if (keep !== null) rmSync(keep, { recursive: true, force: true });
  const cli = new URL("../bin/lethe.js", import.meta.url).pathname;
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [cli, "study", "--preset", preset, "--out", out, "--zoo-dir", join(dir, "zoo")],
    {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, LETHE_CACHE: join(dir, "cache") },
    },
  );
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`lethe study --preset ${preset} exited with ${r.status}`);
  const phases = JSON.parse(readFileSync(join(out, "phases.json"), "utf8")) as Record<
    string,
    number
  >;
  const runs = readdirSync(join(out, "runs")).map((n) => join(out, "runs", n));
  const { train, evalSeconds } = runTimes(runs);
  const other = wall - phases.pretrain - train - evalSeconds - phases.report;
  const pct = (x: number) => `${((100 * x) / wall).toFixed(1)}%`;
  console.log(
    `lethe bench/study — lethe study --preset ${preset}, libtorch ${build.torch}, ${build.threads} threads, ${runs.length} runs`,
  );
  console.log(
    `wall ${wall.toFixed(1)} s: pretraining ${phases.pretrain.toFixed(1)} s (${pct(phases.pretrain)}), ` +
      `fine-tuning ${train.toFixed(1)} s (${pct(train)}), evaluation ${evalSeconds.toFixed(1)} s (${pct(evalSeconds)}), ` +
      `reporting ${phases.report.toFixed(1)} s (${pct(phases.report)}), other ${other.toFixed(1)} s (${pct(other)})`,
  );
  const result = {
    preset,
    runs: runs.length,
    wall_s: Number(wall.toFixed(1)),
    pretrain_s: Number(phases.pretrain.toFixed(1)),
    finetune_s: Number(train.toFixed(1)),
    eval_s: Number(evalSeconds.toFixed(1)),
    report_s: Number(phases.report.toFixed(1)),
    other_s: Number(other.toFixed(1)),
  };
  rmSync(dir, { recursive: true, force: true });
  return result;
}

async function configBench(configFile: string): Promise<void> {
  const study = loadStudy(configFile);
  const out = mkdtempSync(join(tmpdir(), "lethe-bench-study-"));

  const t0 = performance.now();
  const dirs = await runStudy(study, out);
  const wall = (performance.now() - t0) / 1000;
  const { train, evalSeconds, tps: runnerTps } = runTimes(dirs);
  const bookkeeping = wall - train - evalSeconds;

  // bench/engine's loop on the same model and row shape.
  const spec = study.config.models[0];
  if (!spec.build)
    throw new Error(`${configFile}: bench/study needs a built model (models[0].build)`);
  const model = createModel(parseModelConfig(spec.build.config), { seed: spec.build.seed });
  if (model.kind !== "causal")
    throw new Error(`${configFile}: bench/study's engine loop needs a causal model`);
  const causal = model;
  const { batchSize, maxLength } = study.config.train;
  const vocab = model.config.vocab_size;
  const [flat] = flattenParameters(model);
  const opt = new AdamW([{ params: flat }], { lr: 1e-3 });
  const tokens = randint(0, vocab, [batchSize, maxLength + 1], { generator: new Generator(1) });
  const step = () =>
    tidy(() => {
      const { logits } = causal.forward({ inputIds: tokens.slice(1, 0, -1) });
      crossEntropy(logits.reshape(-1, vocab), tokens.slice(1, 1).reshape(-1)).backward();
      opt.step();
      opt.zeroGrad();
    });
  for (let i = 0; i < 3; i++) step();
  const steps = 20;
  const e0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  const engineTps = (steps * batchSize * maxLength) / ((performance.now() - e0) / 1000);

  const pct = (x: number) => `${((100 * x) / wall).toFixed(1)}%`;
  console.log(
    `lethe bench/study — ${configFile}, libtorch ${build.torch}, ${build.threads} threads, ${dirs.length} run(s)`,
  );
  console.log(
    `wall ${wall.toFixed(1)} s: training ${train.toFixed(1)} s (${pct(train)}), evaluation ${evalSeconds.toFixed(1)} s (${pct(evalSeconds)}), bookkeeping ${bookkeeping.toFixed(1)} s (${pct(bookkeeping)})`,
  );
  console.log(
    `training tokens/s: runner ${Math.round(runnerTps)} (mean over stages, real rows), bench/engine loop ${Math.round(engineTps)} (same model, ${batchSize}×${maxLength} random tokens)`,
  );
  const ok = bookkeeping / wall < 0.1;
  console.log(
    ok ? "bookkeeping under 10% of wall time: ok" : "bookkeeping is 10% of wall time or more: FAIL",
  );
  console.log(
    JSON.stringify({
      wall_s: Number(wall.toFixed(2)),
      train_s: Number(train.toFixed(2)),
      eval_s: Number(evalSeconds.toFixed(2)),
      bookkeeping_s: Number(bookkeeping.toFixed(2)),
      bookkeeping_share: Number((bookkeeping / wall).toFixed(4)),
      runner_train_tokens_per_s: Math.round(runnerTps),
      engine_tokens_per_s: Math.round(engineTps),
    }),
  );
  model.dispose();
  opt.dispose();
  rmSync(out, { recursive: true, force: true });
  process.exitCode = ok ? 0 : 1;
}
