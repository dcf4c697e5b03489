/**
 * Several processes on torch.distributed's c10d (src/dist/, src/train/distributed.ts, the
 * runner's rank 0 writes, ModelLM's sharded evaluation, `--nproc-per-node`), with real Gloo
 * ranks on 127.0.0.1:
 * - the collectives; a timeout and a dead peer become errors, the latter naming the lost rank;
 * - 2 ranks against 1 process for a tiny LLaMA and a tiny T5, 20 steps, in ddp, zero1 and zero2:
 *   the losses and final weights agree to 1e-5 relative;
 * - a zero1 checkpoint written by 2 ranks (sharded optimizer state) resumes at 1 rank and at 2;
 * - `lethe run --nproc-per-node 2` of a study with EWC and replay writes results.json and
 *   items/*.jsonl byte-identical to one process's;
 * - kill -9 of one rank mid-stage: the other exits non-zero naming it, and `lethe resume` at
 *   world size 1 finishes with the uninterrupted run's results.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadStudy } from "../../src/continual/config.js";
import { freePort } from "../../src/util/net.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";

const BIN = join(repoRoot, "bin", "lethe.js");
const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const env = { ...process.env, LETHE_DATA: sharedDataRoot, LETHE_THREADS: "1" };

interface RankOut {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Starts `world` ranks of `args` (node arguments) with torchrun's variables; `onStdout` sees rank
 * r's output as it comes (and may kill ranks through the pids it is given).
 */
