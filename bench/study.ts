/**
 * bench/study, two modes.
 *
 * `npm run bench:study [-- PRESET [--keep DIR]]` (default preset "default"): times the built-in
 * miniature study end to end as a user runs it, `bin/lethe.js study --preset PRESET` in a fresh folder with an
 * empty zoo cache (so pretraining counts), and prints its wall time and the shares spent in
 * pretraining the zoo, fine-tuning, evaluation and reporting (the rest: world data, loading,
 * checkpoints, metrics). Target for the default preset: ≤ 600 s on the 2-core machine. With
 * `--keep DIR` the study folder is written to DIR (replacing it) and kept, report included.
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
import { runStudy, type Timings } from "../src/continual/run.js";
import { createModel, parseModelConfig } from "../src/models/index.js";
import { flattenParameters } from "../src/nn/index.js";
import { AdamW } from "../src/optim/index.js";
import { build, crossEntropy, Generator, randint, tidy } from "../src/tensor/index.js";

const arg = process.argv[2] ?? "default";
if (/\.(ya?ml|json)$/.test(arg)) await configBench(resolve(arg));
else miniBench(arg, keepDir(process.argv.slice(3)));

/** `--keep DIR` (the folder is replaced, so it must be named), else null. */
function keepDir(rest: string[]): string | null {
  if (rest.length === 0) return null;
  if (rest[0] !== "--keep" || rest.length !== 2 || rest[1] === "")
    throw new Error(`bench/study: expected "--keep DIR" after the preset, got ${rest.join(" ")}`);
  return resolve(rest[1]);
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

function miniBench(preset: string, keep: string | null): void {
  const dir = mkdtempSync(join(tmpdir(), "lethe-bench-mini-"));
  const out = keep ?? join(dir, "study");
  if (keep !== null) rmSync(keep, { recursive: true, force: true });
  const cli = new URL("../bin/lethe.js", import.meta.url).pathname;
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [cli, "study", "--preset", preset, "--out", out, "--zoo-dir", join(dir, "zoo")],
    { stdio: ["ignore", "inherit", "inherit"] },
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
  const ok = preset !== "default" || wall <= 600;
  if (preset === "default")
    console.log(ok ? "default study within 600 s: ok" : "default study over 600 s: FAIL");
  console.log(
    JSON.stringify({
      preset,
      runs: runs.length,
      wall_s: Number(wall.toFixed(1)),
      pretrain_s: Number(phases.pretrain.toFixed(1)),
      finetune_s: Number(train.toFixed(1)),
      eval_s: Number(evalSeconds.toFixed(1)),
      report_s: Number(phases.report.toFixed(1)),
      other_s: Number(other.toFixed(1)),
    }),
  );
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = ok ? 0 : 1;
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
