/**
 * `pytorch_model.bin` read without running pickle: a restricted unpickler that interprets the
 * opcodes of a state dict and accepts only torch's tensor rebuild functions, storage types and
 * OrderedDict. Any other global (the way a malicious pickle runs code) is refused with a message
 * saying how to convert the file to safetensors. Both layouts torch.save writes are read: the zip
 * format (torch >= 1.6) and the legacy one (`_use_new_zipfile_serialization=False`, and every
 * file of torch < 1.6). Any malformed byte gives a TorchPickleError naming the file and where.
 *
 * References: PyTorch `torch/serialization.py` (`_save`, `_load`: entries `{archive}/data.pkl`,
 * `{archive}/data/{key}`, persistent ids `("storage", StorageType, key, location, numel)`;
 * `_legacy_save`, `_legacy_load`: pickles of MAGIC_NUMBER, PROTOCOL_VERSION 1001, sys_info, the
 * object and the sorted storage keys, then each storage as an int64 element count and its raw
 * little-endian bytes; persistent ids `(..., numel, view_metadata)`),
 * `torch/_utils.py` (`_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`,
 * `_rebuild_parameter`), CPython `Lib/pickletools.py` (opcode meanings, protocols 2–4), and the
 * ZIP spec (PKWARE APPNOTE 6.3.x, with Zip64). torch writes entries stored, not compressed.
 * Same idea as safetensors' `convert.py` and transformers' `weights_only=True` loading.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { type DType, dtypeInfo, fromBytes, op, type Tensor } from "../tensor/index.js";

/** How to turn a pickle checkpoint into safetensors with Python, shown whenever one is refused. */
export const CONVERT_HINT =
  "convert it to safetensors with Python (pip install torch safetensors), then load the directory:\n" +
  "  import torch\n" +
  "  from safetensors.torch import save_file\n" +
  '  sd = torch.load("pytorch_model.bin", map_location="cpu", weights_only=True)\n' +
  '  save_file({k: v.contiguous() for k, v in sd.items()}, "model.safetensors", metadata={"format": "pt"})\n' +
  "(tied weights: keep only one of the names that share storage, as transformers does)";

/** Any problem with a torch checkpoint; the message names the file. */
export class TorchPickleError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    options?: { cause: unknown },
  ) {
    super(`${file}: ${detail}`, options);
    this.name = "TorchPickleError";
  }
}

/** The storage classes torch.save names, and the dtype of their elements. */
const STORAGE_DTYPES = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
} as const satisfies Record<string, DType>;

/** The only globals the unpickler resolves; everything else is refused. */
const ALLOWED_GLOBALS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

/**
 * Largest data.pkl accepted: 256 MB. It holds only names, shapes and storage keys (about 200
 * bytes per tensor), so even a 100k-tensor state dict is ~20 MB; the bound stops a corrupt size
 * field from allocating gigabytes.
 */
const MAX_PICKLE_BYTES = 256 << 20;
/** Most zip entries accepted: one per storage plus a few; 10 million is far past any model. */
const MAX_ZIP_ENTRIES = 10_000_000;
/** The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes. */
const EOCD_SEARCH_BYTES = 22 + 0xffff;
/** Nesting of pickle containers accepted (a state dict nests 3 deep). */
const MAX_STACK = 100_000;
/**
 * Bytes of a legacy file first read for its pickles: 1 MiB (about 5,000 tensors' worth), doubled
 * while they run past it, up to MAX_PICKLE_BYTES. The storages after them are read on demand.
 */
const LEGACY_WINDOW_BYTES = 1 << 20;
/** `torch.serialization.MAGIC_NUMBER` and `PROTOCOL_VERSION`, the first two legacy pickles. */
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;
/**
 * Elements a tensor may hold beyond those of its storage: 2^26. Only a broadcast view (stride 0,
 * like `expand`) holds more, and such buffers are small; past this bound a size field is corrupt,
 * and materialising it would allocate gigabytes.
 */
