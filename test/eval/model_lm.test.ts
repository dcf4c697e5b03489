/**
 * Tests for src/eval/model_lm.ts against lm-eval v0.4.x HFLM semantics and src/eval/cache.ts:
 * `_encode_pair` on hand-checkable cases, one log-likelihood recomputed by hand from the model's
 * logits, the fast path (prefix reuse, batching) against the one-request oracle on a mixed batch,
 * batch 1 vs batch 32 through evaluate() (identical metrics, log-likelihoods within 1e-7
 * relative), cache hits that never call the model, encoder-decoder scoring, rolling windows,
 * generate_until, and NaN weights as an error that names the model and the request. Tiny random
 * models, real tokenizers and benchmark data from shared/data (skipped with a reason when
 * absent). Float comparisons are relative (test/helpers/close.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_SEGMENTS, moduleFingerprint, requestKey, ResultCache } from "../../src/eval/cache.js";
import { evaluate, NonFiniteScoreError } from "../../src/eval/evaluate.js";
import type { LoglikelihoodRequest, LoglikelihoodResult } from "../../src/eval/lm.js";
import { ModelLM, rollingWindows } from "../../src/eval/model_lm.js";
import { loadTokenizer, type Tokenizer } from "../../src/io/tokenizer.js";
import { llamaFamily } from "../../src/models/llama.js";
import { gpt2Family } from "../../src/models/gpt2.js";
import { t5Family } from "../../src/models/t5.js";
import type { LanguageModel } from "../../src/models/types.js";
import { noGrad, tensor, tidy } from "../../src/tensor/index.js";
import { NonFiniteLogitsError } from "../../src/models/generate.js";
import { assertNear, type Tol } from "../helpers/close.js";
import { dataPath, skipReason } from "../helpers/data.js";

const llamaDir = dataPath("tokenizers", "llama2");
const gpt2Dir = dataPath("tokenizers", "gpt2");
const t5Dir = dataPath("tokenizers", "t5-small");
const bench = dataPath("benchmarks");

function tinyLlama(seed = 3): LanguageModel {
  const config = llamaFamily.parseConfig({
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    initializer_range: 0.3,
  });
  return llamaFamily.create(config, { seed });
}

function tinyGpt2(): LanguageModel {
  const config = gpt2Family.parseConfig({
    model_type: "gpt2",
    n_positions: 48,
    n_embd: 32,
    n_layer: 2,
    n_head: 4,
    initializer_range: 0.3,
  });
  return gpt2Family.create(config, { seed: 5 });
}

function tinyT5(): LanguageModel {
  const config = t5Family.parseConfig({
    model_type: "t5",
    vocab_size: 32128,
    d_model: 32,
    d_kv: 8,
    d_ff: 48,
    num_layers: 2,
    num_heads: 4,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 20,
    dropout_rate: 0,
    initializer_factor: 1,
  });
  return t5Family.create(config, { seed: 7 });
}

/** log p(token) = logit − logsumexp(logits), written out from the raw logits. */
function handLogprob(logits: number[], token: number): number {
  const max = Math.max(...logits);
  const lse = max + Math.log(logits.reduce((a, x) => a + Math.exp(x - max), 0));
  return logits[token] - lse;
}

/** Rows of logits (T, V) of one causal forward over `ids`. */
function causalLogits(model: LanguageModel, ids: number[]): number[][] {
  if (model.kind !== "causal") throw new Error("causal only");
  return tidy(() => {
    const out = model.forward({ inputIds: tensor([ids], { dtype: "int64" }) }).logits;
    return out.select(0, 0).tolist() as number[][];
  });
}

/** Largest |a − b| / max(|a|, |b|) over paired log-likelihoods. */
const maxRel = (a: number[], b: number[]) =>
  Math.max(...a.map((x, i) => Math.abs(x - b[i]) / Math.max(Math.abs(x), Math.abs(b[i]))));

/**
 * A log-likelihood computed another way (another forward: prefix cache, batching, padding; or by
 * hand in float64 from the logits) rounds differently: each token's log-prob moves by a few
 * float32 ulps of the logits, a sum over many tokens by as many, relative.
 */
const OTHER_WAY: Tol = { rtol: 1e-5, atol: 1e-6 };
/**
 * What batch size guarantees (the same prompts in batches of 1 or 32): metrics identical,
 * log-likelihoods within 1e-7 relative. Kernels pick other blockings for other batch shapes, so
 * the last bits differ (−543.5788283 vs −543.5788126 on Sapphire Rapids: 3e-8).
 */
