/**
 * The configuration of one training stage: its schema (defaults and a reason per field) and the
 * parser whose errors name the field. Kept apart from the loop (trainer.ts) so that plugins,
 * checkpoints and the study config read the types without importing the loop.
 *
 * References: transformers `TrainingArguments` (field meanings: max_steps, warmup_ratio,
 * max_grad_norm, save_steps, save_total_limit); Stanford Alpaca's fine-tuning defaults.
 */
import { z } from "zod";
import { didYouMean } from "../util/suggest.js";
import { PrecisionSchema } from "./precision.js";
import { DistributedSchema } from "./distributed.js";

/** Which checkpoints stay: see src/train/checkpoint.ts. */
export const KEEP = ["last", "all", "none"] as const;
export type Keep = (typeof KEEP)[number];
export const DEFAULT_KEEP: Keep = "last";

export const TrainConfigSchema = z.strictObject({
  lr: z.number().positive().default(2e-5), // Stanford Alpaca's full fine-tuning rate
  epochs: z.number().int().positive().default(3), // Alpaca: 3
  steps: z.number().int().positive().nullable().default(null), // set: this many optimizer steps, epochs ignored (HF max_steps)
  batchSize: z.number().int().positive().default(4), // rows per micro-batch
  gradAccum: z.number().int().positive().default(8), // micro-batches per optimizer step
  warmup: z.number().min(0).max(1).default(0.03), // share of steps with linear warmup (Alpaca's warmup_ratio)
  schedule: z.enum(["constant", "linear", "cosine"]).default("cosine"), // Alpaca: cosine
  clip: z.number().min(0).default(1), // max gradient L2 norm, 0 = off (HF max_grad_norm)
  weightDecay: z.number().min(0).default(0), // AdamW decoupled decay (Alpaca: 0)
  seed: z.number().int().min(0).default(42), // HF TrainingArguments' default
  maxLength: z.number().int().min(2).default(512), // tokens per row (Alpaca model_max_length)
  packing: z.boolean().default(false), // causal only: concatenate examples into full rows
  checkpointEvery: z.number().int().min(0).default(500), // steps between checkpoints, 0 = stage end only (HF save_steps)
  // Optional, defaults stated here, so configs written before these fields read back unchanged:
  precision: PrecisionSchema.optional(), // default: the weights' dtype's (float32 → 32-true, bfloat16 → bf16-true)
  keep: z.enum(KEEP).optional(), // checkpoints kept: last (default), all or none (see the header)
  gradientCheckpointing: z.boolean().optional(), // default false; true: block activations recomputed in backward (causal models)
  distributed: DistributedSchema.optional(), // with several ranks: ddp (default), zero1 or zero2 (src/train/distributed.ts)
});

export type TrainConfig = z.output<typeof TrainConfigSchema>;
export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** A config with defaults filled; an error names the field. */
export function parseTrainConfig(raw: unknown, source = "train config"): TrainConfig {
  const parsed = TrainConfigSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const known = Object.keys(TrainConfigSchema.shape);
    throw new Error(
      `${source}: unknown field "${issue.keys[0]}".${didYouMean(issue.keys[0], known)} Fields: ${known.join(", ")}`,
    );
  }
  throw new Error(`${source}: field "${issue.path.join(".")}": ${issue.message}`);
}
