/**
 * The evaluation result cache: request results keyed by a content hash (model fingerprint +
 * request), so an unchanged model is never rescored. The role of lm-eval v0.4.x's `CachingLM`
 * (lm_eval/api/model.py, `hash_args`: sha256 of the request's JSON), stored without SQLite.
 *
 * On disk: a directory of segment files `seg-*.jsonl`, format "lethe-eval-cache" version 1.
 * The first line is the header `{"format":"lethe-eval-cache","version":1}`, then one
 * `{"k": <64 hex sha256>, "v": <JSON value>}` per line. Each `flush()` writes one new segment to a
 * temporary name and renames it, so a crash leaves either the whole segment or none, and two
 * processes flushing at once never interleave lines. Opening a cache with more than
 * `MAX_SEGMENTS` segments merges them into one (written the same way) and removes the rest.
 *
 * Fingerprints: `filesFingerprint` hashes model files as they are on disk (the cheap one for
 * checkpoints: sha256 of each file's sha256 and name); `moduleFingerprint` hashes a model's
 * state dict in memory (names, dtypes, shapes and raw bytes, in `stateDict()` order).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { sha256File } from "../io/hash.js";
import type { Module } from "../nn/index.js";
import { writeAtomic } from "../util/fs.js";

const FORMAT = "lethe-eval-cache";
const VERSION = 1;
/** Segments merged on open beyond this many: keeps opening a long-used cache to a few reads. */
export const MAX_SEGMENTS = 64;
/** A segment larger than this is not a cache segment (1e6 requests at ~100 bytes each). */
const MAX_SEGMENT_BYTES = 1 << 30;
const KEY = /^[0-9a-f]{64}$/;

/** sha256 hex of the JSON of `parts`: the cache key of one request. */
export function requestKey(parts: unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/** sha256 over each file's name and sha256, in the given order (model and adapter files). */
export function filesFingerprint(paths: string[]): string {
  const h = createHash("sha256");
  for (const p of paths) h.update(`${basename(p)}\0${sha256File(p)}\n`);
  return h.digest("hex");
}

/** sha256 over a module's state dict: each tensor's name, dtype, shape and bytes. */
export function moduleFingerprint(model: Module): string {
  const h = createHash("sha256");
  for (const [name, t] of model.stateDict()) {
    h.update(`${name}\0${t.dtype}\0${t.shape.join(",")}\n`);
    h.update(t.toBytes());
  }
  return h.digest("hex");
}

export class ResultCache {
  readonly #values = new Map<string, unknown>();
  readonly #pending = new Map<string, unknown>();

  private constructor(
    readonly dir: string,
    readonly readOnly: boolean,
  ) {}

  /**
   * Opens (creating it if needed) the cache in `dir` and reads every segment. `readOnly` (the
   * ranks other than 0 of a group): results are recorded in memory only, and nothing is written.
   */
  static open(dir: string, o: { readOnly?: boolean } = {}): ResultCache {
    const readOnly = o.readOnly ?? false;
    if (!readOnly) mkdirSync(dir, { recursive: true });
    const cache = new ResultCache(dir, readOnly);
    const segments = existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.startsWith("seg-") && f.endsWith(".jsonl"))
          .sort()
      : [];
    for (const f of segments) cache.#read(join(dir, f));
    if (segments.length > MAX_SEGMENTS && !readOnly) {
      cache.#write(cache.#values);
      for (const f of segments) rmSync(join(dir, f), { force: true });
    }
    return cache;
  }

  #read(file: string): void {
    const size = statSync(file).size;
    if (size > MAX_SEGMENT_BYTES)
      throw new Error(`${file}: ${size} bytes exceeds the ${MAX_SEGMENT_BYTES}-byte segment bound`);
    const lines = readFileSync(file, "utf8").split("\n");
    if (lines.at(-1) === "") lines.pop();
    lines.forEach((line, i) => {
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new Error(`${file}: line ${i + 1} is not JSON`);
      }
      const r = row as Record<string, unknown>;
      if (i === 0) {
        if (r?.format !== FORMAT || r.version !== VERSION)
          throw new Error(
            `${file}: line 1 must be the header {"format":"${FORMAT}","version":${VERSION}}`,
          );
        return;
      }
      if (typeof r?.k !== "string" || !KEY.test(r.k) || !("v" in r))
        throw new Error(`${file}: line ${i + 1}: field "k" must be a sha256 hex key beside "v"`);
      this.#values.set(r.k, r.v);
    });
  }

  #write(entries: Map<string, unknown>): void {
    const name = `seg-${Date.now().toString().padStart(15, "0")}-${randomBytes(6).toString("hex")}`;
    const lines = [JSON.stringify({ format: FORMAT, version: VERSION })];
    for (const [k, v] of entries) lines.push(JSON.stringify({ k, v }));
    writeAtomic(join(this.dir, `${name}.jsonl`), lines.join("\n") + "\n");
  }

  /** Number of results stored or pending. */
  get size(): number {
    return this.#values.size;
  }

  get(key: string): unknown | undefined {
    return this.#values.get(key);
  }

  /** Records a result; it reaches the disk at the next `flush()`. */
  set(key: string, value: unknown): void {
    this.#values.set(key, value);
    if (!this.readOnly) this.#pending.set(key, value);
  }

  /** Writes the results recorded since the last flush as one new segment (atomic). */
  flush(): void {
    if (this.#pending.size === 0) return;
    this.#write(this.#pending);
    this.#pending.clear();
  }
}
