/**
 * A run's event log, `runs/<run>/events.jsonl`: one JSON object per line, appended as things
 * happen. Progress output, TensorBoard files (src/report/tensorboard.ts) and the live dashboard
 * (src/report/serve.ts) read it; only rank 0 writes it (executeRun's `main`).
 *
 * Every line has `type` and `time` (Unix seconds). Types:
 *   resume       a run started again with stages done: `stage` (the first one left)
 *   stage_start  `stage` (1..N; 0 is the base model's evaluation), `task` (null for stage 0)
 *   step         `stage`, `step`, `totalSteps`, `loss`, `lr`, `tokensPerSecond`, `etaSeconds`,
 *                `skippedSteps`, `rss` (the process's resident bytes); `gradNorm` when known
 *   checkpoint   `stage`, `path`: a stage's final checkpoint
 *   eval         `stage`, `scores` (benchmark → its primary metric), `tasks` (task → metric)
 *   stage_end    `stage`, `seconds`
 *   run_end      the run is complete
 *   error        `message`: the error the run stopped on
 *
 * Durability: each event is one append (one write(2) of one line, O_APPEND, on a descriptor
 * opened once per run); the file is fsynced at stage boundaries only, so logging costs training
 * nothing measurable. A process killed mid-write (kill -9) leaves at most a torn last line: the
 * reader skips it, and the writer cuts it off when it opens the file again. Any other bad line is
 * an error naming the file and line. Reference: JSON Lines (https://jsonlines.org/); TensorBoard's
 * own append-only event files.
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readSync,
} from "node:fs";
import { join } from "node:path";

export const EVENTS_FILE = "events.jsonl";

interface Base {
  /** Unix seconds. */
  time: number;
}

export type RunEvent = Base &
  (
    | { type: "resume"; stage: number }
    | { type: "stage_start"; stage: number; task: string | null }
    | {
        type: "step";
        stage: number;
        step: number;
        totalSteps: number;
        loss: number;
        lr: number;
        tokensPerSecond: number;
        etaSeconds: number | null;
        skippedSteps: number;
        rss: number;
        gradNorm?: number;
      }
    | { type: "checkpoint"; stage: number; path: string }
    | {
        type: "eval";
        stage: number;
        scores: Record<string, number>;
        tasks: Record<string, number>;
      }
    | { type: "stage_end"; stage: number; seconds: number }
    | { type: "run_end" }
    | { type: "error"; message: string }
  );

/** An event as the runner gives it (the log adds `time`). */
export type RunEventInput = RunEvent extends infer E
  ? E extends Base
    ? Omit<E, "time">
    : never
  : never;

export const eventsFile = (runDir: string) => join(runDir, EVENTS_FILE);

/** The append side of a run's event log; `emit` also hands each event to `onEvent`. */
export class EventLog {
  private fd: number;
  constructor(
    readonly path: string,
    private onEvent?: (e: RunEvent) => void,
  ) {
    this.fd = openSync(path, existsSync(path) ? "r+" : "w+");
    cutTornTail(this.fd);
    closeSync(this.fd);
    this.fd = openSync(path, "a");
  }

  emit(e: RunEventInput): void {
    const event = { time: Date.now() / 1000, ...e } as RunEvent;
    appendFileSync(this.fd, JSON.stringify(event) + "\n");
    this.onEvent?.(event);
  }

  /** To disk (stage boundaries). */
  sync(): void {
    fsyncSync(this.fd);
  }

  close(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}

/** Truncates the file after its last newline: what a kill mid-append left. */
function cutTornTail(fd: number): void {
  const size = fstatSync(fd).size;
  if (size === 0) return;
  const chunk = Buffer.alloc(Math.min(size, 1 << 16));
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - chunk.length);
    const n = readSync(fd, chunk, 0, end - start, start);
    const nl = chunk.subarray(0, n).lastIndexOf(10);
    if (nl >= 0) {
      if (start + nl + 1 !== size) ftruncateSync(fd, start + nl + 1);
      return;
    }
    end = start;
  }
  ftruncateSync(fd, 0);
}

/**
 * Parses event-log text: every complete line; an unterminated last line (a torn write) is
 * skipped; any other line that is not a JSON object with a `type` throws, naming `file`:line.
 */
export function parseEvents(text: string, file: string): RunEvent[] {
  const lines = text.split("\n");
  lines.pop(); // after the last newline: "" or a torn line
  return lines.map((line, i) => {
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    if (typeof v !== "object" || v === null || typeof (v as RunEvent).type !== "string")
      throw new Error(`${file}:${i + 1}: not an event (an object with a "type")`);
    return v as RunEvent;
  });
}

/** A run folder's events (none when it has no log yet). */
export function readEvents(runDir: string): RunEvent[] {
  const file = eventsFile(runDir);
  return existsSync(file) ? parseEvents(readFileSync(file, "utf8"), file) : [];
}

/**
 * Global step of each step event, for curves over a whole run: a stage's steps follow the
 * previous stages' (each counted as its `totalSteps`).
 */
export function globalSteps(
  events: readonly RunEvent[],
): { event: Extract<RunEvent, { type: "step" }>; global: number }[] {
  const totals = new Map<number, number>();
  for (const e of events) if (e.type === "step") totals.set(e.stage, e.totalSteps);
  const offset = (stage: number) =>
    [...totals].filter(([s]) => s < stage).reduce((a, [, n]) => a + n, 0);
  return events
    .filter((e): e is Extract<RunEvent, { type: "step" }> => e.type === "step")
    .map((event) => ({ event, global: offset(event.stage) + event.step }));
}
