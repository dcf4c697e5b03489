/**
 * Tests for src/io/safetensors.ts: round trips for every dtype, byte-exact layout against bytes
 * built by hand from the format spec (the same bytes safetensors 0.8.0 `save_file` writes), a
 * battery of malformed files, crash-safe writing, and reading a 300 MB file one tensor at a time.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  MAX_HEADER_BYTES,
  SAFE_DTYPES,
  SafetensorsError,
  SafetensorsFile,
  writeSafetensors,
  type SafeDtype,
} from "../../src/io/safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "lethe-safetensors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function tmpPath(): string {
  return join(dir, `t${counter++}.safetensors`);
}

/** A file made of an 8-byte length, the given header text, and `data`. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0), length?: bigint): string {
  const json = Buffer.from(header, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(length ?? BigInt(json.length));
  const path = tmpPath();
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

/** Expected bytes of a file, assembled from the spec: u64 LE length, JSON padded to 8, data. */
function specBytes(header: string, data: number[]): Buffer {
  const json = header + " ".repeat((8 - (Buffer.byteLength(header) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, "utf8"), Buffer.from(data)]);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function assertOpenFails(path: string, tensor: string | null, detail: RegExp): void {
  assert.throws(
    () => SafetensorsFile.open(path),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
      assert.ok(err.message.startsWith(`${path}: `), err.message);
      assert.equal(err.tensor, tensor);
      if (tensor !== null) assert.ok(err.message.includes(`tensor "${tensor}"`), err.message);
      assert.match(err.message, detail);
      return true;
    },
  );
}

