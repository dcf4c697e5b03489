/**
 * `pytorch_model.bin` (torch.save's zip format) read without running pickle: a restricted
 * unpickler that interprets the opcodes of a state dict and accepts only torch's tensor rebuild
 * functions, storage types and OrderedDict. Any other global (the way a malicious pickle runs
 * code) is refused with a message saying how to convert the file to safetensors.
 *
 * References: PyTorch `torch/serialization.py` (`_save`, `_load`: entries `{archive}/data.pkl`,
 * `{archive}/data/{key}`, persistent ids `("storage", StorageType, key, location, numel)`),
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
  ) {
    super(`${file}: ${detail}`);
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

interface ZipEntry {
  offset: number;
  size: number;
  method: number;
  localHeader: number;
}

interface Storage {
  key: string;
  dtype: DType;
  numel: number;
}

interface TensorRef {
  storage: Storage;
  offset: number;
  size: number[];
  stride: number[];
}

class Global {
  constructor(readonly name: string) {}
}
class Mark {}

/** An open torch zip checkpoint: tensor names, shapes and dtypes known; data read on demand. */
export class TorchCheckpoint {
  private constructor(
    readonly path: string,
    private fd: number,
    private readonly entries: Map<string, ZipEntry>,
    private readonly prefix: string,
    private readonly tensors: Map<string, TensorRef>,
  ) {}

  /** Opens `path`, reads the zip directory and unpickles data.pkl (no code runs, no data is read). */
  static open(path: string): TorchCheckpoint {
    const fd = openSync(path, "r");
    try {
      const entries = readZipDirectory(path, fd);
      const pkl = [...entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
      if (pkl === undefined) {
        throw new TorchPickleError(
          path,
          `has no <archive>/data.pkl entry, so it is not a torch.save file; ${CONVERT_HINT}`,
        );
      }
      const prefix = pkl.slice(0, -"data.pkl".length);
      const bytes = readEntry(path, fd, entries.get(pkl)!, pkl, MAX_PICKLE_BYTES);
      const root = unpickle(path, bytes);
      if (!(root instanceof Map)) {
        throw new TorchPickleError(path, `holds a ${describe(root)}, not a state dict of tensors`);
      }
      const tensors = new Map<string, TensorRef>();
      for (const [k, v] of root) {
        if (typeof k !== "string" || !isTensorRef(v)) {
          throw new TorchPickleError(
            path,
            `entry ${JSON.stringify(String(k))} is a ${describe(v)}, not a tensor`,
          );
        }
        tensors.set(k, v);
      }
      return new TorchCheckpoint(path, fd, entries, prefix, tensors);
    } catch (err) {
      closeSync(fd);
      throw err;
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
    const entryName = `${this.prefix}data/${t.storage.key}`;
    const entry = this.entries.get(entryName);
    if (entry === undefined)
      throw new TorchPickleError(this.path, `tensor "${name}": storage ${entryName} is missing`);
    const itemsize = dtypeInfo[t.storage.dtype].itemsize;
    if (entry.size !== t.storage.numel * itemsize) {
      throw new TorchPickleError(
        this.path,
        `tensor "${name}": storage ${entryName} is ${entry.size} bytes, expected ${t.storage.numel} × ${itemsize}`,
      );
    }
    let last = t.offset;
    for (let d = 0; d < t.size.length; d++) last += (t.size[d] - 1) * t.stride[d];
    if (t.size.some((s) => s === 0)) last = t.offset - 1;
    if (t.offset < 0 || t.stride.some((s) => s < 0) || last >= t.storage.numel) {
      throw new TorchPickleError(
        this.path,
        `tensor "${name}" reaches past the end of its storage ${entryName}`,
      );
    }
    const storage = fromBytes(
      readEntry(this.path, this.fd, entry, entryName, Number.MAX_SAFE_INTEGER),
      t.storage.dtype,
      [t.storage.numel],
    );
    return op("aten::as_strided", [storage, t.size, t.stride, t.offset]).contiguous();
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private ref(name: string): TensorRef {
    const t = this.tensors.get(name);
    if (t === undefined)
      throw new TorchPickleError(this.path, `tensor "${name}" is not in the file`);
    return t;
  }
}

function isTensorRef(v: unknown): v is TensorRef {
  return typeof v === "object" && v !== null && "storage" in v && "stride" in v;
}

function describe(v: unknown): string {
  if (v instanceof Global) return `global ${v.name}`;
  if (v instanceof Map) return "dict";
  if (Array.isArray(v)) return "tuple or list";
  return typeof v;
}

// ---- zip -----------------------------------------------------------------------------------------

function readAt(file: string, fd: number, length: number, position: number): Buffer {
  const out = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, out, done, Math.min(1 << 30, length - done), position + done);
    if (got === 0)
      throw new TorchPickleError(file, `ends at byte ${position + done}, inside a zip record`);
    done += got;
  }
  return out;
}

function readZipDirectory(file: string, fd: number): Map<string, ZipEntry> {
  const size = fstatSync(fd).size;
  const tailStart = Math.max(0, size - EOCD_SEARCH_BYTES);
  const tail = readAt(file, fd, size - tailStart, tailStart);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const head = readAt(file, fd, Math.min(size, 2), 0);
    const legacy = head[0] === 0x80; // a bare pickle: torch.save(..., _use_new_zipfile_serialization=False)
    throw new TorchPickleError(
      file,
      `${legacy ? "uses torch's legacy (pre-1.6) non-zip format, which lethe does not read" : "is not a zip file (no end-of-central-directory record)"}; ${CONVERT_HINT}`,
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
    const z64 = readAt(file, fd, 56, Number(tail.readBigUInt64LE(loc + 8)));
    if (z64.readUInt32LE(0) !== 0x06064b50)
      throw new TorchPickleError(file, "Zip64 end record has a bad signature");
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
  const cd = readAt(file, fd, cdSize, cdOffset);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) {
      throw new TorchPickleError(file, `zip directory entry ${i} is malformed`);
    }
    const method = cd.readUInt16LE(p + 10);
    let compressed = cd.readUInt32LE(p + 20);
    let uncompressed = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let localHeader = cd.readUInt32LE(p + 42);
    const name = cd.toString("utf8", p + 46, p + 46 + nameLen);
    // Zip64 extra field (id 1): the 64-bit values of the fields that read 0xFFFFFFFF, in order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (id === 1) {
        let q = e + 4;
        const next = () => Number(cd.readBigUInt64LE((q += 8) - 8));
        if (uncompressed === 0xffffffff) uncompressed = next();
        if (compressed === 0xffffffff) compressed = next();
        if (localHeader === 0xffffffff) localHeader = next();
      }
      e += 4 + len;
    }
    entries.set(name, { offset: -1, size: uncompressed, method, localHeader });
    if (compressed !== uncompressed && method === 0) {
      throw new TorchPickleError(file, `zip entry ${name} is stored but its sizes differ`);
    }
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The bytes of a stored (uncompressed) entry; its local header gives where they start. */
function readEntry(
  file: string,
  fd: number,
  e: ZipEntry,
  name: string,
  maxBytes: number,
): Uint8Array {
  if (e.method !== 0) {
    throw new TorchPickleError(
      file,
      `zip entry ${name} is compressed (method ${e.method}); torch.save stores entries uncompressed`,
    );
  }
  if (e.size > maxBytes)
    throw new TorchPickleError(
      file,
      `zip entry ${name} is ${e.size} bytes, over the ${maxBytes}-byte limit`,
    );
  if (e.offset < 0) {
    const local = readAt(file, fd, 30, e.localHeader);
    if (local.readUInt32LE(0) !== 0x04034b50)
      throw new TorchPickleError(file, `zip entry ${name} has a bad local header`);
    e.offset = e.localHeader + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  }
  return new Uint8Array(readAt(file, fd, e.size, e.offset).buffer.slice(0));
}