const MAX_BROADCAST_ELEMENTS = 1 << 26;

interface ZipEntry {
  /** Where the bytes start; -1 until the local header has been read. */
  offset: number;
  size: number;
  method: number;
  localHeader: number;
}

class Storage {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
  ) {}
}

class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

class Global {
  constructor(readonly name: string) {}
}
class Mark {}

/** The pickled object and the storage bytes it refers to, by storage key. */
interface Layout {
  root: unknown;
  storages: Map<string, ZipEntry>;
}

/** An open torch checkpoint: tensor names, shapes and dtypes known; data read on demand. */
export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private fd: number,
    private readonly size: number,
    private readonly storages: Map<string, ZipEntry>,
    private readonly tensors: Map<string, TensorRef>,
  ) {}

  /**
   * Opens `path` (zip or legacy layout), reads its directory and unpickles the state dict; no
   * code runs and no tensor data is read. Every failure is a TorchPickleError naming the file.
   */
  static open(path: string): TorchCheckpoint {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      const layout = isLegacy(path, fd, size)
        ? readLegacy(path, fd, size)
        : readZip(path, fd, size);
      return new TorchCheckpoint(path, fd, size, layout.storages, stateDict(path, layout.root));
    } catch (err) {
      closeSync(fd);
      throw asPickleError(path, err);
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): { dtype: DType; shape: number[] } {
    const t = this.ref(name);
    return { dtype: t.storage.dtype, shape: [...t.size] };
  }

  /** The tensor `name` on the CPU, in its stored dtype (views of shared storages come out contiguous). */
  tensor(name: string): Tensor {
    const t = this.ref(name);
    try {
      return this.read(name, t);
    } catch (err) {
      throw asPickleError(this.path, err, `tensor "${name}"`);
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private read(name: string, t: TensorRef): Tensor {
    const key = t.storage.key;
    const entry = this.storages.get(key);
    if (entry === undefined)
      throw new TorchPickleError(this.path, `tensor "${name}": storage ${key} is missing`);
    const itemsize = dtypeInfo[t.storage.dtype].itemsize;
    if (entry.size !== t.storage.numel * itemsize) {
      throw new TorchPickleError(
        this.path,
        `tensor "${name}": storage ${key} is ${entry.size} bytes, expected ${t.storage.numel} × ${itemsize}`,
      );
    }
    checkView(this.path, name, t);
    if (this.fd < 0) throw new TorchPickleError(this.path, `tensor "${name}": the file is closed`);
    const where = `storage ${key} of tensor "${name}"`;
    const storage = fromBytes(
      readEntry(this.path, this.fd, this.size, entry, where, Number.MAX_SAFE_INTEGER),
      t.storage.dtype,
      [t.storage.numel],
    );
    return op("aten::as_strided", [storage, t.size, t.stride, t.offset]).contiguous();
  }

  private ref(name: string): TensorRef {
    const t = this.tensors.get(name);
    if (t === undefined)
      throw new TorchPickleError(this.path, `tensor "${name}" is not in the file`);
    return t;
  }
}

/** Any error while reading `file`, as a TorchPickleError that names it (and `what` inside it). */
function asPickleError(file: string, err: unknown, what?: string): TorchPickleError {
  if (err instanceof TorchPickleError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new TorchPickleError(file, `${what ? `${what}: ` : ""}cannot be read (${message})`, {
    cause: err,
  });
}

/** The root of a checkpoint must be a dict of tensor name → tensor. */
function stateDict(file: string, root: unknown): Map<string, TensorRef> {
  if (!(root instanceof Map)) {
    throw new TorchPickleError(file, `holds a ${describe(root)}, not a state dict of tensors`);
  }
  const tensors = new Map<string, TensorRef>();
  for (const [k, v] of root) {
    if (typeof k !== "string" || !(v instanceof TensorRef)) {
      throw new TorchPickleError(
        file,
        `entry ${JSON.stringify(String(k))} is a ${describe(v)}, not a tensor`,
      );
    }
    tensors.set(k, v);
  }
  return tensors;
}

/** The view must lie inside its storage and hold a bounded number of elements. */
function checkView(file: string, name: string, t: TensorRef): void {
  const numel = t.size.reduce((a, b) => a * b, 1);
  let last = t.offset;
  for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
  if (numel === 0) last = t.offset - 1;
  if (t.offset < 0 || t.stride.some((s) => s < 0) || last >= t.storage.numel) {
    throw new TorchPickleError(
      file,
      `tensor "${name}" reaches past the end of its storage ${t.storage.key}`,
    );
  }
  if (numel > Math.max(t.storage.numel, MAX_BROADCAST_ELEMENTS)) {
    throw new TorchPickleError(
      file,
      `tensor "${name}" has shape [${t.size.join(", ")}] (${numel} elements) over a storage of ${t.storage.numel}`,
    );
  }
}

function describe(v: unknown): string {
  if (v instanceof Global) return `global ${v.name}`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "tuple or list";
  if (v instanceof Storage) return "storage";
  return typeof v;
}

// ---- file access -------------------------------------------------------------------------------

/** `length` bytes at `position`, after checking they lie inside the `size`-byte file. */
function readAt(
  file: string,
  fd: number,
  size: number,
  length: number,
  position: number,
  what: string,
): Buffer {
  if (
    !Number.isSafeInteger(position) ||
    !Number.isSafeInteger(length) ||
    position < 0 ||
    length < 0 ||
    position + length > size
  ) {
    throw new TorchPickleError(
      file,
      `${what} (${length} bytes at byte ${position}) runs past the end of the ${size}-byte file`,
    );
  }
  const out = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, Math.min(1 << 30, length - done), position + done);
    if (got === 0)
      throw new TorchPickleError(file, `ends at byte ${position + done}, inside ${what}`);
    done += got;
  }
  return out;
}

