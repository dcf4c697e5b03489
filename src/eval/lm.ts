/**
 * The model side of evaluation: the three request kinds of lm-eval's `LM` (lm_eval/api/model.py,
 * v0.4.x). Tasks never see tensors; batching, prefix reuse and caching sit behind these methods.
 * `loglikelihood` returns, per request, log P(continuation | context) summed over the
 * continuation's tokens and whether greedy decoding would have produced the continuation.
 * A non-finite log-likelihood (NaN weights, overflowed activations) is never a score: `evaluate`
 * stops on the first one and names the model, task, doc and request.
 */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  logprob: number;
  isGreedy: boolean;
}

export interface GenerateRequest {
  context: string;
  until: string[];
  maxGenToks?: number;
}

export interface LM {
  /** What errors call the model (a path, a hub name, a study's model name). */
  readonly name?: string;
  loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;
  loglikelihoodRolling(texts: string[]): Promise<number[]>;
  generateUntil(reqs: GenerateRequest[]): Promise<string[]>;
}

/** Characters of a request's text an error shows. */
const SHOWN_CHARS = 60;

/**
 * `s` quoted for an error message; when long, its last (`end`: a context, whose end is nearest the
 * continuation) or first (`start`: a continuation) SHOWN_CHARS code points, with an ellipsis.
 */
export function shown(s: string, keep: "start" | "end"): string {
  const cps = [...s];
  if (cps.length <= SHOWN_CHARS) return JSON.stringify(s);
  return keep === "end"
    ? `…${JSON.stringify(cps.slice(-SHOWN_CHARS).join(""))}`
    : `${JSON.stringify(cps.slice(0, SHOWN_CHARS).join(""))}…`;
}
