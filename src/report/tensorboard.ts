/**
 * TensorBoard event files for a run, made from its event log (src/continual/events.ts):
 * `runs/<run>/tb/events.out.tfevents.<start>.lethe`, so `tensorboard --logdir STUDY/runs` shows
 * every run of a study as its own curves.
 *
 * Format: TFRecord framing (uint64 length, masked CRC-32C of the length, data, masked CRC-32C of
 * the data; little-endian) of `tensorboard.Event` protos, encoded with protobufjs from the
 * vendored TensorBoard definitions in proto/tensorboard.proto. The first event carries
 * `file_version: "brain.Event:2"`; each later one a Summary of scalars (`simple_value`):
 *   train/loss, train/lr, train/tokens_per_second, train/skipped_steps, train/rss_bytes
 *     (train/grad_norm when logged) at the run's global optimizer step (events.ts globalSteps);
 *   benchmark/<name> (primary metric) and task/<name> (generation metric) at step = stage.
 * References: TensorFlow's `tensorflow/core/lib/io/record_writer.cc` and `crc32c.h` (Mask:
 * rotate right 15, add 0xa282ead8); TensorBoard `compat/proto/event.proto`, `summary.proto`.
 *
 * The file is rebuilt whole from the log (a pure function of its lines, written atomically), so
 * it only grows by appended records between rebuilds and a TensorBoard tailing it sees each
 * record once.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import protobuf from "protobufjs";
import { globalSteps, readEvents, type RunEvent } from "../continual/events.js";
import { makeDir } from "../util/fs.js";

export const TB_DIR = "tb";
export const PROTO_FILE = new URL("./proto/tensorboard.proto", import.meta.url).pathname;

let root: protobuf.Root | null = null;
/** The vendored TensorBoard messages (loaded once). */
export function tensorboardProtos(): { Event: protobuf.Type } {
  root ??= protobuf.loadSync(PROTO_FILE);
  return { Event: root.lookupType("tensorboard.Event") };
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1; // Castagnoli, reflected
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `data`. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = CRC32C_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 bits, add 0xa282ead8 (mod 2^32). */
export const maskedCrc32c = (data: Uint8Array): number => {
  const c = crc32c(data);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

/** One TFRecord: length, its masked CRC, the data, its masked CRC. */
export function tfRecord(data: Uint8Array): Buffer {
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(BigInt(data.length), 0);
  head.writeUInt32LE(maskedCrc32c(head.subarray(0, 8)), 8);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data), 0);
  return Buffer.concat([head, data, tail]);
}

interface Scalars {
  wallTime: number;
  step: number;
  values: [string, number][];
}

/** The scalar summaries of a run's events, in log order. */
export function scalarsOf(events: readonly RunEvent[]): Scalars[] {
  const global = new Map(globalSteps(events).map((g) => [g.event, g.global]));
  const out: Scalars[] = [];
  for (const e of events) {
    if (e.type === "step") {
      const values: [string, number][] = [
        ["train/loss", e.loss],
        ["train/lr", e.lr],
        ["train/tokens_per_second", e.tokensPerSecond],
        ["train/skipped_steps", e.skippedSteps],
        ["train/rss_bytes", e.rss],
      ];
      if (e.gradNorm !== undefined) values.push(["train/grad_norm", e.gradNorm]);
      out.push({ wallTime: e.time, step: global.get(e)!, values });
    } else if (e.type === "eval") {
      const values: [string, number][] = [
        ...Object.entries(e.scores).map(([k, v]): [string, number] => [`benchmark/${k}`, v]),
        ...Object.entries(e.tasks).map(([k, v]): [string, number] => [`task/${k}`, v]),
      ];
      out.push({ wallTime: e.time, step: e.stage, values });
    }
  }
  return out;
}

/** The bytes of an event file holding `events` (empty when there are none). */
export function tensorboardFile(events: readonly RunEvent[]): Buffer {
  if (events.length === 0) return Buffer.alloc(0);
  const { Event } = tensorboardProtos();
  const encode = (o: object) => tfRecord(Event.encode(Event.fromObject(o)).finish());
  const records = [
    encode({
      wallTime: events[0].time,
      step: 0,
      fileVersion: "brain.Event:2",
      sourceMetadata: { writer: "lethe" },
    }),
    ...scalarsOf(events).map((s) =>
      encode({
        wallTime: s.wallTime,
        step: s.step,
        summary: { value: s.values.map(([tag, simpleValue]) => ({ tag, simpleValue })) },
      }),
    ),
  ];
  return Buffer.concat(records);
}

/** The event file's path in a run folder: named by the log's first event time. */
export function tensorboardPath(runDir: string, events: readonly RunEvent[]): string {
  return join(runDir, TB_DIR, `events.out.tfevents.${Math.floor(events[0].time)}.lethe`);
}

/** Rebuilds `runDir/tb/`'s event file from `runDir/events.jsonl`; returns it (null: no events). */
export function writeTensorboard(runDir: string): string | null {
  const events = readEvents(runDir);
  if (events.length === 0) return null;
  const file = tensorboardPath(runDir, events);
  makeDir(join(runDir, TB_DIR));
  // writeAtomic's temporary-file-and-rename, for bytes.
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, tensorboardFile(events));
    renameSync(tmp, file);
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { force: true });
  }
  return file;
}

/**
 * A runner `onEvent` (src/continual/run.ts RunnerOptions) that keeps each run's TensorBoard file
 * current: rebuilt at stage ends, evaluations, the run's end or error, and every `intervalMs`
 * (default 30 s) of steps.
 */
export function tensorboardSink(intervalMs = 30_000): (dir: string, e: RunEvent) => void {
  const last = new Map<string, number>();
  return (dir, e) => {
    const now = Date.now();
    if (e.type === "step" && now - (last.get(dir) ?? 0) < intervalMs) return;
    last.set(dir, now);
    writeTensorboard(dir);
  };
}
