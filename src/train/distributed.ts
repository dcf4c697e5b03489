/**
 * Data parallel training over a process group (src/dist/): the trainer's one loop, with each
 * rank running its share of every step's micro-batches.
 *
 * - `ddp` (PyTorch DDP): every rank holds the weights and the optimizer; the step's gradients
 *   are summed across ranks in buckets (asynchronous all-reduces over views of the flat
 *   gradient buffer, BUCKET_BYTES each, as DDP's 25 MB buckets), so every rank takes the same
 *   step.
 * - `zero1` (ZeRO stage 1, as torch's ZeroRedundancyOptimizer and DeepSpeed): each flat buffer is
 *   cut into `world` contiguous ranges; rank r keeps the float32 AdamW state of range r only and
 *   updates only it, then each range is broadcast from its owner into every rank's weights.
 * - `zero2` (ZeRO stage 2): the gradients are reduced to each range's owner only (no all-reduce),
 *   so clipping and the inf/NaN check of 16-mixed combine the owners' shards across ranks.
 *
 * The global batch is the config's: `batchSize` rows × `gradAccum` micro-batches per step. Under
 * N ranks, micro-batch m of a step runs on rank m mod N, so each rank runs gradAccum / N
 * micro-batches (gradAccum must be a multiple of N) and the step's gradient and loss are those
 * of one process, up to the order of float sums. Plugins see the whole step (every micro-batch's
 * rows and its global index), so replay, LwF's teacher and the per-step penalties of EWC, L2-SP
 * and O-LoRA (added once per micro-batch as penalty / micro-batches) are the same as in one
 * process.
 *
 * Checkpoints: rank 0 writes the weights and the trainer state; the optimizer state is written
 * whole by rank 0 (ddp) or as one shard per rank (zero: optimizer-<r>-of-<n>.safetensors plus
 * optimizer.index.json naming each shard's ranges), and either kind loads at any world size and
 * in any mode: the state is put back together and cut again for this group.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { cat, dtypeInfo, keep, noGrad, tensor, tidy, type Tensor } from "../tensor/index.js";
import type { FlatParameters } from "../nn/index.js";
import type { ParamGroupInput, ParamRef } from "../optim/index.js";
import { allFinite } from "../optim/index.js";
import type { Dist } from "../dist/index.js";
import { loadTensors, saveTensors } from "../io/checkpoint.js";

export const DISTRIBUTED = ["ddp", "zero1", "zero2"] as const;
export type DistributedMode = (typeof DISTRIBUTED)[number];
export const DistributedSchema = z.enum(DISTRIBUTED);

/** Gradient bytes per all-reduce (PyTorch DDP's bucket_cap_mb = 25). */
export const BUCKET_BYTES = 25 * 1024 * 1024;

const INDEX_FILE = "optimizer.index.json";
const FULL_FILE = "optimizer.safetensors";

/** Rank r's contiguous share [lo, hi) of n elements. */
export function shardRange(n: number, world: number, r: number): [number, number] {
  return [Math.floor((n * r) / world), Math.floor((n * (r + 1)) / world)];
}

export class DataParallel {
  readonly sharded: boolean;
  /** Views of each flat's data and grad over this rank's range (zero modes). */
  readonly #owned: { data: Tensor; grad: Tensor }[] = [];