/** A legacy file is a stream of pickles, so it starts with PROTO; a zip starts with "PK". */
function isLegacy(file: string, fd: number, size: number): boolean {
  return size >= 2 && readAt(file, fd, size, 1, 0, "the first byte")[0] === 0x80;
}

// ---- zip -----------------------------------------------------------------------------------------

function readZip(file: string, fd: number, size: number): Layout {
  const entries = readZipDirectory(file, fd, size);
  const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl === undefined) {
    throw new TorchPickleError(
      file,
      `has no <archive>/data.pkl entry, so it is not a torch.save file; ${CONVERT_HINT}`,
    );
  }
  const prefix = `${pkl.slice(0, -"data.pkl".length)}data/`;
  const bytes = readEntry(file, fd, size, entries.get(pkl)!, `zip entry ${pkl}`, MAX_PICKLE_BYTES);
  const { value: root } = unpickle(file, bytes, { label: "data.pkl byte" });
  const storages = new Map<string, ZipEntry>();
  for (const [name, e] of entries) {
    if (name.startsWith(prefix)) storages.set(name.slice(prefix.length), e);
  }
  return { root, storages };
}

function readZipDirectory(file: string, fd: number, size: number): Map<string, ZipEntry> {
  const tailStart = Math.max(0, size - EOCD_SEARCH_BYTES);
  const tail = readAt(file, fd, size, size - tailStart, tailStart, "the zip end record");
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new TorchPickleError(
      file,
      `is not a zip file (no end-of-central-directory record) nor a legacy torch.save pickle; ${CONVERT_HINT}`,
    );
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== 0x07064b50) {
      throw new TorchPickleError(file, "has Zip64 markers but no Zip64 locator");
    }
    const z64At = Number(tail.readBigUInt64LE(loc + 8));
    const z64 = readAt(file, fd, size, 56, z64At, "the Zip64 end record");
    if (z64.readUInt32LE(0) !== 0x06064b50)
      throw new TorchPickleError(file, `Zip64 end record at byte ${z64At} has a bad signature`);
    count = Number(z64.readBigUInt64LE(32));
    cdSize = Number(z64.readBigUInt64LE(40));
    cdOffset = Number(z64.readBigUInt64LE(48));
  }
  if (count > MAX_ZIP_ENTRIES || cdOffset + cdSize > size) {
    throw new TorchPickleError(
      file,
      `zip directory (${count} entries, ${cdSize} bytes at ${cdOffset}) does not fit the file`,
    );
  }
  const cd = readAt(file, fd, size, cdSize, cdOffset, "the zip directory");
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    const bad = (why: string) =>
      new TorchPickleError(file, `zip directory entry ${i} (byte ${cdOffset + p}) ${why}`);
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw bad("is malformed");
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw bad("runs past the end of the zip directory");
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    const entry = zip64Sizes(cd, p, p + 46 + nameLen, extraLen);
    if (entry === null) throw bad(`(${name}) has a truncated Zip64 extra field`);
    if (entry.compressed !== entry.size && entry.method === 0)
      throw bad(`(${name}) is stored but its sizes differ`);
    entries.set(name, {
      offset: -1,
      size: entry.size,
      method: entry.method,
      localHeader: entry.localHeader,
    });
    p = end;
  }
  return entries;
}

