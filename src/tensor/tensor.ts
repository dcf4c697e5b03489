/**
 * The Tensor: a handle to a libtorch tensor, with torch's op names and argument order.
 *
 * Every op is one line that names an ATen operator schema ("aten::add.Tensor"); the native
 * bridge converts arguments by reading that schema and calls libtorch's dispatcher, so autograd,
 * devices and dtypes behave exactly as in PyTorch (reference: PyTorch 2.x
 * `native_functions.yaml`).
 *
 * Memory has one owner: a tensor is freed by `dispose()`, by the `tidy()` scope it was made in,
 * or, as a last resort, by the JS garbage collector. Hot loops use `tidy` so native memory never
 * waits for the collector.
 */
import { native, TorchError } from "./native.js";
import { type DType, dtypeFromCode, dtypeInfo } from "./dtype.js";

export type Shape = number[];
export type Scalar = number | boolean;

// ---- op table ---------------------------------------------------------------------------------
const opIds = new Map<string, number>();

/** The dispatcher id of an ATen operator, or -1 when this libtorch lacks it. */
export function opId(name: string): number {
  let id = opIds.get(name);
  if (id === undefined) {
    id = native.opId(name);
    opIds.set(name, id);
  }
  return id;
}

/** Whether this libtorch build has an operator (e.g. 2.x-only `aten::scaled_dot_product_attention`). */
export function hasOp(name: string): boolean {
  return opId(name) >= 0;
}

function lookup(name: string): number {
  const id = opId(name);
  if (id < 0) throw new TorchError(`lethe: this libtorch has no operator ${name}`);
  return id;
}

/** Converts Tensor arguments (also inside arrays) to native handles. */
function unwrap(a: unknown): unknown {
  if (a instanceof Tensor) return a.handle;
  if (Array.isArray(a)) return a.map(unwrap);
  return a;
}

function unwrapKw(kw: Record<string, unknown> | undefined): Record<string, unknown> | null {
  if (!kw) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kw)) out[k] = unwrap(v);
  return out;
}

function callNative(
  name: string,
  args: unknown[],
  kw?: Record<string, unknown>,
  discard = false,
): unknown {
  const id = lookup(name);
  try {
    return native.call(id, args.map(unwrap), unwrapKw(kw), discard);
  } catch (e) {
    // The call is synchronous, so the JS stack here is still the caller's: point the error at it.
    if (e instanceof TorchError) {
      e.message = `${name}: ${e.message}`;
      Error.captureStackTrace(e, callNative);
    }
    throw e;
  }
}

/** Calls an operator that returns one tensor. */
export function op(name: string, args: unknown[], kw?: Record<string, unknown>): Tensor {
  return new Tensor(callNative(name, args, kw) as number);
}

/** Calls an operator that returns several tensors (a tuple or a Tensor[]). */
export function opN(name: string, args: unknown[], kw?: Record<string, unknown>): Tensor[] {
  return (callNative(name, args, kw) as (number | null)[]).map((h) => new Tensor(h as number));
}

/** Calls an operator that returns a non-tensor value (int, float, bool). */
export function opValue(name: string, args: unknown[], kw?: Record<string, unknown>): unknown {
  return callNative(name, args, kw);
}

/** Calls an in-place operator on `self` and returns `self`. */
function inplace(
  self: Tensor,
  name: string,
  args: unknown[],
  kw?: Record<string, unknown>,
): Tensor {
  callNative(name, [self, ...args], kw, true);
  return self;
}

// ---- scopes -------------------------------------------------------------------------------------
const scopes: Set<Tensor>[] = [];
const finalizer = new FinalizationRegistry<number>((handle) => native.free(handle));

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (found in the
 * returned value, an array, or a plain object's values) and those passed to `keep`.
 * Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error("tidy: fn must be synchronous");
  const escaping = new Set<Tensor>();
  collect(result, escaping, 0);
  const parent = scopes[scopes.length - 1] ?? null;
  for (const t of scope) {
    if (escaping.has(t)) t._moveTo(parent);
    else t.dispose();
  }
  return result;
}

function collect(v: unknown, out: Set<Tensor>, depth: number): void {
  if (v instanceof Tensor) out.add(v);
  else if (depth < 3 && Array.isArray(v)) for (const x of v) collect(x, out, depth + 1);
  else if (depth < 3 && v instanceof Map) for (const x of v.values()) collect(x, out, depth + 1);
  else if (
    depth < 3 &&
    v !== null &&
    typeof v === "object" &&
    Object.getPrototypeOf(v) === Object.prototype
  )
    for (const x of Object.values(v)) collect(x, out, depth + 1);
}

