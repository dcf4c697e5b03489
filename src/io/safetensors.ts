/**
 * safetensors files as raw bytes: a validating reader that loads one tensor at a time and a
 * writer whose output is byte-identical to `safetensors.torch.save_file`.
 *
 * Reference: the format spec and Rust crate in huggingface/safetensors (`safetensors/src/tensor.rs`:
 * `MAX_HEADER_SIZE`, `prepare`, `Metadata::validate`), checked against the Python package 0.8.0.
 * Layout: 8-byte little-endian u64 N, N bytes of UTF-8 JSON (padded with spaces to a multiple of 8),
 * then the data section. The JSON maps each tensor name to `{dtype, shape, data_offsets: [begin,
 * end]}` (offsets relative to the data section) plus an optional `__metadata__` string→string map.
 *
 * This layer knows nothing of tensors: it hands out bytes, dtype and shape, and the tensor engine
 * turns them into tensors. Data is little-endian and C-contiguous, as the format says.
 */
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";

/**
 * The dtypes lethe reads and writes, keyed by their safetensors strings, with the torch name.
 * Keys are in the order of the Rust crate's `Dtype` enum (increasing alignment): the writer puts
 * tensors in decreasing order of this rank, as the reference does.
 */
export const SAFE_DTYPES = {
  BOOL: { itemsize: 1, name: "bool" },
  U8: { itemsize: 1, name: "uint8" },
  I8: { itemsize: 1, name: "int8" },
  I16: { itemsize: 2, name: "int16" },
  F16: { itemsize: 2, name: "float16" },
  BF16: { itemsize: 2, name: "bfloat16" },
  I32: { itemsize: 4, name: "int32" },
  F32: { itemsize: 4, name: "float32" },
  F64: { itemsize: 8, name: "float64" },
  I64: { itemsize: 8, name: "int64" },
} as const satisfies Record<string, { itemsize: number; name: string }>;

export type SafeDtype = keyof typeof SAFE_DTYPES;

const DTYPE_RANK = new Map(Object.keys(SAFE_DTYPES).map((d, i) => [d, i]));

/**
 * Largest JSON header accepted, in bytes: 100 MB, the Rust crate's `MAX_HEADER_SIZE`. The length
 * is read from the file before anything is allocated, so without a bound a corrupt or hostile file
 * could make us allocate up to 2^64 bytes; real headers are well under 1 MB even for 100k tensors.
 */
export const MAX_HEADER_BYTES = 100_000_000;

/** Largest single read or write call: Node's fs calls take at most 2^31 - 1 bytes. */
const IO_CHUNK_BYTES = 1 << 30;

const METADATA_KEY = "__metadata__";

/** Any problem with a safetensors file; the message always starts with the file path. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | null,
    detail: string,
    options?: { cause: unknown },
  ) {
    super(
      `${file}: ${tensor === null ? "" : `tensor ${JSON.stringify(tensor)} `}${detail}`,
      options,
    );
    this.name = "SafetensorsError";
  }
}

/**
 * Any error met while reading `file` as a SafetensorsError naming it: the checks below are meant
 * to catch every malformed byte, and this keeps a case they miss from surfacing as a bare
 * RangeError or TypeError without the file.
 */
export function asSafetensorsError(
  file: string,
  tensor: string | null,
  err: unknown,
): SafetensorsError {
  if (err instanceof SafetensorsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SafetensorsError(file, tensor, `cannot be read (${message})`, { cause: err });
}

export interface SafetensorsInfo {
  dtype: SafeDtype;
  shape: number[];
  byteLength: number;
}

interface Entry extends SafetensorsInfo {
  name: string;
  begin: number;
}

/**
 * An open safetensors file whose header has been read and validated. Tensor bytes are read on
 * demand with `read(name)`, so memory use is the header plus the tensor being read.
 */
export class SafetensorsFile {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly dataStart: number,
    private readonly entries: Map<string, Entry>,
    readonly metadata: Record<string, string>,
  ) {
    this.fd = fd;
  }

  /** Opens `path` and validates its header and every tensor entry; reads no tensor data. */
  static open(path: string): SafetensorsFile {
    const fd = openSync(path, "r");
    try {
      const fileSize = fstatSync(fd).size;
      if (fileSize < 8) {
        throw new SafetensorsError(
          path,
          null,
          `is ${fileSize} bytes, too short for the 8-byte header length`,
        );
      }
      const lenBytes = readExactly(path, null, fd, 8, 0);
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new SafetensorsError(
          path,
          null,
          `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`,
        );
      }
      const headerLength = Number(n);
      if (8 + headerLength > fileSize) {
        throw new SafetensorsError(
          path,
          null,
          `header length ${headerLength} runs past the end of the ${fileSize}-byte file`,
        );
      }
      const json = decodeHeader(path, readExactly(path, null, fd, headerLength, 8));
      const { entries, metadata } = parseHeader(path, json, fileSize - 8 - headerLength);
      return new SafetensorsFile(path, fd, 8 + headerLength, entries, metadata);
    } catch (err) {
      closeSync(fd);
      throw asSafetensorsError(path, null, err);
    }
  }

  /** Tensor names in file order (by data offset), so reading them in turn reads front to back. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  info(name: string): SafetensorsInfo {
    const { dtype, shape, byteLength } = this.entry(name);
    return { dtype, shape: [...shape], byteLength };
  }

  /** Exactly this tensor's bytes, in a fresh buffer of its own (offset 0, so any view is aligned). */
  read(name: string): Uint8Array {
    const entry = this.entry(name);
    if (this.fd === null)
      throw new SafetensorsError(this.path, name, "cannot be read: the file is closed");
    return readExactly(this.path, name, this.fd, entry.byteLength, this.dataStart + entry.begin);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (entry === undefined) throw new SafetensorsError(this.path, name, "is not in the file");
    return entry;
  }
}