// ---- pickle ------------------------------------------------------------------------------------

/** Interprets a pickle, resolving only ALLOWED_GLOBALS; never calls anything else. */
function unpickle(file: string, b: Uint8Array): unknown {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let pos = 0;
  const fail = (msg: string): never => {
    throw new TorchPickleError(file, `data.pkl byte ${pos}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > b.length) fail("truncated");
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
    if (end < 0) fail("unterminated line");
    const s = new TextDecoder().decode(b.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => (stack.length === 0 ? fail("stack underflow") : stack.pop());
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
  const setItems = (dict: unknown, kv: unknown[]) => {
    if (!(dict instanceof Map)) fail("SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < kv.length; i += 2)
      (dict as Map<unknown, unknown>).set(kv[i], kv[i + 1]);
  };

  const long1 = () => {
    // LONG1: n bytes of little-endian two's complement.
    const n = u8();
    need(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[pos + i]);
    if (n > 0 && b[pos + n - 1] & 0x80) v -= 1n << BigInt(8 * n);
    pos += n;
    return Number(v);
  };
  const top = () => stack.at(-1);
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
    0x61: () => void asList(top()).push(pop()), // APPEND
    0x65: () => {
      const items = popMark();
      asList(top()).push(...items);
    }, // APPENDS
    0x73: () => {
      const v = pop();
      setItems(top(), [pop(), v]);
    }, // SETITEM
    0x75: () => {
      const kv = popMark();
      setItems(top(), kv);
    }, // SETITEMS
    0x62: () => void pop(), // BUILD: only reached with OrderedDict's _metadata (module versions)
    0x51: () => push(persistentLoad(pop())), // BINPERSID
    0x52: () => {
      const args = pop();
      push(reduce(pop(), args));
    }, // REDUCE
  };
  const memoGet = (k: number) => (memo.has(k) ? memo.get(k) : fail(`memo ${k} is not set`));
  const asList = (v: unknown) => (Array.isArray(v) ? v : fail("APPEND(S) on a non-list"));

  for (;;) {
    const opcode = u8();
    if (opcode === 0x2e) return pop(); // STOP
    const run = ops[opcode];
    if (run === undefined) {
      fail(`opcode 0x${opcode.toString(16)} is not used by torch state dicts; ${CONVERT_HINT}`);
    }
    run();
  }

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
    return { key: pid[2], dtype, numel: numel as number };
  }

  function reduce(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof Global) || !Array.isArray(args))
      return fail("REDUCE needs a global and a tuple");
    if (fn.name === "collections.OrderedDict") return new Map();
    if (fn.name === "torch._utils._rebuild_parameter") {
      return isTensorRef(args[0]) ? args[0] : fail("_rebuild_parameter of a non-tensor");
    }
    if (fn.name === "torch._utils._rebuild_tensor_v2") {
      const [storage, offset, size, stride] = args;
      const ints = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
      if (
        !(typeof storage === "object" && storage && "key" in storage) ||
        !Number.isSafeInteger(offset) ||
        !ints(size) ||
        !ints(stride)
      ) {
        return fail(
          "_rebuild_tensor_v2 with arguments that are not (storage, offset, size, stride)",
        );
      }
      if ((size as number[]).length !== (stride as number[]).length)
        fail("_rebuild_tensor_v2: size and stride differ in length");
      return { storage, offset, size, stride } as TensorRef;
    }
    return fail(`${fn.name} cannot be called`);
  }
}