test("round trip keeps bytes, shapes and metadata for every dtype, zero-size and scalars", () => {
  const path = tmpPath();
  const tensors: Record<string, { dtype: SafeDtype; shape: number[]; data: Uint8Array }> = {};
  for (const dtype of Object.keys(SAFE_DTYPES) as SafeDtype[]) {
    const size = SAFE_DTYPES[dtype].itemsize;
    tensors[`${dtype}.matrix`] = { dtype, shape: [2, 3], data: randomBytes(6 * size) };
    tensors[`${dtype}.scalar`] = { dtype, shape: [], data: randomBytes(size) };
    tensors[`${dtype}.empty`] = { dtype, shape: [0, 4], data: new Uint8Array(0) };
  }
  const metadata = { format: "pt", note: 'quotes " and\nnewlines, é' };
  writeSafetensors(path, tensors, metadata);

  using file = SafetensorsFile.open(path);
  assert.deepEqual(file.metadata, metadata);
  assert.deepEqual([...file.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(file.info(name), {
      dtype: t.dtype,
      shape: t.shape,
      byteLength: t.data.byteLength,
    });
    const bytes = file.read(name);
    assert.equal(bytes.byteOffset, 0);
    assert.deepEqual(Buffer.from(bytes), Buffer.from(t.data), name);
  }
});

test("keys() lists tensors in file order, which is by decreasing alignment then name", () => {
  const path = tmpPath();
  writeSafetensors(path, [
    { name: "b", dtype: "BOOL", shape: [1], data: new Uint8Array([1]) },
    { name: "a", dtype: "F32", shape: [1], data: f32Bytes([1]) },
    { name: "c", dtype: "I64", shape: [0], data: new Uint8Array(0) },
  ]);
  using file = SafetensorsFile.open(path);
  assert.deepEqual(file.keys(), ["c", "a", "b"]);
  assert.deepEqual(file.metadata, {});
});

test("writer matches the spec byte for byte (the Rust crate's own serialization vectors)", () => {
  const data = [0, 1, 2, 3, 4, 5];
  const le = [...Buffer.from(f32Bytes(data))];

  const a = tmpPath();
  writeSafetensors(a, { "attn.0": { dtype: "F32", shape: [1, 2, 3], data: f32Bytes(data) } });
  const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(Buffer.byteLength(header), 64); // a multiple of 8: no padding
  assert.deepEqual(readFileSync(a), specBytes(header, le));

  const b = tmpPath();
  writeSafetensors(b, { attn0: { dtype: "F32", shape: [1, 1, 2, 3], data: f32Bytes(data) } });
  const padded = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  const expected = specBytes(padded, le);
  assert.equal(expected.readBigUInt64LE(0), 72n); // 65 bytes of JSON + 7 spaces
  assert.deepEqual(readFileSync(b), expected);

  const c = tmpPath();
  writeSafetensors(c, {});
  assert.deepEqual(
    [...readFileSync(c)],
    [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32],
  );
});

test("writer layout equals safetensors save_file: dtype rank, UTF-8 name order, metadata", () => {
  // Same tensors as `safetensors.numpy.save(t, metadata={"format": "pt"})` in safetensors 0.8.0,
  // whose header and data are exactly the string and bytes below: printed by
  // `.venv/bin/python test/io/reference/safetensors_layout.py`.
  const one = (dtype: SafeDtype, shape: number[], fill: number) => ({
    dtype,
    shape,
    data: new Uint8Array(shape.reduce((x, y) => x * y, SAFE_DTYPES[dtype].itemsize)).fill(fill),
  });
  const path = tmpPath();
  writeSafetensors(
    path,
    {
      b: one("I32", [3], 1),
      a: one("F16", [2], 2),
      c: one("I64", [2], 3),
      z: one("BOOL", [3], 1),
      a2: one("F32", [1, 2], 4),
      d: one("F64", [], 5),
      e: one("I8", [0, 3], 0),
      u: one("U8", [1], 7),
      s: one("I16", [1], 8),
      "0": one("I16", [1], 9),
      é: one("I16", [1], 10),
      "\uffff": one("I16", [1], 11),
      "\u{1F600}": one("I16", [1], 12),
    },
    { format: "pt" },
  );
  const entry = (name: string, dtype: string, shape: string, begin: number, end: number) =>
    `"${name}":{"dtype":"${dtype}","shape":[${shape}],"data_offsets":[${begin},${end}]}`;
  const header =
    '{"__metadata__":{"format":"pt"},' +
    [
      entry("c", "I64", "2", 0, 16),
      entry("d", "F64", "", 16, 24),
      entry("a2", "F32", "1,2", 24, 32),
      entry("b", "I32", "3", 32, 44),
      entry("a", "F16", "2", 44, 48),
      entry("0", "I16", "1", 48, 50),
      entry("s", "I16", "1", 50, 52),
      entry("é", "I16", "1", 52, 54),
      entry("\uffff", "I16", "1", 54, 56), // U+FFFF is EF BF BF in UTF-8, before F0 9F 98 80
      entry("\u{1F600}", "I16", "1", 56, 58),
      entry("e", "I8", "0,3", 58, 58),
      entry("u", "U8", "1", 58, 59),
      entry("z", "BOOL", "3", 59, 62),
    ].join(",") +
    "}";
  const data = [
    ...Array(16).fill(3),
    ...Array(8).fill(5),
    ...Array(8).fill(4),
    ...Array(12).fill(1),
    ...Array(4).fill(2),
    9,
    9,
    8,
    8,
    10,
    10,
    11,
    11,
    12,
    12,
    7,
    1,
    1,
    1,
  ];
  assert.deepEqual(readFileSync(path), specBytes(header, data));
});

test("metadata keys are written in UTF-8 order whatever the insertion order", () => {
  const a = tmpPath();
  const b = tmpPath();
  writeSafetensors(a, {}, { zeta: "1", alpha: "2" });
  writeSafetensors(b, {}, { alpha: "2", zeta: "1" });
  assert.deepEqual(readFileSync(a), readFileSync(b));
  assert.deepEqual(readFileSync(a), specBytes('{"__metadata__":{"alpha":"2","zeta":"1"}}', []));
});

/** One header entry, written as JSON with whatever (possibly invalid) values it is given. */
function entry(name: string, dtype: string, shape: unknown, offsets: unknown): string {
  return `${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: offsets })}`;
}

function bytesFile(bytes: number[]): string {
  const path = tmpPath();
  writeFileSync(path, Buffer.from(bytes));
  return path;
}

const none = new Uint8Array(0);
const malformed: Array<{ what: string; path: string; tensor: string | null; detail: RegExp }> = [
  {
    what: "file shorter than the length field",
    path: bytesFile([1, 0, 0]),
    tensor: null,
    detail: /is 3 bytes, too short for the 8-byte header length/,
  },
  {
    what: "header length past the end of the file",
    path: rawFile("{}", none, 100n),
    tensor: null,
    detail: /header length 100 runs past the end of the 10-byte file/,
  },
  {
    what: "header length of 2^63",
    path: rawFile("{}", none, 1n << 63n),
    tensor: null,
    detail: new RegExp(`header length ${1n << 63n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`),
  },
  {
    what: "header length one over the cap",
    path: rawFile("{}", none, BigInt(MAX_HEADER_BYTES + 1)),
    tensor: null,
    detail: /header length 100000001 exceeds the limit of 100000000 bytes/,
  },
  {
    what: "header not JSON",
    path: rawFile('{"a": '),
    tensor: null,
    detail: /header is not valid JSON/,
  },
  {
    what: "JSON array header",
    path: rawFile('[{"a": 1}]'),
    tensor: null,
    detail: /header must start with '\{', found "\[\{\\"a\\": 1\}\]"/,
  },
  {
    what: "header not UTF-8",
    path: bytesFile([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff, 0xfe, 0x7d]),
    tensor: null,
    detail: /header is not valid UTF-8/,
  },
  {
    what: "entry not an object",
    path: rawFile('{"w": [1, 2]}'),
    tensor: "w",
    detail: /must map to an object with dtype, shape and data_offsets/,
  },
  {
    what: "unknown dtype",
    path: rawFile(`{${entry("w", "F8_E4M3", [2], [0, 2])}}`, new Uint8Array(2)),
    tensor: "w",
    detail:
      /has unknown dtype "F8_E4M3" \(known: BOOL, U8, I8, I16, F16, BF16, I32, F32, F64, I64\)/,
  },
  {
    what: "negative dimension",
    path: rawFile(`{${entry("w", "F32", [-1, 2], [0, 8])}}`, new Uint8Array(8)),
    tensor: "w",
    detail: /has shape \[-1,2\]; expected an array of non-negative integers/,
  },
  {
    what: "fractional dimension",
    path: rawFile(`{${entry("w", "F32", [1.5], [0, 4])}}`, new Uint8Array(4)),
    tensor: "w",
    detail: /has shape \[1.5\]; expected an array of non-negative integers/,
  },
  {
    what: "offsets reversed",
    path: rawFile(`{${entry("w", "U8", [0], [4, 0])}}`, new Uint8Array(4)),
    tensor: "w",
    detail: /has data_offsets \[4,0\]; expected \[begin, end\] with 0 <= begin <= end/,
  },
  {
    what: "offsets past the end of the file",
    path: rawFile(`{${entry("w", "F32", [3], [0, 12])}}`, new Uint8Array(8)),
    tensor: "w",
    detail: /has data_offsets \[0, 12\] past the end of the 8-byte data section/,
  },
  {
    what: "byte count not dtype × shape",
    path: rawFile(
      `{${entry("h.0.attn.c_attn.weight", "F32", [3, 4], [0, 10])}}`,
      new Uint8Array(10),
    ),
    tensor: "h.0.attn.c_attn.weight",
    detail: /has data_offsets \[0, 10\] but dtype F32 × shape \[3, 4\] needs 48 bytes/,
  },
  {
    what: "overlapping tensors",
    path: rawFile(
      `{${entry("a", "F32", [2], [0, 8])},${entry("b", "F32", [2], [4, 12])}}`,
      new Uint8Array(12),
    ),
    tensor: "b",
    detail: /has data_offsets \[4, 12\] overlapping tensor "a" \(which ends at 8\)/,
  },
  {
    what: "hole between tensors",
    path: rawFile(
      `{${entry("a", "F32", [1], [0, 4])},${entry("b", "F32", [1], [8, 12])}}`,
      new Uint8Array(12),
    ),
    tensor: "b",
    detail: /starts at 8, leaving bytes \[4, 8\) of the data section covered by no tensor/,
  },
  {
    what: "bytes after the last tensor",
    path: rawFile(`{${entry("a", "F32", [1], [0, 4])}}`, new Uint8Array(6)),
    tensor: null,
    detail: /data section is 6 bytes but its tensors cover only the first 4/,
  },
  {
    what: "duplicate tensor name",
    path: rawFile(
      `{${entry("a", "F32", [1], [0, 4])},${entry("a", "F32", [1], [4, 8])}}`,
      new Uint8Array(8),
    ),
    tensor: "a",
    detail: /appears twice in the header/,
  },
  {
    what: "metadata value not a string",
    path: rawFile('{"__metadata__":{"epoch":3}}'),
    tensor: null,
    detail: /__metadata__ entry "epoch" must be a string, got 3/,
  },
];

test("malformed files give errors naming the file and the tensor", async (t) => {
  for (const { what, path, tensor, detail } of malformed) {
    await t.test(what, () => assertOpenFails(path, tensor, detail));
  }
});

test("a header with nested braces in names and metadata still parses", () => {
  const header = `{"__metadata__":{"k,{":"v}\\"["},"a\\"{,":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`;
  using file = SafetensorsFile.open(rawFile(header, new Uint8Array([42])));
  assert.deepEqual(file.keys(), ['a"{,']);
  assert.deepEqual(file.metadata, { "k,{": 'v}"[' });
  assert.deepEqual([...file.read('a"{,')], [42]);
});

test("read() names the file and tensor for unknown names and after close", () => {
  const path = tmpPath();
  writeSafetensors(path, { w: { dtype: "U8", shape: [1], data: new Uint8Array([1]) } });
  const file = SafetensorsFile.open(path);
  assert.throws(() => file.info("v"), { message: `${path}: tensor "v" is not in the file` });
  file.close();
  assert.throws(() => file.read("w"), {
    message: `${path}: tensor "w" cannot be read: the file is closed`,
  });
});

test("an error below the format checks (a directory given as the file) still names the path", () => {
  const sub = join(dir, "not-a-file.safetensors");
  mkdirSync(sub);
  assert.throws(
    () => SafetensorsFile.open(sub),
    (e: Error) => {
      assert.ok(e instanceof SafetensorsError);
      assert.equal(
        e.message,
        `${sub}: cannot be read (EISDIR: illegal operation on a directory, read)`,
      );
      return true;
    },
  );
});

test("writer validates everything first and leaves the old file untouched on error", () => {
  const path = tmpPath();
  writeSafetensors(path, { w: { dtype: "F32", shape: [2], data: f32Bytes([1, 2]) } });
  const before = readFileSync(path);
  const good = { name: "good", dtype: "F32" as const, shape: [1], data: f32Bytes([1]) };
  const bad: Array<[Parameters<typeof writeSafetensors>[1], RegExp]> = [
    [
      [good, { name: "bad", dtype: "F32", shape: [3, 4], data: new Uint8Array(10) }],
      /tensor "bad" has 10 bytes of data but dtype F32 × shape \[3, 4\] needs 48 bytes/,
    ],
    [[good, good], /tensor "good" is given twice/],
    [[{ ...good, name: "__metadata__" }], /the name is reserved/],
    [[{ ...good, shape: [-1] }], /tensor "good" has shape \[-1\]/],
    [[{ ...good, dtype: "F8" as SafeDtype }], /tensor "good" has unknown dtype "F8"/],
  ];
  for (const [tensors, message] of bad) {
    assert.throws(
      () => writeSafetensors(path, tensors),
      (err: unknown) => {
        assert.ok(err instanceof SafetensorsError);
        assert.ok(err.message.startsWith(`${path}: `));
        assert.match(err.message, message);
        return true;
      },
    );
    assert.deepEqual(readFileSync(path), before);
  }
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes(".tmp-")),
    [],
  );
});

