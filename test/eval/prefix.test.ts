/**
 * Tests for the prefix-tree scoring path (src/eval/prefix.ts through src/eval/model_lm.ts) and
 * positions-only logits (`logitsPositions` in every model family), against the slow, obvious
 * oracle: one request per forward over its whole input, as lm-eval's HFLM scores at batch size 1
 * (lm-evaluation-harness v0.4.x `_loglikelihood_tokens`). Every log-likelihood must agree within
 * 1e-6 relative and every greedy flag exactly, for llama (RoPE), gpt2 (learned positions), bloom
 * (ALiBi), gpt_neox (partial RoPE) and t5 (encoder-decoder), at batch sizes 1, 3 and 32 and under
 * cache budgets that force eviction; task-level metrics through evaluate() must be identical.
 * Requests are synthetic token ids shaped like the real workloads (a shared few-shot block,
 * questions, choices, duplicates, contexts that are prefixes of others, contexts over max length,
 * rolling windows), from a seeded generator.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { evaluate } from "../../src/eval/evaluate.js";
import { ModelLM, rollingWindows, type TokenRequest } from "../../src/eval/model_lm.js";
import { MIN_SHARED, scorePrefixTree } from "../../src/eval/prefix.js";
import { loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { gpt2Family } from "../../src/models/gpt2.js";
import type { LanguageModel } from "../../src/models/types.js";
import { noGrad, tensor, tidy } from "../../src/tensor/index.js";
import { assertNear, type Tol } from "../helpers/close.js";
import { dataPath, skipReason } from "../helpers/data.js";
import { tinyModel } from "../models/tiny.js";

const gpt2Dir = dataPath("tokenizers", "gpt2");
const bench = dataPath("benchmarks");

/** Prefix tree vs one-request oracle: 1e-6 relative (the same sums in another order, float32). */
const EXACT: Tol = { rtol: 1e-6 };
const MAX_LENGTH = 64; // tiny gpt2's n_positions; contexts below go over it
const FAMILIES = ["llama", "gpt2", "bloom", "gpt_neox", "t5"] as const;

/** Seeded LCG (Numerical Recipes constants): the same requests on every run. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

/** Token requests shaped like few-shot multiple choice, plus the edge cases of the tree. */
function requests(vocab: number, seed = 11): TokenRequest[] {
  const r = rng(seed);
  const toks = (n: number) => Array.from({ length: n }, () => 1 + r(vocab - 1));
  const out: TokenRequest[] = [];
  const shots = toks(20); // a few-shot block shared by every question below
  for (let q = 0; q < 5; q++) {
    const context = [...shots, ...toks(3 + r(10))];
    const stem = toks(2); // choices that share their first tokens
    for (let c = 0; c < 4; c++)
      out.push({ context, continuation: c < 2 ? [...stem, ...toks(1 + r(4))] : toks(1 + r(5)) });
  }
  // Winogrande's shape: contexts that differ at the end, one shared continuation.
  const tail = toks(4);
  out.push({ context: [...shots, ...toks(6)], continuation: tail });
  out.push({ context: [...shots, ...toks(6)], continuation: tail });
  // A duplicate, and a context that is a whole prefix of another request's input.
  out.push({ ...out[0] });
  out.push({ context: out[0].context.slice(0, 10), continuation: out[0].context.slice(10, 12) });
  // Over max length: truncated on the left, differently per continuation length, so these share
  // no prefix with each other although their contexts are identical.
  const long = [...shots, ...toks(MAX_LENGTH + 7)];
  for (const n of [1, 3, 6]) out.push({ context: long, continuation: toks(n) });
  // One-token contexts (lm-eval's empty context becomes the prefix token).
  out.push({ context: [1], continuation: toks(3) });
  out.push({ context: [1], continuation: toks(1) });
  // loglikelihood_rolling's windows over a document longer than max length.
  out.push(...rollingWindows(toks(2 * MAX_LENGTH + 9), 1, MAX_LENGTH));
  return out;
}

let tokenizer: Tokenizer | null = null;
/** ModelLM needs a tokenizer; these tests pass token ids, so any real one does. */
async function tok(): Promise<Tokenizer> {
  tokenizer ??= await loadTokenizer(gpt2Dir!);
  return tokenizer;
}

function assertSameResults(
  got: { logprob: number; isGreedy: boolean }[],
  want: { logprob: number; isGreedy: boolean }[],
  what: string,
): number {
  assert.equal(got.length, want.length);
  let maxRel = 0;
  got.forEach((g, i) => {
    const w = want[i];
    assertNear(g.logprob, w.logprob, EXACT, `${what}: request ${i}`);
    assert.equal(g.isGreedy, w.isGreedy, `${what}: request ${i} isGreedy`);
    maxRel = Math.max(maxRel, Math.abs(g.logprob - w.logprob) / Math.abs(w.logprob));
  });
  return maxRel;
}