/**
 * The sizes and local header offset of the directory entry at `p`. The Zip64 extra field (id 1)
 * holds the 64-bit values of the fields that read 0xFFFFFFFF, in order; null when it is cut short.
 */
function zip64Sizes(
  cd: Buffer,
  p: number,
  extraStart: number,
  extraLen: number,
): { method: number; compressed: number; size: number; localHeader: number } | null {
  const out = {
    method: cd.readUInt16LE(p + 10),
    compressed: cd.readUInt32LE(p + 20),
    size: cd.readUInt32LE(p + 24),
    localHeader: cd.readUInt32LE(p + 42),
  };
  const extraEnd = extraStart + extraLen;
  for (let e = extraStart; e + 4 <= extraEnd;) {
    const id = cd.readUInt16LE(e);
    const len = cd.readUInt16LE(e + 2);
    if (e + 4 + len > extraEnd) return null;
    if (id === 1) {
      let q = e + 4;
      const next = () => {
        if (q + 8 > e + 4 + len) return null;
        q += 8;
        return Number(cd.readBigUInt64LE(q - 8));
      };
      for (const k of ["size", "compressed", "localHeader"] as const) {
        if (out[k] !== 0xffffffff) continue;
        const v = next();
        if (v === null) return null;
        out[k] = v;
      }
    }
    e += 4 + len;
  }
  return out;
}

/** The bytes of a stored (uncompressed) entry; a zip entry's local header gives where they start. */
function readEntry(
  file: string,
  fd: number,
  size: number,
  e: ZipEntry,
  what: string,
  maxBytes: number,
): Uint8Array {
  if (e.method !== 0) {
    throw new TorchPickleError(
      file,
      `${what} is compressed (method ${e.method}); torch.save stores entries uncompressed`,
    );
  }
  if (e.size > maxBytes)
    throw new TorchPickleError(file, `${what} is ${e.size} bytes, over the ${maxBytes}-byte limit`);
  if (e.offset < 0) {
    const local = readAt(file, fd, size, 30, e.localHeader, `the local header of ${what}`);
    if (local.readUInt32LE(0) !== 0x04034b50)
      throw new TorchPickleError(file, `${what} has a bad local header at byte ${e.localHeader}`);
    e.offset = e.localHeader + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  }
  return new Uint8Array(readAt(file, fd, size, e.size, e.offset, what).buffer.slice(0));
}

// ---- legacy ------------------------------------------------------------------------------------

/**
 * The legacy layout: five pickles (magic number, protocol version, sys_info, the object, the
 * sorted storage keys), then each storage as an int64 element count and its bytes. The pickles
 * are read from a window that grows while they run past it.
 */