export interface SafetensorsTensor {
  dtype: SafeDtype;
  shape: readonly number[];
  data: Uint8Array;
}

/**
 * Writes tensors to `path` laid out as the reference writer does: sorted by decreasing dtype
 * alignment then by name (UTF-8 bytes), header padded with spaces to a multiple of 8. Everything is
 * validated before the first byte is written; the bytes go to `path.tmp-<pid>`, are synced, and the
 * file is renamed over `path`, so `path` is either the old file or the complete new one.
 *
 * Metadata keys are written sorted; the reference keeps them in a Rust HashMap (random order), so
 * output is byte-identical to it when metadata has at most one key (e.g. `{format: "pt"}`).
 */
export function writeSafetensors(
  path: string,
  tensors: Array<SafetensorsTensor & { name: string }> | Record<string, SafetensorsTensor>,
  metadata?: Record<string, string>,
): void {
  const list = Array.isArray(tensors)
    ? tensors
    : Object.entries(tensors).map(([name, t]) => ({ name, ...t }));
  const seen = new Set<string>();
  for (const t of list) {
    if (t.name === METADATA_KEY) {
      throw new SafetensorsError(path, t.name, "cannot be written: the name is reserved");
    }
    if (seen.has(t.name)) throw new SafetensorsError(path, t.name, "is given twice");
    seen.add(t.name);
    const needed = tensorByteLength(path, t.name, t.dtype, t.shape);
    if (t.data.byteLength !== needed) {
      throw new SafetensorsError(
        path,
        t.name,
        `has ${t.data.byteLength} bytes of data but dtype ${t.dtype} × shape [${t.shape.join(", ")}] needs ${needed} bytes`,
      );
    }
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") {
      throw new SafetensorsError(path, null, `metadata ${JSON.stringify(key)} must be a string`);
    }
  }

  const sorted = [...list].sort(
    (a, b) => DTYPE_RANK.get(b.dtype)! - DTYPE_RANK.get(a.dtype)! || compareUtf8(a.name, b.name),
  );
  const fields: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    const pairs = keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    fields.push(`${JSON.stringify(METADATA_KEY)}:{${pairs.join(",")}}`);
  }
  let offset = 0;
  for (const t of sorted) {
    const end = offset + t.data.byteLength;
    fields.push(
      `${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = Buffer.from(`{${fields.join(",")}}`, "utf8");
  const header = Buffer.alloc(8 + Math.ceil(json.length / 8) * 8, " ");
  header.writeBigUInt64LE(BigInt(header.length - 8), 0);
  json.copy(header, 8);

  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w");
  try {
    try {
      writeAll(fd, header);
      for (const t of sorted) writeAll(fd, t.data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Reads `length` bytes at `position`; a short read means the file shrank after it was opened. */
function readExactly(
  file: string,
  tensor: string | null,
  fd: number,
  length: number,
  position: number,
): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, Math.min(IO_CHUNK_BYTES, length - done), position + done);
    if (got === 0)
      throw new SafetensorsError(
        file,
        tensor,
        `hit the end of the file at byte ${position + done}`,
      );
    done += got;
  }
  return out;
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) {
    done += writeSync(fd, data, done, Math.min(IO_CHUNK_BYTES, data.byteLength - done));
  }
}

/** Orders strings by their UTF-8 bytes, as Rust's `String` ordering does. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** product(shape) × itemsize, after checking that the dtype is known and the shape valid. */
function tensorByteLength(file: string, name: string, dtype: unknown, shape: unknown): number {
  if (typeof dtype !== "string" || !Object.hasOwn(SAFE_DTYPES, dtype)) {
    const known = Object.keys(SAFE_DTYPES).join(", ");
    throw new SafetensorsError(
      file,
      name,
      `has unknown dtype ${JSON.stringify(dtype)} (known: ${known})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(
      file,
      name,
      `has shape ${JSON.stringify(shape)}; expected an array of non-negative integers`,
    );
  }
  const bytes = shape.reduce(
    (acc: number, d: number) => acc * d,
    SAFE_DTYPES[dtype as SafeDtype].itemsize,
  );
  if (!Number.isSafeInteger(bytes)) {
    throw new SafetensorsError(
      file,
      name,
      `has dtype ${dtype} × shape [${shape.join(", ")}], too large to address`,
    );
  }
  return bytes;
}

