/**
 * SARI for simplification (Xu et al. 2016, "Optimizing Statistical Machine Translation for Text
 * Simplification", TACL 4): mean over n = 1..4 of the F1 of kept n-grams, the precision of
 * deleted n-grams and the F1 of added n-grams, averaged over the three operations. Must match
 * HF `evaluate`'s `sari` metric (`metrics/sari/sari.py`, itself tensor2tensor's `sari_hook.py`):
 * 0/0 counts as 1, the keep-recall fix of cocoxu/simplification issue #6, every text lowercased
 * and sacreBLEU-13a tokenised as EASSE does, then split on single spaces. The corpus score is the
 * mean of the sentence scores ×100 (HF's choice; EASSE's `corpus_sari` pools n-gram statistics
 * over the corpus instead, so the two differ on corpora of more than one sentence).
 */
import { tokenize13a } from "./bleu.js";
import { defineMetric } from "./metric.js";

type Counter = Map<string, number>;

function count(grams: string[], times = 1): Counter {
  const c: Counter = new Map();
  for (const g of grams) c.set(g, (c.get(g) ?? 0) + times);
  return c;
}

/** Python's `Counter & Counter`: min counts, positive only, in the left operand's order. */
function and(a: Counter, b: Counter): Counter {
  const out: Counter = new Map();
  for (const [g, x] of a) {
    const m = Math.min(x, b.get(g) ?? 0);
    if (m > 0) out.set(g, m);
  }
  return out;
}

/** Python's `Counter - Counter` (all counts positive): positive differences only. */
function minus(a: Counter, b: Counter): Counter {
  const out: Counter = new Map();
  for (const [g, x] of a) {
    const d = x - (b.get(g) ?? 0);
    if (d > 0) out.set(g, d);
  }
  return out;
}

const f1 = (p: number, r: number): number => (p > 0 || r > 0 ? (2 * p * r) / (p + r) : 0);

/** `SARIngram`: [keep F1, delete precision, add F1] for one n-gram order. */
function sariNgram(sgrams: string[], cgrams: string[], rgramsList: string[][]): number[] {
  const numref = rgramsList.length;
  const r = count(rgramsList.flat());
  const sRep = count(sgrams, numref);
  const cRep = count(cgrams, numref);

  const keep = and(sRep, cRep);
  const keepGood = and(keep, r);
  const keepAll = and(sRep, r);
  let keepTmp1 = 0;
  let keepTmp2 = 0;
  for (const [g, x] of keepGood) {
    keepTmp1 += x / keep.get(g)!;
    keepTmp2 += x;
  }
  let keepAllSum = 0;
  for (const x of keepAll.values()) keepAllSum += x;
  const keepP = keep.size > 0 ? keepTmp1 / keep.size : 1;
  const keepR = keepAll.size > 0 ? keepTmp2 / keepAllSum : 1;

  const del = minus(sRep, cRep);
  const delGood = minus(del, r);
  let delTmp = 0;
  for (const [g, x] of delGood) delTmp += x / del.get(g)!;
  const delP = del.size > 0 ? delTmp / del.size : 1;

  const s = new Set(sgrams);
  const add = new Set(cgrams.filter((g) => !s.has(g)));
  const addGood = [...add].filter((g) => r.has(g)).length;
  const addAll = new Set([...r.keys()].filter((g) => !s.has(g))).size;
  const addP = add.size > 0 ? addGood / add.size : 1;
  const addR = addAll > 0 ? addGood / addAll : 1;

  return [f1(keepP, keepR), delP, f1(addP, addR)];
}

/** All contiguous n-grams of a token list, space-joined. */
function ngrams(tokens: string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= tokens.length; i++) out.push(tokens.slice(i, i + n).join(" "));
  return out;
}

/** HF's `normalize`: lowercase, 13a-tokenise, split on " " ("" gives one empty token). */
const sariTokens = (s: string): string[] => tokenize13a(s.toLowerCase()).split(" ");

/** `SARIsent` on normalised text, in [0, 1]. */
function sariSentence(source: string, prediction: string, references: string[]): number {
  const s1 = sariTokens(source);
  const c1 = sariTokens(prediction);
  const r1 = references.map(sariTokens);
  let keep = 0;
  let del = 0;
  let add = 0;
  for (let n = 1; n <= 4; n++) {
    const [k, d, a] = sariNgram(
      ngrams(s1, n),
      ngrams(c1, n),
      r1.map((r) => ngrams(r, n)),
    );
    keep += k;
    del += d;
    add += a;
  }
  return (keep / 4 + del / 4 + add / 4) / 3;
}

export const sari = defineMetric({
  name: "sari",
  higherIsBetter: true,
  needsSources: true,
  sentence: (prediction, references, source) => 100 * sariSentence(source!, prediction, references),
});
