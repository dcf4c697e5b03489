/**
 * The model side of evaluation: the three request kinds of lm-eval's `LM` (lm_eval/api/model.py,
 * v0.4.x). Tasks never see tensors; batching, prefix reuse and caching sit behind these methods.
 * `loglikelihood` returns, per request, log P(continuation | context) summed over the
 * continuation's tokens and whether greedy decoding would have produced the continuation.
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
  loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;
  loglikelihoodRolling(texts: string[]): Promise<number[]>;
  generateUntil(reqs: GenerateRequest[]): Promise<string[]>;
}