function readLegacy(file: string, fd: number, size: number): Layout {
  for (let window = Math.min(size, LEGACY_WINDOW_BYTES); ;) {
    const bytes = new Uint8Array(readAt(file, fd, size, window, 0, "the legacy pickles"));
    try {
      return legacyLayout(file, fd, size, bytes);
    } catch (err) {
      if (!(err instanceof NeedMoreBytes)) throw err;
      if (window >= Math.min(size, MAX_PICKLE_BYTES)) {
        throw new TorchPickleError(
          file,
          `byte ${err.pos}: the legacy pickles run past the ${MAX_PICKLE_BYTES}-byte limit`,
        );
      }
      window = Math.min(size, MAX_PICKLE_BYTES, window * 2);
    }
  }
}

function legacyLayout(file: string, fd: number, size: number, bytes: Uint8Array): Layout {
  const partial = bytes.length < size;
  const found = new Map<string, Storage>();
  let pos = 0;
  const next = () => {
    const r = unpickle(file, bytes, { label: "byte", start: pos, partial, storages: found });
    pos = r.end;
    return r.value;
  };
  if (next() !== LEGACY_MAGIC) {
    throw new TorchPickleError(
      file,
      `is a pickle but not a torch.save file (no torch magic number); ${CONVERT_HINT}`,
    );
  }
  const version = next();
  if (version !== LEGACY_PROTOCOL)
    throw new TorchPickleError(file, `has legacy protocol version ${String(version)}, not 1001`);
  const sysInfo = next();
  if (!(sysInfo instanceof Map) || sysInfo.get("little_endian") !== true) {
    throw new TorchPickleError(
      file,
      "was not written on a little-endian machine (sys_info.little_endian is not True)",
    );
  }
  const root = next();
  const keysAt = pos;
  const keys = next();
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string"))
    throw new TorchPickleError(
      file,
      `byte ${keysAt}: the storage key list is not a list of strings`,
    );
  const storages = new Map<string, ZipEntry>();
  let at = pos;
  for (const key of keys as string[]) {
    const s = found.get(key);
    if (s === undefined)
      throw new TorchPickleError(
        file,
        `byte ${at}: storage ${key} is listed but no tensor uses it`,
      );
    const what = `storage ${key}`;
    const count = readAt(file, fd, size, 8, at, `the element count of ${what}`).readBigInt64LE(0);
    if (count !== BigInt(s.numel)) {
      throw new TorchPickleError(
        file,
        `byte ${at}: ${what} holds ${count} elements but its tensors say ${s.numel}`,
      );
    }
    const length = s.numel * dtypeInfo[s.dtype].itemsize;
    if (at + 8 + length > size) {
      throw new TorchPickleError(
        file,
        `${what} (${length} bytes at byte ${at + 8}) runs past the end of the ${size}-byte file`,
      );
    }
    storages.set(key, { offset: at + 8, size: length, method: 0, localHeader: -1 });
    at += 8 + length;
  }
  return { root, storages };
}

// ---- pickle ------------------------------------------------------------------------------------

/** Thrown when a pickle runs past a partial buffer: the caller reads more of the file. */
class NeedMoreBytes extends Error {
  constructor(readonly pos: number) {
    super(`pickle runs past byte ${pos}`);
  }
}

interface UnpickleOptions {
  /** How error messages name a position: "data.pkl byte" in a zip, "byte" of a legacy file. */
  label: string;
  /** Where the pickle starts in the buffer. @default 0 */
  start?: number;
  /** The buffer is a prefix of the file: running past it throws NeedMoreBytes. @default false */
  partial?: boolean;
  /** Collects every storage a persistent id names, by key. */
  storages?: Map<string, Storage>;
}

