/** optim: AdamW, SGD, learning-rate schedules, gradient clipping and loss scaling. */
export { Optimizer, type ParamRef, type ParamGroupInput } from "./optimizer.js";
export { AdamW, type AdamWOptions } from "./adamw.js";
export { SGD, type SGDOptions } from "./sgd.js";
export { lrFactor, type Schedule, type ScheduleName } from "./schedule.js";
export { clipGradNorm } from "./clip.js";
export {
  allFinite,
  GradScaler,
  type GradScalerOptions,
  type GradScalerState,
} from "./grad_scaler.js";
