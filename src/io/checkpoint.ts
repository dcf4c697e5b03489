/**
 * Tensors to and from safetensors files: the bridge between the byte-level reader/writer in
 * src/io/safetensors.ts and the engine's tensors. A file written here loads in Python with
 * `safetensors.torch.load_file` and back (same dtype strings, little-endian C-contiguous data).
 * Reference: huggingface/safetensors `bindings/python/py_src/safetensors/torch.py` (`_TYPES`:
 * "F32" ↔ torch.float32 …), which is the mapping `SAFE_DTYPES` carries.
 */
import { type DType, dtypeInfo, fromBytes, type Tensor, tidy } from "../tensor/index.js";
import {
  asSafetensorsError,
  SAFE_DTYPES,
  type SafeDtype,
  SafetensorsError,
  SafetensorsFile,
  writeSafetensors,
} from "./safetensors.js";

/** Engine dtype → safetensors dtype string ("float32" → "F32"). */
const SAFE_OF = new Map<string, SafeDtype>(
  Object.entries(SAFE_DTYPES).map(([safe, { name }]) => [name, safe as SafeDtype]),
);

/**
 * Writes `tensors` (any device, any layout) to `path` as safetensors; `metadata` goes to
 * `__metadata__`. Each tensor is copied to contiguous CPU bytes first.
 */
export function saveTensors(
  path: string,
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const list = [...tensors].map(([name, t]) => {
    const dtype = SAFE_OF.get(t.dtype);
    if (dtype === undefined) {
      throw new SafetensorsError(
        path,
        name,
        `has dtype ${t.dtype}, which safetensors cannot store`,
      );
    }
    return { name, dtype, shape: t.shape, data: t.toBytes() };
  });
  writeSafetensors(path, list, metadata);
}

/**
 * Reads every tensor of a safetensors file, one at a time (memory peaks at one tensor's bytes
 * plus the tensors made so far). `device` moves each tensor there; `dtype` casts floating-point
 * tensors (integer and bool tensors keep theirs, as token ids and masks must).
 */
export function loadTensors(
  path: string,
  o: { device?: string; dtype?: DType } = {},
): Map<string, Tensor> {
  const file = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const name of file.keys()) {
      const { dtype: safe, shape } = file.info(name);
      const dtype = SAFE_DTYPES[safe].name;
      let bytes: Uint8Array;
      try {
        bytes = file.read(name);
      } catch (err) {
        throw asSafetensorsError(path, name, err);
      }
      const t = tidy(() => {
        let t = fromBytes(bytes, dtype, shape);
        if (o.dtype !== undefined && dtypeInfo[dtype].float) t = t.to(o.dtype);
        if (o.device !== undefined) t = t.to(o.device);
        return t;
      });
      out.set(name, t);
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  } finally {
    file.close();
  }
  return out;
}