test("writer removes its temp file when the final rename fails", () => {
  const target = join(dir, "a-directory");
  mkdirSync(join(target, "inside"), { recursive: true });
  assert.throws(() =>
    writeSafetensors(target, { w: { dtype: "U8", shape: [1], data: new Uint8Array([1]) } }),
  );
  assert.ok(existsSync(join(target, "inside")));
  assert.ok(!existsSync(`${target}.tmp-${process.pid}`));
});

test("reading a 300 MB file one tensor at a time keeps RSS growth well under its size", () => {
  const path = tmpPath();
  const chunk = randomBytes(10 << 20);
  const tensors = Array.from({ length: 30 }, (_, i) => ({
    name: `layer.${String(i).padStart(2, "0")}`,
    dtype: "U8" as const,
    shape: [chunk.length],
    data: chunk,
  }));
  writeSafetensors(path, tensors);
  const fileBytes = 30 * chunk.length;

  const start = process.memoryUsage().rss;
  let peak = start;
  using file = SafetensorsFile.open(path);
  for (const name of file.keys()) {
    const bytes = file.read(name);
    assert.ok(chunk.equals(bytes), name);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const growth = peak - start;
  console.log(
    `# rss growth ${(growth / 2 ** 20).toFixed(0)} MiB reading a ${fileBytes / 2 ** 20} MiB file`,
  );
  assert.ok(growth < fileBytes / 2, `rss grew by ${growth} bytes for a ${fileBytes}-byte file`);
});
