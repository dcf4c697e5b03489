/**
 * Gradient checkpointing, one segment per transformer block (Chen et al. 2016, "Training Deep
 * Nets with Sublinear Memory Cost"; torch.utils.checkpoint with `use_reentrant=False`, as
 * transformers' `gradient_checkpointing_enable()` applies it per decoder layer).
 *
 * lethe's autograd is libtorch's, driven from JS, so there is no custom autograd Function: the
 * two passes are run here. Forward: the embeddings with grad, each block under no_grad keeping
 * only its input hidden state, the head with grad from a detached copy of the last block's
 * output. Backward: the loss's backward gives d(last hidden); each block, last to first, is run
 * again with grad from a detached copy of its saved input and back-propagated with the gradient
 * of its output, which yields the gradient of its input; the embeddings get block 0's.
 * Parameter gradients accumulate into `.grad` across these calls as in one backward.
 *
 * Dropout: as torch.utils.checkpoint's `preserve_rng_state`, the device's RNG state is saved
 * before each block's forward and restored for its recompute (and put back afterwards), so the
 * recompute draws the forward's masks, and the forward draws exactly what an unsegmented forward
 * draws: gradients equal the plain forward's with dropout on too.
 *
 * Shared inputs (`Segments.shared`: T5's position bias, the encoder output of its decoder): the
 * no-grad forward gives the blocks detached copies; each recompute gets fresh detached copies that
 * require grad, their gradients are summed over the blocks, and at the end each shared tensor is
 * back-propagated with its sum (T5's encoder thus runs with its full graph and only the decoder
 * blocks are checkpointed).
 */
import type {
  CausalLM,
  CausalLMInputs,
  LanguageModel,
  Segments,
  Seq2SeqInputs,
  Seq2SeqLM,
} from "../models/types.js";
import { getRngState, keep, noGrad, setRngState, tidy, type Tensor } from "../tensor/index.js";

export interface CheckpointOptions {
  /** Wraps every segment's computation (the precision policy's autocast); default: none. */
  run?: <T>(fn: () => T) => T;
}

export interface Checkpointed {
  /** Float32 logits (B, T, vocab), with a graph back to the last block's output only. */
  logits: Tensor;
  /**
   * Back-propagates `root` (the loss, maybe scaled; it may depend on `logits` and on any other
   * graph) through the head, every block recomputed, and the embeddings. Call once.
   */
  backward(root: Tensor): void;
}

/** Whether `model`'s family cuts its forward into segments. */
export function supportsCheckpointing(model: LanguageModel): boolean {
  return typeof model.segments === "function";
}

/** Throws, naming the model type, unless `model` supports checkpointing. */
export function assertCheckpointing(
  model: LanguageModel,
): asserts model is
  | (CausalLM & { segments(inputs: CausalLMInputs): Segments })
  | (Seq2SeqLM & { segments(inputs: Seq2SeqInputs): Segments }) {
  if (!supportsCheckpointing(model))
    throw new Error(
      `gradient checkpointing: model_type "${model.config.model_type}" does not support it yet (its family has no segments); set gradientCheckpointing to false`,
    );
}

/**
 * Runs `build()` (a model's `segments(inputs)`) and its blocks the checkpointed way; see the
 * header. Call inside a `tidy` that also covers `backward`: the saved hidden states and the
 * closures' masks live until then.
 */
export function checkpointed(build: () => Segments, o: CheckpointOptions = {}): Checkpointed {
  const run = o.run ?? (<T>(fn: () => T) => fn());
  const seg = run(build);
  const n = seg.blocks.length;
  const device = seg.input.device;
  const shared = seg.shared ?? [];
  const sharedNoGrad = shared.map((t) => t.detach());
  const sharedGrad: (Tensor | null)[] = shared.map(() => null); // summed over the recomputes
  const saved: Tensor[] = []; // input of block i, no graph
  const rng: Tensor[] = []; // the RNG state block i's forward started from
  let h = seg.input.detach();
  noGrad(() => {
    for (let i = 0; i < n; i++) {
      saved.push(h);
      rng.push(keep(getRngState(device)));
      const x = h;
      h = tidy(() => run(() => seg.blocks[i](x, sharedNoGrad))); // the block's inner activations go at once
    }
  });
  const last = h.detach().requiresGrad_();
  const logits = run(() => seg.head(last));
  let used = false;
  return {
    logits,
    backward(root: Tensor): void {
      if (used) throw new Error("checkpointed: backward was already called");
      used = true;
      root.backward();
      let g = last.grad;
      if (g === null) throw new Error("checkpointed: the loss does not depend on the logits");
      for (let i = n - 1; i >= 0; i--) {
        const gOut = g;
        const input = saved[i];
        g = tidy(() => {
          const x = input.detach().requiresGrad_();
          const s = shared.map((t) => t.detach().requiresGrad_());
          const now = getRngState(device);
          setRngState(rng[i], device); // the forward's dropout masks again
          const y = run(() => seg.blocks[i](x, s));
          setRngState(now, device);
          y.backward(gOut);
          s.forEach((t, j) => {
            const gs = t.grad;
            if (gs === null) return;
            const prev = sharedGrad[j];
            sharedGrad[j] = keep(prev === null ? gs : prev.add(gs));
            prev?.dispose();
          });
          const gx = x.grad;
          if (gx === null)
            throw new Error(`checkpointed: block ${i} output does not depend on its input`);
          return gx;
        });
        gOut.dispose();
        input.dispose();
        rng[i].dispose();
      }
      if (seg.input.requiresGrad) seg.input.backward(g);
      g.dispose();
      shared.forEach((t, j) => {
        const gs = sharedGrad[j];
        if (gs === null) return;
        if (t.requiresGrad) t.backward(gs);
        gs.dispose();
      });
    },
  };
}
