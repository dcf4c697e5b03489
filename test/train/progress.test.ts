/**
 * Tests for src/train/progress.ts: the line's fields and formats, redraw-in-place on a TTY,
 * and throttled plain lines otherwise (first and last step always shown).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatDuration,
  formatProgress,
  progressPrinter,
  type ProgressEvent,
} from "../../src/train/progress.js";

const event = (step: number, stage = "alpaca"): ProgressEvent => ({
  stage,
  step,
  totalSteps: 300,
  loss: 1.90344,
  lr: 2e-5,
  tokensPerSecond: 4210.4,
  etaSeconds: 201,
});

test("formatProgress shows stage, step/total, loss, lr, tokens/s and ETA", () => {
  assert.equal(
    formatProgress(event(12)),
    "[alpaca] step  12/300 loss 1.9034 lr 2.00e-5 4,210 tok/s ETA 3:21",
  );
  assert.equal(formatProgress({ ...event(1), etaSeconds: null }).slice(-9), "ETA --:--");
  assert.equal(formatDuration(3723), "1:02:03");
  assert.equal(formatDuration(59.6), "1:00");
});

test("plain lines at most once per interval; first, last and new stages always", () => {
  const out: string[] = [];
  let now = 0;
  const print = progressPrinter({
    stream: { write: (s: string) => out.push(s) },
    intervalMs: 1000,
    now: () => now,
  });
  for (const [t, step] of [
    [0, 1],
    [500, 2],
    [1200, 3],
    [1300, 4],
    [1400, 300],
  ]) {
    now = t;
    print(event(step));
  }
  now = 1450;
  print(event(1, "next"));
  assert.deepEqual(
    out.map((l) =>
      l
        .match(/^\[(\w+)\] step +(\d+)/)!
        .slice(1)
        .join(" "),
    ),
    ["alpaca 1", "alpaca 3", "alpaca 300", "next 1"],
  );
  assert.ok(
    out.every((l) => l.endsWith("\n") && !l.includes("\r")),
    "plain lines",
  );
});

test("on a TTY the line is redrawn in place and ends with a newline at the last step", () => {
  const out: string[] = [];
  const print = progressPrinter({
    stream: { isTTY: true, write: (s: string) => out.push(s) },
    intervalMs: 0,
  });
  print(event(1));
  print(event(300));
  assert.equal(out[0], `\r${formatProgress(event(1))}\x1b[K`);
  assert.equal(out[1], `\r${formatProgress(event(300))}\x1b[K\n`);
});
