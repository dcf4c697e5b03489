/**
 * Flat parameter buffers: a module's trainable tensors become views into one contiguous tensor
 * per group (and their gradients views into one gradient tensor), so that zeroing, clipping and
 * the optimizer step are a few ops over one buffer instead of a loop over every parameter.
 * Autograd accumulates into an existing `.grad` in place, so the views stay views.
 * (The same layout as apex's and FSDP's flat parameters.)
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
