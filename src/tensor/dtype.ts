/**
 * Tensor element types: lethe's names (torch's, without the `torch.` prefix), libtorch's
 * c10::ScalarType codes (stable across PyTorch versions, c10/core/ScalarType.h) and the typed array
 * each reads back into. 16-bit floats read back as raw Uint16Array bits.
 * On CPU, float32 is the compute dtype; float16/bfloat16 are storage and GPU dtypes.
 */
export type DType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint8"
  | "bool";

type ArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int32ArrayConstructor
  | BigInt64ArrayConstructor
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor;

export const dtypeInfo: Record<
  DType,
  { code: number; itemsize: number; array: ArrayCtor; float: boolean }
> = {
  uint8: { code: 0, itemsize: 1, array: Uint8Array, float: false },
  int8: { code: 1, itemsize: 1, array: Int8Array, float: false },
  int16: { code: 2, itemsize: 2, array: Int16Array, float: false },
  int32: { code: 3, itemsize: 4, array: Int32Array, float: false },
  int64: { code: 4, itemsize: 8, array: BigInt64Array, float: false },
  float16: { code: 5, itemsize: 2, array: Uint16Array, float: true },
  float32: { code: 6, itemsize: 4, array: Float32Array, float: true },
  float64: { code: 7, itemsize: 8, array: Float64Array, float: true },
  bool: { code: 11, itemsize: 1, array: Uint8Array, float: false },
  bfloat16: { code: 15, itemsize: 2, array: Uint16Array, float: true },
};

const byCode = new Map(Object.entries(dtypeInfo).map(([name, i]) => [i.code, name as DType]));

export function dtypeFromCode(code: number): DType {
  const d = byCode.get(code);
  if (!d) throw new Error(`lethe: unsupported libtorch scalar type code ${code}`);
  return d;
}

export function isDType(s: string): s is DType {
  return Object.hasOwn(dtypeInfo, s);
}
