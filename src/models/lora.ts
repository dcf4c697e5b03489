/**
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685):
 * a target projection W becomes W + (alpha / r) · B A with A (r, in) and B (out, r) trained and
 * everything else frozen. Reference: PEFT's tuners/lora/layer.py (`LoraLayer.update_layer`,
 * `reset_lora_parameters`: A kaiming-uniform(a=√5), B zeros; `Linear.forward`, `get_delta_weight`,
 * `merge`/`unmerge`; GPT-2's Conv1D stores W as (in, out), PEFT's `fan_in_fan_out`) and
 * tuners/lora/model.py (`_check_target_module_exists`: a module matches a target name when its
 * dotted path equals it or ends with "." + it; a string target is a regex the whole path must match).
 * The wrapper keeps the base layer's parameter names (`q_proj.weight`) and adds `q_proj.lora_A.weight`
 * and `q_proj.lora_B.weight` beside them, the names PEFT saves (without its adapter name).
 */
import { Linear, Module } from "../nn/index.js";
import { addmm, dropout, Generator, linear, noGrad, tidy, type Tensor } from "../tensor/index.js";
import { familyOf } from "./index.js";
import type { LanguageModel } from "./types.js";

export interface LoraOptions {
  /** Rank of A and B. @default 8 (PEFT) */
  r?: number;
  /** Scaling numerator: the update is (alpha / r) · B A. @default 8 (PEFT) */
  alpha?: number;
  /** Dropout on the adapter's input in training mode. @default 0 */
  dropout?: number;
  /** Module names (path suffixes) or one regex over whole paths. @default the family's loraTargets */
  targetModules?: readonly string[] | string;
  /** Seed of A's initialisation. @default 0 */
  seed?: number;
}

/** The settings an adapted model carries (what adapter_config.json records). */
export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  targetModules: readonly string[] | string;
  /** Whether the targets store W as (in, out) (GPT-2's Conv1D). */
  fanInFanOut: boolean;
}

/** A Linear or Conv1D with a low-rank update; `weight` and `bias` are the base layer's tensors. */
export class LoraLinear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  lora_A: Linear;
  lora_B: Linear;
  /** Whether B A is currently added into `weight` (forward then skips the adapter). */
  merged = false;

  constructor(
    base: { weight: Tensor; bias: Tensor | null },
    readonly fanInFanOut: boolean,
    readonly r: number,
    readonly alpha: number,
    readonly p: number,
    g: Generator,
  ) {
    super();
    this.weight = base.weight;
    this.bias = base.bias;
    const [outF, inF] = fanInFanOut ? base.weight.shape.reverse() : base.weight.shape;
    this.lora_A = new Linear(inF, r, { bias: false, generator: g }); // U(±1/√in) = kaiming-uniform(a=√5)
    this.lora_B = new Linear(r, outF, { bias: false });
    noGrad(() => this.lora_B.weight.zero_());
    for (const m of [this.lora_A, this.lora_B]) {
      if (base.weight.device !== "cpu") m.to(base.weight.device);
      if (base.weight.dtype !== "float32") m.to(base.weight.dtype);
    }
  }

  get scaling(): number {
    return this.alpha / this.r;
  }

  /** Its intermediates (the base output, A x, B A x) go at once. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const base = this.fanInFanOut
        ? conv1d(x, this.weight, this.bias)
        : linear(x, this.weight, this.bias);
      if (this.merged) return base;
      const h = this.lora_B.forward(this.lora_A.forward(dropout(x, this.p, this.training)));
      return base.add(h.mul(this.scaling));
    });
  }

  /** (alpha / r) · B A in `weight`'s layout. */
  deltaWeight(): Tensor {
    const d = this.lora_B.weight.matmul(this.lora_A.weight).mul(this.scaling); // (out, in)
    return this.fanInFanOut ? d.t() : d;
  }

  merge(): void {
    if (this.merged) return;
    noGrad(() => tidy(() => this.weight.add_(this.deltaWeight())));
    this.merged = true;
  }

  unmerge(): void {
    if (!this.merged) return;
    noGrad(() => tidy(() => this.weight.sub_(this.deltaWeight())));
    this.merged = false;
  }
}

