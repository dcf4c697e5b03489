/**
 * TensorBoard event files (src/report/tensorboard.ts): CRC-32C against RFC 3720's test vectors;
 * a run's tb/ file read back record by record (TFRecord framing, both masked CRCs checked) and
 * each record decoded with protobufjs against TensorBoard's published Event/Summary definitions
 * (vendored in src/report/proto/tensorboard.proto): the file version first, then the training
 * scalars at global steps and the benchmark scores at stages; a rebuild after more events only
 * appends records.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import protobuf from "protobufjs";
import { EventLog, eventsFile } from "../../src/continual/events.js";
import {
  crc32c,
  maskedCrc32c,
  PROTO_FILE,
  writeTensorboard,
} from "../../src/report/tensorboard.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-tb-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));

test("CRC-32C: RFC 3720 B.4 test vectors; the mask TensorFlow applies", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  const inc = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  assert.equal(crc32c(inc), 0x46dd794e);
  const c = 0xe3069283;
  assert.equal(
    maskedCrc32c(Buffer.from("123456789")),
    (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0,
  );
});

/** Every record of a TFRecord file, with both CRCs checked. */
function records(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const len = Number(buf.readBigUInt64LE(at));
    assert.equal(
      buf.readUInt32LE(at + 8),
      maskedCrc32c(buf.subarray(at, at + 8)),
      `length CRC at ${at}`,
    );
    const data = buf.subarray(at + 12, at + 12 + len);
    assert.equal(buf.readUInt32LE(at + 12 + len), maskedCrc32c(data), `data CRC at ${at}`);
    out.push(data);
    at += 16 + len;
  }
  assert.equal(at, buf.length, "no trailing bytes");
  return out;
}

interface Decoded {
  wallTime: number;
  step: number;
  fileVersion?: string;
  summary?: { value: { tag: string; simpleValue: number }[] };
}

test("a run's tb/ file decodes with TensorBoard's protos; CRCs check; rebuilds append", () => {
  const run = join(tmp, "runs", "r1");
  mkdirSync(run, { recursive: true });
  const log = new EventLog(eventsFile(run));
  const step = (stage: number, s: number, loss: number) =>
    log.emit({
      type: "step",
      stage,
      step: s,
      totalSteps: 2,
      loss,
      lr: 1e-3,
      tokensPerSecond: 100,
      etaSeconds: 1,
      skippedSteps: 0,
      rss: 2 ** 30,
    });
  log.emit({ type: "stage_start", stage: 0, task: null });
  log.emit({ type: "eval", stage: 0, scores: { piqa: 0.5 }, tasks: { haiku: 10 } });
  log.emit({ type: "stage_start", stage: 1, task: "haiku" });
  step(1, 1, 3.5);
  step(1, 2, 2.25);
  log.emit({ type: "eval", stage: 1, scores: { piqa: 0.25 }, tasks: { haiku: 40 } });
  log.sync();
  const file = writeTensorboard(run)!;
  assert.match(file, /\/tb\/events\.out\.tfevents\.\d+\.lethe$/);
  const first = readFileSync(file);

  const Event = protobuf.loadSync(PROTO_FILE).lookupType("tensorboard.Event");
  const decode = (b: Buffer) =>
    Event.toObject(Event.decode(b), { longs: Number, defaults: false }) as Decoded;
  const evs = records(first).map(decode);
  assert.equal(evs[0].fileVersion, "brain.Event:2");
  const scalars = evs
    .slice(1)
    .flatMap((e) => e.summary!.value.map((v) => `${v.tag}@${e.step ?? 0}=${v.simpleValue}`));
  for (const want of [
    "benchmark/piqa@0=0.5",
    "task/haiku@0=10",
    "train/loss@1=3.5",
    "train/loss@2=2.25",
    "train/rss_bytes@2=1073741824",
    "benchmark/piqa@1=0.25",
    "task/haiku@1=40",
  ])
    assert.ok(scalars.includes(want), `${want} in ${scalars.join(" ")}`);
  assert.ok(
    evs.every((e) => e.wallTime > 1.7e9),
    "wall times are Unix seconds",
  );

  // Stage 2 continues the global step; the rebuilt file starts with the same bytes.
  step(2, 1, 1.5);
  log.close();
  writeTensorboard(run);
  const second = readFileSync(file);
  assert.deepEqual(second.subarray(0, first.length), first);
  const last = decode(records(second).at(-1)!);
  assert.equal(last.step, 3);
  assert.equal(last.summary!.value[0].tag, "train/loss");
  assert.equal(readdirSync(join(run, "tb")).length, 1, "one file, no temporary left");
});