const BATCH_INVARIANT: Tol = { rtol: 1e-7, atol: 1e-7 };

function assertSame(fast: LoglikelihoodResult[], oracle: LoglikelihoodResult[], what: string) {
  assert.equal(fast.length, oracle.length);
  const a = fast.map((r) => r.logprob);
  const b = oracle.map((r) => r.logprob);
  console.log(
    `# ${what}: max |fast - oracle| relative ${maxRel(a, b).toExponential(2)} over ${fast.length} requests`,
  );
  a.forEach((x, i) => assertNear(x, b[i], OTHER_WAY, `${what} request ${i}`));
  assert.deepEqual(
    fast.map((r) => r.isGreedy),
    oracle.map((r) => r.isGreedy),
  );
}

test("tokenization: trailing space moves to the continuation; empty context → prefix token", async (t) => {
  if (!llamaDir || !gpt2Dir) return t.skip(skipReason("tokenizers", "llama2 | gpt2"));
  const cases: [string, LanguageModel, number][] = [
    [llamaDir, tinyLlama(), 1],
    [gpt2Dir, tinyGpt2(), 50256],
  ];
  for (const [dir, model, prefix] of cases) {
    const tok = await loadTokenizer(dir);
    const lm = new ModelLM(model, tok);
    const plain = (s: string) => tok.encode(s, { addSpecialTokens: false });
    // "Answer: " + "B": the space travels with the continuation, so it is " B", not "B".
    const r = lm.encodePair("Question: 2+2?\nAnswer: ", "B");
    assert.deepEqual(r.context, plain("Question: 2+2?\nAnswer:"));
    assert.deepEqual(r.continuation, plain("Question: 2+2?\nAnswer: B").slice(r.context.length));
    assert.deepEqual([...r.context, ...r.continuation], plain("Question: 2+2?\nAnswer: B"));
    // Several trailing spaces and a newline all move.
    const s = lm.encodePair("The cat \n ", "sat");
    assert.deepEqual(s.context, plain("The cat"));
    assert.deepEqual([...s.context, ...s.continuation], plain("The cat \n sat"));
    // No BOS in either part (lm-eval add_bos_token=False), BOS (LLaMA) or EOS (GPT-2) for "".
    const e = lm.encodePair("", " hello");
    assert.equal(lm.prefixTokenId, prefix);
    assert.deepEqual(e, { context: [prefix], continuation: plain(" hello") });
  }
  const tok = await loadTokenizer(llamaDir);
  assert.equal(tok.encode("Answer:", { addSpecialTokens: false }).includes(1), false);
  const withBos = new ModelLM(tinyLlama(), tok, { addBosToken: true });
  assert.equal(withBos.encodePair("Answer:", " B").context[0], 1);
});

test("loglikelihood equals log_softmax gathered from the model's logits, by hand", async (t) => {
  if (!llamaDir) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(llamaDir);
  const model = tinyLlama();
  const lm = new ModelLM(model, tok);
  const { context, continuation } = lm.encodePair("The capital of France is", " Paris, of course");
  assert.ok(continuation.length >= 3);
  const [got] = await lm.loglikelihood([
    { context: "The capital of France is", continuation: " Paris, of course" },
  ]);
  const rows = causalLogits(model, [...context, ...continuation.slice(0, -1)]);
  let want = 0;
  let greedy = true;
  continuation.forEach((tokId, j) => {
    const row = rows[context.length - 1 + j];
    want += handLogprob(row, tokId);
    greedy &&= row.indexOf(Math.max(...row)) === tokId;
  });
  console.log(`# hand ${want} lethe ${got.logprob}`);
  assertNear(got.logprob, want, OTHER_WAY, "lethe vs hand");
  assert.equal(got.isGreedy, greedy);
  // A greedy continuation is recognised: take the argmax token after the context.
  const next = rows[context.length - 1].indexOf(Math.max(...rows[context.length - 1]));
  const [g] = lm.scoreTokens([{ context, continuation: [next] }]);
  assert.equal(g.isGreedy, true);
});

/** Shared contexts, one- and many-token continuations, an empty context, contexts past max length. */
function mixedRequests(): LoglikelihoodRequest[] {
  const long = "Once upon a time there was a little robot who liked to count. ".repeat(6);
  const reqs: LoglikelihoodRequest[] = [];
  for (const ctx of ["Question: what is 2+2?\nAnswer:", "The sky is ", long, long + "And then"])
    for (const cont of [" A", " four", " a number that is even and small", " blue\n"])
      reqs.push({ context: ctx, continuation: cont });
  reqs.push({ context: "", continuation: "Hello world" });
  reqs.push({ context: "x", continuation: " y" });
  return reqs;
}

