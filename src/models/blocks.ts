/**
 * How every family runs its stack of transformer blocks: one `tidy` per block, so a forward pass
 * holds one block's intermediates at a time instead of every tensor it makes. PyTorch frees a
 * tensor when its last Python reference goes (reference: torch/csrc/autograd/saved_variable.cpp);
 * here a block's JS handles go when the block ends, and autograd keeps what the backward needs
 * through libtorch's own references (its saved variables), so the plain training path holds what
 * autograd saves and an evaluation forward (no grad) holds one block's tensors.
 */
import { tidy, type Tensor } from "../tensor/index.js";
import type { LayerCache, Segments } from "./types.js";

/** One block's output hidden state and its keys/values (self-attention, past included). */
export interface BlockOutput {
  h: Tensor;
  kv: LayerCache;
}

/**
 * Runs `block(i, h)` for i = 0 … n−1 from `x`, each inside its own `tidy`. A block's keys and
 * values outlive it only when `useCache` (the returned `cache` is empty otherwise); each hidden
 * state between blocks is disposed once the next block has read it (`x`, the caller's, is not).
 */
export function runBlocks(
  n: number,
  x: Tensor,
  useCache: boolean,
  block: (i: number, h: Tensor) => BlockOutput,
): { hidden: Tensor; cache: LayerCache[] } {
  const cache: LayerCache[] = [];
  let h = x;
  for (let i = 0; i < n; i++) {
    const input = h;
    const out = tidy(() => {
      const r = block(i, input);
      return useCache ? r : { h: r.h };
    });
    if (input !== x && input !== out.h) input.dispose();
    h = out.h;
    if (useCache) cache.push((out as BlockOutput).kv);
  }
  return { hidden: h, cache };
}

/**
 * A stack's blocks as checkpoint segments (`Segments.blocks`), each in its own `tidy`, so that a
 * block recomputed for its backward (train/checkpointing.ts) keeps only its output and what
 * autograd saved.
 */
export function segmentBlocks(
  n: number,
  block: (i: number, h: Tensor, shared: Tensor[]) => Tensor,
): Segments["blocks"] {
  return Array.from(
    { length: n },
    (_, i) => (h: Tensor, shared: Tensor[]) => tidy(() => block(i, h, shared)),
  );
}

/**
 * `f(x)`, then `x`'s handle disposed (its storage stays while `f(x)` or autograd refers to it):
 * for the (B, nh, T, S) score tensors of eager attention, so that at most two are alive at once.
 */
export function consume(x: Tensor, f: (x: Tensor) => Tensor): Tensor {
  const y = f(x);
  if (y !== x) x.dispose();
  return y;
}
