/**
 * Tensor creation and the functions that take several tensors (torch.* and
 * torch.nn.functional.*), with torch's names and argument order. Reference: PyTorch 2.x
 * `native_functions.yaml`.
 */
import { type DType, dtypeInfo, isDType } from "./dtype.js";
import { native } from "./native.js";
import { Generator, op, type Shape, Tensor } from "./tensor.js";

export interface Options {
  dtype?: DType;
  device?: string;
}

function code(dtype: DType | undefined): number | null {
  return dtype === undefined ? null : dtypeInfo[dtype].code;
}

export function zeros(shape: Shape, o: Options = {}): Tensor {
  return op("aten::zeros", [shape], {
    dtype: code(o.dtype ?? "float32"),
    device: o.device ?? null,
  });
}
export function ones(shape: Shape, o: Options = {}): Tensor {
  return op("aten::ones", [shape], { dtype: code(o.dtype ?? "float32"), device: o.device ?? null });
}
export function empty(shape: Shape, o: Options = {}): Tensor {
  return op("aten::empty.memory_format", [shape], {
    dtype: code(o.dtype ?? "float32"),
    device: o.device ?? null,
  });
}
export function full(shape: Shape, value: number | boolean, o: Options = {}): Tensor {
  const dtype = o.dtype ?? (typeof value === "boolean" ? "bool" : "float32");
  return op("aten::full", [shape, value], { dtype: code(dtype), device: o.device ?? null });
}
export function zerosLike(t: Tensor): Tensor {
  return op("aten::zeros_like", [t]);
}

/** arange(end) or arange(start, end, step); int64 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, o: Options = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return op("aten::arange.start_step", [start, end, step], {
    dtype: code(o.dtype ?? "int64"),
    device: o.device ?? null,
  });
}

export interface RandomOptions extends Options {
  generator?: Generator;
}
export function randn(shape: Shape, o: RandomOptions = {}): Tensor {
  return op("aten::randn.generator", [shape], {
    generator: o.generator?.handle ?? null,
    dtype: code(o.dtype ?? "float32"),
    device: o.device ?? null,
  });
}
/** Integers uniformly in [low, high). */
export function randint(low: number, high: number, shape: Shape, o: RandomOptions = {}): Tensor {
  return op("aten::randint.low_generator", [low, high, shape], {
    generator: o.generator?.handle ?? null,
    dtype: code(o.dtype ?? "int64"),
    device: o.device ?? null,
  });
}
/** Seeds the default generators (torch.manual_seed). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** A new CPU tensor from raw little-endian bytes (the layout safetensors stores). */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: Shape): Tensor {
  return new Tensor(native.fromBuffer(bytes, dtypeInfo[dtype].code, shape));
}

type Nested = number | boolean | Nested[];

/**
 * A tensor from nested arrays or a typed array. The dtype defaults to float32 for numbers,
 * bool for booleans, int64 for a BigInt64Array; a typed array may be given a shape.
 */
export function tensor(
  data: Nested | ArrayBufferView,
  o: Options & { shape?: Shape } = {},
): Tensor {
  let shape: Shape;
  let flat: ArrayLike<number | bigint>;
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    flat = data as unknown as ArrayLike<number | bigint>;
    shape = o.shape ?? [flat.length];
    dtype =
      o.dtype ??
      (data instanceof BigInt64Array
        ? "int64"
        : data instanceof Int32Array
          ? "int32"
          : data instanceof Float64Array
            ? "float64"
            : data instanceof Uint8Array
              ? "uint8"
              : "float32");
  } else {
    shape = [];
    for (let d: Nested = data; Array.isArray(d); d = d[0]) shape.push(d.length);
    const values: number[] = [];
    let sawBool = false;
    const walk = (d: Nested, dim: number): void => {
      if (Array.isArray(d)) {
        if (d.length !== shape[dim])
          throw new Error(`tensor: ragged nested array at dimension ${dim}`);
        for (const x of d) walk(x, dim + 1);
      } else {
        if (dim !== shape.length)
          throw new Error(`tensor: ragged nested array at dimension ${dim}`);
        if (typeof d === "boolean") sawBool = true;
        values.push(Number(d));
      }
    };
    walk(data, 0);
    if (o.shape) {
      if (o.shape.reduce((a, b) => a * b, 1) !== values.length)
        throw new Error(
          `tensor: shape [${o.shape}] needs ${o.shape.reduce((a, b) => a * b, 1)} values, got ${values.length}`,
        );
      shape = o.shape;
    }
    flat = values;
    dtype = o.dtype ?? (sawBool ? "bool" : "float32");
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel !== flat.length)
    throw new Error(`tensor: shape [${shape}] needs ${numel} values, got ${flat.length}`);
  const info = dtypeInfo[dtype];
  let typed: ArrayBufferView;
  if (dtype === "float16" || dtype === "bfloat16") {
    const t = fromBytes(
      new Uint8Array(Float32Array.from(flat as ArrayLike<number>, Number).buffer),
      "float32",
      shape,
    );
    const out = t.to(dtype);
    t.dispose();
    return o.device ? moveTo(out, o.device) : out;
  } else if (dtype === "int64") {
    // like torch: floats truncate toward zero
    typed = BigInt64Array.from(flat as ArrayLike<number | bigint>, (v) =>
      typeof v === "bigint" ? v : BigInt(Math.trunc(v)),
    );
  } else {
    typed = new info.array(flat.length);
    const cast = dtype === "bool" ? (v: number) => (v !== 0 ? 1 : 0) : (v: number) => v;
    for (let i = 0; i < flat.length; i++) (typed as unknown as number[])[i] = cast(Number(flat[i]));
  }
  const t = fromBytes(
    new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength),
    dtype,
    shape,
  );
  return o.device ? moveTo(t, o.device) : t;
}