/** Interprets one pickle, resolving only ALLOWED_GLOBALS; never calls anything else. */
function unpickle(
  file: string,
  b: Uint8Array,
  o: UnpickleOptions,
): { value: unknown; end: number } {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = o.start ?? 0;
  const fail = (msg: string): never => {
    throw new TorchPickleError(file, `${o.label} ${pos}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n <= b.length) return;
    if (o.partial) throw new NeedMoreBytes(pos);
    fail("truncated");
  };
  const u8 = () => (need(1), b[pos++]);
  const u16 = () => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const i32 = () => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const text = (n: number) => (
    need(n),
    (pos += n),
    new TextDecoder().decode(b.subarray(pos - n, pos))
  );
  const line = () => {
    const end = b.indexOf(0x0a, pos);
    if (end < 0) need(b.length - pos + 1);
    const s = new TextDecoder().decode(b.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => (stack.length === 0 ? fail("stack underflow") : stack.pop());
  const top = () => (stack.length === 0 ? fail("stack underflow") : stack.at(-1));
  const popMark = (): unknown[] => {
    let i = stack.length - 1;
    while (i >= 0 && !(stack[i] instanceof Mark)) i--;
    if (i < 0) fail("no MARK on the stack");
    const items = stack.splice(i);
    return items.slice(1);
  };
  const push = (v: unknown) => {
    if (stack.length >= MAX_STACK) fail(`stack deeper than ${MAX_STACK}`);
    stack.push(v);
  };
  const global = (name: string) => {
    if (!ALLOWED_GLOBALS.has(name)) {
      fail(
        `refusing to load global ${name}: only torch tensors in a state dict are read, no pickle code is run; ${CONVERT_HINT}`,
      );
    }
    push(new Global(name));
  };
  // The container is read after its items are popped: it sits below them on the stack.
  const setItems = (kv: unknown[]) => {
    const dict = top();
    if (!(dict instanceof Map)) return fail("SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < kv.length; i += 2) dict.set(kv[i], kv[i + 1]);
  };
  const appendItems = (items: unknown[]) => {
    const list = top();
    if (!Array.isArray(list)) return fail("APPEND(S) on a non-list");
    for (const item of items) list.push(item);
  };
  /** LONG1: n bytes of little-endian two's complement; a bigint when past 2^53. */
  const long1 = () => {
    const n = u8();
    need(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[pos + i]);
    if (n > 0 && b[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    pos += n;
    const small = Number(v);
    return Number.isSafeInteger(small) ? small : v;
  };
  /** Opcodes a torch state dict uses (pickletools names), protocols 2 to 4. */
  const ops: Record<number, () => void> = {
    0x80: () => void u8(), // PROTO
    0x95: () => void (need(8), (pos += 8)), // FRAME
    0x28: () => push(new Mark()), // MARK
    0x7d: () => push(new Map()), // EMPTY_DICT
    0x5d: () => push([]), // EMPTY_LIST
    0x29: () => push([]), // EMPTY_TUPLE
    0x4e: () => push(null), // NONE
    0x88: () => push(true), // NEWTRUE
    0x89: () => push(false), // NEWFALSE
    0x4b: () => push(u8()), // BININT1
    0x4d: () => push(u16()), // BININT2
    0x4a: () => push(i32()), // BININT
    0x8a: () => push(long1()), // LONG1
    0x47: () => push((need(8), (pos += 8), view.getFloat64(pos - 8, false))), // BINFLOAT
    0x58: () => push(text(u32())), // BINUNICODE
    0x8c: () => push(text(u8())), // SHORT_BINUNICODE
    0x63: () => global(`${line()}.${line()}`), // GLOBAL
    0x93: () => {
      const name = pop();
      global(`${String(pop())}.${String(name)}`);
    }, // STACK_GLOBAL
    0x71: () => void memo.set(u8(), top()), // BINPUT
    0x72: () => void memo.set(u32(), top()), // LONG_BINPUT
    0x94: () => void memo.set(memo.size, top()), // MEMOIZE
    0x68: () => push(memoGet(u8())), // BINGET
    0x6a: () => push(memoGet(u32())), // LONG_BINGET
    0x74: () => push(popMark()), // TUPLE
    0x85: () => push([pop()]), // TUPLE1
    0x86: () => push([pop(), pop()].reverse()), // TUPLE2
    0x87: () => push([pop(), pop(), pop()].reverse()), // TUPLE3
    0x61: () => appendItems([pop()]), // APPEND (one-item lists, e.g. a single storage key)
    0x65: () => appendItems(popMark()), // APPENDS
    0x73: () => {
      const v = pop();
      setItems([pop(), v]);
    }, // SETITEM (one-entry dicts, e.g. each {'version': 1} of a state dict's _metadata)
    0x75: () => setItems(popMark()), // SETITEMS
    0x62: () => void pop(), // BUILD: only reached with OrderedDict's _metadata (module versions)
    0x51: () => push(persistentLoad(pop())), // BINPERSID
    0x52: () => {
      const args = pop();
      push(reduce(pop(), args));
    }, // REDUCE
  };
  const memoGet = (k: number) => (memo.has(k) ? memo.get(k) : fail(`memo ${k} is not set`));

  for (;;) {
    const opcode = u8();
    if (opcode === 0x2e) return { value: pop(), end: pos }; // STOP
    const run = ops[opcode];
    if (run === undefined) {
      fail(`opcode 0x${opcode.toString(16)} is not used by torch state dicts; ${CONVERT_HINT}`);
    }
    run();
  }

  /** `("storage", StorageType, key, location, numel[, view_metadata])` → the storage it names. */
  function persistentLoad(pid: unknown): Storage {
    if (
      !Array.isArray(pid) ||
      pid[0] !== "storage" ||
      !(pid[1] instanceof Global) ||
      typeof pid[2] !== "string"
    ) {
      return fail(`persistent id ${JSON.stringify(String(pid))} is not a torch storage`);
    }
    const dtype = STORAGE_DTYPES[pid[1].name.slice("torch.".length) as keyof typeof STORAGE_DTYPES];
    if (dtype === undefined) fail(`persistent id names ${pid[1].name}, not a storage type`);
    const numel = pid[4];
    if (!Number.isSafeInteger(numel) || (numel as number) < 0)
      fail(`storage ${pid[2]} has a bad size`);
    if (pid[5] !== undefined && pid[5] !== null)
      fail(`storage ${pid[2]} is a storage view, which torch stopped writing in 2018`);
    const storage = new Storage(pid[2], dtype, numel as number);
    const seen = o.storages?.get(storage.key);
    if (seen !== undefined && (seen.dtype !== storage.dtype || seen.numel !== storage.numel))
      fail(`storage ${storage.key} is named with two different types or sizes`);
    o.storages?.set(storage.key, storage);
    return storage;
  }

  function reduce(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof Global) || !Array.isArray(args))
      return fail("REDUCE needs a global and a tuple");
    if (fn.name === "collections.OrderedDict") return new Map();
    if (fn.name === "torch._utils._rebuild_parameter") {
      return args[0] instanceof TensorRef ? args[0] : fail("_rebuild_parameter of a non-tensor");
    }
    if (fn.name === "torch._utils._rebuild_tensor_v2") {
      const [storage, offset, size, stride] = args;
      const ints = (v: unknown): v is number[] =>
        Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
      if (
        !(storage instanceof Storage) ||
        !Number.isSafeInteger(offset) ||
        !ints(size) ||
        !ints(stride)
      ) {
        return fail(
          "_rebuild_tensor_v2 with arguments that are not (storage, offset, size, stride) of non-negative integers",
        );
      }
      if (size.length !== stride.length)
        fail("_rebuild_tensor_v2: size and stride differ in length");
      return new TensorRef(storage, offset as number, size, stride);
    }
    return fail(`${fn.name} cannot be called`);
  }
}
