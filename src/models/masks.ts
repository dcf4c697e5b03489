/**
 * Attention masks and position ids shared by the decoder-only families, with transformers'
 * semantics (reference: transformers/masking_utils.py `sdpa_mask` and `_ignore_causal_mask_sdpa`;
 * position ids as transformers/generation/utils.py `prepare_inputs_for_generation`).
 *
 * Query i of this call sits at absolute index past + i; it sees key j when j ≤ past + i, the
 * 2-D attention mask has 1 at j, and (with a sliding window w) j > past + i − w. A query that
 * sees no key at all (a left-padding position) attends to every key instead, as transformers
 * does for torch < 2.5 (`allow_torch_fix`): its output is garbage but finite, and no unpadded
 * position ever reads it, so no NaN reaches the logits that matter.
 */
import { arange, op, type Tensor } from "../tensor/index.js";
import type { LayerCache } from "./types.js";

/** What to pass to scaledDotProductAttention: a boolean (B, 1, T, S) mask or `isCausal`. */
export interface AttentionMask {
  mask: Tensor | null;
  isCausal: boolean;
}

/**
 * The positions of (B, T, C) hidden states whose logits are wanted: `positions` (N) int64 picks
 * flat positions b·T + t, (N, C); else the last `logitsToKeep` (all when 0 or absent).
 * Norm and head are per position, so running them on the picked rows equals slicing full logits.
 */
export function keepLast(
  hidden: Tensor,
  logitsToKeep: number | undefined,
  positions?: Tensor | null,
): Tensor {
  if (positions) {
    const [B, T, C] = hidden.shape;
    return hidden.reshape(B * T, C).indexSelect(0, positions); // (N, C)
  }
  const T = hidden.size(1);
  return logitsToKeep && logitsToKeep < T
    ? hidden.narrow(1, T - logitsToKeep, logitsToKeep)
    : hidden;
}

/** Number of positions already in the cache (0 without one). */
export function pastLength(cache: LayerCache[] | null | undefined): number {
  return cache && cache.length > 0 ? cache[0].k.size(2) : 0;
}

function checkMask(attentionMask: Tensor, queryLength: number, past: number): void {
  const S = past + queryLength;
  if (attentionMask.ndim !== 2 || attentionMask.size(1) !== S)
    throw new Error(
      `attentionMask has shape [${attentionMask.shape}] but must be (batch, past + query length) = (B, ${S})`,
    );
}

/**
 * Position ids (B or 1, T) of this call's tokens: from the attention mask, cumsum − 1 with padding
 * set to 1 (its last T columns); without a mask, past … past + T − 1.
 */
export function positionIds(
  attentionMask: Tensor | null | undefined,
  queryLength: number,
  past: number,
  device = attentionMask?.device ?? "cpu",
): Tensor {
  if (!attentionMask) return arange(past, past + queryLength, 1, { device }).unsqueeze(0); // (1, T)
  checkMask(attentionMask, queryLength, past);
  const m = attentionMask.long();
  const pos = m.cumsum(-1).sub(1).maskedFill(m.eq(0), 1); // (B, S)
  return pos.slice(1, past); // (B, T)
}

/**
 * The mask for one attention call over T queries and past + T keys. Returns `isCausal` with no
 * mask when nothing but causality is masked (no padding, no window cut, no cache), no mask at all
 * for one query without padding, and the boolean (B, 1, T, S) mask otherwise.
 */
export function attentionMask4d(o: {
  attentionMask?: Tensor | null;
  queryLength: number;
  past: number;
  slidingWindow?: number | null;
  /** Where to build the mask when there is no attention mask (default: the mask's device or cpu). */
  device?: string;
}): AttentionMask {
  const { queryLength: T, past } = o;
  const S = past + T;
  if (o.attentionMask) checkMask(o.attentionMask, T, past);
  const padded = o.attentionMask ? !o.attentionMask.bool().all().item() : false;
  const windowCuts = o.slidingWindow != null && S > o.slidingWindow;
  if (!padded && !windowCuts) {
    if (T === 1) return { mask: null, isCausal: false };
    if (past === 0) return { mask: null, isCausal: true };
  }
  const device = o.device ?? o.attentionMask?.device ?? "cpu";
  const q = arange(past, S, 1, { device }).view(T, 1);
  const k = arange(0, S, 1, { device }).view(1, S);
  let mask = k.le(q); // (T, S)
  if (windowCuts) mask = mask.logicalAnd(k.gt(q.sub(o.slidingWindow!)));
  mask = mask.view(1, 1, T, S);
  if (o.attentionMask) {
    const B = o.attentionMask.size(0);
    mask = mask.logicalAnd(o.attentionMask.bool().view(B, 1, 1, S)); // (B, 1, T, S)
  }
  const seesNothing = op("aten::any.dim", [mask, -1, true]).logicalNot(); // (B, 1, T, 1)
  return { mask: mask.logicalOr(seesNothing), isCausal: false };
}