/** Takes tensors out of every enclosing `tidy` scope: they live until `dispose()`. */
export function keep<T extends Tensor | Tensor[]>(t: T): T {
  for (const x of Array.isArray(t) ? t : [t]) x._moveTo(null);
  return t;
}

/** Runs `fn` with autograd recording off (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/**
 * Runs `fn` under autocast (torch.autocast(device_type, dtype)): matmuls and other ops on
 * libtorch's lower-precision list run in `dtype`, precision-sensitive ones in float32, while the
 * parameters stay as they are. Thread-local; the previous state comes back afterwards.
 */
export function autocast<T>(device: string, dtype: "bfloat16" | "float16", fn: () => T): T {
  const type = device.split(":")[0];
  const prev = native.autocast(type, true, dtypeInfo[dtype].code);
  try {
    return fn();
  } finally {
    if (!prev) native.autocast(type, false, dtypeInfo[dtype].code);
  }
}

/** Whether autograd records operations right now. */
export function isGradEnabled(): boolean {
  const prev = native.setGradEnabled(true);
  native.setGradEnabled(prev);
  return prev;
}

/** Native tensors alive right now (for leak tests). */
export function liveTensors(): number {
  return native.stats().liveTensors;
}

// ---- the Tensor -------------------------------------------------------------------------------
type TensorOrScalar = Tensor | Scalar;

// The overload names of each binary op, built once: a name built per call is a fresh string that
// the op table must hash again on every call.
const overloads = new Map<string, string[]>();
function overload(name: string, other: TensorOrScalar, inPlace = false): string {
  let o = overloads.get(name);
  if (!o)
    overloads.set(
      name,
      (o = [".Tensor", ".Scalar", "_.Tensor", "_.Scalar"].map((s) => `aten::${name}${s}`)),
    );
  return o[(inPlace ? 2 : 0) + (other instanceof Tensor ? 0 : 1)];
}

function binary(name: string, self: Tensor, other: TensorOrScalar, extra: unknown[] = []): Tensor {
  return op(overload(name, other), [self, other, ...extra]);
}

function binaryInplace(
  name: string,
  self: Tensor,
  other: TensorOrScalar,
  extra: unknown[] = [],
): Tensor {
  return inplace(self, overload(name, other, true), [other, ...extra]);
}

export class Tensor {
  #handle: number;
  /** The `tidy` scope that will dispose it; null: none, and the finalizer watches it instead. */
  #scope: Set<Tensor> | null;
  #shape: Shape | undefined;
  #dtype: DType | undefined;
  #device: string | undefined;

