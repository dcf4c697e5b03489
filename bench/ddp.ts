/**
 * bench/ddp: data parallel training over c10d's Gloo on this machine. The bench/engine model
 * (GPT-style, vocab 8192, d_model 256, 4 layers, seq 128), a global batch of 8 rows as 2
 * micro-batches of 4, AdamW, one libtorch thread per rank:
 * - throughput of 2 ranks (ddp) against 1 process doing the whole batch: `scaling`;
 * - optimizer-state bytes per rank under zero1 against ddp: `zero1_state_ratio`;
 * - the share of a 2-rank ddp step spent in gradient all-reduces: `comm_share`;
 * - the largest difference between the 1-process and 2-rank losses: `max_abs_loss_diff`.
 * Configurations alternate (1, ddp, zero1, 1, ddp, zero1, …) so load drifts hit each alike.
 * Last line: one JSON object. Run: `npm run bench:ddp`.
 */
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { gpt2Config, GPT2LMHeadModel } from "../src/models/gpt2.js";
import { flattenParameters } from "../src/nn/index.js";
import { AdamW } from "../src/optim/index.js";
import { crossEntropy, Generator, randint, tidy, build } from "../src/tensor/index.js";
import { currentDist } from "../src/dist/index.js";
import { DataParallel, type DistributedMode } from "../src/train/distributed.js";
import { freePort } from "../src/util/net.js";

const cfg = { vocab: 8192, d_model: 256, layers: 4, heads: 4, seq: 128, micro: 4, accum: 2 };
const steps = Number(process.env.BENCH_STEPS ?? 8);
const warmup = 2;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

interface WorkerOut {
  losses: number[];
  seconds: number;
  commSeconds: number;
  stateBytes: number;
}

/** One rank (or the one process): trains `steps` steps after `warmup` and reports. */
function worker(mode: DistributedMode): WorkerOut {
  const dist = currentDist();
  const model = new GPT2LMHeadModel(
    gpt2Config({
      vocab_size: cfg.vocab,
      n_positions: cfg.seq,
      n_embd: cfg.d_model,
      n_layer: cfg.layers,
      n_head: cfg.heads,
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
    }),
    { seed: 1234 },
  );
  const flats = flattenParameters(model);
  const dp = dist && new DataParallel(dist, mode, flats, "bench", cfg.accum);
  const opt = new AdamW(dp ? dp.groups(() => 0.1) : [{ params: flats[0], weightDecay: 0.1 }], {
    lr: 3e-4,
    betas: [0.9, 0.95],
  });
  const total = warmup + steps;
  const data = randint(0, cfg.vocab, [total, cfg.accum, cfg.micro, cfg.seq + 1], {
    generator: new Generator(99),
  });
  const losses: number[] = [];
  let seconds = 0;
  let commSeconds = 0;
  for (let s = 0; s < total; s++) {
    const t0 = performance.now();
    let loss = 0;
    for (let m = 0; m < cfg.accum; m++) {
      if (dp && !dp.mine(m)) continue;
      loss += tidy(() => {
        const b = data.select(0, s).select(0, m);
        const { logits } = model.forward({ inputIds: b.slice(1, 0, -1) });
        const l = crossEntropy(logits.view(-1, cfg.vocab), b.slice(1, 1).reshape(-1)).div(
          cfg.accum,
        );
        l.backward();
        return l.item();
      });
    }
    const c0 = performance.now();
    if (dp) {
      dp.syncGrads();
      loss = dp.sum(loss);
    }
    const c1 = performance.now();
    opt.step();
    const c2 = performance.now();
    dp?.gatherWeights();
    const c3 = performance.now();
    if (dp) dp.zeroGrad();
    else opt.zeroGrad();
    if (s >= warmup) {
      seconds += (performance.now() - t0) / 1000;
      commSeconds += (c1 - c0 + (c3 - c2)) / 1000;
      losses.push(loss);
    }
  }
  let stateBytes = 0;
  for (const t of opt.stateDict().tensors.values()) stateBytes += t.numel() * 4;
  return { losses, seconds, commSeconds, stateBytes };
}

/** Runs the worker as `world` ranks (1: a plain process) and returns rank 0's report. */
async function launch(world: number, mode: DistributedMode): Promise<WorkerOut> {
  const port = await freePort();
  const outs = await Promise.all(
    Array.from({ length: world }, (_, r) => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", fileURLToPath(import.meta.url), "--worker", mode],
        {
          env: {
            ...process.env,
            LETHE_THREADS: "1",
            ...(world > 1
              ? {
                  RANK: String(r),
                  WORLD_SIZE: String(world),
                  LOCAL_RANK: String(r),
                  LOCAL_WORLD_SIZE: String(world),
                  MASTER_ADDR: "127.0.0.1",
                  MASTER_PORT: String(port),
                }
              : {}),
          },
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      return new Promise<string>((resolve, reject) =>
        child.on("exit", (code) =>
          code === 0 ? resolve(out) : reject(new Error(`worker exited with ${code}`)),
        ),
      );
    }),
  );
  return JSON.parse(outs[0].trim().split("\n").at(-1)!) as WorkerOut;
}

if (process.argv[2] === "--worker") {
  const out = worker(process.argv[3] as DistributedMode);
  if (currentDist()?.isMain ?? true) console.log(JSON.stringify(out));
} else {
  const tokensPerStep = cfg.micro * cfg.accum * cfg.seq;
  console.log(
    `lethe bench/ddp — libtorch ${build.torch}, ${cpus()[0]?.model ?? "?"}, ` +
      `global batch ${cfg.micro * cfg.accum}×${cfg.seq}, 1 thread per rank, ${steps} steps × ${rounds} rounds`,
  );
  const sum = { one: 0, ddp: 0, zero1: 0, comm: 0 };
  let state = { ddp: 0, zero1: 0 };
  let maxDiff = 0;
  for (let r = 0; r < rounds; r++) {
    const one = await launch(1, "ddp");
    const ddp = await launch(2, "ddp");
    const zero1 = await launch(2, "zero1");
    sum.one += one.seconds;
    sum.ddp += ddp.seconds;
    sum.zero1 += zero1.seconds;
    sum.comm += ddp.commSeconds;
    state = { ddp: ddp.stateBytes, zero1: zero1.stateBytes };
    for (const o of [ddp, zero1])
      o.losses.forEach((l, i) => (maxDiff = Math.max(maxDiff, Math.abs(l - one.losses[i]))));
    const tps = (o: WorkerOut) => ((steps * tokensPerStep) / o.seconds).toFixed(0);
    console.log(
      `round ${r + 1}/${rounds}: 1 process ${tps(one)} tok/s, 2 ranks ddp ${tps(ddp)} tok/s ` +
        `(comm ${((100 * ddp.commSeconds) / ddp.seconds).toFixed(1)}%), zero1 ${tps(zero1)} tok/s`,
    );
  }
  const result = {
    scaling: +(sum.one / sum.ddp).toFixed(3),
    zero1_scaling: +(sum.one / sum.zero1).toFixed(3),
    zero1_state_ratio: +(state.zero1 / state.ddp).toFixed(3),
    comm_share: +(sum.comm / sum.ddp).toFixed(3),
    max_abs_loss_diff: maxDiff,
    tokens_per_s_1: +((rounds * steps * tokensPerStep) / sum.one).toFixed(0),
    tokens_per_s_2: +((rounds * steps * tokensPerStep) / sum.ddp).toFixed(0),
    optimizer_state_bytes_per_rank: state,
  };
  console.log(JSON.stringify(result));
}
