/**
 * `lethe demo`: trains a small GPT-2 on a built-in text (the synthetic world's corpus, byte-level)
 * for a fixed time and prints loss and tokens/s — a one-minute check that the engine trains.
 */
import { generateWorld } from "../mini/world.js";
import { pretrainCorpus } from "../mini/corpus.js";
import { gpt2Config, GPT2LMHeadModel } from "../models/gpt2.js";
import { flattenParameters } from "../nn/index.js";
import { AdamW, clipGradNorm, lrFactor } from "../optim/index.js";
import {
  crossEntropy,
  Generator,
  manualSeed,
  randint,
  stack,
  tensor,
  tidy,
  build,
} from "../tensor/index.js";
import { command } from "./commands.js";
import { intValue, numberValue, UsageError } from "./flags.js";

/** `lethe demo [--seconds S] [--seed N]`. */
export const demoCommand = command("demo", async ({ values }) => {
  const seconds = numberValue(values.seconds, "seconds")!;
  if (seconds <= 0) throw new UsageError(`--seconds must be > 0, got "${values.seconds}"`);
  demo({ seconds, seed: intValue(values.seed, "seed", 0)!, log: (l) => console.log(l) });
  return 0;
});

export interface DemoOptions {
  seconds: number;
  seed: number;
  log: (line: string) => void;
}

export function demo(o: DemoOptions): {
  steps: number;
  firstLoss: number;
  lastLoss: number;
  tokensPerSecond: number;
} {
  manualSeed(o.seed);
  const text = pretrainCorpus(generateWorld(o.seed)).join("\n");
  const data = tensor(Uint8Array.from(Buffer.from(text, "utf8")), { dtype: "int64" });
  const [B, T] = [16, 64];
  const model = new GPT2LMHeadModel(
    gpt2Config({
      vocab_size: 256,
      n_positions: T,
      n_embd: 128,
      n_layer: 4,
      n_head: 4,
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
    }),
    { seed: o.seed },
  );
  const flats = flattenParameters(model);
  const opt = new AdamW(
    flats.map((f) => ({ params: f })),
    { lr: 1e-3, weightDecay: 0.1, betas: [0.9, 0.95] },
  );
  const gen = new Generator(o.seed);
  o.log(
    `lethe demo: GPT-2 ${(model.numParameters() / 1e6).toFixed(2)}M params on ${(text.length / 1e6).toFixed(2)}M bytes of built-in text, libtorch ${build.torch}, ${o.seconds}s`,
  );
  const t0 = performance.now();
  let steps = 0;
  let firstLoss = NaN;
  let lastLoss = NaN;
  let lastLog = t0;
  while ((performance.now() - t0) / 1000 < o.seconds) {
    opt.lr = 1e-3 * lrFactor({ name: "constant", warmupSteps: 20, totalSteps: 0 }, steps + 1);
    lastLoss = tidy(() => {
      const starts = randint(0, data.size(0) - T - 1, [B], { generator: gen }).toNumbers();
      const batch = stack(starts.map((s) => data.narrow(0, s, T + 1))); // (B, T+1)
      const { logits } = model.forward({ inputIds: batch.slice(1, 0, T) });
      const loss = crossEntropy(logits.view(-1, 256), batch.slice(1, 1).reshape(-1));
      loss.backward();
      clipGradNorm(opt.grads(), 1.0);
      opt.step();
      opt.zeroGrad();
      return loss.item();
    });
    if (!Number.isFinite(lastLoss))
      throw new Error(`demo: loss became ${lastLoss} at step ${steps}`);
    if (steps === 0) firstLoss = lastLoss;
    steps++;
    const now = performance.now();
    if (now - lastLog > 5000) {
      lastLog = now;
      const el = (now - t0) / 1000;
      o.log(
        `step ${steps}  loss ${lastLoss.toFixed(4)}  ${Math.round((steps * B * T) / el)} tok/s  ETA ${Math.max(0, o.seconds - el).toFixed(0)}s`,
      );
    }
  }
  const elapsed = (performance.now() - t0) / 1000;
  const tokensPerSecond = (steps * B * T) / elapsed;
  o.log(
    `done: ${steps} steps, loss ${firstLoss.toFixed(3)} → ${lastLoss.toFixed(3)}, ${Math.round(tokensPerSecond)} tok/s`,
  );
  model.dispose();
  opt.dispose();
  return { steps, firstLoss, lastLoss, tokensPerSecond };
}