function decodeHeader(file: string, bytes: Uint8Array): string {
  let json: string;
  try {
    json = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new SafetensorsError(file, null, "header is not valid UTF-8");
  }
  if (!json.startsWith("{")) {
    throw new SafetensorsError(
      file,
      null,
      `header must start with '{', found ${JSON.stringify(json.slice(0, 20))}`,
    );
  }
  return json;
}

function parseHeader(
  file: string,
  json: string,
  dataSize: number,
): { entries: Map<string, Entry>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (err) {
    throw new SafetensorsError(file, null, `header is not valid JSON: ${(err as Error).message}`);
  }
  const duplicate = firstDuplicate(topLevelKeys(json));
  if (duplicate !== null) {
    throw new SafetensorsError(file, duplicate, "appears twice in the header");
  }

  let metadata: Record<string, string> = {};
  const list: Entry[] = [];
  // JSON that starts with '{' and parses is an object.
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(file, value);
      continue;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new SafetensorsError(
        file,
        name,
        "must map to an object with dtype, shape and data_offsets",
      );
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    const byteLength = tensorByteLength(file, name, dtype, shape);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw new SafetensorsError(
        file,
        name,
        `has data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with 0 <= begin <= end`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      throw new SafetensorsError(
        file,
        name,
        `has data_offsets [${begin}, ${end}] past the end of the ${dataSize}-byte data section`,
      );
    }
    if (end - begin !== byteLength) {
      throw new SafetensorsError(
        file,
        name,
        `has data_offsets [${begin}, ${end}] but dtype ${dtype} × shape [${(shape as number[]).join(", ")}] needs ${byteLength} bytes`,
      );
    }
    list.push({ name, dtype: dtype as SafeDtype, shape: shape as number[], byteLength, begin });
  }

  // Like the Rust crate: sorted by offset, the tensors must tile the data section exactly.
  list.sort((a, b) => a.begin - b.begin || a.byteLength - b.byteLength);
  let covered = 0;
  let previous: Entry | null = null;
  for (const e of list) {
    if (e.begin < covered) {
      throw new SafetensorsError(
        file,
        e.name,
        `has data_offsets [${e.begin}, ${e.begin + e.byteLength}] overlapping tensor ${JSON.stringify(previous!.name)} (which ends at ${covered})`,
      );
    }
    if (e.begin > covered) {
      throw new SafetensorsError(
        file,
        e.name,
        `starts at ${e.begin}, leaving bytes [${covered}, ${e.begin}) of the data section covered by no tensor`,
      );
    }
    covered = e.begin + e.byteLength;
    previous = e;
  }
  if (covered !== dataSize) {
    throw new SafetensorsError(
      file,
      null,
      `data section is ${dataSize} bytes but its tensors cover only the first ${covered}`,
    );
  }
  return { entries: new Map(list.map((e) => [e.name, e])), metadata };
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SafetensorsError(file, null, `${METADATA_KEY} must be an object of strings`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        file,
        null,
        `${METADATA_KEY} entry ${JSON.stringify(key)} must be a string, got ${JSON.stringify(v)}`,
      );
    }
  }
  return { ...(value as Record<string, string>) };
}

/**
 * The keys of the top-level object of already-validated JSON, in order and with repeats, which
 * `JSON.parse` hides (it keeps the last). A key is a string read at depth 1 after `{` or `,`.
 */
function topLevelKeys(json: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === "\\" ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(json.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === "{" || c === "[") {
      depth++;
      expectKey = depth === 1;
    } else if (c === "}" || c === "]") {
      depth--;
    } else if (c === ",") {
      expectKey = depth === 1;
    }
  }
  return keys;
}

function firstDuplicate(names: string[]): string | null {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) return n;
    seen.add(n);
  }
  return null;
}
