/**
 * Resumable checkpoints of a training stage: HF Trainer's `checkpoint-<step>/` folders
 * (model.safetensors, optimizer state, plugins.safetensors, trainer_state.json), written to
 * `ckpt-<step>.tmp/` and renamed, so a folder named `ckpt-<step>` is always complete. `keep`
 * (HF `save_total_limit` in spirit) decides which stay; see the header of trainer.ts for when
 * the loop writes them.
 *
 * References: transformers `Trainer._save_checkpoint` / `_rotate_checkpoints`; safetensors.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { noGrad, type Tensor } from "../tensor/index.js";
import type { AdamW, GradScalerState } from "../optim/index.js";
import type { LanguageModel } from "../models/index.js";
import { loadTensors, saveTensors } from "../io/checkpoint.js";
import type { Keep } from "./config.js";
import type { PluginState, TrainPlugin, TuningKind } from "./plugin.js";
import { type DataParallel, readOptimizerState } from "./distributed.js";

export const STATE_FORMAT = "lethe-trainer-state";
export const STATE_VERSION = 1;
export const CKPT = /^ckpt-(\d+)$/;

/** trainer_state.json. */
export interface TrainerState {
  format: typeof STATE_FORMAT;
  version: typeof STATE_VERSION;
  stage: string;
  kind: TuningKind;
  step: number;
  totalSteps: number;
  /** sha256 of the config, stage, kind and every token row: resume only into the same run. */
  fingerprint: string;
  optimizerStep: number;
  losses: number[];
  plugins: Record<string, unknown>;
  /** 16-mixed only: the loss scaler's state and the steps it skipped. */
  scaler?: GradScalerState;
  skippedSteps?: number[];
}

/**
 * The latest complete checkpoint folder in `dir`, or null; `clean` (one process, or rank 0)
 * removes half-written `.tmp` ones.
 */
export function latestCheckpoint(dir: string, clean = true): string | null {
  let best: { step: number; path: string } | null = null;
  for (const name of readdirSync(dir)) {
    if (clean && name.startsWith("ckpt-") && name.endsWith(".tmp")) {
      rmSync(join(dir, name), { recursive: true, force: true });
      continue;
    }
    const m = CKPT.exec(name);
    if (
      m &&
      existsSync(join(dir, name, "trainer_state.json")) &&
      (!best || Number(m[1]) > best.step)
    )
      best = { step: Number(m[1]), path: join(dir, name) };
  }
  return best?.path ?? null;
}

export function readState(path: string): TrainerState {
  const file = join(path, "trainer_state.json");
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(file, "utf8")) as TrainerState;
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (s?.format !== STATE_FORMAT || s.version !== STATE_VERSION)
    throw new Error(
      `${file}: field "format"/"version": expected ${STATE_FORMAT} version ${STATE_VERSION}`,
    );
  return s;
}

/**
 * Applies `keep` in a stage's folder after `latest` was written: "last" and "none" remove every
 * other step checkpoint; "all" keeps them, and at the stage end (`final`) drops their optimizer
 * state, which only an in-progress checkpoint needs.
 */
export function retain(dir: string, latest: string, keep: Keep, final: boolean): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!CKPT.test(name) || path === latest) continue;
    if (keep !== "all") rmSync(path, { recursive: true, force: true });
    else if (final) rmSync(join(path, "optimizer.safetensors"), { force: true });
  }
}

