/**
 * A graceful stop, asked of a running study from outside: Slurm's time limit (`--signal=USR1`),
 * preemption, `scontrol requeue` or `scancel` (SIGTERM). The trainer checks `stopRequested()`
 * after every optimizer step: on a request it writes a checkpoint at that step (optimizer state
 * included, as every in-progress checkpoint) and throws `StopRequested`; the study runner checks
 * before each stage and each evaluation and throws the same, without writing failed.json. The run
 * then releases its lock, and a later resume continues from that checkpoint, exactly (the
 * trainer's resume repeats an uninterrupted run bit for bit on CPU).
 *
 * Two ways in, because a stage trains in one synchronous loop: a JavaScript signal handler runs
 * only when the event loop gets control (between stages, during the evaluation's awaits), never
 * inside a stage. So a request also arrives as a file whose existence the loop checks (one stat
 * per step): the Slurm element's batch script traps the signal and writes the signal's name into
 * it (src/continual/slurm.ts). `handleStopSignals` installs the in-process handlers; without it
 * nothing changes for a plain `lethe run` (SIGTERM and SIGINT still end it at once).
 *
 * Reference: the torch-elastic / Lightning SLURM convention (`--signal=USR1@90`, save a
 * checkpoint on the signal, requeue), minus the checkpoint-from-inside-the-handler that a
 * synchronous loop cannot do.
 */
import { existsSync, readFileSync } from "node:fs";
import { constants } from "node:os";
import type { Dist } from "../dist/index.js";

/** The signals that ask for a graceful stop. */
export const STOP_SIGNALS = ["SIGUSR1", "SIGTERM"] as const;

let requested: string | null = null;
let stopFile: string | null = null;

/** Thrown where the work stopped on a request; `reason` is what asked (e.g. "SIGUSR1"). */
export class StopRequested extends Error {
  constructor(
    readonly reason: string,
    readonly where: string,
  ) {
    super(`stopped on ${reason} ${where}`);
    this.name = "StopRequested";
  }
}

/** Asks the work in progress to stop at its next check. */
export function requestStop(reason: string): void {
  requested ??= reason;
}

/**
 * Also stop when `path` exists; its text (e.g. "SIGUSR1") is the reason. Null: no file.
 * A request already made stays.
 */
export function watchStopFile(path: string | null): void {
  stopFile = path;
}

/** What asked for a stop, or null: the flag, then the stop file. */
export function stopRequested(): string | null {
  if (requested === null && stopFile !== null && existsSync(stopFile)) {
    let text = "";
    try {
      text = readFileSync(stopFile, "utf8").trim();
    } catch {
      // removed between the two calls: the request still stands
    }
    requested = text === "" ? `stop file ${stopFile}` : text;
  }
  return requested;
}

/**
 * What asked for a stop, agreed by every rank of a group (a collective: all ranks call it at
 * the same point), so that they stop at the same step; without a group, `stopRequested()`.
 */
export function stopRequestedByAny(dist: Dist | null): string | null {
  const reason = stopRequested();
  if (!dist) return reason;
  const reasons = dist.allGatherJson(reason);
  return reason ?? reasons.find((r) => r !== null) ?? null;
}

/** Throws StopRequested when a stop was asked for (of any rank of `dist`). */
export function throwIfStopRequested(where: string, dist: Dist | null = null): void {
  const reason = stopRequestedByAny(dist);
  if (reason !== null) throw new StopRequested(reason, where);
}

/** Forgets a request and the stop file (tests; a process that starts new work). */
export function clearStop(): void {
  requested = null;
  stopFile = null;
}

/**
 * SIGUSR1 and SIGTERM request a stop instead of ending the process. Returns the function that
 * removes the handlers again.
 */
export function handleStopSignals(): () => void {
  const handlers = STOP_SIGNALS.map((s) => [s, () => requestStop(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  return () => {
    for (const [s, h] of handlers) process.off(s, h);
  };
}

/** 128 + the signal's number: the exit status a process stopped by `reason` reports. */
export function signalExitCode(reason: string): number | null {
  const n = (constants.signals as Record<string, number | undefined>)[reason];
  return n === undefined ? null : 128 + n;
}