  /**
   * Wraps a native handle; registers it with the innermost `tidy` scope, or, outside any scope,
   * with the finalizer (a scope frees its tensors itself, so most tensors never cost one).
   */
  constructor(handle: number) {
    this.#handle = handle;
    this.#scope = scopes[scopes.length - 1] ?? null;
    if (this.#scope) this.#scope.add(this);
    else finalizer.register(this, handle, this);
  }

  /** @internal Moves the tensor to scope `s` (null: no scope; the finalizer then watches it). */
  _moveTo(s: Set<Tensor> | null): void {
    if (this.#handle < 0 || this.#scope === s) return;
    if (this.#scope) this.#scope.delete(this);
    else finalizer.unregister(this);
    if (s) s.add(this);
    else finalizer.register(this, this.#handle, this);
    this.#scope = s;
  }

  /** The native handle; throws if the tensor was disposed. */
  get handle(): number {
    if (this.#handle < 0) throw new Error("lethe: tensor used after dispose()");
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle < 0;
  }

  /** Frees the native tensor now. Safe to call twice. */
  dispose(): void {
    if (this.#handle < 0) return;
    if (this.#scope) this.#scope.delete(this);
    else finalizer.unregister(this);
    native.free(this.#handle);
    this.#handle = -1;
    this.#scope = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #meta(): void {
    const [code, device, , ...sizes] = native.meta(this.handle);
    this.#dtype = dtypeFromCode(code);
    this.#device = device;
    this.#shape = sizes;
  }

  get shape(): Shape {
    if (!this.#shape) this.#meta();
    return this.#shape!.slice();
  }
  get dtype(): DType {
    if (!this.#dtype) this.#meta();
    return this.#dtype!;
  }
  get device(): string {
    if (!this.#device) this.#meta();
    return this.#device!;
  }
  get ndim(): number {
    if (!this.#shape) this.#meta();
    return this.#shape!.length;
  }
  /** Size of dimension `d` (negative counts from the end). */
  size(d: number): number {
    const s = this.#shape ?? this.shape;
    return s[d < 0 ? s.length + d : d];
  }
  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- reading back
  /** Contiguous CPU copy as a typed array (int64 → BigInt64Array, 16-bit floats → raw Uint16Array). */
  toArray():
    | Float32Array
    | Float64Array
    | Int32Array
    | BigInt64Array
    | Uint8Array
    | Int8Array
    | Int16Array
    | Uint16Array {
    const buf = native.toBuffer(this.handle);
    return new dtypeInfo[this.dtype].array(buf);
  }
  /** Values as plain numbers (any dtype). */
  toNumbers(): number[] {
    if (this.dtype === "float16" || this.dtype === "bfloat16")
      return tidy(() => this.float().toNumbers());
    return Array.from(this.toArray() as ArrayLike<number | bigint>, Number);
  }
  /** Raw bytes of a contiguous CPU copy. */
  toBytes(): Uint8Array {
    return new Uint8Array(native.toBuffer(this.handle));
  }
  /** The single value of a one-element tensor. */
  item(): number {
    return Number(opValue("aten::item", [this]));
  }
  /** Nested arrays, like torch's tolist(). */
  tolist(): unknown {
    const flat = this.toNumbers();
    const shape = this.shape;
    const build = (dim: number, offset: number): unknown => {
      if (dim === shape.length) return flat[offset];
      const stride = shape.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: shape[dim] }, (_, i) => build(dim + 1, offset + i * stride));
    };
    return build(0, 0);
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return native.meta(this.handle)[2];
  }
  requiresGrad_(on = true): Tensor {
    return inplace(this, "aten::requires_grad_", [on]);
  }
  /** The accumulated gradient (a new handle each call; dispose it or read it in a tidy). */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g ? g.handle : null);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(
      [this.handle],
      gradient ? [gradient.handle] : null,
      opts.retainGraph ?? null,
      opts.createGraph ?? false,
    );
  }
  detach(): Tensor {
    return op("aten::detach", [this]);
  }

  // ---- casting and devices
  /** `to("float16")`, `to("cuda:0")`. */
  to(target: DType | string, copy = false): Tensor {
    if (target in dtypeInfo)
      return op("aten::to.dtype", [this, dtypeInfo[target as DType].code, false, copy]);
    return op("aten::to.device", [this, target, dtypeInfo[this.dtype].code, false, copy]);
  }
  float(): Tensor {
    return this.to("float32");
  }
  long(): Tensor {
    return this.to("int64");
  }
  int(): Tensor {
    return this.to("int32");
  }
  bool(): Tensor {
    return this.to("bool");
  }
  clone(): Tensor {
    return op("aten::clone", [this]);
  }

  // ---- shapes
  view(...shape: Shape): Tensor {
    return op("aten::view", [this, shape]);
  }
  reshape(...shape: Shape): Tensor {
    return op("aten::reshape", [this, shape]);
  }
  permute(...dims: number[]): Tensor {
    return op("aten::permute", [this, dims]);
  }
  transpose(d0: number, d1: number): Tensor {
    return op("aten::transpose.int", [this, d0, d1]);
  }
  /** Matrix transpose of a 2-D tensor. */
  t(): Tensor {
    return op("aten::t", [this]);
  }
  contiguous(): Tensor {
    return op("aten::contiguous", [this]);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return op("aten::narrow", [this, dim, start, length]);
  }
  /** `x[..., start:end:step]` along `dim` (end may be omitted or negative). */
  slice(dim: number, start = 0, end: number | null = null, step = 1): Tensor {
    return op("aten::slice.Tensor", [this, dim, start, end, step]);
  }
  select(dim: number, index: number): Tensor {
    return op("aten::select.int", [this, dim, index]);
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return Array.isArray(sizeOrSizes)
      ? opN("aten::split_with_sizes", [this, sizeOrSizes, dim])
      : opN("aten::split.Tensor", [this, sizeOrSizes, dim]);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return opN("aten::chunk", [this, chunks, dim]);
  }
  expand(...shape: Shape): Tensor {
    return op("aten::expand", [this, shape]);
  }
  expandAs(other: Tensor): Tensor {
    return this.expand(...other.shape);
  }
  repeat(...times: number[]): Tensor {
    return op("aten::repeat", [this, times]);
  }
  unsqueeze(dim: number): Tensor {
    return op("aten::unsqueeze", [this, dim]);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? op("aten::squeeze", [this]) : op("aten::squeeze.dim", [this, dim]);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return op("aten::flatten.using_ints", [this, startDim, endDim]);
  }

  // ---- elementwise
  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return binary("add", this, other, [alpha]);
  }
  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return binary("sub", this, other, [alpha]);
  }
  mul(other: TensorOrScalar): Tensor {
    return binary("mul", this, other);
  }
  div(other: TensorOrScalar): Tensor {
    return binary("div", this, other);
  }
  pow(exponent: TensorOrScalar): Tensor {
    return exponent instanceof Tensor
      ? op("aten::pow.Tensor_Tensor", [this, exponent])
      : op("aten::pow.Tensor_Scalar", [this, exponent]);
  }
  neg(): Tensor {
    return op("aten::neg", [this]);
  }
  abs(): Tensor {
    return op("aten::abs", [this]);
  }
  sqrt(): Tensor {
    return op("aten::sqrt", [this]);
  }
  rsqrt(): Tensor {
    return op("aten::rsqrt", [this]);
  }
  exp(): Tensor {
    return op("aten::exp", [this]);
  }
  log(): Tensor {
    return op("aten::log", [this]);
  }
  sin(): Tensor {
    return op("aten::sin", [this]);
  }
  cos(): Tensor {
    return op("aten::cos", [this]);
  }
  tanh(): Tensor {
    return op("aten::tanh", [this]);
  }
  sigmoid(): Tensor {
    return op("aten::sigmoid", [this]);
  }
  reciprocal(): Tensor {
    return op("aten::reciprocal", [this]);
  }
  clamp(min: number | null, max: number | null = null): Tensor {
    return op("aten::clamp", [this, min, max]);
  }
  maximum(other: Tensor): Tensor {
    return op("aten::maximum", [this, other]);
  }
  minimum(other: Tensor): Tensor {
    return op("aten::minimum", [this, other]);
  }
  eq(other: TensorOrScalar): Tensor {
    return binary("eq", this, other);
  }
  ne(other: TensorOrScalar): Tensor {
    return binary("ne", this, other);
  }
  lt(other: TensorOrScalar): Tensor {
    return binary("lt", this, other);
  }
  le(other: TensorOrScalar): Tensor {
    return binary("le", this, other);
  }
  gt(other: TensorOrScalar): Tensor {
    return binary("gt", this, other);
  }
  ge(other: TensorOrScalar): Tensor {
    return binary("ge", this, other);
  }
  logicalNot(): Tensor {
    return op("aten::logical_not", [this]);
  }
  logicalAnd(other: Tensor): Tensor {
    return op("aten::logical_and", [this, other]);
  }
  logicalOr(other: Tensor): Tensor {
    return op("aten::logical_or", [this, other]);
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return value instanceof Tensor
      ? op("aten::masked_fill.Tensor", [this, mask, value])
      : op("aten::masked_fill.Scalar", [this, mask, value]);
  }
  triu(diagonal = 0): Tensor {
    return op("aten::triu", [this, diagonal]);
  }
  tril(diagonal = 0): Tensor {
    return op("aten::tril", [this, diagonal]);
  }

  // ---- reductions (dim omitted = all elements)
  sum(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined
      ? op("aten::sum", [this])
      : op("aten::sum.dim_IntList", [this, dim, keepdim]);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined
      ? op("aten::mean", [this])
      : op("aten::mean.dim", [this, dim, keepdim]);
  }
  /** Max of all elements; with `dim`, use `maxDim` for values and indices. */
  max(): Tensor {
    return op("aten::max", [this]);
  }
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = opN("aten::max.dim", [this, dim, keepdim]);
    return { values, indices };
  }
  min(): Tensor {
    return op("aten::min", [this]);
  }
  argmax(dim: number | null = null, keepdim = false): Tensor {
    return op("aten::argmax", [this, dim, keepdim]);
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return op("aten::logsumexp", [this, dim, keepdim]);
  }
  /** p-norm over `dim` (all elements if omitted). */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined
      ? op("aten::norm.Scalar", [this, p])
      : op("aten::norm.ScalarOpt_dim", [this, p, dim, keepdim]);
  }
  cumsum(dim: number): Tensor {
    return op("aten::cumsum", [this, dim]);
  }
  all(): Tensor {
    return op("aten::all", [this]);
  }
  any(): Tensor {
    return op("aten::any", [this]);
  }
  isfinite(): Tensor {
    return op("aten::isfinite", [this]);
  }

  // ---- linear algebra
  matmul(other: Tensor): Tensor {
    return op("aten::matmul", [this, other]);
  }
  mm(other: Tensor): Tensor {
    return op("aten::mm", [this, other]);
  }
  bmm(other: Tensor): Tensor {
    return op("aten::bmm", [this, other]);
  }

  // ---- indexing
  gather(dim: number, index: Tensor): Tensor {
    return op("aten::gather", [this, dim, index]);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return op("aten::index_select", [this, dim, index]);
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return src instanceof Tensor
      ? op("aten::scatter.src", [this, dim, index, src])
      : op("aten::scatter.value", [this, dim, index, src]);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = opN("aten::topk", [this, k, dim, largest, sorted]);
    return { values, indices };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = opN("aten::sort", [this, dim, descending]);
    return { values, indices };
  }

  // ---- activations and normalisation (torch.nn.functional)
  softmax(dim: number): Tensor {
    return op("aten::softmax.int", [this, dim]);
  }
  logSoftmax(dim: number): Tensor {
    return op("aten::log_softmax.int", [this, dim]);
  }
  relu(): Tensor {
    return op("aten::relu", [this]);
  }
  /** gelu(approximate = "none" | "tanh"). */
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return op("aten::gelu", [this], { approximate });
  }
  silu(): Tensor {
    return op("aten::silu", [this]);
  }

  // ---- in place (trailing underscore as in torch)
  add_(other: TensorOrScalar, alpha: number = 1): Tensor {
    return binaryInplace("add", this, other, [alpha]);
  }
  sub_(other: TensorOrScalar, alpha: number = 1): Tensor {
    return binaryInplace("sub", this, other, [alpha]);
  }
  mul_(other: TensorOrScalar): Tensor {
    return binaryInplace("mul", this, other);
  }
  div_(other: TensorOrScalar): Tensor {
    return binaryInplace("div", this, other);
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): Tensor {
    return inplace(this, "aten::addcmul_", [t1, t2], { value });
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): Tensor {
    return inplace(this, "aten::addcdiv_", [t1, t2], { value });
  }
  lerp_(end: Tensor, weight: number): Tensor {
    return inplace(this, "aten::lerp_.Scalar", [end, weight]);
  }
  sqrt_(): Tensor {
    return inplace(this, "aten::sqrt_", []);
  }
  clamp_(min: number | null, max: number | null = null): Tensor {
    return inplace(this, "aten::clamp_", [min, max]);
  }
  zero_(): Tensor {
    return inplace(this, "aten::zero_", []);
  }
  fill_(value: number): Tensor {
    return inplace(this, "aten::fill_.Scalar", [value]);
  }
  copy_(src: Tensor): Tensor {
    return inplace(this, "aten::copy_", [src]);
  }
  maskedFill_(mask: Tensor, value: number): Tensor {
    return inplace(this, "aten::masked_fill_.Scalar", [mask, value]);
  }
  /** Fills with N(mean, std) from `generator` (a Generator from `generator(seed)`). */
  normal_(mean = 0, std = 1, generator: Generator | null = null): Tensor {
    return inplace(this, "aten::normal_", [mean, std, generator?.handle ?? null]);
  }
  uniform_(from = 0, to = 1, generator: Generator | null = null): Tensor {
    return inplace(this, "aten::uniform_", [from, to, generator?.handle ?? null]);
  }
}

/** A seeded random-number generator for one device (torch.Generator). */
/** The state of `device`'s default random generator (torch.get_rng_state): a uint8 tensor. */
export function getRngState(device = "cpu"): Tensor {
  return new Tensor(native.rngState(device));
}

/** Restores a state from `getRngState` (torch.set_rng_state): the same draws follow. */
export function setRngState(state: Tensor, device = "cpu"): void {
  native.setRngState(device, state.handle);
}

const generatorFinalizer = new FinalizationRegistry<number>((h) => native.freeGenerator(h));

export class Generator {
  readonly handle: number;
  constructor(
    readonly seed: number,
    readonly device = "cpu",
  ) {
    this.handle = native.generator(seed, device);
    generatorFinalizer.register(this, this.handle, this);
  }

  /** Frees the native generator now (else the garbage collector does). Safe to call twice. */
  dispose(): void {
    if (generatorFinalizer.unregister(this)) native.freeGenerator(this.handle);
  }
}
