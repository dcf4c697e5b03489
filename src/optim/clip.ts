/**
 * Gradient clipping by total L2 norm, as torch.nn.utils.clip_grad_norm_: the norm of the
 * per-tensor norms; if above `maxNorm`, every gradient is scaled by maxNorm/(norm+1e-6).
 * Returns the total norm before clipping. `sumAcross` (sharded gradients, ZeRO-2) turns this
 * shard's sum of squares into the whole model's.
 */
import { noGrad, stack, tidy, type Tensor } from "../tensor/index.js";

export function clipGradNorm(
  grads: Tensor[],
  maxNorm: number,
  sumAcross?: (squares: number) => number,
): number {
  if (grads.length === 0 && !sumAcross) return 0;
  return noGrad(() =>
    tidy(() => {
      const local = () =>
        grads.length === 1 ? grads[0].norm(2) : stack(grads.map((g) => g.norm(2))).norm(2);
      const norm = sumAcross
        ? Math.sqrt(sumAcross(grads.length === 0 ? 0 : local().item() ** 2))
        : local().item();
      const coef = maxNorm / (norm + 1e-6);
      if (coef < 1) for (const g of grads) g.mul_(coef);
      return norm;
    }),
  );
}
