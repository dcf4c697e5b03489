/**
 * Generation metrics against the values their reference implementations publish (each source is
 * cited beside its numbers), plus edge cases: empty prediction, no overlap, identity = perfect.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dataPath, skipReason } from "../helpers/data.js";
import { generationMetrics, getGenerationMetric } from "../../src/eval/metrics/index.js";
import {
  aggregateMetric,
  bootstrapStderr,
  meanStderr,
  perplexity,
  sampleStddev,
} from "../../src/eval/aggregate.js";
import { tokenize13a } from "../../src/eval/metrics/bleu.js";
import { normalizeSquadAnswer } from "../../src/eval/metrics/squad.js";
import { lcsLength, rougeTokenize } from "../../src/eval/metrics/rouge.js";

const { exact_match, f1, rougeL, bleu, sari } = generationMetrics;

function near(actual: number, expected: number, tol: number, what: string): void {
  assert.ok(
    Math.abs(actual - expected) <= tol,
    `${what}: got ${actual}, expected ${expected} (tolerance ${tol})`,
  );
}

// ---------------------------------------------------------------------------------------------
// BLEU — mjpost/sacrebleu test/test_bleu.py and test/test_sentence_bleu.py (sacreBLEU 2.x)

// README example, also `test_corpus_bleu_cases` in test/test_bleu.py: 48.530827.
const SACRE_REFS = [
  ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
  ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
];
const SACRE_HYPS = [
  "The dog bit the man.",
  "It wasn't surprising.",
  "The man had just bitten him.",
];
// sacreBLEU takes reference *streams*; lethe takes the references of each item.
const SACRE_ITEMS = SACRE_HYPS.map((_, i) => SACRE_REFS.map((stream) => stream[i]));

test("bleu: corpus score of the sacreBLEU README example", () => {
  near(bleu.corpus(SACRE_HYPS, SACRE_ITEMS), 48.530827, 1e-6, "corpus BLEU");
});

test("bleu: empty hypotheses score 0 and are not dropped (test_bleu.py)", () => {
  assert.equal(bleu.corpus(["", "", ""], SACRE_ITEMS), 0);
});

test("bleu: sentence BLEU with exp smoothing and effective order (test_sentence_bleu.py)", () => {
  // Example from sacrebleu issue #98: 8.493 (tolerance 1e-3 as in the test).
  const ref = "producţia de zahăr brut se exprimă în zahăr alb;";
  const sys = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
  near(bleu.sentence(sys, [ref]), 8.493, 1e-3, "sentence BLEU");
  // Example from issue #141: no matching n-gram at all gives 0.
  assert.equal(bleu.sentence("this is a cat", ["okay thanks"]), 0);
});

test("bleu: identity is 100, and the closest reference length sets the brevity penalty", () => {
  // sacreBLEU itself returns 100.00000000000004 here (exp of a sum of logs).
  near(
    bleu.corpus(["The cat sat on the mat."], [["The cat sat on the mat."]]),
    100,
    1e-9,
    "identity",
  );
  // 7 hypothesis tokens; references of 7 and 12 tokens: the 7-token one is closest, so BP = 1.
  const hyp = "a b c d e f g";
  near(bleu.corpus([hyp], [["a b c d e f g", "a b c d e f g h i j k l"]]), 100, 1e-9, "closest");
  // Only a 9-token reference: BP = exp(1 - 9/7), all precisions 100.
  near(bleu.corpus([hyp], [["a b c d e f g h i"]]), 100 * Math.exp(1 - 9 / 7), 1e-9, "BP");
});

test("bleu: 13a tokenisation as mteval-v13a", () => {
  // Period/comma split unless between digits; dash split after a digit; entities unescaped.
  assert.equal(
    tokenize13a("Hello,world. 3.5 1-2 &amp; &quot;x&quot;"),
    'Hello , world . 3.5 1 - 2 & " x "',
  );
  assert.equal(tokenize13a("U.S.A., $5 (ok)!"), "U . S . A . , $ 5 ( ok ) !");
});

// ---------------------------------------------------------------------------------------------
// ROUGE-L — google-research/rouge rouge_scorer_test.py; HF evaluate metrics/rouge/README.md

test("rougeL: rouge-score unit tests (fmeasure 4/5, empty prediction 0)", () => {
  // testRougeLConsecutive / testRougeLNonConsecutive: P = 1, R = 2/3, F = 4/5.
  near(rougeL.sentence("testing one", ["testing one two"]), 80, 1e-12, "consecutive");
  near(rougeL.sentence("testing two", ["testing one two"]), 80, 1e-12, "non-consecutive");
  // testRougeEmpty.
  assert.equal(rougeL.sentence("", ["testing one two"]), 0);
});

test("rougeL: agrees with ROUGE-1.5.5 on rouge-score's testdata (testRougeLAgainstRouge155)", () => {
  // rouge/testdata/target.txt and prediction.txt (lines 1 and 2), commit 10bf941a.
  const targets = [
    "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L",
    "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN",
  ];
  const predictions = [
    "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi",
    "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD",
  ];
  near(rougeL.sentence(predictions[0], [targets[0]]), 51.163, 1e-3, "line 1");
  near(rougeL.sentence(predictions[1], [targets[1]]), 50.0, 1e-3, "line 2");
  // Corpus score = mean of the per-item F.
  near(rougeL.corpus(predictions, [[targets[0]], [targets[1]]]), (51.163 + 50) / 2, 1e-3, "mean");
});

test("rougeL: HF evaluate README identity example is 1.0; several references take the max", () => {
  const preds = ["hello there", "general kenobi"];
  assert.equal(rougeL.corpus(preds, [["hello there"], ["general kenobi"]]), 100);
  // Hand-computed: vs "hello", P = 1/2, R = 1, F = 2/3; vs "hello there", F = 1.
  near(rougeL.sentence("hello there", ["hello", "there"]), 200 / 3, 1e-12, "max of 2/3, 2/3");
  assert.equal(rougeL.sentence("hello there", ["hello", "Hello, there!"]), 100);
});

test("rougeL: tokenizer and LCS follow rouge-score", () => {
  assert.deepEqual(rougeTokenize("It's 3:00 — Café"), ["it", "s", "3", "00", "caf"]);
  // testLcsTable: LCS of [1,2,3,4,5] and [2,5,3,4] has length 3; none with [8,9].
  assert.equal(lcsLength(["1", "2", "3", "4", "5"], ["2", "5", "3", "4"]), 3);
  assert.equal(lcsLength(["1", "2", "3", "4", "5"], ["8", "9"]), 0);
});

// ---------------------------------------------------------------------------------------------
// SQuAD exact_match / f1 — evaluate-v1.1.py; HF evaluate metrics/squad/README.md

test("exact_match and f1: HF squad README example (1976 vs 1976 → 100, 100)", () => {
  assert.equal(exact_match.corpus(["1976"], [["1976"]]), 100);
  assert.equal(f1.corpus(["1976"], [["1976"]]), 100);
});

test("exact_match and f1: SQuAD v1.1 normalisation and token F1 (hand-computed)", () => {
  assert.equal(normalizeSquadAnswer("The  Denver Broncos!"), "denver broncos");
  assert.equal(normalizeSquadAnswer("an apple a day, theater"), "apple day theater");
  assert.equal(exact_match.sentence("the Denver Broncos.", ["Broncos", "Denver Broncos"]), 100);
  assert.equal(exact_match.sentence("Denver", ["Denver Broncos"]), 0);
  // "denver broncos won" vs "denver broncos": P = 2/3, R = 1, F1 = 0.8; max over references.
  near(f1.sentence("Denver Broncos won", ["Broncos Denver", "Carolina"]), 80, 1e-12, "f1");
  // Corpus: mean over items ×100.
  near(f1.corpus(["Denver Broncos won", "x"], [["Denver Broncos"], ["y"]]), 40, 1e-12, "f1 corpus");
  near(exact_match.corpus(["a", "b", "c"], [["A"], ["x"], ["the c"]]), 200 / 3, 1e-12, "em corpus");
});

test("exact_match and f1: empty prediction and no overlap", () => {
  assert.equal(f1.sentence("", ["Denver"]), 0);
  assert.equal(f1.sentence("Carolina Panthers", ["Denver Broncos"]), 0);
  assert.equal(exact_match.sentence("", ["Denver"]), 0);
  // Both sides normalise to nothing: equal strings, but v1.1's F1 is 0 without common tokens.
  assert.equal(exact_match.sentence("The", ["a"]), 100);
  assert.equal(f1.sentence("The", ["a"]), 0);
});

// ---------------------------------------------------------------------------------------------
// SARI — HF evaluate metrics/sari/sari.py docstring example: 26.953601953601954

test("sari: HF evaluate example", () => {
  const refs = [
    "About 95 species are currently known.",
    "About 95 species are now accepted.",
    "95 species are now accepted.",
  ];
  const expected = 26.953601953601954;
  near(
    sari.corpus(["About 95 you now get in."], [refs], ["About 95 species are currently accepted."]),
    expected,
    1e-9,
    "sari",
  );
  // The docstring's pre-tokenised form (" .") normalises to the same text.
  const tok = (s: string) => s.replace(/\.$/, " .");
  near(
    sari.sentence(
      tok("About 95 you now get in."),
      refs.map(tok),
      tok("About 95 species are currently accepted."),
    ),
    expected,
    1e-9,
    "tokenised",
  );
});

test("sari: identity is 100, copying the source is penalised, sources are required", () => {
  const s = "The cat perched on the mat.";
  assert.equal(sari.sentence(s, [s, s], s), 100);
  const simple = "The cat sat on the mat.";
  const copy = sari.sentence(s, [simple], s);
  const good = sari.sentence(simple, [simple], s);
  assert.ok(copy < good, `copying the source (${copy}) should score below the reference (${good})`);
  assert.throws(() => sari.corpus([s], [[s]]), /sari: item 0 has no source/);
});

test("sari and bleu on ASSET test: aligned simplifications beat misaligned ones", (t) => {
  const dir = dataPath("instructions", "asset");
  if (!dir) return t.skip(skipReason("instructions", "asset"));
  const read = (f: string) => readFileSync(join(dir, f), "utf8").replace(/\n$/, "").split("\n");
  const sources = read("asset.test.orig");
  const simp = Array.from({ length: 10 }, (_, k) => read(`asset.test.simp.${k}`));
  assert.equal(sources.length, 359);
  const refs = sources.map((_, i) => simp.slice(1).map((r) => r[i]));
  const human = simp[0];
  const shifted = [...human.slice(1), human[0]];
  const copy = sari.corpus(sources, refs, sources);
  const [sariHuman, sariShifted] = [human, shifted].map((p) => sari.corpus(p, refs, sources));
  const [bleuHuman, bleuShifted] = [human, shifted].map((p) => bleu.corpus(p, refs));
  console.log(
    `ASSET test: SARI human ${sariHuman.toFixed(2)}, shifted ${sariShifted.toFixed(2)}, ` +
      `copy-source ${copy.toFixed(2)} (HF's 0/0 = 1 rewards copying); ` +
      `BLEU human ${bleuHuman.toFixed(2)}, shifted ${bleuShifted.toFixed(2)}`,
  );
  assert.ok(sariHuman > sariShifted + 10);
  assert.ok(bleuHuman > bleuShifted + 30);
});

// ---------------------------------------------------------------------------------------------
// Registry and input checks

test("registry: every metric scores identity as its best and rejects bad input", () => {
  for (const [name, m] of Object.entries(generationMetrics)) {
    assert.equal(m.name, name);
    assert.ok(m.higherIsBetter);
    const text = "Paris is the capital of France.";
    const score = m.corpus([text, text], [[text], [text, text]], [text, text]);
    near(score, 100, 1e-9, `${name} of identical strings`);
    assert.throws(() => m.corpus([], []), /no predictions/);
    assert.throws(
      () => m.corpus([text], [[text], [text]], [text]),
      /1 predictions but 2 reference lists/,
    );
    assert.throws(
      () => m.corpus([text], [[]], [text]),
      new RegExp(`${name}: item 0 has no references`),
    );
  }
});

test("registry: unknown names suggest the closest one", () => {
  assert.equal(getGenerationMetric("sari"), sari);
  assert.throws(
    () => getGenerationMetric("rougeL_f"),
    /unknown generation metric "rougeL_f". Did you mean "rougeL"\?/,
  );
  assert.throws(() => getGenerationMetric("exact-match"), /Did you mean "exact_match"\?/);
});

// ---------------------------------------------------------------------------------------------
// Standard errors — lm-eval lm_eval/api/metrics.py (mean_stderr, bootstrap_stderr), as
// eval/aggregate.ts computes them for every reported score.

test("meanStderr: sample stddev / sqrt(n) (hand-computed)", () => {
  // [1, 0, 1, 0]: mean 0.5, sample variance 1/3, stderr sqrt(1/3)/2.
  near(meanStderr([1, 0, 1, 0]), Math.sqrt(1 / 3) / 2, 1e-15, "stderr");
  assert.throws(() => meanStderr([1]), /at least 2 values/);
});

test("bootstrapStderr: reproduces lm-eval's bootstrap_stderr draw for draw", () => {
  // Reference values: lm-eval's `bootstrap_stderr` (random.Random(i).choices(xs, k=n) per chunk
  // of min(1000, iters), then sample_stddev) with f = mean, CPython 3.11.7, lm-eval 0.4.7:
  // printed by `.venv/bin/python test/eval/reference/print_references.py`.
  const xs = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1];
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  near(bootstrapStderr(xs, mean, { iters: 1000 }), 0.10662607147934808, 1e-12, "1000 iters");
  near(bootstrapStderr(xs, mean, { iters: 2000 }), 0.10759266920303255, 1e-12, "2000 iters");
  near(bootstrapStderr(xs, mean, { iters: 100 }), 0.10166666666666664, 1e-12, "100 iters");
  // Same data, other seed: a different but close estimate; the closed form is 0.1094.
  const other = bootstrapStderr(xs, mean, { iters: 1000, seed: 7 });
  assert.notEqual(other, 0.10662607147934808);
  near(other, meanStderr(xs), 0.01, "seed 7 vs closed form");
});

test("sampleStddev: n − 1 denominator, summed left to right (hand-computed)", () => {
  // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum to 32, 32 / 7.
  near(sampleStddev([2, 4, 4, 4, 5, 5, 7, 9]), Math.sqrt(32 / 7), 1e-15, "stddev");
  assert.throws(() => sampleStddev([3]), /at least 2 values/);
});

test("aggregateMetric: what lethe reports equals lm-eval's perplexity and its bootstrap stderr", () => {
  // lm-eval's `perplexity(lls)` and `bootstrap_stderr(perplexity, lls, 1000)` (print_references.py).
  const lls = [-1.5, -2.25, -0.75, -3.0, -1.0, -2.0, -0.5];
  const ppl = aggregateMetric("perplexity", lls, 1000);
  near(ppl.value, 4.813519741131481, 1e-12, "perplexity");
  near(ppl.stderr as number, 1.666880469340756, 1e-12, "perplexity stderr");
  assert.equal(ppl.value, perplexity(lls));
  const acc = aggregateMetric("mean", [1, 0, 1, 0], 1000);
  assert.deepEqual(acc, { value: 0.5, stderr: meanStderr([1, 0, 1, 0]) });
  // One item, or bootstraps turned off: "N/A", as lm-eval prints.
  assert.equal(aggregateMetric("mean", [1], 1000).stderr, "N/A");
  assert.equal(aggregateMetric("perplexity", lls, 0).stderr, "N/A");
});

test("bootstrapStderr: works on items of any type (corpus BLEU over sentence pairs)", () => {
  const items = SACRE_HYPS.map((h, i) => ({ h, refs: SACRE_ITEMS[i] }));
  const corpusBleu = (xs: typeof items) =>
    bleu.corpus(
      xs.map((x) => x.h),
      xs.map((x) => x.refs),
    );
  const se = bootstrapStderr(items, corpusBleu, { iters: 200 });
  assert.ok(se > 0 && se < 100, `BLEU stderr ${se}`);
  assert.equal(bootstrapStderr(items, corpusBleu, { iters: 200 }), se);
});

test("accuracy: a stripped exact label match, case and punctuation kept", () => {
  const { accuracy } = generationMetrics;
  assert.equal(accuracy.sentence(" positive\n", ["positive"]), 100);
  assert.equal(accuracy.sentence("Positive", ["positive"]), 0);
  assert.equal(accuracy.sentence("positive.", ["positive"]), 0);
  assert.equal(accuracy.sentence("neg", ["pos", "neg"]), 100);
  assert.equal(accuracy.corpus(["a", "b", "c", "a"], [["a"], ["a"], ["c"], ["b"]]), 50);
});
