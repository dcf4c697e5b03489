/**
 * Fuzzing of the checkpoint readers (issue #15): 6,000 seeded mutations (byte flips,
 * truncations, insertions, deletions, numeric field edits and safetensors JSON header edits) of
 * small real files: a safetensors file written by lethe's own writer, torch.save-layout zip and
 * legacy pickles built here byte by byte, and, when the reference Python has torch, the same state
 * dict written by real torch.save in both layouts. Each mutated file must either load (every
 * tensor read) or throw an Error whose message names the file; a crash, a case running past its
 * time bound, or a bare RangeError/TypeError fails, naming the seed, case and mutations.
 *
 * The cases run in a child process (this file again, with LETHE_FUZZ_WORKER set), so a native
 * crash or an endless loop is caught and attributed to its case instead of taking the runner
 * down. Mutations depend only on the case number and the seed bytes (mulberry32 PRNG); lethe's
 * and the built seeds are the same bytes on every run, torch's legacy layout names storages by
 * memory address, so that one seed varies a little between runs.
 * References: the safetensors format (src/io/safetensors.ts), torch.save's zip and legacy
 * layouts (src/io/pickle.ts), the ZIP spec (PKWARE APPNOTE 6.3.x).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { TorchCheckpoint } from "../../src/io/pickle.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";
import { storedZip } from "../helpers/zip.js";
import { makeRng } from "../../src/continual/rng.js";

/**
 * Mutated files in all (a multiple of 3; LETHE_FUZZ_CASES runs more, for a deeper local search):
 * the safetensors seed gets one third, the pickle seeds share the rest.
 */
const TOTAL_CASES = Number(process.env.LETHE_FUZZ_CASES ?? 6000);
/** A case that takes longer has hung: a load of these tiny files takes milliseconds. */
const CASE_TIMEOUT_MS = 10_000;
/** The PRNG seed every case's stream derives from. */
const FUZZ_SEED = 0x1e7e;

type Kind = "safetensors" | "pickle";
interface Seed {
  name: string;
  kind: Kind;
  path: string;
}
interface WorkerJob {
  dir: string;
  seeds: Seed[];
  cases: number[];
}