test("logitsPositions: logits at the asked positions equal the full logits there", () => {
  for (const family of FAMILIES) {
    const model = tinyModel(family, 4);
    noGrad(() =>
      tidy(() => {
        const ids = tensor(
          BigInt64Array.from({ length: 2 * 9 }, (_, i) => BigInt(1 + ((i * 7) % 50))),
          {
            shape: [2, 9],
          },
        );
        // Flat positions b·9 + t: row 0 wants 8, 0, 3; row 1 wants 5 (twice) and 2.
        const pos = tensor(BigInt64Array.from([8, 0, 3, 14, 14, 11], BigInt));
        const inputs =
          model.kind === "causal"
            ? { inputIds: ids }
            : { inputIds: ids, decoderInputIds: ids.narrow(1, 0, 9) };
        const full = (model.forward as (i: object) => { logits: ReturnType<typeof tensor> })(
          inputs,
        ).logits;
        const some = (model.forward as (i: object) => { logits: ReturnType<typeof tensor> })({
          ...inputs,
          logitsPositions: pos,
        }).logits;
        assert.deepEqual(some.shape, [6, 61], family);
        const want = full.reshape(18, 61).indexSelect(0, pos).toNumbers();
        const got = some.toNumbers();
        let maxRel = 0;
        got.forEach((g, i) => {
          assertNear(g, want[i], { rtol: 1e-5, atol: 1e-6 }, `${family} logit ${i}`);
          maxRel = Math.max(maxRel, Math.abs(g - want[i]));
        });
        console.log(
          `# ${family}: positions-only vs sliced full logits, max diff ${maxRel.toExponential(2)}`,
        );
      }),
    );
  }
});

test("prefix tree equals the one-request oracle: every family, batch 1/3/32, eviction", async (t) => {
  if (!gpt2Dir) return t.skip(skipReason("tokenizers", "gpt2"));
  const tk = await tok();
  for (const family of FAMILIES) {
    const model = tinyModel(family, 2);
    const reqs = requests(model.config.vocab_size);
    const oracle = new ModelLM(model, tk, { fast: false, maxLength: MAX_LENGTH }).scoreTokens(reqs);
    oracle.forEach((r, i) =>
      assert.ok(r.logprob < 0 && Number.isFinite(r.logprob), `${family} oracle ${i}: ${r.logprob}`),
    );
    let worst = 0;
    // A large budget (nothing evicted), a tiny one (some prefixes evicted), none (every one).
    for (const [batchSize, prefixCacheMb] of [
      [1, 1024],
      [3, 1024],
      [32, 1024],
      [3, 0.004],
      [32, 0.004],
      [1, 0],
    ]) {
      const lm = new ModelLM(model, tk, { batchSize, maxLength: MAX_LENGTH, prefixCacheMb });
      const what = `${family} batch ${batchSize} budget ${prefixCacheMb} MB`;
      worst = Math.max(worst, assertSameResults(lm.scoreTokens(reqs), oracle, what));
      if (model.kind !== "causal") continue;
      const st = lm.prefixStats;
      // Sharing fed fewer tokens than the oracle; a small budget evicted, and the kept cache
      // stayed within the budget.
      if (prefixCacheMb === 1024) assert.equal(st.evicted, 0, what);
      else assert.ok(st.evicted > 0, `${what}: no eviction`);
      assert.ok(st.peakBytes <= prefixCacheMb * 2 ** 20, `${what}: peak ${st.peakBytes} B`);
    }
    // The previous fast path (flag off) agrees too.
    const off = new ModelLM(model, tk, { prefixTree: false, maxLength: MAX_LENGTH });
    worst = Math.max(worst, assertSameResults(off.scoreTokens(reqs), oracle, `${family} flag off`));
    console.log(`# ${family}: prefix tree vs oracle, max relative diff ${worst.toExponential(2)}`);
  }
});

test("prefix tree shares the few-shot block: fewer tokens fed than the oracle feeds", async (t) => {
  if (!gpt2Dir) return t.skip(skipReason("tokenizers", "gpt2"));
  const model = tinyModel("llama", 2);
  const reqs = requests(model.config.vocab_size);
  const lm = new ModelLM(model, await tok(), { maxLength: MAX_LENGTH });
  lm.scoreTokens(reqs);
  const fed = reqs.reduce(
    (a, r) => a + Math.min(r.context.length + r.continuation.length, MAX_LENGTH + 1) - 1,
    0,
  );
  console.log(`# tokens fed: oracle ${fed}, prefix tree ${lm.prefixStats.tokens}`);
  // The 20-token block is fed once rather than once per question (at least 22 requests use it).
  assert.ok(lm.prefixStats.tokens < fed - 20 * 15, `${lm.prefixStats.tokens} vs ${fed}`);
  assert.ok(MIN_SHARED <= 20);
});