async function ranks(
  world: number,
  args: string[],
  extraEnv: Record<string, string> = {},
  onStdout?: (rank: number, text: string, pids: number[]) => void,
): Promise<RankOut[]> {
  const port = await freePort();
  const started = Date.now();
  const children = Array.from({ length: world }, (_, r) =>
    spawn(process.execPath, args, {
      cwd: repoRoot,
      env: {
        ...env,
        ...extraEnv,
        RANK: String(r),
        LOCAL_RANK: String(r),
        WORLD_SIZE: String(world),
        LOCAL_WORLD_SIZE: String(world),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
      },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const pids = children.map((c) => c.pid!);
  return Promise.all(
    children.map(
      (c, r) =>
        new Promise<RankOut>((resolve) => {
          let stdout = "";
          let stderr = "";
          c.stdout!.on("data", (d: Buffer) => {
            stdout += d.toString();
            onStdout?.(r, stdout, pids);
          });
          c.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
          c.on("exit", (code, signal) =>
            resolve({ code, signal, stdout, stderr, ms: Date.now() - started }),
          );
        }),
    ),
  );
}

/** `node --import tsx -e SCRIPT` as an ES module. */
const script = (code: string) => ["--import", "tsx", "--input-type=module", "-e", code];
const src = (p: string) => JSON.stringify(join(repoRoot, "src", p));

test("c10d over Gloo: allreduce, broadcast, allgather, barrier; a timeout and a lost rank are errors", async () => {
  const code = `
import { currentDist, DistError } from ${src("dist/index.ts")};
import { tensor } from ${src("tensor/index.ts")};
const d = currentDist();
const sum = d.allReduce(tensor([d.rank + 1, 10]));
const avg = d.allReduce(tensor([d.rank * 2 + 1]), "avg");
const b = d.broadcast(tensor([d.rank, d.rank]), 1);
const json = d.allGatherJson({ r: d.rank, s: "x".repeat(d.rank * 5) });
d.barrier();
const out = { sum: sum.toNumbers(), avg: avg.toNumbers(), b: b.toNumbers(), json };
if (process.env.MODE === "die" && d.rank === 1) process.exit(3);
if (process.env.MODE === "hang" && d.rank === 1) {
  setTimeout(() => process.exit(0), 9000); // alive (heartbeat on) but never joins the barrier
} else {
  const t0 = Date.now();
  try {
    if (process.env.MODE) d.barrier();
    console.log(JSON.stringify(out));
  } catch (e) {
    console.log(JSON.stringify({ ...out, error: e.message, isDist: e instanceof DistError, ms: Date.now() - t0 }));
    process.exitCode = 1;
  }
}`;
  const ok = await ranks(2, script(code));
  for (const [r, o] of ok.entries()) {
    assert.equal(o.code, 0, o.stderr);
    const v = JSON.parse(o.stdout);
    assert.deepEqual(v.sum, [3, 20], `rank ${r}`);
    assert.deepEqual(v.avg, [2]);
    assert.deepEqual(v.b, [1, 1]);
    assert.deepEqual(v.json, [
      { r: 0, s: "" },
      { r: 1, s: "xxxxx" },
    ]);
  }

  const died = await ranks(2, script(code), { MODE: "die", LETHE_DIST_TIMEOUT: "20" });
  assert.equal(died[1].code, 3);
  const e = JSON.parse(died[0].stdout);
  assert.equal(died[0].code, 1);
  assert.ok(e.isDist);
  assert.match(e.error, /distributed barrier failed on rank 0 of 2: lost rank 1 of 2/);
  assert.ok(e.ms < 15000, `the lost rank was found in ${e.ms} ms`);

  const hung = await ranks(2, script(code), { MODE: "hang", LETHE_DIST_TIMEOUT: "2" });
  const h = JSON.parse(hung[0].stdout);
  assert.match(h.error, /barrier failed on rank 0 of 2: no rank was found lost \(a timeout\?\)/);
  assert.ok(h.ms >= 1900 && h.ms < 8000, `timed out after ${h.ms} ms`);
});

/** A child that trains one stage (in a group when WORLD_SIZE > 1) and prints losses and weights. */
const trainScript = (modelType: string, dir: string, cfg: Record<string, unknown>) => `
import { currentDist } from ${src("dist/index.ts")};
import { trainStage } from ${src("train/trainer.ts")};
import { loadTokenizer } from ${src("io/tokenizer.ts")};
import { createModel, parseModelConfig } from ${src("models/index.ts")};
import { TINY_CONFIGS } from ${JSON.stringify(join(repoRoot, "test/models/tiny.ts"))};
import { examples, BASE_CONFIG } from ${JSON.stringify(join(repoRoot, "test/train/helpers.ts"))};
const dist = currentDist();
const stopAt = Number(process.env.STOP_AT ?? 0);
const plugins = stopAt ? [{ name: "stop", supports: ["full"], afterStep(ctx) { if (ctx.step === stopAt) throw new Error("stop here"); } }] : [];
const model = createModel(parseModelConfig({ ...TINY_CONFIGS[${JSON.stringify(modelType)}], vocab_size: 512, initializer_factor: 0.5 }, "tiny"), { seed: 0 });
try {
  const res = trainStage({ stage: "s", model, kind: "full", examples: examples(64),
    tokenizer: await loadTokenizer(${JSON.stringify(dataPath(...NEEDS))}),
    config: { ...BASE_CONFIG, ...${JSON.stringify(cfg)} }, plugins, dir: process.env.DIR ?? ${JSON.stringify(dir)}, dist });
  if (!dist || dist.isMain)
    console.log(JSON.stringify({ losses: res.losses, weights: model.namedParameters().map(([n, p]) => [n, p.toNumbers()]) }));
} catch (e) {
  if (e.message !== "stop here") throw e;
  console.log(JSON.stringify({ stopped: true }));
}`;

interface Trained {
  losses: number[];
  weights: [string, number[]][];
}

function assertClose(a: Trained, b: Trained, what: string): void {
  assert.equal(a.losses.length, b.losses.length);
  a.losses.forEach((l, i) =>
    assert.ok(
      Math.abs(l - b.losses[i]) <= 1e-5 * Math.abs(l),
      `${what}: loss ${i}: ${l} vs ${b.losses[i]}`,
    ),
  );
  const scale = Math.max(...a.weights.flatMap(([, w]) => w.map(Math.abs)));
  a.weights.forEach(([n, w], i) => {
    const diff = Math.max(...w.map((x, j) => Math.abs(x - b.weights[i][1][j])));
    assert.ok(diff <= 1e-5 * scale, `${what}: ${n} differs by ${diff}`);
  });
}

test("2 ranks equal 1 process: tiny LLaMA and T5, 20 steps, ddp, zero1, zero2", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-ddp-"));
  // Each rank runs 2 of the 4 micro-batches of every step: its sums differ in order from one process's.
  const cfg = { steps: 20, batchSize: 2, gradAccum: 4, lr: 1e-3, warmup: 0, clip: 1 };
  for (const modelType of ["llama", "t5"]) {
    const one = await ranks(1, script(trainScript(modelType, join(tmp, `${modelType}-1`), cfg)));
    assert.equal(one[0].code, 0, one[0].stderr);
    const single = JSON.parse(one[0].stdout) as Trained;
    assert.ok(
      single.losses[19] < single.losses[0] - 0.1,
      `${modelType} learns: ${single.losses[0]} → ${single.losses[19]}`,
    );
    for (const mode of ["ddp", "zero1", "zero2"]) {
      const dir = join(tmp, `${modelType}-${mode}`);
      const two = await ranks(
        2,
        script(trainScript(modelType, dir, { ...cfg, distributed: mode })),
      );
      for (const o of two) assert.equal(o.code, 0, o.stderr);
      assert.equal(two[1].stdout, "", "rank 1 prints nothing");
      assertClose(single, JSON.parse(two[0].stdout) as Trained, `${modelType} ${mode}`);
    }
  }
});

test("a zero1 checkpoint of 2 ranks resumes at 1 rank and at 2", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-zero-"));
  const cfg = { steps: 8, batchSize: 2, gradAccum: 2, lr: 3e-3, warmup: 0, checkpointEvery: 4 };
  const code = (c: Record<string, unknown>) => script(trainScript("llama", "", c));
  const full = await ranks(1, code(cfg), { DIR: join(tmp, "full") });
  const reference = JSON.parse(full[0].stdout) as Trained;
  const stopped = await ranks(2, code({ ...cfg, distributed: "zero1" }), {
    DIR: join(tmp, "two"),
    STOP_AT: "6",
  });
  for (const o of stopped) assert.equal(o.code, 0, o.stderr);
  const ckpt = join(tmp, "two", "ckpt-4");
  assert.deepEqual(readdirSync(ckpt).sort(), [
    "model.safetensors",
    "optimizer-00001-of-00002.safetensors",
    "optimizer-00002-of-00002.safetensors",
    "optimizer.index.json",
    "trainer_state.json",
  ]);
  cpSync(join(tmp, "two"), join(tmp, "again"), { recursive: true });
  const at1 = await ranks(1, code(cfg), { DIR: join(tmp, "two") });
  assert.equal(at1[0].code, 0, at1[0].stderr);
  assertClose(reference, JSON.parse(at1[0].stdout) as Trained, "resumed at 1 rank");
  const at2 = await ranks(2, code({ ...cfg, distributed: "zero1" }), { DIR: join(tmp, "again") });
  for (const o of at2) assert.equal(o.code, 0, o.stderr);
  assertClose(reference, JSON.parse(at2[0].stdout) as Trained, "resumed at 2 ranks");
});

const RUN = "tiny-llama__ewc__order0__seed0";

/** The tiny study, two short stages, EWC and replay, one benchmark: a config file in `dir`. */
function studyConfig(dir: string): string {
  const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), env)
    .config as unknown as Record<string, unknown>;
  raw.methods = [
    { name: "ewc", options: { samples: 8 } },
    { name: "replay", options: { ratio: 0.25 } },
  ];
  raw.orders = [["haiku", "asset"]];
  raw.budget = { maxTrain: 16, maxTest: 3 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 8 };
  raw.train = { ...(raw.train as object), gradAccum: 2, checkpointEvery: 1 };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 6 }], maxLength: 256, bootstrapIters: 10 };
  const file = join(dir, "study.json");
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

