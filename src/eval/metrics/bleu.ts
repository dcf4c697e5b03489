/**
 * BLEU (Papineni et al. 2002) exactly as sacreBLEU 2.x computes it with its defaults (Post 2018;
 * mjpost/sacrebleu `metrics/bleu.py`, `tokenizers/tokenizer_13a.py`, `tokenizer_re.py`):
 * mteval-v13a tokenisation, case kept, n-grams up to 4, matches clipped by the max count over an
 * item's references, brevity penalty against the reference length *closest* to each hypothesis
 * (ties to the shorter), summed over the corpus, and `exp` smoothing (NIST: the k-th order found
 * with no match gets precision 1/(2^k · total)). `corpus` is `corpus_bleu` (effective order off);
 * `sentence` is `sentence_bleu` (effective order on: orders with no n-grams at all are left out).
 * Scores are 0–100 like sacreBLEU's `.score`.
 */
import { defineMetric, rstripWhitespace, splitWhitespace } from "./metric.js";

const MAX_NGRAM_ORDER = 4;

/** sacreBLEU's `Tokenizer13a.__call__`: the tokenised line, tokens joined by single spaces. */
export function tokenize13a(line: string): string {
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&")) {
    s = s
      .replaceAll("&quot;", '"')
      .replaceAll("&amp;", "&")
      .replaceAll("&lt;", "<")
      .replaceAll("&gt;", ">");
  }
  s = ` ${s} `
    // Punctuation and symbols: { | } ~ [ \ ] ^ _ ` space ! " # $ % & ( ) * + : ; < = > ? @ /
    .replace(/([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/gu, " $1 ")
    // period and comma unless preceded by a digit, then unless followed by one
    .replace(/([^0-9])([.,])/gu, "$1 $2 ")
    .replace(/([.,])([^0-9])/gu, " $1 $2")
    // dash when preceded by a digit
    .replace(/([0-9])(-)/gu, "$1 $2 ");
  return splitWhitespace(s).join(" ");
}

/** `BLEU._preprocess_segment` (no lowercasing, the default), split into tokens. */
const bleuTokens = (segment: string): string[] =>
  splitWhitespace(tokenize13a(rstripWhitespace(segment)));

/** Counts of all 1..4-grams of a tokenised line, keyed by the space-joined n-gram. */
function ngramCounts(tokens: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const g = tokens.slice(i, i + n).join(" ");
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
  }
  return counts;
}

/** Sufficient statistics of BLEU, summable over a corpus. */
interface BleuStats {
  hypLen: number;
  refLen: number;
  correct: number[];
  total: number[];
}

/** `_extract_reference_info` + `_compute_segment_statistics` for one item. */
function segmentStats(hypothesis: string, references: string[]): BleuStats {
  const hyp = bleuTokens(hypothesis);
  const refNgrams = new Map<string, number>();
  let refLen = -1;
  for (const ref of references) {
    const tokens = bleuTokens(ref);
    const diff = Math.abs(hyp.length - tokens.length);
    const best = Math.abs(hyp.length - refLen);
    if (refLen === -1 || diff < best || (diff === best && tokens.length < refLen)) {
      refLen = tokens.length;
    }
    for (const [g, c] of ngramCounts(tokens)) refNgrams.set(g, Math.max(refNgrams.get(g) ?? 0, c));
  }
  const correct = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  const total = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  for (const [g, c] of ngramCounts(hyp)) {
    const n = g.split(" ").length - 1;
    total[n] += c;
    correct[n] += Math.min(c, refNgrams.get(g) ?? 0);
  }
  return { hypLen: hyp.length, refLen, correct, total };
}

/** `my_log`: log floored at -9999999999 for zero precisions. */
const myLog = (x: number): number => (x === 0 ? -9999999999 : Math.log(x));

/** `BLEU.compute_bleu` with `smooth_method="exp"`. */
function computeBleu(stats: BleuStats, effectiveOrder: boolean): number {
  const { hypLen, refLen, correct, total } = stats;
  let bp = 1;
  if (hypLen < refLen) bp = hypLen > 0 ? Math.exp(1 - refLen / hypLen) : 0;
  if (!correct.some((c) => c > 0)) return 0;
  const precisions = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  let smooth = 1;
  let order = MAX_NGRAM_ORDER;
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    if (total[n - 1] === 0) break;
    if (effectiveOrder) order = n;
    if (correct[n - 1] === 0) {
      smooth *= 2;
      precisions[n - 1] = 100 / (smooth * total[n - 1]);
    } else {
      precisions[n - 1] = (100 * correct[n - 1]) / total[n - 1];
    }
  }
  let logSum = 0;
  for (const p of precisions.slice(0, order)) logSum += myLog(p);
  return bp * Math.exp(logSum / order);
}

export const bleu = defineMetric({
  name: "bleu",
  higherIsBetter: true,
  needsSources: false,
  sentence: (prediction, references) => computeBleu(segmentStats(prediction, references), true),
  corpus(predictions, references) {
    const sum: BleuStats = {
      hypLen: 0,
      refLen: 0,
      correct: new Array<number>(MAX_NGRAM_ORDER).fill(0),
      total: new Array<number>(MAX_NGRAM_ORDER).fill(0),
    };
    predictions.forEach((p, i) => {
      const s = segmentStats(p, references[i]);
      sum.hypLen += s.hypLen;
      sum.refLen += s.refLen;
      for (let n = 0; n < MAX_NGRAM_ORDER; n++) {
        sum.correct[n] += s.correct[n];
        sum.total[n] += s.total[n];
      }
    });
    return computeBleu(sum, false);
  },
});