test("fast path (prefix reuse, batching) equals the one-request oracle", async (t) => {
  if (!llamaDir || !gpt2Dir) return t.skip(skipReason("tokenizers", "llama2 | gpt2"));
  for (const [name, dir, model] of [
    ["llama", llamaDir, tinyLlama()],
    ["gpt2", gpt2Dir, tinyGpt2()],
  ] as const) {
    const tok = await loadTokenizer(dir);
    const reqs = mixedRequests();
    const oracle = await new ModelLM(model, tok, { fast: false }).loglikelihood(reqs);
    const lm = new ModelLM(model, tok, { batchSize: 3 });
    // The long contexts really are truncated, differently per continuation length.
    const enc = lm.encodePair(reqs[8].context, reqs[10].continuation);
    assert.ok(enc.context.length + enc.continuation.length > lm.maxLength + 1);
    assertSame(await lm.loglikelihood(reqs), oracle, `${name} batch 3`);
    assertSame(
      await new ModelLM(model, tok, { batchSize: 32 }).loglikelihood(reqs),
      oracle,
      `${name} batch 32`,
    );
    // The oracle's numbers are log-probabilities of non-empty continuations, finite and below 0,
    // so the comparisons above compared real numbers.
    oracle.forEach((r, i) =>
      assert.ok(r.logprob < 0 && Number.isFinite(r.logprob), `${name} request ${i}: ${r.logprob}`),
    );
  }
});

test("evaluate(): batch 1 and batch 32 give identical metrics, log-likelihoods within 1e-7 relative", async (t) => {
  if (!llamaDir || !bench) return t.skip(skipReason("tokenizers/llama2 | benchmarks"));
  const tok = await loadTokenizer(llamaDir);
  const model = tinyLlama();
  for (const [tasks, shots] of [
    [["piqa", "hellaswag"], 0],
    [["mmlu_anatomy"], 2],
  ] as const) {
    const opts = { dataDir: bench, limit: 3, shots, bootstrapIters: 0, logSamples: true };
    const one = await evaluate(new ModelLM(model, tok, { batchSize: 1 }), [...tasks], opts);
    const many = await evaluate(new ModelLM(model, tok, { batchSize: 32 }), [...tasks], opts);
    assert.deepEqual(many.results, one.results, "metrics are identical");
    for (const task of tasks) {
      const a = one.samples![task].flatMap((s) => s.filtered_resps);
      const b = many.samples![task].flatMap((s) => s.filtered_resps);
      assert.ok(a.length >= 6);
      console.log(
        `# ${task} batch 1 vs 32: max relative diff ${maxRel(
          a.map((x) => x[0]),
          b.map((x) => x[0]),
        ).toExponential(2)}`,
      );
      a.forEach(([lp, g], i) => {
        assertNear(lp, b[i][0], BATCH_INVARIANT, `${task} request ${i}`);
        assert.equal(g, b[i][1]);
      });
    }
  }
});