/** results.json and every items/*.jsonl of a run, by path. */
function outputs(run: string): Map<string, string> {
  const out = new Map([["results.json", readFileSync(join(run, "results.json"), "utf8")]]);
  for (const stage of readdirSync(join(run, "stages")))
    for (const f of readdirSync(join(run, "stages", stage, "items")))
      out.set(`${stage}/${f}`, readFileSync(join(run, "stages", stage, "items", f), "utf8"));
  return out;
}

test("lethe run --nproc-per-node 2 (EWC, replay): results and items equal one process's; kill -9 of a rank, then resume at 1", async (t) => {
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-ddp-run-"));
  const config = studyConfig(tmp);
  const lethe = (...a: string[]) => [BIN, ...a];
  const one = await ranks(1, lethe("run", config, "--out", join(tmp, "one")));
  assert.equal(one[0].code, 0, one[0].stderr);
  const two = await ranks(
    1,
    lethe("run", config, "--out", join(tmp, "two"), "--nproc-per-node", "2"),
  );
  assert.equal(two[0].code, 0, two[0].stderr);
  assert.equal(two[0].stdout.match(/^run 1\/2:/gm)?.length, 1, "only rank 0 prints");
  for (const run of [RUN, "tiny-llama__replay__order0__seed0"]) {
    const a = outputs(join(tmp, "one", "runs", run));
    const b = outputs(join(tmp, "two", "runs", run));
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [k, v] of a) assert.equal(b.get(k), v, `${run}: ${k}`);
  }

  // kill -9 rank 1 once rank 0 is training stage 1.
  const out = join(tmp, "killed");
  let killedAt = 0;
  const killed = await ranks(
    2,
    lethe("run", config, "--out", out),
    { LETHE_DIST_TIMEOUT: "20" },
    (r, text, pids) => {
      if (r === 0 && !killedAt && /stage 1\/2 \[haiku\] step 1\//.test(text)) {
        killedAt = Date.now();
        process.kill(pids[1], "SIGKILL");
      }
    },
  );
  assert.ok(killedAt > 0, "rank 0 reached stage 1");
  assert.equal(killed[1].signal, "SIGKILL");
  assert.notEqual(killed[0].code, 0);
  assert.match(killed[0].stderr, /lost rank 1 of 2/);
  assert.ok(Date.now() - killedAt < 30000);
  const resumed = await ranks(1, lethe("resume", out));
  assert.equal(resumed[0].code, 0, resumed[0].stderr);
  const a = outputs(join(tmp, "one", "runs", RUN));
  const b = outputs(join(out, "runs", RUN));
  for (const [k, v] of a) assert.equal(b.get(k), v, `resumed: ${k}`);
});