/** HF Conv1D's forward: x W + b with W (in, out). */
function conv1d(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const shape = x.shape;
  const flat = x.reshape(-1, shape[shape.length - 1]); // (N, in)
  const y = bias ? addmm(bias, flat, weight) : flat.matmul(weight); // (N, out)
  return y.view(...shape.slice(0, -1), weight.size(1));
}

const configs = new WeakMap<Module, LoraConfig>();

/** The LoRA settings of an adapted model, or null if `applyLora` was not called on it. */
export function loraConfigOf(model: Module): LoraConfig | null {
  return configs.get(model) ?? null;
}

/** Whether the module at dotted `path` is a target (PEFT's `_check_target_module_exists`). */
export function isLoraTarget(path: string, targets: readonly string[] | string): boolean {
  if (typeof targets === "string") return new RegExp(`^(?:${targets})$`).test(path);
  return targets.some((t) => path === t || path.endsWith(`.${t}`));
}

/**
 * Replaces every target projection of `model` by a LoraLinear and freezes every other parameter
 * (requiresGrad false). Targets must be Linear or Conv1D layers. Returns the settings.
 */
export function applyLora(model: LanguageModel, o: LoraOptions = {}): LoraConfig {
  if (configs.has(model)) throw new Error("applyLora: this model already has LoRA adapters");
  const r = o.r ?? 8;
  const alpha = o.alpha ?? 8;
  const p = o.dropout ?? 0;
  if (!Number.isInteger(r) || r < 1)
    throw new Error(`applyLora: r must be an integer >= 1, got ${r}`);
  if (!(alpha > 0)) throw new Error(`applyLora: alpha must be > 0, got ${alpha}`);
  if (!(p >= 0 && p < 1)) throw new Error(`applyLora: dropout must be in [0, 1), got ${p}`);
  const targets = o.targetModules ?? familyOf(model.config.model_type).loraTargets;
  const found: [Module, string, string, Module][] = []; // parent, property, path, layer
  for (const [parentPath, parent] of model.namedModules())
    for (const [key, child] of Object.entries(parent)) {
      const path = parentPath ? `${parentPath}.${key}` : key;
      if (child instanceof Module && isLoraTarget(path, targets))
        found.push([parent, key, path, child]);
    }
  if (found.length === 0)
    throw new Error(
      `applyLora: target modules ${JSON.stringify(targets)} not found in ${model.config.model_type}`,
    );
  const layouts = new Set(found.map(([, , path, layer]) => fanInFanOutOf(path, layer)));
  if (layouts.size > 1)
    throw new Error(
      "applyLora: the targets mix Linear and Conv1D layers; target one kind at a time",
    );
  const fanInFanOut = layouts.has(true);
  for (const t of model.parameters()) t.requiresGrad_(false);
  const g = new Generator(o.seed ?? 0);
  for (const [parent, key, , layer] of found) {
    const base = layer as unknown as { weight: Tensor; bias: Tensor | null };
    const lora = new LoraLinear(base, fanInFanOut, r, alpha, p, g).train(layer.training);
    (parent as unknown as Record<string, Module>)[key] = lora;
  }
  const config = { r, alpha, dropout: p, targetModules: targets, fanInFanOut };
  configs.set(model, config);
  return config;
}

/** false for a Linear (W is (out, in)), true for HF's Conv1D (W is (in, out)). */
function fanInFanOutOf(path: string, layer: Module): boolean {
  if (layer instanceof Linear) return false;
  if (layer.constructor.name === "Conv1D") return true;
  throw new Error(
    `applyLora: target "${path}" is a ${layer.constructor.name}; LoRA here supports Linear and Conv1D layers`,
  );
}

/** Every LoRA layer of a model with its dotted path. */
export function loraLayers(model: Module): [string, LoraLinear][] {
  return [...model.namedModules()].filter(
    (e): e is [string, LoraLinear] => e[1] instanceof LoraLinear,
  );
}

/** Adds each adapter into its base weight (inference without the adapter's extra matmuls). */
export function mergeLora(model: Module): void {
  for (const [, l] of loraLayers(model)) l.merge();
}

/** Subtracts merged adapters out of the base weights again. */
export function unmergeLora(model: Module): void {
  for (const [, l] of loraLayers(model)) l.unmerge();
}