  constructor(
    readonly dist: Dist,
    readonly mode: DistributedMode,
    readonly flats: FlatParameters[],
    stage: string,
    gradAccum: number,
  ) {
    if (gradAccum % dist.world !== 0)
      throw new Error(
        `stage "${stage}": train.gradAccum (${gradAccum}) must be a multiple of the ${dist.world} ranks: ` +
          `each rank runs gradAccum / ranks micro-batches of every step`,
      );
    this.sharded = mode !== "ddp";
    if (this.sharded)
      for (const f of flats) {
        const [lo, hi] = this.range(f);
        this.#owned.push({
          data: keep(f.data.narrow(0, lo, hi - lo)),
          grad: keep(f.grad.narrow(0, lo, hi - lo)),
        });
      }
  }

  range(f: FlatParameters, r = this.dist.rank): [number, number] {
    return shardRange(f.data.numel(), this.dist.world, r);
  }

  /** The optimizer's parameter groups: whole flats (ddp) or this rank's ranges (zero). */
  groups(weightDecay: (f: FlatParameters) => number): ParamGroupInput[] {
    return this.flats.map((f, i) => ({
      params: this.sharded
        ? [{ param: this.#owned[i].data, grad: this.#owned[i].grad } satisfies ParamRef]
        : f,
      weightDecay: weightDecay(f),
    }));
  }

  /** Whether micro-batch m of a step is this rank's. */
  mine(m: number): boolean {
    return m % this.dist.world === this.dist.rank;
  }

  /** Rank 0's weights on every rank (a fresh stage: they should already agree). */
  broadcastWeights(): void {
    for (const f of this.flats) this.dist.broadcast(f.data, 0);
  }

  /** After the step's backward passes: the summed gradients where this mode needs them. */
  syncGrads(): void {
    if (this.mode === "zero2") {
      for (const f of this.flats)
        for (let r = 0; r < this.dist.world; r++) {
          const [lo, hi] = this.range(f, r);
          if (hi > lo) tidy(() => this.dist.reduce(f.grad.narrow(0, lo, hi - lo), r));
        }
      return;
    }
    tidy(() => {
      const buckets: Tensor[] = [];
      for (const f of this.flats) {
        const per = Math.max(1, Math.floor(BUCKET_BYTES / dtypeInfo[f.grad.dtype].itemsize));
        for (let at = 0; at < f.grad.numel(); at += per)
          buckets.push(f.grad.narrow(0, at, Math.min(per, f.grad.numel() - at)));
      }
      this.dist.allReduceAll(buckets);
    });
  }

  /** The gradients clipping and the inf check read: all (ddp) or this rank's ranges (zero). */
  grads(): Tensor[] {
    return this.sharded ? this.#owned.map((o) => o.grad) : this.flats.map((f) => f.grad);
  }

  /** Sharded modes: a shard's sum of squares → the whole model's (for clipping). */
  readonly sumSquares = (x: number): number => this.sum(x);

  /** A number summed over the ranks (float64). */
  sum(x: number): number {
    return tidy(() => this.dist.allReduce(tensor([x], { dtype: "float64" })).item());
  }

  /** Whether every rank's gradients it checks are finite. */
  allFinite(): boolean {
    const ok = allFinite(this.grads()) ? 1 : 0;
    return tidy(() => this.dist.allReduce(tensor([ok], { dtype: "float64" }), "min").item()) === 1;
  }

  /** Zeroes every gradient buffer whole (the zero modes' optimizer sees only this rank's range). */
  zeroGrad(): void {
    for (const f of this.flats) f.grad.zero_();
  }

  /** After the optimizer step (zero): each range from its owner into every rank's weights. */
  gatherWeights(): void {
    if (!this.sharded) return;
    for (const f of this.flats)
      for (let r = 0; r < this.dist.world; r++) {
        const [lo, hi] = this.range(f, r);
        if (hi > lo) tidy(() => this.dist.broadcast(f.data.narrow(0, lo, hi - lo), r));
      }
  }

  /**
   * Writes this rank's optimizer state into the checkpoint folder being made: the whole state
   * by rank 0 (ddp), one shard per rank plus the index (zero).
   */
  saveOptimizer(tmp: string, state: { tensors: Map<string, Tensor> }): void {
    const { rank, world } = this.dist;
    if (!this.sharded) {
      if (rank === 0) saveTensors(join(tmp, FULL_FILE), state.tensors);
      return;
    }
    saveTensors(join(tmp, shardFile(rank, world)), state.tensors);
    if (rank === 0) {
      const index = {
        format: "lethe-zero-optimizer",
        world,
        mode: this.mode,
        numel: this.flats.map((f) => f.data.numel()),
        shards: Array.from({ length: world }, (_, r) => ({
          file: shardFile(r, world),
          ranges: this.flats.map((f) => this.range(f, r)),
        })),
      };
      writeFileSync(join(tmp, INDEX_FILE), JSON.stringify(index, null, 1));
    }
  }

  /** This rank's optimizer state from a checkpoint of any world size and mode. */
  loadOptimizerState(path: string, device: string): Map<string, Tensor> {
    const full = readOptimizerState(path, device);
    if (!this.sharded) return full;
    const out = new Map<string, Tensor>();
    for (const [k, t] of full) {
      const f = this.flats[Number(k.split(".")[0])];
      if (!f)
        throw new Error(
          `${path}: optimizer state "${k}" names a parameter group this model has not`,
        );
      const [lo, hi] = this.range(f);
      out.set(k, keep(noGrad(() => t.narrow(0, lo, hi - lo).clone())));
      t.dispose();
    }
    return out;
  }

  dispose(): void {
    for (const o of this.#owned) {
      o.data.dispose();
      o.grad.dispose();
    }
  }
}

function shardFile(r: number, world: number): string {
  const pad = (n: number) => String(n).padStart(5, "0");
  return `optimizer-${pad(r + 1)}-of-${pad(world)}.safetensors`;
}

/**
 * The whole optimizer state of a checkpoint: optimizer.safetensors, or the shards an
 * optimizer.index.json lists, put back together range by range.
 */
export function readOptimizerState(path: string, device: string): Map<string, Tensor> {
  if (existsSync(join(path, FULL_FILE))) return loadTensors(join(path, FULL_FILE), { device });
  const indexFile = join(path, INDEX_FILE);
  if (!existsSync(indexFile))
    throw new Error(`${path}: no optimizer state (${FULL_FILE} or ${INDEX_FILE})`);
  const index = JSON.parse(readFileSync(indexFile, "utf8")) as {
    shards: { file: string; ranges: [number, number][] }[];
  };
  const parts = new Map<string, Tensor[]>();
  for (const s of index.shards) {
    const file = join(path, s.file);
    if (!existsSync(file)) throw new Error(`${indexFile}: shard ${s.file} is missing`);
    for (const [k, t] of loadTensors(file, { device })) {
      if (!parts.has(k)) parts.set(k, []);
      parts.get(k)!.push(t);
    }
  }
  const out = new Map<string, Tensor>();
  for (const [k, ts] of parts) {
    if (ts.length !== index.shards.length)
      throw new Error(
        `${indexFile}: state "${k}" is in ${ts.length} of ${index.shards.length} shards`,
      );
    out.set(k, keep(noGrad(() => cat(ts, 0))));
    for (const t of ts) t.dispose();
  }
  return out;
}
