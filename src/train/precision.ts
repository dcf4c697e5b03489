/**
 * Precision policies: the one place that decides the parameters' dtype (master weights), the
 * compute dtype of the forward pass and loss scaling, for training and evaluation alike. Models
 * never cast on their own (STYLE.md #23).
 *
 * Names and meaning as Lightning's `Trainer(precision=…)` (lightning/fabric/plugins/precision:
 * `MixedPrecision` for "bf16-mixed"/"16-mixed", `HalfPrecision` for "bf16-true"/"16-true"):
 *
 *   32-true     float32 weights, optimizer state and compute.
 *   bf16-mixed  float32 master weights and AdamW state; the forward (and loss) runs under
 *               torch.autocast(bfloat16): matmuls in bf16, norms/softmax/loss in float32, the
 *               logits upcast to float32. Backward as usual; gradients of float32 weights are
 *               float32. (torch.autocast; DeepSpeed bf16.)
 *   16-mixed    as bf16-mixed in float16, plus dynamic loss scaling (src/optim/grad_scaler.ts, as
 *               torch.amp.GradScaler): a step with an inf/NaN gradient is skipped and counted.
 *   bf16-true   bfloat16 weights, optimizer state and compute. bf16 keeps 8 significant bits, so
 *               an update smaller than half a step of the weight rounds away: at lr 2e-5 on
 *               |w| ≈ 0.02 most updates do (`roundingWarning`).
 *   16-true     float16 weights and compute (what a model `dtype: float16` trained as before).
 *
 * A study's model `dtype` is the dtype the weights are loaded in. With no `precision` the policy
 * follows it (float32 → 32-true, bfloat16 → bf16-true, float16 → 16-true), as lethe trained
 * before policies existed; a given `precision` casts the weights to its parameter dtype (the
 * mixed modes keep float32 master weights even for a bf16 checkpoint).
 */
import { z } from "zod";
import { autocast, dtypeInfo, noGrad, tidy, type DType, type Tensor } from "../tensor/index.js";
import type { LanguageModel } from "../models/index.js";

export const PRECISIONS = ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"] as const;
export type Precision = (typeof PRECISIONS)[number];
export const PrecisionSchema = z.enum(PRECISIONS);

type FloatDType = "float32" | "bfloat16" | "float16";

export interface Policy {
  /** dtype of the parameters: the master weights, their gradients and the optimizer state. */
  params: FloatDType;
  /** autocast's dtype for the forward pass; null = no autocast (compute in the weights' dtype). */
  autocast: "bfloat16" | "float16" | null;
  /** Dynamic loss scaling (GradScaler). */
  lossScaling: boolean;
}

export const POLICIES = {
  "32-true": { params: "float32", autocast: null, lossScaling: false },
  "bf16-mixed": { params: "float32", autocast: "bfloat16", lossScaling: false },
  "16-mixed": { params: "float32", autocast: "float16", lossScaling: true },
  "bf16-true": { params: "bfloat16", autocast: null, lossScaling: false },
  "16-true": { params: "float16", autocast: null, lossScaling: false },
} as const satisfies Record<Precision, Policy>;

/** The policy a model of this dtype trained under before policies existed. */
export function precisionOfDtype(dtype: DType): Precision {
  if (dtype === "bfloat16") return "bf16-true";
  if (dtype === "float16") return "16-true";
  if (dtype === "float32") return "32-true";
  throw new Error(`no precision policy for ${dtype} weights`);
}

/** The precision in force: the given one, else the one the weights' dtype implies. */
export function resolvePrecision(precision: Precision | undefined, dtype: DType): Precision {
  return precision ?? precisionOfDtype(dtype);
}

/**
 * Casts the model's floating-point parameters and buffers to the policy's parameter dtype, in
 * place (nothing happens when they already are). Call before building an optimizer.
 */
export function applyPrecision(model: LanguageModel, precision: Precision): void {
  const want = POLICIES[precision].params;
  const tensors = [...model.namedParameters(), ...model.namedBuffers()];
  if (tensors.some(([, t]) => dtypeInfo[t.dtype].float && t.dtype !== want)) model.to(want);
}

/** Runs `fn` under the policy's autocast on `device` (a plain call for the "true" policies). */
export function withPrecision<T>(precision: Precision, device: string, fn: () => T): T {
  const dtype = POLICIES[precision].autocast;
  return dtype === null ? fn() : autocast(device, dtype, fn);
}

/**
 * The model as the policy runs it: every `forward` under autocast, with float32 logits (the
 * loss, distillation targets and log-likelihood scoring read them). The "true" policies return
 * the model itself. The view shares everything else with the model (parameters, modes, config),
 * so it can be handed to anything that takes a LanguageModel: the trainer's plugins, ModelLM,
 * generate().
 */
export function precisionView<M extends LanguageModel>(model: M, precision: Precision): M {
  if (POLICIES[precision].autocast === null) return model;
  const device = model.parameters()[0]?.device ?? "cpu";
  const run = model.forward as unknown as (this: M, inputs: unknown) => { logits: Tensor };
  const forward = (inputs: unknown) =>
    withPrecision(precision, device, () => {
      const out = run.call(model, inputs);
      return out.logits.dtype === "float32" ? out : { ...out, logits: out.logits.float() };
    });
  return new Proxy(model, {
    get(target, key) {
      if (key === "forward") return forward;
      const v: unknown = Reflect.get(target, key, target);
      // Methods run on the model itself: Module's private fields are not reachable via a proxy.
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Significant bits (implicit one included) of the 16-bit float dtypes. */
const SIGNIFICAND_BITS: Partial<Record<DType, number>> = { bfloat16: 8, float16: 11 };

/**
 * Under a "true" 16-bit policy, a warning when an update of size lr (what AdamW's normalised
 * step is) is below half a step of a typical weight, so it rounds away: lr < 2^-(p+1)·|w| with
 * p significant bits (bf16: 2⁻⁹·|w|, i.e. 2⁻⁸·|w| / 2), |w| the mean |weight| of the trainable
 * parameters. Null otherwise.
 */
export function roundingWarning(
  stage: string,
  precision: Precision,
  lr: number,
  model: LanguageModel,
): string | null {
  const dtype = POLICIES[precision].params;
  const bits = SIGNIFICAND_BITS[dtype];
  if (bits === undefined || POLICIES[precision].autocast !== null) return null;
  const params = model.namedParameters().filter(([, p]) => p.requiresGrad);
  let sum = 0;
  let n = 0;
  noGrad(() =>
    tidy(() => {
      for (const [, p] of params) {
        sum += p.float().abs().sum().item();
        n += p.numel();
      }
    }),
  );
  if (n === 0) return null;
  const typical = sum / n;
  const halfStep = typical * 2 ** -(bits + 1);
  if (!(lr < halfStep)) return null;
  const mixed = dtype === "bfloat16" ? "bf16-mixed" : "16-mixed";
  return (
    `stage "${stage}": precision ${precision}: lr ${lr} is below half a ${dtype} step of a ` +
    `typical weight (mean |w| ${typical.toPrecision(3)}, half step ${halfStep.toExponential(2)}): ` +
    `most updates round away and the weights barely train; use precision ${mixed} ` +
    `(float32 master weights)`
  );
}

/** Bytes of the distinct tensors (a tied tensor counted once). */
export function tensorBytes(tensors: Iterable<{ numel(): number; dtype: DType }>): number {
  let n = 0;
  for (const t of new Set(tensors)) n += t.numel() * dtypeInfo[t.dtype].itemsize;
  return n;
}
