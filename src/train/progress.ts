/**
 * The training progress line: stage, step/total, loss, learning rate (16-mixed: loss scale and
 * skipped steps), tokens/s and ETA, redrawn in place on a terminal and printed as plain lines
 * otherwise (at each tenth of a stage, or every 30 s), like tqdm's `file` not being a TTY.
 * Reference: tqdm's default bar fields (n/total, rate, remaining).
 * A stage's warnings (a loss stuck at ln(vocab)) follow its last line, one `WARNING:` line each.
 */

export interface ProgressEvent {
  stage: string;
  /** Optimizer steps completed. */
  step: number;
  totalSteps: number;
  /** Mean token loss of the last step (regularisers included). */
  loss: number;
  lr: number;
  /** Tokens fed to the model per second since this process started the stage. */
  tokensPerSecond: number;
  /** Seconds left at the current pace; null before the first step of this process. */
  etaSeconds: number | null;
  /** 16-mixed only: the loss scale after this step, and the steps of the stage skipped so far. */
  lossScale?: number;
  skippedSteps?: number;
  /** On a stage's last step only: what went wrong over the whole stage (trainer `StageResult`). */
  warnings?: string[];
}

/** "1:02:03", "4:05": hours only when needed. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/**
 * One line, e.g. `[alpaca] step 12/300 loss 1.9034 lr 2.00e-5 4,210 tok/s ETA 3:21` (16-mixed:
 * `… lr 2.00e-5 scale 32768 skipped 1 4,210 tok/s …`), then a `WARNING: …` line per warning.
 */
export function formatProgress(e: ProgressEvent): string {
  const width = String(e.totalSteps).length;
  const tps = Math.round(e.tokensPerSecond).toLocaleString("en-US");
  const eta = e.etaSeconds === null ? "--:--" : formatDuration(e.etaSeconds);
  return (
    `[${e.stage}] step ${String(e.step).padStart(width)}/${e.totalSteps} ` +
    `loss ${e.loss.toFixed(4)} lr ${e.lr.toExponential(2)} ` +
    (e.lossScale === undefined ? "" : `scale ${e.lossScale} skipped ${e.skippedSteps ?? 0} `) +
    `${tps} tok/s ETA ${eta}` +
    (e.warnings ?? []).map((w) => `\nWARNING: ${w}`).join("")
  );
}

/** What a progress line is written to (process.stderr by default). */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

/**
 * A progress callback for `trainStage`. On a TTY the stage's one line is redrawn in place at most
 * every `intervalMs` (default 100 ms). Otherwise a plain line is printed at each tenth of the
 * stage or once `intervalMs` (default 30 s) has passed, whichever comes first, so a stage prints
 * at most 11 lines plus one per interval. A stage's first and last lines are always shown.
 */
export function progressPrinter(
  o: { stream?: ProgressStream; intervalMs?: number; now?: () => number } = {},
): (e: ProgressEvent) => void {
  const stream = o.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const interval = o.intervalMs ?? (tty ? 100 : 30_000);
  const now = o.now ?? Date.now;
  let last = -Infinity;
  let stage: string | null = null;
  let tenth = 0;
  return (e) => {
    const t = now();
    const final = e.step === e.totalSteps;
    const at = Math.floor((10 * e.step) / Math.max(1, e.totalSteps));
    const due = t - last >= interval || (!tty && at > tenth);
    if (e.stage === stage && !final && !due) return;
    stage = e.stage;
    last = t;
    tenth = at;
    const line = formatProgress(e);
    stream.write(tty ? `\r${line}\x1b[K${final ? "\n" : ""}` : `${line}\n`);
  };
}