test("result cache: a rerun on an unchanged model never calls the model", async (t) => {
  if (!llamaDir) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(llamaDir);
  const model = tinyLlama();
  let calls = 0;
  const forward = model.forward.bind(model) as (x: never) => never;
  (model as { forward: unknown }).forward = (x: never) => (calls++, forward(x));
  const dir = mkdtempSync(join(tmpdir(), "lethe-evalcache-"));
  try {
    const fingerprint = moduleFingerprint(model);
    const reqs = mixedRequests();
    const lm1 = new ModelLM(model, tok, { cache: { store: ResultCache.open(dir), fingerprint } });
    const first = await lm1.loglikelihood(reqs);
    const rolling = await lm1.loglikelihoodRolling(["A short text to score in windows."]);
    assert.ok(calls > 0);
    const before = calls;
    const lm2 = new ModelLM(model, tok, { cache: { store: ResultCache.open(dir), fingerprint } });
    assert.deepEqual(await lm2.loglikelihood(reqs), first);
    assert.deepEqual(
      await lm2.loglikelihoodRolling(["A short text to score in windows."]),
      rolling,
    );
    assert.equal(calls, before, "cached results must not call forward");
    // A changed model has another fingerprint: everything is scored again.
    const other = moduleFingerprint(tinyLlama(4));
    assert.notEqual(other, fingerprint);
    const lm3 = new ModelLM(model, tok, {
      cache: { store: ResultCache.open(dir), fingerprint: other },
    });
    await lm3.loglikelihood(reqs.slice(0, 2));
    assert.ok(calls > before);
    assert.ok(readdirSync(dir).every((f) => /^seg-\d+-[0-9a-f]+\.jsonl$/.test(f)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("encoder-decoder (T5): context to the encoder, continuation scored by the decoder", async (t) => {
  if (!t5Dir) return t.skip(skipReason("tokenizers", "t5-small"));
  const tok = await loadTokenizer(t5Dir);
  const model = tinyT5();
  const lm = new ModelLM(model, tok, { maxLength: 24 });
  const r = lm.encodePair("translate English to German: The house is ", "wonderful.");
  assert.equal(r.context.at(-1), 1, "the encoder input ends with </s>");
  assert.equal(r.continuation.includes(1), false, "the continuation has no </s>");
  assert.deepEqual(r.continuation, tok.encode(" wonderful.", { addSpecialTokens: false }));
  // By hand: decoder input [start, cont[:-1]], every row scored.
  const [got] = lm.scoreTokens([r]);
  const rows = tidy(() => {
    if (model.kind !== "seq2seq") throw new Error("seq2seq");
    const out = model.forward({
      inputIds: tensor([r.context], { dtype: "int64" }),
      decoderInputIds: tensor([[0, ...r.continuation.slice(0, -1)]], { dtype: "int64" }),
    });
    return out.logits.select(0, 0).tolist() as number[][];
  });
  const want = r.continuation.reduce((a, tokId, j) => a + handLogprob(rows[j], tokId), 0);
  console.log(`# t5 hand ${want} lethe ${got.logprob}`);
  assertNear(got.logprob, want, OTHER_WAY, "t5 lethe vs hand");
  const reqs = mixedRequests();
  const oracle = await new ModelLM(model, tok, { fast: false, maxLength: 24 }).loglikelihood(reqs);
  assertSame(
    await new ModelLM(model, tok, { batchSize: 3, maxLength: 24 }).loglikelihood(reqs),
    oracle,
    "t5",
  );
});

test("loglikelihood_rolling: lm-eval's windows, scored and summed", async (t) => {
  // get_rolling_token_windows([1..10], prefix 0, max_seq_len 4, context_len 1), made disjoint.
  const tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.deepEqual(rollingWindows(tokens, 0, 4), [
    { context: [0], continuation: [1, 2, 3, 4] },
    { context: [4], continuation: [5, 6, 7, 8] },
    { context: [6, 7, 8], continuation: [9, 10] },
  ]);
  assert.deepEqual(rollingWindows([5, 6], 0, 4), [{ context: [0], continuation: [5, 6] }]);
  assert.deepEqual(rollingWindows([], 0, 4), []);
  if (!llamaDir) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(llamaDir);
  const model = tinyLlama();
  const text = "It was a bright cold day in April, and the clocks were striking thirteen.";
  const lm = new ModelLM(model, tok, { maxLength: 8 });
  const ids = tok.encode(text, { addSpecialTokens: false });
  assert.ok(ids.length > 16);
  // By hand: every token scored from at most 8 inputs, the first from BOS.
  let want = 0;
  for (const w of rollingWindows(ids, 1, 8)) {
    const inp = [...w.context, ...w.continuation].slice(-9).slice(0, -1);
    assert.ok(inp.length <= 8);
    const rows = causalLogits(model, inp);
    w.continuation.forEach((tokId, j) => {
      want += handLogprob(rows[inp.length - w.continuation.length + j], tokId);
    });
  }
  const [got] = await lm.loglikelihoodRolling([text]);
  const [oracle] = await new ModelLM(model, tok, {
    maxLength: 8,
    fast: false,
  }).loglikelihoodRolling([text]);
  console.log(`# rolling hand ${want} fast ${got} oracle ${oracle}`);
  assertNear(got, want, OTHER_WAY, "rolling fast vs hand");
  assertNear(got, oracle, OTHER_WAY, "rolling fast vs oracle");
});

test("generate_until: batched equals one at a time; stop strings cut the text", async (t) => {
  if (!llamaDir) return t.skip(skipReason("tokenizers", "llama2"));
  const tok: Tokenizer = await loadTokenizer(llamaDir);
  const model = tinyLlama();
  const reqs = ["Once upon a time", "The answer is", "Q: 1+1\nA:"].map((context) => ({
    context,
    until: [] as string[],
    maxGenToks: 6,
  }));
  const oracle = await new ModelLM(model, tok, { fast: false }).generateUntil(reqs);
  assert.deepEqual(await new ModelLM(model, tok, { batchSize: 4 }).generateUntil(reqs), oracle);
  assert.ok(oracle.every((s) => s.length > 0));
  const stop = [...oracle[0]].slice(2, 4).join("");
  const [cut] = await new ModelLM(model, tok).generateUntil([{ ...reqs[0], until: [stop] }]);
  assert.equal(cut, oracle[0].split(stop)[0]);
  assert.ok(cut.length < oracle[0].length);
});

test("ResultCache: atomic segments, merged past MAX_SEGMENTS, bad lines named", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-resultcache-"));
  try {
    const key = (i: number) => requestKey(["k", i]);
    for (let i = 0; i <= MAX_SEGMENTS; i++) {
      const c = ResultCache.open(dir);
      c.set(key(i), [i, i % 2 === 0]);
      c.flush();
      c.flush(); // nothing pending: no empty segment
    }
    assert.equal(readdirSync(dir).length, MAX_SEGMENTS + 1);
    const c = ResultCache.open(dir);
    assert.equal(readdirSync(dir).length, 1, "opening past MAX_SEGMENTS merged them");
    assert.equal(c.size, MAX_SEGMENTS + 1);
    assert.deepEqual(c.get(key(3)), [3, false]);
    assert.equal(c.get(requestKey(["k", -1])), undefined);
    const seg = join(dir, readdirSync(dir)[0]);
    appendFileSync(seg, '{"k": "not-a-key", "v": 1}\n');
    assert.throws(
      () => ResultCache.open(dir),
      (e: Error) => e.message.includes(seg) && e.message.includes(`line ${MAX_SEGMENTS + 3}`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** `model` with every weight NaN (a diverged checkpoint). */
function poisoned<M extends LanguageModel>(model: M): M {
  noGrad(() => model.parameters().forEach((p) => p.fill_(Number.NaN)));
  return model;
}

test("NaN weights: evaluate() throws naming the model, task, doc and request, no score", async (t) => {
  if (!llamaDir || !bench) return t.skip(skipReason("tokenizers/llama2 | benchmarks"));
  const tok = await loadTokenizer(llamaDir);
  const model = poisoned(tinyLlama());
  const opts = { dataDir: bench, limit: 2, shots: 0, bootstrapIters: 0 };
  const named = new ModelLM(model, tok, { name: "runs/diverged" });
  await assert.rejects(evaluate(named, ["piqa"], opts), (e: Error) => {
    console.log(`# ${e.message}`);
    assert.ok(e instanceof NonFiniteScoreError);
    assert.equal(e.task, "piqa");
    assert.equal(e.docId, 0);
    assert.match(e.message, /^model runs\/diverged: log-likelihood is NaN on task "piqa", doc 0 /);
    assert.match(e.message, /\(context …"[^"]{40,}Answer:", continuation " [^"]+"…\)/);
    return true;
  });
  // Unnamed: the model type stands in; a long context shows only its end.
  await assert.rejects(evaluate(new ModelLM(model, tok), ["hellaswag"], opts), (e: Error) => {
    assert.match(
      e.message,
      /^model \(a llama model\): log-likelihood is NaN on task "hellaswag", doc 0 /,
    );
    assert.match(e.message, /context …"[^"]{60}"/);
    return true;
  });
});

test("NaN weights: generate_until throws naming the model, the step and the request", async (t) => {
  if (!llamaDir) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(llamaDir);
  const lm = new ModelLM(poisoned(tinyLlama()), tok, { name: "runs/diverged" });
  const reqs = ["Once upon a time", "Q: 1+1\nA:"].map((context) => ({
    context,
    until: [],
    maxGenToks: 4,
  }));
  await assert.rejects(lm.generateUntil(reqs), (e: Error) => {
    console.log(`# ${e.message}`);
    assert.ok(e instanceof NonFiniteLogitsError);
    assert.equal(e.step, 1);
    assert.match(
      e.message,
      /^model runs\/diverged: logits are NaN at generation step 1 \(generate_until request \d \(context "(Once upon a time|Q: 1\+1\\nA:)"\)\)/,
    );
    return true;
  });
});
