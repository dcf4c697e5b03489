/** optim: AdamW, SGD, learning-rate schedules and gradient clipping. */
export { Optimizer, type ParamRef, type ParamGroupInput } from "./optimizer.js";
export { AdamW, type AdamWOptions } from "./adamw.js";
export { SGD, type SGDOptions } from "./sgd.js";
export { lrFactor, type Schedule, type ScheduleName } from "./schedule.js";
export { clipGradNorm } from "./clip.js";