// ---- deterministic randomness ------------------------------------------------------------------

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = makeRng(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---- mutations ---------------------------------------------------------------------------------

/** Values that sit on the edges of the length and offset checks. */
function interesting(rng: Rng, len: number): bigint {
  return rng.pick([
    0n,
    1n,
    0x7fn,
    0x80n,
    0xffn,
    0xffffn,
    0x7fffffffn,
    0x80000000n,
    0xffffffffn,
    0x7fffffffffffffffn,
    0xffffffffffffffffn,
    BigInt(len),
    BigInt(len + 1),
    BigInt(Math.max(0, len - 1)),
    BigInt(rng.int(len + 64)),
    BigInt(rng.int(256)),
  ]);
}

function writeLE(b: Buffer, at: number, width: number, v: bigint): void {
  for (let i = 0; i < width && at + i < b.length; i++)
    b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

const flip = (b: Buffer, rng: Rng): [Buffer, string] => {
  const out = Buffer.from(b);
  const n = 1 + rng.int(8);
  for (let i = 0; i < n; i++) {
    const at = rng.int(out.length);
    out[at] = rng.chance(0.5) ? out[at] ^ (1 << rng.int(8)) : rng.int(256);
  }
  return [out, `flip ${n}`];
};
const truncate = (b: Buffer, rng: Rng): [Buffer, string] => {
  const at = rng.int(b.length);
  return [b.subarray(0, at), `truncate ${at}`];
};
const insert = (b: Buffer, rng: Rng): [Buffer, string] => {
  const at = rng.int(b.length + 1);
  const bytes = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
  return [
    Buffer.concat([b.subarray(0, at), bytes, b.subarray(at)]),
    `insert ${bytes.length}@${at}`,
  ];
};
const remove = (b: Buffer, rng: Rng): [Buffer, string] => {
  const at = rng.int(b.length);
  const n = 1 + rng.int(16);
  return [Buffer.concat([b.subarray(0, at), b.subarray(at + n)]), `delete ${n}@${at}`];
};
/** Overwrites a 1-, 2-, 4- or 8-byte little-endian field with an edge value. */
const numeric = (b: Buffer, rng: Rng): [Buffer, string] => {
  const out = Buffer.from(b);
  const width = rng.pick([1, 2, 4, 8]);
  const at = rng.int(out.length);
  const v = interesting(rng, out.length);
  writeLE(out, at, width, v);
  return [out, `field${width * 8}@${at}=${v}`];
};

/** Edits the JSON header of a safetensors file and writes it back with a (usually) right length. */
const safetensorsHeader = (b: Buffer, rng: Rng): [Buffer, string] => {
  let n: number;
  let header: Record<string, unknown>;
  try {
    n = Number(b.readBigUInt64LE(0));
    header = JSON.parse(b.toString("utf8", 8, 8 + n)) as Record<string, unknown>;
  } catch {
    return flip(b, rng); // an earlier mutation already broke the header
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) return flip(b, rng);
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const name = rng.pick(names);
  const entry = header[name] as { dtype: unknown; shape: unknown[]; data_offsets: unknown[] };
  if (
    typeof entry !== "object" ||
    entry === null ||
    !Array.isArray(entry.shape) ||
    !Array.isArray(entry.data_offsets)
  )
    return flip(b, rng);
  const weird = () =>
    rng.pick<unknown>([
      0,
      -1,
      1,
      2 ** 53,
      1e300,
      1.5,
      "3",
      null,
      [],
      {},
      Number(interesting(rng, b.length)),
    ]);
  const edits = [
    () => (entry.dtype = rng.pick(["F32", "I64", "BF16", "BOOL", "F8_E4M3", "f32", "", 7])),
    () =>
      (entry.shape = entry.shape.length
        ? entry.shape.map((d) => (rng.chance(0.5) ? weird() : d))
        : [weird()]),
    () => entry.shape.push(rng.pick([0, 1, 2, 1 << 30])),
    () => (entry.data_offsets = entry.data_offsets.map((o) => (rng.chance(0.5) ? weird() : o))),
    () => (entry.data_offsets = [...entry.data_offsets].reverse()),
    () => delete header[name],
    () => (header[name] = weird()),
    () =>
      (header.__metadata__ = rng.pick<unknown>([{ format: 1 }, "pt", [], null, { a: { b: 1 } }])),
    () => (header[`${name}.copy`] = structuredClone(entry)),
  ];
  const k = rng.int(edits.length);
  edits[k]();
  let json = Buffer.from(JSON.stringify(header));
  if (rng.chance(0.2)) json = Buffer.concat([json, Buffer.from(" ".repeat(rng.int(9)))]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(rng.chance(0.85) ? BigInt(json.length) : interesting(rng, json.length));
  return [Buffer.concat([len, json, b.subarray(8 + n)]), `header edit ${k} of ${name}`];
};

/** Byte positions of a zip's structural fields: EOCD, directory entries and local headers. */
function zipFields(b: Buffer): Array<[number, number]> {
  const fields: Array<[number, number]> = [];
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) return fields;
  for (const [off, w] of [
    [8, 2],
    [10, 2],
    [12, 4],
    [16, 4],
  ])
    fields.push([eocd + off, w]);
  let p = b.readUInt32LE(eocd + 16);
  for (let i = 0; i < b.readUInt16LE(eocd + 10) && p + 46 <= b.length; i++) {
    for (const [off, w] of [
      [10, 2],
      [20, 4],
      [24, 4],
      [28, 2],
      [30, 2],
      [32, 2],
      [42, 4],
    ])
      fields.push([p + off, w]);
    const local = b.readUInt32LE(p + 42);
    if (local + 30 <= b.length)
      for (const [off, w] of [
        [8, 2],
        [18, 4],
        [22, 4],
        [26, 2],
        [28, 2],
      ])
        fields.push([local + off, w]);
    p += 46 + b.readUInt16LE(p + 28) + b.readUInt16LE(p + 30) + b.readUInt16LE(p + 32);
  }
  return fields;
}

/** Overwrites one of the seed's zip fields (positions found in the unmutated seed). */
const zipField = (b: Buffer, rng: Rng, fields: Array<[number, number]>): [Buffer, string] => {
  const [at, width] = rng.pick(fields);
  const out = Buffer.from(b);
  const v = interesting(rng, b.length);
  writeLE(out, at, width, v);
  return [out, `zip field${width * 8}@${at}=${v}`];
};

/** Swaps a byte for a pickle opcode torch state dicts use, or for a protocol-4 one. */
const opcode = (b: Buffer, rng: Rng): [Buffer, string] => {
  const out = Buffer.from(b);
  const at = rng.int(Math.min(out.length, 4096));
  out[at] = rng.pick([
    0x80, 0x95, 0x28, 0x7d, 0x5d, 0x29, 0x4e, 0x88, 0x89, 0x4b, 0x4d, 0x4a, 0x8a, 0x47, 0x58, 0x8c,
    0x63, 0x93, 0x71, 0x72, 0x94, 0x68, 0x6a, 0x74, 0x85, 0x86, 0x87, 0x61, 0x65, 0x73, 0x75, 0x62,
    0x51, 0x52, 0x2e,
  ]);
  return [out, `opcode@${at}=0x${out[at].toString(16)}`];
};

type Mutation = (b: Buffer, rng: Rng, zipFields: Array<[number, number]>) => [Buffer, string];

/** 1 to 3 mutations; `fields` are the seed's zip fields (empty for other layouts). */
function mutate(
  seed: Buffer,
  kind: Kind,
  fields: Array<[number, number]>,
  rng: Rng,
): [Buffer, string[]] {
  const ops: Mutation[] = [flip, flip, truncate, insert, remove, numeric];
  if (kind === "safetensors") ops.push(safetensorsHeader, safetensorsHeader, safetensorsHeader);
  else
    ops.push(opcode, opcode, ...(fields.length > 0 ? [zipField, zipField, zipField] : [numeric]));
  let b = seed;
  const done: string[] = [];
  for (let n = 1 + rng.int(3); n > 0 && b.length > 0; n--) {
    let what: string;
    [b, what] = rng.pick(ops)(b, rng, fields);
    done.push(what);
  }
  return [b, done];
}

// ---- seeds -------------------------------------------------------------------------------------

/** Protocol-2 pickle opcodes, as torch.save writes them. */
const op = {
  str: (s: string) => {
    const t = Buffer.from(s);
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(t.length, 1);
    return Buffer.concat([h, t]);
  },
  int: (n: number) => {
    if (n < 256) return Buffer.from([0x4b, n]); // BININT1
    const h = Buffer.alloc(5);
    h[0] = 0x4a; // BININT
    h.writeInt32LE(n, 1);
    return h;
  },
  global: (module: string, name: string) => Buffer.from(`c${module}\n${name}\n`),
  tuple: (items: Buffer[]) => Buffer.concat([Buffer.from([0x28]), ...items, Buffer.from([0x74])]),
  orderedDict: () =>
    Buffer.concat([op.global("collections", "OrderedDict"), Buffer.from([0x29, 0x52])]),
};

interface SeedTensor {
  name: string;
  storage: "FloatStorage" | "LongStorage";
  key: string;
  numel: number;
  offset: number;
  size: number[];
  stride: number[];
}

/** Two storages: a float one shared by a matrix, its bias-like slice and a strided view; a long one. */
const SEED_TENSORS: SeedTensor[] = [
  {
    name: "a.weight",
    storage: "FloatStorage",
    key: "0",
    numel: 6,
    offset: 0,
    size: [2, 3],
    stride: [3, 1],
  },
  {
    name: "a.bias",
    storage: "FloatStorage",
    key: "0",
    numel: 6,
    offset: 3,
    size: [3],
    stride: [1],
  },
  {
    name: "a.every_other",
    storage: "FloatStorage",
    key: "0",
    numel: 6,
    offset: 1,
    size: [2],
    stride: [2],
  },
  { name: "b.ids", storage: "LongStorage", key: "1", numel: 2, offset: 0, size: [2], stride: [1] },
];
const SEED_STORAGES = {
  "0": new Float32Array([1, 2, 3, 4, 5, 6]),
  "1": new BigInt64Array([7n, -8n]),
};

/** An OrderedDict state dict with `_metadata` {"": {"version": 1}} (SETITEMS, SETITEM, BUILD). */
function stateDictPickle(): Buffer {
  const entries = SEED_TENSORS.map((t) =>
    Buffer.concat([
      op.str(t.name),
      op.global("torch._utils", "_rebuild_tensor_v2"),
      op.tuple([
        // ("storage", FloatStorage, key, "cpu", numel) BINPERSID: the storage.
        Buffer.concat([
          op.tuple([
            op.str("storage"),
            op.global("torch", t.storage),
            op.str(t.key),
            op.str("cpu"),
            op.int(t.numel),
          ]),
          Buffer.from([0x51]),
        ]),
        op.int(t.offset),
        op.tuple(t.size.map(op.int)),
        op.tuple(t.stride.map(op.int)),
        Buffer.from([0x89]), // NEWFALSE: requires_grad
        op.orderedDict(), // backward hooks
      ]),
      Buffer.from([0x52]), // REDUCE
    ]),
  );
  return Buffer.concat([
    Buffer.from([0x80, 0x02]),
    op.orderedDict(),
    Buffer.from([0x71, 0x00, 0x28]), // BINPUT 0, MARK
    ...entries,
    Buffer.from([0x75]), // SETITEMS
    Buffer.from([0x7d]), // EMPTY_DICT (BUILD state)
    op.str("_metadata"),
    op.orderedDict(),
    op.str(""),
    Buffer.from([0x7d]),
    op.str("version"),
    op.int(1),
    Buffer.from([0x73, 0x73, 0x73, 0x62, 0x2e]), // SETITEM ×3, BUILD, STOP
  ]);
}

const bytesOf = (a: Float32Array | BigInt64Array) =>
  new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function zipSeed(): Buffer {
  return storedZip({
    "archive/data.pkl": stateDictPickle(),
    "archive/byteorder": Buffer.from("little"),
    "archive/data/0": bytesOf(SEED_STORAGES["0"]),
    "archive/data/1": bytesOf(SEED_STORAGES["1"]),
    "archive/version": Buffer.from("3\n"),
  });
}

/** torch's legacy layout: magic, protocol, sys_info, the state dict, the keys, then storages. */
function legacySeed(): Buffer {
  const magic = Buffer.from([
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
  ]);
  const protocol = Buffer.from([0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e]);
  const sysInfo = Buffer.concat([
    Buffer.from([0x80, 0x02, 0x7d, 0x28]),
    op.str("protocol_version"),
    op.int(1001),
    op.str("little_endian"),
    Buffer.from([0x88]),
    op.str("type_sizes"),
    Buffer.from([0x7d, 0x28]),
    ...["short", "int", "long"].flatMap((k, i) => [op.str(k), op.int([2, 4, 4][i])]),
    Buffer.from([0x75, 0x75, 0x2e]),
  ]);
  const keys = Buffer.concat([
    Buffer.from([0x80, 0x02, 0x5d, 0x28]),
    op.str("0"),
    op.str("1"),
    Buffer.from([0x65, 0x2e]),
  ]);
  const storages = (["0", "1"] as const).flatMap((k) => {
    const count = Buffer.alloc(8);
    count.writeBigInt64LE(BigInt(SEED_STORAGES[k].length));
    return [count, Buffer.from(bytesOf(SEED_STORAGES[k]))];
  });
  return Buffer.concat([magic, protocol, sysInfo, stateDictPickle(), keys, ...storages]);
}

/** A small HF-style state dict (OrderedDict with _metadata) saved by real torch in both layouts. */
const TORCH_SEEDS = `
import collections, sys, torch
torch.manual_seed(0)
sd = collections.OrderedDict()
sd["a.weight"] = torch.randn(2, 3)
sd["a.bias"] = sd["a.weight"][1]
sd["b.ids"] = torch.tensor([7, -8])
sd["c.half"] = torch.randn(3).half()
sd._metadata = collections.OrderedDict([("", {"version": 1}), ("a", {"version": 1})])
torch.save(sd, sys.argv[1] + ".zip")
torch.save(sd, sys.argv[1] + ".legacy", _use_new_zipfile_serialization=False)
`;

function writeSeeds(dir: string): Seed[] {
  const seeds: Seed[] = [];
  const safe = join(dir, "seed.safetensors");
  tidy(() =>
    saveTensors(
      safe,
      new Map([
        [
          "a.weight",
          tensor([
            [1, 2, 3],
            [4, 5, 6],
          ]),
        ],
        ["a.half", tensor([0.5, -2], { dtype: "float16" })],
        ["b.ids", tensor([7, -8], { dtype: "int64" })],
        ["c.mask", tensor([1, 0, 1], { dtype: "bool" })],
        ["d.scalar", tensor(3.5, { dtype: "bfloat16" })],
      ]),
      { format: "pt" },
    ),
  );
  seeds.push({ name: "lethe.safetensors", kind: "safetensors", path: safe });
  writeFileSync(join(dir, "seed.zip"), zipSeed());
  seeds.push({ name: "built.zip", kind: "pickle", path: join(dir, "seed.zip") });
  writeFileSync(join(dir, "seed.legacy"), legacySeed());
  seeds.push({ name: "built.legacy", kind: "pickle", path: join(dir, "seed.legacy") });
  if (pythonHas("torch")) {
    const r = spawnSync(PYTHON, ["-c", TORCH_SEEDS, join(dir, "torch")]);
    assert.equal(r.status, 0, r.stderr.toString());
    seeds.push({ name: "torch.zip", kind: "pickle", path: join(dir, "torch.zip") });
    seeds.push({ name: "torch.legacy", kind: "pickle", path: join(dir, "torch.legacy") });
  } else console.log(`# SKIP torch.save seeds: ${PYTHON} with torch is not available`);
  return seeds;
}

/** Case numbers per seed: a third of TOTAL_CASES for safetensors, the rest over the pickles. */
function planCases(seeds: Seed[]): number[] {
  const pickles = seeds.filter((s) => s.kind === "pickle").length;
  return seeds.map((s) =>
    s.kind === "safetensors" ? TOTAL_CASES / 3 : Math.ceil((TOTAL_CASES * 2) / 3 / pickles),
  );
}

// ---- loading -----------------------------------------------------------------------------------

/** Reads every tensor of `path`; throws what the reader throws. */
function load(kind: Kind, path: string): void {
  if (kind === "safetensors") {
    for (const t of loadTensors(path).values()) t.dispose();
    return;
  }
  const f = TorchCheckpoint.open(path);
  try {
    for (const k of f.keys()) tidy(() => void f.tensor(k));
  } finally {
    f.close();
  }
}

/** Why an error fails the fuzz criteria, or null when it is a clean error naming the file. */
function judge(err: unknown, path: string): string | null {
  if (!(err instanceof Error)) return `threw a non-Error: ${String(err)}`;
  if (err instanceof RangeError || err instanceof TypeError || err instanceof SyntaxError)
    return `raw ${err.name}: ${err.message}`;
  if (!err.message.includes(path)) return `${err.name} without the file name: ${err.message}`;
  return null;
}

/** The child: runs the cases, one line per event on stdout (synchronous on a pipe). */
function runWorker(job: WorkerJob): void {
  const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  job.seeds.forEach((seed, s) => {
    const bytes = readFileSync(seed.path);
    const fields = bytes.subarray(0, 2).toString("latin1") === "PK" ? zipFields(bytes) : [];
    const path = join(job.dir, `mutant-${seed.name}`);
    const counts = { loaded: 0, refused: 0, wrapped: 0, examples: [] as string[] };
    for (let i = 0; i < job.cases[s]; i++) {
      const rng = new Rng(FUZZ_SEED ^ Math.imul(s + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b));
      const [mutant, ops] = mutate(bytes, seed.kind, fields, rng);
      writeFileSync(path, mutant);
      const id = `${seed.name}#${i} [${ops.join(", ")}]`;
      say({ start: id });
      try {
        load(seed.kind, path);
        counts.loaded++;
      } catch (err) {
        const why = judge(err, path);
        if (why !== null) say({ bad: id, why, stack: (err as Error).stack });
        counts.refused++;
        // Caught only by the readers' last-resort wrapping; worth a specific check.
        if ((err as Error).cause instanceof Error && counts.wrapped++ < 3)
          counts.examples.push(`${id}: ${(err as Error).message}`);
      }
    }
    say({ seed: seed.name, ...counts });
  });
  say({ end: true });
}

interface Outcome {
  bad: string[];
  summaries: string[];
  cases: number;
}

/** Runs the worker, failing a case that crashes it or takes longer than CASE_TIMEOUT_MS. */
function runCases(job: WorkerJob): Promise<Outcome> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ["--import", "tsx", self], {
    env: { ...process.env, LETHE_FUZZ_WORKER: JSON.stringify(job) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Outcome = { bad: [], summaries: [], cases: 0 };
  let current = "(worker start-up)";
  let ended = false;
  let stderr = "";
  let rest = "";
  let timer: NodeJS.Timeout;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      out.bad.push(`${current}: still running after ${CASE_TIMEOUT_MS} ms (hang)`);
      child.kill("SIGKILL");
    }, CASE_TIMEOUT_MS);
  };
  arm();
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith("{")) continue; // not an event: a warning from a library
      const e = JSON.parse(line) as Record<string, unknown>;
      if (typeof e.start === "string") {
        current = e.start;
        out.cases++;
        arm();
      } else if (typeof e.bad === "string") out.bad.push(`${e.bad}: ${e.why}\n${e.stack}`);
      else if (typeof e.seed === "string") out.summaries.push(line);
      else if (e.end) ended = true;
    }
  });
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (!ended && !out.bad.some((b) => b.includes("hang")))
        out.bad.push(
          `${current}: the worker died (exit ${code}, signal ${signal})\n${stderr.slice(-4000)}`,
        );
      resolve(out);
    }),
  );
}

