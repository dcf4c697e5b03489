/**
 * SQuAD's `exact_match` and token `f1`, each the max over an item's references, corpus score the
 * mean ×100. Must match the official SQuAD v1.1 script `evaluate-v1.1.py` (Rajpurkar et al.
 * 2016; also HF `evaluate`'s `squad` metric): `normalize_answer` lowercases, drops ASCII
 * punctuation (`string.punctuation`), replaces the words a/an/the by a space (`\b` is Unicode
 * aware in Python 3) and collapses whitespace. v1.1's F1 is 0 when either side normalises to
 * no tokens (v2.0 would score two empty answers 1; this is v1.1).
 */
import { defineMetric, splitWhitespace } from "./metric.js";

/** Python's `string.punctuation`. */
const PUNCTUATION = new Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
/** `\b(a|an|the)\b` with Python's Unicode `\w` = letters, digits and underscore. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** SQuAD v1.1 `normalize_answer`. */
export function normalizeSquadAnswer(s: string): string {
  const noPunc = [...s.toLowerCase()].filter((ch) => !PUNCTUATION.has(ch)).join("");
  return splitWhitespace(noPunc.replace(ARTICLES, " ")).join(" ");
}

/** SQuAD v1.1 `f1_score` for one reference, in [0, 1]. */
function tokenF1(prediction: string, reference: string): number {
  const pred = splitWhitespace(normalizeSquadAnswer(prediction));
  const ref = splitWhitespace(normalizeSquadAnswer(reference));
  const refCounts = new Map<string, number>();
  for (const t of ref) refCounts.set(t, (refCounts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pred) {
    const c = refCounts.get(t) ?? 0;
    if (c > 0) {
      same++;
      refCounts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / pred.length;
  const recall = same / ref.length;
  return (2 * precision * recall) / (precision + recall);
}

export const exactMatch = defineMetric({
  name: "exact_match",
  higherIsBetter: true,
  needsSources: false,
  sentence(prediction, references) {
    const p = normalizeSquadAnswer(prediction);
    return references.some((r) => normalizeSquadAnswer(r) === p) ? 100 : 0;
  },
});

export const f1 = defineMetric({
  name: "f1",
  higherIsBetter: true,
  needsSources: false,
  sentence: (prediction, references) =>
    100 * Math.max(...references.map((r) => tokenF1(prediction, r))),
});
