/**
 * Learning-rate schedules as pure functions of the step: the multiplier of the base lr, as
 * transformers' optimization.py defines them (get_constant_schedule_with_warmup,
 * get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup with 0.5 cycles).
 */
export type ScheduleName = "constant" | "linear" | "cosine";

export interface Schedule {
  name: ScheduleName;
  warmupSteps: number;
  totalSteps: number;
}

/** lr multiplier at `step` (0-based: the multiplier used for the step-th update). */
export function lrFactor(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  if (s.name === "constant") return 1;
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  if (s.name === "linear")
    return Math.max(0, (s.totalSteps - step) / Math.max(1, s.totalSteps - s.warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
