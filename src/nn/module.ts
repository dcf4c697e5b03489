/**
 * Module: the base of every layer and model. A module is a plain class whose property names are
 * the checkpoint keys: `stateDict()` walks the properties (Tensor → parameter or buffer,
 * Module → child, Module[] → numbered children), so `model.layers.0.self_attn.q_proj.weight`
 * comes out exactly as Hugging Face names it, with no rename table.
 * Reference: torch.nn.Module (named_parameters, state_dict, load_state_dict, train/eval).
 */
import {
  dtypeInfo,
  isDType,
  keep,
  noGrad,
  tidy,
  type Tensor,
  Tensor as TensorClass,
} from "../tensor/index.js";

export class StateDictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StateDictError";
  }
}

export abstract class Module {
  /** Training mode (dropout on); set by `train()` / `eval()`. */
  training = true;
  /** Property names of tensors that are buffers; `false` marks a non-persistent buffer. */
  #buffers = new Map<string, boolean>();

  /** Stores a tensor as a buffer: moved with the module but never trained. */
  protected registerBuffer(name: string, t: Tensor, persistent = true): Tensor {
    (this as unknown as Record<string, Tensor>)[name] = t;
    this.#buffers.set(name, persistent);
    return t;
  }

  /** Direct children and own tensors, in property order. */
  *#entries(): Generator<
    [string, Tensor | Module, "param" | "buffer" | "nonpersistent" | "module"]
  > {
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof TensorClass) {
        const b = this.#buffers.get(k);
        yield [k, v, b === undefined ? "param" : b ? "buffer" : "nonpersistent"];
      } else if (v instanceof Module) yield [k, v, "module"];
      else if (Array.isArray(v) && v.length > 0 && v[0] instanceof Module)
        for (let i = 0; i < v.length; i++) yield [`${k}.${i}`, v[i] as Module, "module"];
    }
  }

  /** Every module below this one (itself first) with its dotted name. */
  *namedModules(prefix = ""): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, v, kind] of this.#entries())
      if (kind === "module") yield* (v as Module).namedModules(prefix ? `${prefix}.${k}` : k);
  }

  #walk(kinds: Set<string>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules())
      for (const [k, v, kind] of m.#entries())
        if (kinds.has(kind) && !seen.has(v as Tensor)) {
          seen.add(v as Tensor);
          out.push([prefix ? `${prefix}.${k}` : k, v as Tensor]);
        }
    return out;
  }

  /** Trainable tensors with dotted names; a tied tensor appears once, under its first name. */
  namedParameters(): [string, Tensor][] {
    return this.#walk(new Set(["param"]));
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(): [string, Tensor][] {
    return this.#walk(new Set(["buffer", "nonpersistent"]));
  }

  /** Parameters and persistent buffers by name (tied tensors once). Tensors are shared, not copied. */
  stateDict(): Map<string, Tensor> {
    return new Map(this.#walk(new Set(["param", "buffer"])));
  }

  /**
   * Copies tensors into this module's parameters and buffers. Shapes must match exactly (the
   * error names the tensor); dtypes convert. With `strict`, missing and unexpected keys are errors.
   * Returns the keys that were missing and unexpected.
   */
  loadStateDict(
    state: Map<string, Tensor>,
    o: { strict?: boolean; source?: string } = {},
  ): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const where = o.source ? `${o.source}: ` : "";
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if ((o.strict ?? true) && (missing.length || unexpected.length)) {
      throw new StateDictError(
        `${where}state dict does not match the model: missing [${missing.join(", ")}], unexpected [${unexpected.join(", ")}]`,
      );
    }
    for (const [k, dst] of own) {
      const src = state.get(k);
      if (!src) continue;
      const a = dst.shape.join(",");
      const b = src.shape.join(",");
      if (a !== b)
        throw new StateDictError(
          `${where}tensor "${k}" has shape [${b}] but the model expects [${a}]`,
        );
    }
    noGrad(() => {
      for (const [k, dst] of own) {
        const src = state.get(k);
        if (src) dst.copy_(src);
      }
    });
    return { missing, unexpected };
  }

  /** Replaces every tensor in place by `fn(tensor)` (device or dtype moves), keeping requiresGrad. */
  apply(fn: (t: Tensor) => Tensor): this {
    const replaced = new Map<Tensor, Tensor>();
    for (const [, m] of this.namedModules()) {
      for (const [k, v] of Object.entries(m)) {
        if (!(v instanceof TensorClass)) continue;
        let nt = replaced.get(v);
        if (!nt) {
          const rg = v.requiresGrad;
          nt = keep(tidy(() => noGrad(() => fn(v).detach())));
          if (rg) nt.requiresGrad_(true);
          replaced.set(v, nt);
        }
        (m as unknown as Record<string, Tensor>)[k] = nt;
      }
    }
    for (const [old, nt] of replaced) if (old !== nt) old.dispose();
    return this;
  }

  /** Moves to a device (`"cuda:0"`) or casts floating-point tensors to a dtype (`"bfloat16"`). */
  to(target: string): this {
    if (isDType(target)) return this.apply((t) => (dtypeInfo[t.dtype].float ? t.to(target) : t));
    return this.apply((t) => t.to(target));
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Frees every tensor this module holds. */
  dispose(): void {
    for (const [, t] of this.#walk(new Set(["param", "buffer", "nonpersistent"]))) t.dispose();
  }

  /** Number of parameters (tied counted once). */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel(), 0);
  }
}

/** The parameters that train (full fine-tuning: all; LoRA: the adapters), by dotted name. */
export function trainableParameters(module: Module): [string, Tensor][] {
  return module.namedParameters().filter(([, p]) => p.requiresGrad);
}