if (process.env.LETHE_FUZZ_WORKER) {
  runWorker(JSON.parse(process.env.LETHE_FUZZ_WORKER) as WorkerJob);
} else {
  let dir = "";
  let seeds: Seed[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "lethe-fuzz-"));
    seeds = writeSeeds(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the seeds load: lethe's safetensors, built and torch.save pickles (zip and legacy)", () => {
    for (const seed of seeds) {
      load(seed.kind, seed.path);
      if (!seed.name.startsWith("built.")) continue;
      const f = TorchCheckpoint.open(seed.path);
      const got = tidy(() => f.keys().map((k) => [k, f.tensor(k).to("float64").toNumbers()]));
      f.close();
      assert.deepEqual(got, [
        ["a.weight", [1, 2, 3, 4, 5, 6]],
        ["a.bias", [4, 5, 6]],
        ["a.every_other", [2, 4]],
        ["b.ids", [7, -8]],
      ]);
    }
  });

  test(`${TOTAL_CASES} seeded mutations load or fail with an Error naming the file`, async () => {
    const t0 = Date.now();
    const out = await runCases({ dir, seeds, cases: planCases(seeds) });
    for (const s of out.summaries) console.log(`# ${s}`);
    console.log(`# ${out.cases} cases in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const b of out.bad.slice(0, 3)) console.log(`# ${b.replaceAll("\n", "\n# ")}`);
    assert.deepEqual(
      out.bad.slice(0, 10).map((b) => b.split("\n")[0]),
      [],
      `${out.bad.length} failing cases`,
    );
    assert.ok(out.cases >= 2000, `only ${out.cases} cases ran`);
  });
}