/** Writes `ckpt-<step>.tmp/` and renames it to `ckpt-<step>`; returns the final path. */
export function writeCheckpoint(
  dir: string,
  step: number,
  c: {
    trainable: [string, Tensor][];
    /** Null at a stage's end: only an in-progress checkpoint needs the optimizer state. */
    optimizer: { step: number; lr: number; tensors: Map<string, Tensor> } | null;
    /** Several ranks: each writes its optimizer shard (zero), then rank 0 the rest. */
    dp: DataParallel | null;
    plugins: readonly TrainPlugin[];
    state: TrainerState;
  },
): string {
  const final = join(dir, `ckpt-${step}`);
  const tmp = `${final}.tmp`;
  const dist = c.dp?.dist;
  const main = !dist || dist.isMain;
  if (main) {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
  }
  if (dist) {
    dist.barrier(); // the folder exists
    if (c.optimizer) c.dp!.saveOptimizer(tmp, c.optimizer);
    dist.barrier(); // every shard is written
    if (!main) {
      dist.barrier(); // rank 0 has renamed the folder
      return final;
    }
  }
  saveTensors(join(tmp, "model.safetensors"), new Map(c.trainable), { format: "pt" });
  if (c.optimizer && !dist) saveTensors(join(tmp, "optimizer.safetensors"), c.optimizer.tensors);
  const pluginTensors = new Map<string, Tensor>();
  for (const p of c.plugins) {
    const s = p.state?.();
    if (!s) continue;
    c.state.plugins[p.name] = s.meta ?? null;
    for (const [k, t] of s.tensors) pluginTensors.set(`${p.name}/${k}`, t);
  }
  if (pluginTensors.size > 0) saveTensors(join(tmp, "plugins.safetensors"), pluginTensors);
  const fd = openSync(join(tmp, "trainer_state.json"), "w");
  try {
    writeFileSync(fd, JSON.stringify(c.state, null, 1));
    fsyncSync(fd); // the tensors are fsynced by saveTensors; the folder is complete before the rename
  } finally {
    closeSync(fd);
  }
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  dist?.barrier();
  return final;
}

export function loadWeights(path: string, trainable: [string, Tensor][], device: string): void {
  const file = join(path, "model.safetensors");
  const saved = loadTensors(file, { device });
  try {
    const want = new Set(trainable.map(([n]) => n));
    const extra = [...saved.keys()].filter((k) => !want.has(k));
    const missing = [...want].filter((k) => !saved.has(k));
    if (extra.length || missing.length)
      throw new Error(
        `${file}: tensors do not match the trainable parameters: missing [${missing.join(", ")}], unexpected [${extra.join(", ")}]`,
      );
    noGrad(() => {
      for (const [n, p] of trainable) {
        const t = saved.get(n)!;
        if (t.shape.join(",") !== p.shape.join(","))
          throw new Error(
            `${file}: tensor "${n}" has shape [${t.shape}] but the model's is [${p.shape}]`,
          );
        p.copy_(t);
      }
    });
  } finally {
    for (const t of saved.values()) t.dispose();
  }
}

export function loadOptimizer(
  path: string,
  s: TrainerState,
  optimizer: AdamW,
  device: string,
  dp: DataParallel | null,
): void {
  const tensors = dp ? dp.loadOptimizerState(path, device) : readOptimizerState(path, device);
  try {
    optimizer.loadStateDict({ step: s.optimizerStep, lr: optimizer.lr, tensors });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Hands each plugin its saved state; the tensors become the plugin's to keep or dispose. */
export function loadPluginStates(
  path: string,
  s: TrainerState,
  plugins: readonly TrainPlugin[],
  model: LanguageModel,
): void {
  const file = join(path, "plugins.safetensors");
  const all = existsSync(file) ? loadTensors(file) : new Map<string, Tensor>();
  for (const p of plugins) {
    if (!p.loadState) continue;
    if (!(p.name in s.plugins))
      throw new Error(`${join(path, "trainer_state.json")}: no state for plugin "${p.name}"`);
    const tensors = new Map<string, Tensor>();
    for (const [k, t] of all)
      if (k.startsWith(`${p.name}/`)) tensors.set(k.slice(p.name.length + 1), t);
    p.loadState({ tensors, meta: s.plugins[p.name] } satisfies PluginState, model);
    for (const k of tensors.keys()) all.delete(`${p.name}/${k}`);
  }
  for (const t of all.values()) t.dispose();
}
