/**
 * ROUGE-L (Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", §3.1):
 * F-measure of the longest common subsequence of tokens. Must match Google's `rouge-score`
 * package (google-research/rouge, `rouge_scorer.py` `_score_lcs` and `score_multi`) with its
 * defaults: `DefaultTokenizer` without stemming (lowercase, every run of characters outside
 * [a-z0-9] is a separator), F = 2PR/(P+R), 0 when either side has no tokens, and with several
 * references the one of highest F. Reported ×100. The corpus score is the plain mean of the
 * per-item F; HF `evaluate`'s default `BootstrapAggregator` (and lm-eval's TruthfulQA `rouge`)
 * report the median of resampled means instead, which can differ from the mean in the 3rd digit.
 * ROUGE-1 (§2, n = 1): the same with clipped unigram overlap in place of the LCS
 * (`rouge_scorer.py` `_score_ngrams`).
 */
import { defineMetric } from "./metric.js";

/** rouge-score's `DefaultTokenizer(use_stemmer=False).tokenize`. */
export function rougeTokenize(text: string): string[] {
  return text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
}

/** Length of the longest common subsequence of two token lists (two-row DP). */
export function lcsLength(a: string[], b: string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** `_score_lcs(target, prediction).fmeasure`, in [0, 1]. */
function lcsF(prediction: string[], reference: string[]): number {
  if (prediction.length === 0 || reference.length === 0) return 0;
  const lcs = lcsLength(reference, prediction);
  const precision = lcs / prediction.length;
  const recall = lcs / reference.length;
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

export const rougeL = defineMetric({
  name: "rougeL",
  higherIsBetter: true,
  needsSources: false,
  sentence(prediction, references) {
    const pred = rougeTokenize(prediction);
    return 100 * Math.max(...references.map((r) => lcsF(pred, rougeTokenize(r))));
  },
});

/** `_score_ngrams` for unigrams: clipped overlap of the token multisets, F in [0, 1]. */
function unigramF(prediction: string[], reference: string[]): number {
  if (prediction.length === 0 || reference.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const t of reference) counts.set(t, (counts.get(t) ?? 0) + 1);
  let overlap = 0;
  for (const t of prediction) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      overlap++;
      counts.set(t, c - 1);
    }
  }
  const precision = overlap / prediction.length;
  const recall = overlap / reference.length;
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

export const rouge1 = defineMetric({
  name: "rouge1",
  higherIsBetter: true,
  needsSources: false,
  sentence(prediction, references) {
    const pred = rougeTokenize(prediction);
    return 100 * Math.max(...references.map((r) => unigramF(pred, rougeTokenize(r))));
  },
});