function moveTo(t: Tensor, device: string): Tensor {
  if (device === "cpu") return t;
  const out = t.to(device);
  t.dispose();
  return out;
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  return op("aten::cat", [tensors, dim]);
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return op("aten::stack", [tensors, dim]);
}
/** Elementwise choice: `cond ? x : y` (y may be a number). */
export function where(cond: Tensor, x: Tensor, y: Tensor | number): Tensor {
  return y instanceof Tensor
    ? op("aten::where.self", [cond, x, y])
    : op("aten::where.ScalarOther", [cond, x, y]);
}
/** `beta * input + alpha * (m1 @ m2)`. */
export function addmm(input: Tensor, m1: Tensor, m2: Tensor, beta = 1, alpha = 1): Tensor {
  return op("aten::addmm", [input, m1, m2], { beta, alpha });
}
/** `beta * input + alpha * (b1 @ b2)`, batched. */
export function baddbmm(input: Tensor, b1: Tensor, b2: Tensor, beta = 1, alpha = 1): Tensor {
  return op("aten::baddbmm", [input, b1, b2], { beta, alpha });
}
/** `x @ weight.T + bias` (torch.nn.functional.linear). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return op("aten::linear", [x, weight, bias]);
}
export function embedding(weight: Tensor, indices: Tensor, paddingIdx = -1): Tensor {
  return op("aten::embedding", [weight, indices, paddingIdx]);
}
export function layerNorm(
  x: Tensor,
  normalizedShape: Shape,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  return op("aten::layer_norm", [x, normalizedShape, weight, bias, eps]);
}
/** RMSNorm as in LLaMA/T5: x * rsqrt(mean(x², -1) + eps) * weight; 16-bit inputs are computed in float32. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const half = x.dtype === "float16" || x.dtype === "bfloat16";
  const xf = half ? x.float() : x;
  const normed = xf.mul(xf.pow(2).mean(-1, true).add(eps).rsqrt());
  return (half ? normed.to(x.dtype) : normed).mul(weight);
}
/** Dropout with the default generator (seed it with `manualSeed`). */
export function dropout(x: Tensor, p: number, train: boolean): Tensor {
  if (!train || p === 0) return x;
  return op("aten::dropout", [x, p, train]);
}
/** Mean cross-entropy of logits (N, C) against int64 targets (N), as torch.nn.functional.cross_entropy. */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { ignoreIndex?: number; labelSmoothing?: number; reduction?: "mean" | "sum" | "none" } = {},
): Tensor {
  const reduction = { none: 0, mean: 1, sum: 2 }[o.reduction ?? "mean"];
  return op("aten::cross_entropy_loss", [
    logits,
    target,
    null,
    reduction,
    o.ignoreIndex ?? -100,
    o.labelSmoothing ?? 0,
  ]);
}
/** Samples `n` indices per row from probabilities `probs` (torch.multinomial). */
export function multinomial(
  probs: Tensor,
  n: number,
  replacement = false,
  generator: Generator | null = null,
): Tensor {
  return op("aten::multinomial", [probs, n, replacement], { generator: generator?.handle ?? null });
}

/** Options of scaledDotProductAttention and of its oracle attentionMath. */
export interface AttentionOptions {
  mask?: Tensor | null;
  isCausal?: boolean;
  dropoutP?: number;
  scale?: number;
  enableGqa?: boolean;
}

/**
 * softmax(q kᵀ · scale + mask) v over (B, nh, T, hs): libtorch's fused
 * `scaled_dot_product_attention` (flash / memory-efficient / math kernels as the device has
 * them). `mask` is additive (float) or boolean (true = attend). `enableGqa` lets k and v carry
 * fewer heads than q (nh a multiple of theirs), as repeat_kv would. attentionMath is its oracle.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: AttentionOptions = {},
): Tensor {
  return op(
    "aten::scaled_dot_product_attention",
    [q, k, v, o.mask ?? null, o.dropoutP ?? 0, o.isCausal ?? false],
    { scale: o.scale ?? null, enable_gqa: o.enableGqa ?? false },
  );
}

/** The explicit attention math: the oracle for the fused kernel (same options). */
export function attentionMath(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  const scale = o.scale ?? 1 / Math.sqrt(q.size(-1));
  if (o.enableGqa && k.size(-3) !== q.size(-3)) {
    const rep = q.size(-3) / k.size(-3); // each k/v head serves `rep` consecutive query heads
    k = op("aten::repeat_interleave.self_int", [k, rep, -3]);
    v = op("aten::repeat_interleave.self_int", [v, rep, -3]);
  }
  let att = q.matmul(k.transpose(-2, -1)).mul(scale); // (B, nh, T, S)
  if (o.isCausal) {
    const T = q.size(-2);
    const S = k.size(-2);
    const causal = ones([T, S], { dtype: "bool", device: q.device }).tril(S - T);
    att = att.maskedFill(causal.logicalNot(), -Infinity);
  }
  if (o.mask)
    att =
      o.mask.dtype === "bool" ? att.maskedFill(o.mask.logicalNot(), -Infinity) : att.add(o.mask);
  att = att.softmax(-1);
  if (o.dropoutP) att = dropout(att, o.dropoutP, true);
  return att.matmul(v);
}

export { isDType };