test("truncation: over max length, cut on the left as lm-eval does, never sharing a wrongly truncated prefix", async (t) => {
  if (!gpt2Dir) return t.skip(skipReason("tokenizers", "gpt2"));
  const model = tinyModel("gpt2", 2);
  if (model.kind !== "causal") throw new Error("gpt2 is causal");
  const r = rng(5);
  const context = Array.from({ length: MAX_LENGTH + 10 }, () => 1 + r(60));
  const reqs: TokenRequest[] = [1, 2, 4].map((n) => ({
    context,
    continuation: Array.from({ length: n }, () => 1 + r(60)),
  }));
  const got = new ModelLM(model, await tok(), { maxLength: MAX_LENGTH }).scoreTokens(reqs);
  // lm-eval: (context + continuation)[-(L+1):][:-1], the last len(continuation) logits scored.
  reqs.forEach((q, i) => {
    const inp = [...q.context, ...q.continuation].slice(-(MAX_LENGTH + 1)).slice(0, -1);
    assert.equal(inp.length, MAX_LENGTH);
    const want = noGrad(() =>
      tidy(() => {
        const ids = tensor(BigInt64Array.from(inp, BigInt), { shape: [1, inp.length] });
        const lp = model.forward({ inputIds: ids }).logits.select(0, 0).logSoftmax(-1).toNumbers();
        const m = q.continuation.length;
        const V = model.config.vocab_size;
        return q.continuation.reduce((a, tk, j) => a + lp[(MAX_LENGTH - m + j) * V + tk], 0);
      }),
    );
    assertNear(got[i].logprob, want, EXACT, `request ${i}`);
  });
  // The three inputs start at different tokens of the context: the tree has three roots, so no
  // request read another's keys and values (a shared prefix would have changed the numbers).
  const seqs = reqs.map((q) => ({
    ids: [...q.context, ...q.continuation].slice(-(MAX_LENGTH + 1)).slice(0, -1),
    targets: q.continuation,
  }));
  const res = noGrad(() =>
    scorePrefixTree(model, seqs, {
      batchSize: 1,
      maxLength: MAX_LENGTH,
      budgetBytes: 2 ** 30,
      logitsBudget: 2 ** 28,
      device: "cpu",
    }),
  );
  assert.equal(res.stats.tokens, 3 * MAX_LENGTH, "nothing shared across different truncations");
});

test("evaluate(): prefix tree, flag off and oracle give identical metrics (multiple choice, 0-shot and few-shot)", async (t) => {
  if (!gpt2Dir || !bench) return t.skip(skipReason("tokenizers/gpt2 | benchmarks"));
  const tk = await tok();
  const config = gpt2Family.parseConfig({
    model_type: "gpt2",
    n_positions: 256,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  });
  const model: LanguageModel = gpt2Family.create(config, { seed: 9 }).eval();
  for (const [tasks, shots] of [
    [["piqa", "arc_easy", "winogrande"], 0],
    [["mmlu_anatomy"], 3],
  ] as const) {
    const opts = { dataDir: bench, limit: 4, shots, bootstrapIters: 0, logSamples: true };
    const runs: Awaited<ReturnType<typeof evaluate>>[] = await Promise.all(
      [{ fast: false }, { prefixTree: false }, { batchSize: 3 }, { prefixCacheMb: 0 }].map((o) =>
        evaluate(new ModelLM(model, tk, o), [...tasks], opts),
      ),
    );
    const [oracle, ...rest] = runs;
    assert.ok(Object.keys(oracle.results).length >= tasks.length);
    for (const r of rest) {
      assert.deepEqual(r.results, oracle.results, `${tasks.join(",")}: metrics`);
      for (const task of tasks) {
        const a = oracle.samples![task].flatMap((s) => s.filtered_resps);
        const b = r.samples![task].flatMap((s) => s.filtered_resps);
        assert.ok(a.length >= 8);
        a.forEach(([lp], i) => assertNear(Number(b[i][0]), Number(lp), EXACT, `${task} ${i}`));
      }
    }
  }
});

test("loglikelihood_rolling and generate_until: prefix path equals the oracle", async (t) => {
  if (!gpt2Dir) return t.skip(skipReason("tokenizers", "gpt2"));
  const tk = await tok();
  const config = gpt2Family.parseConfig({
    model_type: "gpt2",
    n_positions: 48,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  });
  const model: LanguageModel = gpt2Family.create(config, { seed: 9 }).eval();
  const texts = [
    "The quick brown fox jumps over the lazy dog. ".repeat(6),
    "The quick brown fox jumps over the lazy dog. A second sentence follows here.",
    "Short.",
  ];
  const oracle = await new ModelLM(model, tk, { fast: false }).loglikelihoodRolling(texts);
  for (const o of [{ batchSize: 1 }, { batchSize: 32 }, { prefixCacheMb: 0 }]) {
    const got = await new ModelLM(model, tk, o).loglikelihoodRolling(texts);
    got.forEach((g, i) => assertNear(g, oracle[i], EXACT, `rolling ${JSON.stringify(o)} ${i}`));
  }
  assert.ok(oracle.every((x) => x < 0 && Number.isFinite(x)));
  const gen = [
    { context: "The quick brown fox", until: ["."], maxGenToks: 8 },
    { context: "The quick brown fox jumps over", until: ["\n"], maxGenToks: 8 },
  ];
  const want = await new ModelLM(model, tk, { fast: false }).generateUntil(gen);
  assert.deepEqual(await new ModelLM(model, tk, { batchSize: 32 }).generateUntil(gen), want);
  assert.ok(want.some((s) => s.length > 0));
});
