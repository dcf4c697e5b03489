/**
 * Flat parameter buffers: a module's trainable tensors become views into one contiguous tensor
 * per group (and their gradients views into one gradient tensor), so that zeroing, clipping and
 * the optimizer step are a few ops over one buffer instead of a loop over every parameter.
 * Autograd accumulates into an existing `.grad` in place, so the views stay views.
 * (The same layout as apex's and FSDP's flat parameters.)
 *
 * Flattening copies the weights once. `releaseGradients` ends a use (a training stage) but keeps
 * the buffers: flattening the same parameters again (the next stage) reuses them instead of
 * copying, so stage after stage never holds a second copy of the weights.
 */
import { empty, zeros, noGrad, tidy, type Tensor } from "../tensor/index.js";
import type { Module } from "./module.js";

export interface FlatParameters {
  /** Group name, e.g. "decay" / "no_decay". */
  name: string;
  /** All parameters of the group, concatenated (a leaf that does not require grad). */
  data: Tensor;
  /** Their gradients, concatenated; each parameter's `.grad` is a view into it. */
  grad: Tensor;
  /** Where each parameter lives in `data`. */
  params: { name: string; offset: number; shape: number[] }[];
}

/**
 * Moves every trainable parameter of `module` into flat buffers, one per group that `groupOf`
 * names (all in one group by default). Parameters of one group must share dtype and device.
 */
export function flattenParameters(
  module: Module,
  groupOf: (name: string) => string = () => "all",
): FlatParameters[] {
  const groups = new Map<string, [string, Tensor][]>();
  for (const [name, p] of module.namedParameters()) {
    if (!p.requiresGrad) continue;
    const g = groupOf(name);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push([name, p]);
  }
  const reused = reuse(module, groups);
  if (reused) return reused;
  const flats: FlatParameters[] = [];
  const place = new Map<Tensor, { flat: FlatParameters; offset: number; shape: number[] }>();
  for (const [gname, members] of groups) {
    const { dtype, device } = members[0][1];
    let total = 0;
    const params: FlatParameters["params"] = [];
    for (const [name, p] of members) {
      if (p.dtype !== dtype || p.device !== device)
        throw new Error(
          `flattenParameters: "${name}" is ${p.dtype} on ${p.device}, group "${gname}" is ${dtype} on ${device}`,
        );
      params.push({ name, offset: total, shape: p.shape });
      total += p.numel();
    }
    const flat: FlatParameters = {
      name: gname,
      data: empty([total], { dtype, device }),
      grad: zeros([total], { dtype, device }),
      params,
    };
    noGrad(() =>
      tidy(() => {
        members.forEach(([, p], i) =>
          flat.data.narrow(0, params[i].offset, p.numel()).copy_(p.reshape(-1)),
        );
      }),
    );
    members.forEach(([, p], i) =>
      place.set(p, { flat, offset: params[i].offset, shape: params[i].shape }),
    );
    flats.push(flat);
  }
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  module.apply((t) => {
    const at = place.get(t);
    return at ? at.flat.data.narrow(0, at.offset, numel(at.shape)).view(...at.shape) : t;
  });
  const byName = new Map(module.namedParameters());
  for (const flat of flats)
    for (const { name, offset, shape } of flat.params) {
      const view = tidy(() => flat.grad.narrow(0, offset, numel(shape)).view(...shape));
      byName.get(name)!.grad = view;
      view.dispose();
    }
  return flats;
}

/** Buffers whose views a module's parameters still are, after `releaseGradients`. */
const resident = new WeakMap<
  Module,
  { data: Tensor; params: FlatParameters["params"]; name: string; views: Tensor[] }[]
>();

/**
 * Ends a use of flat buffers: drops the gradients (every parameter's `.grad` and the gradient
 * buffers) and keeps the data buffers for the next `flattenParameters` of the same parameters.
 */
export function releaseGradients(module: Module, flats: FlatParameters[]): void {
  const byName = new Map(module.namedParameters());
  const kept = flats.map((f) => ({
    data: f.data,
    params: f.params,
    name: f.name,
    views: f.params.map(({ name }) => byName.get(name)!),
  }));
  for (const k of kept) for (const v of k.views) if (v) v.grad = null;
  for (const f of flats) f.grad.dispose();
  const old = resident.get(module);
  resident.set(module, kept);
  if (old) for (const k of old) if (!kept.some((x) => x.data === k.data)) k.data.dispose();
}

/**
 * The kept buffers as new FlatParameters (fresh zero gradients) when the groups are exactly the
 * parameters that were left as their views; else null, and the kept buffers are let go (the
 * parameters keep their storage alive as long as they are views of it).
 */
function reuse(module: Module, groups: Map<string, [string, Tensor][]>): FlatParameters[] | null {
  const kept = resident.get(module);
  if (!kept) return null;
  resident.delete(module);
  const same =
    kept.length === groups.size &&
    kept.every((k) => {
      const members = groups.get(k.name);
      return (
        members !== undefined &&
        members.length === k.views.length &&
        members.every(([n, p], i) => n === k.params[i].name && p === k.views[i])
      );
    });
  if (!same) {
    for (const k of kept) k.data.dispose();
    return null;
  }
  const flats = kept.map((k) => {
    const { dtype, device } = k.data;
    const total = k.data.numel();
    return {
      name: k.name,
      data: k.data,
      grad: zeros([total], { dtype, device }),
      params: k.params,
    };
  });
  const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
  for (const [i, flat] of flats.entries())
    for (const [j, { offset, shape }] of flat.params.entries()) {
      const view = tidy(() => flat.grad.narrow(0, offset, numel(shape)).view(...shape));
      kept[i].views[j].grad = view;
      view.dispose();
    }
  return flats;
}
