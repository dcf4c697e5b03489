/**
 * The model side of evaluation: lm-eval's `LM` over a lethe model and tokenizer. Semantics match
 * lm-evaluation-harness v0.4.x lm_eval/models/huggingface.py (`HFLM`) and lm_eval/api/model.py
 * (`TemplateLM`):
 *  - tokenization (`_encode_pair`): trailing whitespace of the context moves to the front of the
 *    continuation; decoder-only models encode context + continuation together and split after
 *    as many tokens as the context alone has (the context part is the context encoded alone);
 *    encoder-decoder models encode the context with special tokens (T5's
 *    `</s>`) and the continuation without. An empty context becomes `[prefix_token_id]` (BOS, else
 *    EOS) and the continuation is encoded alone. Special tokens are added for decoder-only models
 *    only with `addBosToken` (lm-eval `add_bos_token`, default false).
 *  - scoring (`_loglikelihood_tokens`): decoder-only input (context + continuation)[-(L+1):][:-1]
 *    (left truncation to max length L; the last continuation token is never fed), the last
 *    len(continuation) logit rows are log-softmaxed and gathered; is_greedy = every row's argmax
 *    is the continuation token. Encoder-decoder: encoder input context[-L:], decoder input the
 *    decoder start token + continuation[:-1], every decoder row scored.
 *  - `loglikelihoodRolling`: `get_rolling_token_windows(tokens, prefix_token_id, L, 1)` made
 *    disjoint (`make_disjoint_window`), each window scored as above, summed.
 *  - `generateUntil`: greedy decoding of up to `maxGenToks` (256) new tokens from the context
 *    left-truncated to L − maxGenToks (decoder-only) or L (encoder-decoder), decoded without
 *    special tokens and cut at the first occurrence of each stop string (EOS's text appended to
 *    `until`, as lm-eval does). Decoding continues to EOS or `maxGenToks` and is cut afterwards:
 *    greedy tokens do not depend on later ones, so the text equals lm-eval's early stop.
 * max_length L defaults, as HFLM, to config `n_positions`, `max_position_embeddings`, `n_ctx`,
 * else 2048. Log-probabilities are summed in float64 here (lm-eval sums float32 on device).
 *
 * Speed: decoder-only requests go through one prefix tree (src/eval/prefix.ts, RadixAttention's
 * idea): every shared token prefix runs once, its cache kept under `prefixCacheMb` while its
 * subtree is scored, and logits are computed only at scored positions. With `prefixTree: false`
 * the previous fast path runs instead: it groups requests whose scored inputs share everything
 * but the fed continuation tokens, runs each shared prefix once with the KV cache (batched, left-padded) and
 * scores every continuation of the group from that cache (batched, right-padded); a one-token
 * continuation needs no further pass (lm-eval's one-token logits cache, extended to any length).
 * The oracle (`fast: false`) scores one request at a time with one whole-sequence forward, as
 * lm-eval does at batch size 1; tests hold the fast path to it. The batch size never changes a
 * metric; log-likelihoods agree across batch sizes within 1e-7 relative, not bit for bit (CPU
 * kernels block a matmul differently for another batch shape). Results are looked up in a
 * `ResultCache` by sha256 of (model fingerprint, request kind, max length, addBosToken, request)
 * before any tokenization, and stored after scoring.
 */
import type { Tokenizer } from "../io/tokenizer.js";
import { generate, modelName, NonFiniteLogitsError } from "../models/generate.js";
import type { CausalLM, LanguageModel, Seq2SeqLM } from "../models/types.js";
import { cat, full, noGrad, tensor, tidy, type Tensor } from "../tensor/index.js";
import { requestKey, type ResultCache } from "./cache.js";
import type { Dist } from "../dist/index.js";
import { freemem } from "node:os";
import { gpuMemory, isCuda } from "../util/gpu.js";
import { scorePrefixTree, type PrefixTreeStats } from "./prefix.js";
import {
  shown,
  type GenerateRequest,
  type LM,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
} from "./lm.js";

/** One scoring request in token ids (lm-eval's (context_enc, continuation_enc)). */
export interface TokenRequest {
  context: number[];
  continuation: number[];
}

export interface ModelLMOptions {
  /** lm-eval `max_length`. @default config n_positions | max_position_embeddings | n_ctx, else 2048 */
  maxLength?: number;
  /** Shared prefixes (and continuations) per forward pass. @default 32 */
  batchSize?: number;
  /** Prefix reuse and batching; false is the oracle: one request per forward. @default true */
  fast?: boolean;
  /**
   * With `fast`, decoder-only scoring shares every common prefix across requests through a
   * prefix tree (src/eval/prefix.ts); false: only requests with the same whole context share it
   * (the previous fast path, kept for benches). @default true
   */
  prefixTree?: boolean;
  /** Megabytes of key/value cache the prefix tree keeps. @default a quarter of free memory */
  prefixCacheMb?: number;
  /** lm-eval `add_bos_token`: decoder-only models encode with special tokens. @default false */
  addBosToken?: boolean;
  /** lm-eval `max_gen_toks` when a request gives none. @default 256 */
  maxGenToks?: number;
  /** Where results are looked up and stored, and the fingerprint of the model they belong to. */
  cache?: { store: ResultCache; fingerprint: string } | null;
  /** What errors call the model (a path, a hub name). @default see `modelName` */
  name?: string;
  /**
   * Several ranks evaluate together: request i of what is left to compute goes to rank
   * i mod N, and every rank gets every result (gathered in request order), so results, item
   * files and cache entries are those of one process (open the cache read-only on the ranks
   * other than 0, so that only rank 0 writes it).
   */
  dist?: Dist | null;
}

/** HFLM `_DEFAULT_MAX_LENGTH`. */
const DEFAULT_MAX_LENGTH = 2048;
/**
 * Floats of logits one forward may produce (256 Mi floats = 1 GiB): the model returns logits for
 * every position, so a batch of long prefixes is capped by this, not only by batchSize.
 */
const LOGITS_BUDGET = 2 ** 28;
/**
 * Default prefix-cache budget: a quarter of the free memory where the cache lives (the host's RAM,
 * or the GPU's as nvidia-smi reports it once the model is there; 1 GiB if it does not answer),
 * leaving the rest to the model, activations and the other processes of a shared machine.
 */
export function defaultPrefixCacheMb(device = "cpu"): number {
  const free = isCuda(device) ? (gpuMemory(device, "free").bytes ?? 4 * 2 ** 30) : freemem();
  return Math.max(64, Math.floor(free / 4 / 2 ** 20));
}
/** HFLM `max_gen_toks`. */
const DEFAULT_MAX_GEN_TOKS = 256;

/** lm-eval's max_length of a model: the first of n_positions, max_position_embeddings, n_ctx. */
export function maxLengthOf(config: Record<string, unknown>): number {
  for (const k of ["n_positions", "max_position_embeddings", "n_ctx"]) {
    const v = config[k];
    if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  }
  return DEFAULT_MAX_LENGTH;
}

/**
 * lm-eval `get_rolling_token_windows(tokens, prefixToken, maxLength, 1)` mapped through
 * `make_disjoint_window`: (context, continuation) pairs that together predict every token once.
 */
export function rollingWindows(
  tokens: number[],
  prefixToken: number,
  maxLength: number,
): TokenRequest[] {
  const out: TokenRequest[] = [];
  if (tokens.length === 0) return out;
  const disjoint = (a: number[], b: number[]) =>
    out.push({ context: a.slice(0, a.length - (b.length - 1)), continuation: b });
  const first = Math.min(maxLength, tokens.length);
  disjoint([prefixToken, ...tokens.slice(0, first - 1)], tokens.slice(0, first));
  for (let predicted = first; predicted < tokens.length;) {
    const n = Math.min(tokens.length - predicted, maxLength);
    const end = predicted + n;
    disjoint(tokens.slice(Math.max(0, end - maxLength - 1), end - 1), tokens.slice(end - n, end));
    predicted += n;
  }
  return out;
}

const ids2d = (rows: number[][], device: string): Tensor =>
  tensor(BigInt64Array.from(rows.flat(), BigInt), {
    shape: [rows.length, rows[0].length],
    device,
  });

const padRight = (xs: number[], n: number, pad = 0) => [
  ...xs,
  ...new Array(n - xs.length).fill(pad),
];
const padLeft = (xs: number[], n: number, pad = 0) => [
  ...new Array(n - xs.length).fill(pad),
  ...xs,
];
const maskRight = (len: number, n: number) => padRight(new Array(len).fill(1), n);
const maskLeft = (len: number, n: number) => padLeft(new Array(len).fill(1), n);

/** Log-probability of `cont` under logit rows (m, V) that predict it, and whether it is greedy. */
function scoreRows(rows: Tensor, cont: number[]): LoglikelihoodResult {
  return tidy(() => {
    const lp = rows.logSoftmax(-1); // (m, V)
    const target = ids2d([cont], rows.device).t(); // (m, 1)
    const picked = lp.gather(1, target).toNumbers();
    const greedy = lp.argmax(-1).toNumbers();
    return {
      logprob: picked.reduce((a, b) => a + b, 0),
      isGreedy: greedy.every((g, i) => g === cont[i]),
    };
  });
}

/** Cache values are JSON: a non-finite log-probability is stored as its string. */
const storeNumber = (x: number): number | string => (Number.isFinite(x) ? x : String(x));

export class ModelLM implements LM {
  readonly maxLength: number;
  readonly batchSize: number;
  readonly fast: boolean;
  readonly prefixTree: boolean;
  readonly prefixCacheMb: number;
  /** Prefix-tree work since construction (forwards, tokens fed, evictions, peak cache bytes). */
  readonly prefixStats: PrefixTreeStats = { forwards: 0, tokens: 0, evicted: 0, peakBytes: 0 };
  readonly addBosToken: boolean;
  readonly maxGenToks: number;
  readonly name: string;
  /** Requests answered from the result cache and requests computed, since construction. */
  readonly stats = { cached: 0, computed: 0 };
  readonly #cache: ModelLMOptions["cache"];
  readonly #device: string;
  readonly #dist: Dist | null;

  constructor(
    readonly model: LanguageModel,
    readonly tokenizer: Tokenizer,
    o: ModelLMOptions = {},
  ) {
    this.maxLength = o.maxLength ?? maxLengthOf(model.config);
    this.batchSize = o.batchSize ?? 32;
    this.fast = o.fast ?? true;
    this.prefixTree = o.prefixTree ?? true;
    this.#device = model.parameters()[0]?.device ?? "cpu";
    this.prefixCacheMb = o.prefixCacheMb ?? defaultPrefixCacheMb(this.#device);
    if (!(this.prefixCacheMb >= 0))
      throw new Error(`ModelLM: prefixCacheMb must be a number >= 0, got ${this.prefixCacheMb}`);
    this.addBosToken = o.addBosToken ?? false;
    this.maxGenToks = o.maxGenToks ?? DEFAULT_MAX_GEN_TOKS;
    this.#cache = o.cache ?? null;
    this.#dist = o.dist ?? null;
    this.name = o.name ?? modelName(model);
    for (const [name, v] of [
      ["maxLength", this.maxLength],
      ["batchSize", this.batchSize],
      ["maxGenToks", this.maxGenToks],
    ] as const)
      if (!Number.isInteger(v) || v < 1)
        throw new Error(`ModelLM: ${name} must be an integer >= 1, got ${v}`);
  }

  /** lm-eval `prefix_token_id`: BOS, else EOS. */
  get prefixTokenId(): number {
    const id = this.tokenizer.bosTokenId ?? this.tokenizer.eosTokenId;
    if (id === null)
      throw new Error(`${this.tokenizer.file}: the tokenizer has neither a BOS nor an EOS token`);
    return id;
  }

  /** lm-eval `tok_encode`: special tokens only for encoder-decoder models or with addBosToken. */
  encode(text: string, addSpecialTokens?: boolean): number[] {
    const special = addSpecialTokens ?? (this.model.kind === "seq2seq" || this.addBosToken);
    return this.tokenizer.encode(text, { addSpecialTokens: special });
  }

  /**
   * lm-eval `loglikelihood`'s encoding of (context, continuation), `_encode_pair` included.
   * `encodeContext` may memoize `encode` over a batch (a question's choices share its context).
   */
  encodePair(
    context: string,
    continuation: string,
    encodeContext: (text: string) => number[] = (t) => this.encode(t),
  ): TokenRequest {
    if (context === "")
      return { context: [this.prefixTokenId], continuation: this.encode(continuation) };
    const nSpaces = context.length - context.trimEnd().length;
    if (nSpaces > 0) {
      continuation = context.slice(-nSpaces) + continuation;
      context = context.slice(0, -nSpaces);
    }
    if (this.model.kind === "seq2seq")
      return { context: encodeContext(context), continuation: this.encode(continuation, false) };
    const contextEnc = encodeContext(context);
    return {
      context: contextEnc,
      continuation: this.encode(context + continuation).slice(contextEnc.length),
    };
  }

  async loglikelihood(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const stored = this.#cached(
      "loglikelihood",
      reqs,
      (r) => [r.context, r.continuation],
      (todo) => {
        // Choices share their context: each distinct context is encoded once.
        const memo = new Map<string, number[]>();
        const encodeContext = (t: string) => {
          const hit = memo.get(t);
          if (hit) return hit;
          const ids = this.encode(t);
          memo.set(t, ids);
          return ids;
        };
        const enc = todo.map((r) => this.encodePair(r.context, r.continuation, encodeContext));
        return this.scoreTokens(enc).map((x) => [storeNumber(x.logprob), x.isGreedy]);
      },
    );
    return stored.map((v, i) => {
      if (!Array.isArray(v) || v.length !== 2 || typeof v[1] !== "boolean")
        throw new Error(`eval cache: loglikelihood result of request ${i} is malformed`);
      return { logprob: Number(v[0]), isGreedy: v[1] };
    });
  }

  async loglikelihoodRolling(texts: string[]): Promise<number[]> {
    const stored = this.#cached(
      "loglikelihood_rolling",
      texts,
      (t) => [t],
      (todo) => {
        const windows = todo.map((t) =>
          rollingWindows(this.encode(t), this.prefixTokenId, this.maxLength),
        );
        const scores = this.scoreTokens(windows.flat());
        let at = 0;
        return windows.map((w) =>
          storeNumber(scores.slice(at, (at += w.length)).reduce((a, s) => a + s.logprob, 0)),
        );
      },
    );
    return stored.map(Number);
  }

  async generateUntil(reqs: GenerateRequest[]): Promise<string[]> {
    const stored = this.#cached(
      "generate_until",
      reqs,
      (r) => [r.context, r.until, r.maxGenToks ?? this.maxGenToks],
      (todo) => this.#generate(todo),
    );
    return stored.map(String);
  }

  /** Scores token-level requests (lm-eval `_loglikelihood_tokens`), in request order. */
  scoreTokens(reqs: TokenRequest[]): LoglikelihoodResult[] {
    reqs.forEach((r, i) => {
      if (r.context.length === 0 || r.continuation.length === 0)
        throw new Error(`request ${i}: context and continuation must each have at least one token`);
      if (r.continuation.length > this.maxLength)
        throw new Error(
          `request ${i}: continuation has ${r.continuation.length} tokens, more than max length ${this.maxLength}`,
        );
    });
    return this.#run(() => {
      if (!this.fast) return reqs.map((r) => this.#oracle(r));
      if (this.model.kind === "seq2seq") return this.#seq2seqFast(this.model, reqs);
      return this.prefixTree
        ? this.#causalTree(this.model, reqs)
        : this.#causalFast(this.model, reqs);
    });
  }

  /** Without autograd, in eval mode (the model's mode is restored afterwards). */
  #run<T>(fn: () => T): T {
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      return noGrad(fn);
    } finally {
      if (wasTraining) this.model.train();
    }
  }

  #cached<R>(
    kind: string,
    reqs: R[],
    keyOf: (r: R) => unknown[],
    computeHere: (todo: R[]) => unknown[],
  ): unknown[] {
    const dist = this.#dist;
    const compute = !dist
      ? computeHere
      : (todo: R[]) => {
          const shares = dist.allGatherJson(
            computeHere(todo.filter((_, i) => i % dist.world === dist.rank)),
          );
          return todo.map((_, i) => shares[i % dist.world][Math.floor(i / dist.world)]);
        };
    const c = this.#cache;
    if (!c) {
      this.stats.computed += reqs.length;
      return compute(reqs);
    }
    const keys = reqs.map((r) =>
      requestKey([c.fingerprint, kind, this.maxLength, this.addBosToken, ...keyOf(r)]),
    );
    const out = keys.map((k) => c.store.get(k));
    const todo = out.flatMap((v, i) => (v === undefined ? [i] : []));
    this.stats.cached += reqs.length - todo.length;
    this.stats.computed += todo.length;
    if (todo.length === 0) return out;
    const computed = compute(todo.map((i) => reqs[i]));
    todo.forEach((i, j) => {
      out[i] = computed[j];
      c.store.set(keys[i], computed[j]);
    });
    c.store.flush();
    return out;
  }

  /**
   * Consecutive batches of at most `batchSize` items (longest first) whose padded logits,
   * items × longest × vocab floats, stay within LOGITS_BUDGET (one item always fits).
   */
  #batches<T>(sorted: T[], length: (x: T) => number): T[][] {
    const out: T[][] = [];
    const vocab = this.model.config.vocab_size;
    for (let at = 0; at < sorted.length;) {
      const fit = Math.floor(LOGITS_BUDGET / (length(sorted[at]) * vocab));
      const n = Math.max(1, Math.min(this.batchSize, fit));
      out.push(sorted.slice(at, at + n));
      at += n;
    }
    return out;
  }

  /** The slow, obvious path: one request, one forward over its whole input. */
  #oracle(r: TokenRequest): LoglikelihoodResult {
    const m = r.continuation.length;
    return tidy(() => {
      if (this.model.kind === "causal") {
        const inp = [...r.context, ...r.continuation].slice(-(this.maxLength + 1)).slice(0, -1);
        const logits = this.model.forward({ inputIds: ids2d([inp], this.#device) }).logits;
        return scoreRows(logits.select(0, 0).narrow(0, inp.length - m, m), r.continuation);
      }
      const dec = [this.model.config.decoder_start_token_id, ...r.continuation.slice(0, -1)];
      const logits = this.model.forward({
        inputIds: ids2d([r.context.slice(-this.maxLength)], this.#device),
        decoderInputIds: ids2d([dec], this.#device),
      }).logits;
      return scoreRows(logits.select(0, 0), r.continuation);
    });
  }

  /** Every request through one prefix tree: each shared prefix runs once (src/eval/prefix.ts). */
  #causalTree(model: CausalLM, reqs: TokenRequest[]): LoglikelihoodResult[] {
    const seqs = reqs.map((r) => ({
      ids: [...r.context, ...r.continuation].slice(-(this.maxLength + 1)).slice(0, -1),
      targets: r.continuation,
    }));
    const res = scorePrefixTree(model, seqs, {
      batchSize: this.batchSize,
      maxLength: this.maxLength,
      budgetBytes: this.prefixCacheMb * 2 ** 20,
      logitsBudget: LOGITS_BUDGET,
      device: this.#device,
    });
    const st = this.prefixStats;
    st.forwards += res.stats.forwards;
    st.tokens += res.stats.tokens;
    st.evicted += res.stats.evicted;
    st.peakBytes = Math.max(st.peakBytes, res.stats.peakBytes);
    return res.logprob.map((logprob, i) => ({ logprob, isGreedy: res.isGreedy[i] }));
  }

  /**
   * Groups by the scored input's shared prefix (everything up to and including the last context
   * token), runs each prefix once with the cache and feeds each continuation's own tokens after it.
   */
  #causalFast(model: CausalLM, reqs: TokenRequest[]): LoglikelihoodResult[] {
    const groups = new Map<
      string,
      { prefix: number[]; members: { i: number; suffix: number[] }[] }
    >();
    reqs.forEach((r, i) => {
      const inp = [...r.context, ...r.continuation].slice(-(this.maxLength + 1)).slice(0, -1);
      const split = inp.length - r.continuation.length + 1;
      const prefix = inp.slice(0, split);
      const key = prefix.join(",");
      if (!groups.has(key)) groups.set(key, { prefix, members: [] });
      groups.get(key)!.members.push({ i, suffix: inp.slice(split) });
    });
    const out: LoglikelihoodResult[] = new Array(reqs.length);
    const order = sortByLength([...groups.values()], (g) => g.prefix);
    for (const batch of this.#batches(order, (g) => g.prefix.length))
      tidy(() => {
        const Lp = Math.max(...batch.map((g) => g.prefix.length));
        const padded = batch.some((g) => g.prefix.length !== Lp);
        const mask = padded
          ? ids2d(
              batch.map((g) => maskLeft(g.prefix.length, Lp)),
              this.#device,
            )
          : null;
        const first = model.forward({
          inputIds: ids2d(
            batch.map((g) => padLeft(g.prefix, Lp)),
            this.#device,
          ),
          attentionMask: mask,
          useCache: true,
          logitsToKeep: 1, // only the prefix's last position scores anything
        });
        const last = first.logits.select(1, -1); // (G, V): each group's first continuation token
        const members = batch.flatMap((g, gi) => g.members.map((m) => ({ ...m, gi })));
        for (const m of members.filter((m) => m.suffix.length === 0))
          out[m.i] = scoreRows(last.narrow(0, m.gi, 1), reqs[m.i].continuation);
        for (const chunk of suffixChunks(
          members,
          this.batchSize,
          this.maxLength,
          (m) => batch[m.gi].prefix.length,
        ))
          tidy(() => {
            // Only the chunk's longest prefix is kept from the left-padded cache, so that every
            // chunk fits in max length (each request's prefix + suffix does).
            const Lm = Math.max(...chunk.map((m) => batch[m.gi].prefix.length));
            const Ls = Math.max(...chunk.map((m) => m.suffix.length));
            const idx = tensor(
              BigInt64Array.from(chunk, (m) => BigInt(m.gi)),
              { device: this.#device },
            );
            // One group (a context's choices): its cache row is broadcast, a view, not copied.
            const gi = chunk[0].gi;
            const oneGroup = chunk.every((m) => m.gi === gi);
            const ragged = chunk.some(
              (m) => batch[m.gi].prefix.length !== Lm || m.suffix.length !== Ls,
            );
            const chunkMask = () =>
              ids2d(
                chunk.map((m) => [
                  ...maskLeft(batch[m.gi].prefix.length, Lm),
                  ...maskRight(m.suffix.length, Ls),
                ]),
                this.#device,
              );
            const cacheRows = (t: Tensor) =>
              oneGroup
                ? t.narrow(0, gi, 1).expand(chunk.length, -1, -1, -1)
                : t.indexSelect(0, idx);
            const keep = (t: Tensor) => cacheRows(t).narrow(2, Lp - Lm, Lm);
            const logits = model.forward({
              inputIds: ids2d(
                chunk.map((m) => padRight(m.suffix, Ls)),
                this.#device,
              ),
              attentionMask: ragged ? chunkMask() : null,
              cache: first.cache!.map(({ k, v }) => ({ k: keep(k), v: keep(v) })),
            }).logits; // (M, Ls, V)
            chunk.forEach((m, j) => {
              const rows = cat([
                last.narrow(0, m.gi, 1),
                logits.select(0, j).narrow(0, 0, m.suffix.length),
              ]);
              out[m.i] = scoreRows(rows, reqs[m.i].continuation);
            });
          });
      });
    return out;
  }

  /** Groups by encoder input, encodes each once and decodes every continuation from it. */
  #seq2seqFast(model: Seq2SeqLM, reqs: TokenRequest[]): LoglikelihoodResult[] {
    const groups = new Map<string, { enc: number[]; members: number[] }>();
    reqs.forEach((r, i) => {
      const enc = r.context.slice(-this.maxLength);
      const key = enc.join(",");
      if (!groups.has(key)) groups.set(key, { enc, members: [] });
      groups.get(key)!.members.push(i);
    });
    const start = model.config.decoder_start_token_id;
    const out: LoglikelihoodResult[] = new Array(reqs.length);
    const order = sortByLength([...groups.values()], (g) => g.enc);
    for (const batch of this.#batches(order, (g) => g.enc.length))
      tidy(() => {
        const Le = Math.max(...batch.map((g) => g.enc.length));
        const padded = batch.some((g) => g.enc.length !== Le);
        const encIds = ids2d(
          batch.map((g) => padRight(g.enc, Le)),
          this.#device,
        );
        const encMask = padded
          ? ids2d(
              batch.map((g) => maskRight(g.enc.length, Le)),
              this.#device,
            )
          : null;
        const first = model.forward({
          inputIds: encIds,
          attentionMask: encMask,
          decoderInputIds: full([batch.length, 1], start, { dtype: "int64", device: this.#device }),
        });
        const last = first.logits.select(1, 0); // (G, V): each group's first continuation token
        const members = batch.flatMap((g, gi) =>
          g.members.map((i) => ({ i, gi, cont: reqs[i].continuation })),
        );
        for (const m of members.filter((m) => m.cont.length === 1))
          out[m.i] = scoreRows(last.narrow(0, m.gi, 1), m.cont);
        const long = members.filter((m) => m.cont.length > 1);
        for (let k = 0; k < long.length; k += this.batchSize) {
          const chunk = long.slice(k, k + this.batchSize);
          tidy(() => {
            const idx = tensor(
              BigInt64Array.from(chunk, (m) => BigInt(m.gi)),
              { device: this.#device },
            );
            const Ld = Math.max(...chunk.map((m) => m.cont.length));
            const logits = model.forward({
              inputIds: encIds.indexSelect(0, idx),
              attentionMask: encMask?.indexSelect(0, idx) ?? null,
              encoderHidden: first.encoderHidden.indexSelect(0, idx),
              decoderInputIds: ids2d(
                chunk.map((m) => padRight([start, ...m.cont.slice(0, -1)], Ld)),
                this.#device,
              ),
            }).logits; // (M, Ld, V); right padding never reaches earlier rows (causal decoder)
            chunk.forEach((m, j) => {
              out[m.i] = scoreRows(logits.select(0, j).narrow(0, 0, m.cont.length), m.cont);
            });
          });
        }
      });
    return out;
  }

  /** Greedy generation in batches of equal `maxGenToks` (batch size 1 for the oracle). */
  #generate(reqs: GenerateRequest[]): string[] {
    const eos = this.tokenizer.eosTokenId;
    const eosText = eos === null ? null : this.tokenizer.decode([eos]);
    const causal = this.model.kind === "causal";
    const items = reqs.map((r, i) => {
      const maxNew = r.maxGenToks ?? this.maxGenToks;
      const keep = causal ? this.maxLength - maxNew : this.maxLength;
      if (keep < 1)
        throw new Error(
          `request ${i}: maxGenToks ${maxNew} leaves no room in max length ${this.maxLength}`,
        );
      return { i, maxNew, ids: this.encode(r.context).slice(-keep) };
    });
    const out: string[] = new Array(reqs.length);
    const size = this.fast ? this.batchSize : 1;
    for (const maxNew of new Set(items.map((x) => x.maxNew))) {
      const group = items.filter((x) => x.maxNew === maxNew);
      const order = sortByLength(group, (x) => x.ids);
      for (let at = 0; at < order.length; at += size) {
        const batch = order.slice(at, at + size);
        const L = Math.max(...batch.map((x) => x.ids.length));
        const inputIds = batch.map((x) => (causal ? padLeft(x.ids, L) : padRight(x.ids, L)));
        const mask = batch.map((x) =>
          causal ? maskLeft(x.ids.length, L) : maskRight(x.ids.length, L),
        );
        const rows = this.#run(() =>
          tidy(() => {
            try {
              return generate(this.model, {
                inputIds: ids2d(inputIds, this.#device),
                attentionMask: ids2d(mask, this.#device),
                maxNewTokens: maxNew,
                eosTokenId: eos,
                name: this.name,
              });
            } catch (e) {
              if (!(e instanceof NonFiniteLogitsError)) throw e;
              const { i } = batch[e.row]; // the row's request
              const where = `generate_until request ${i} (context ${shown(reqs[i].context, "end")})`;
              throw new NonFiniteLogitsError(e.model, e.step, e.row, e.value, where);
            }
          }),
        );
        batch.forEach((x, j) => {
          let text = this.tokenizer.decode(rows[j], { skipSpecialTokens: true });
          const until = [...reqs[x.i].until, ...(eosText === null ? [] : [eosText])];
          for (const term of until) if (term.length > 0) text = text.split(term)[0];
          out[x.i] = text;
        });
      }
    }
    return out;
  }
}

/**
 * Members with a suffix, in chunks of at most `size` whose longest prefix plus longest suffix
 * stays within `maxLength` (members come grouped by prefix, longest prefix first).
 */
function suffixChunks<M extends { suffix: number[] }>(
  members: M[],
  size: number,
  maxLength: number,
  prefixLength: (m: M) => number,
): M[][] {
  const chunks: M[][] = [];
  let cur: M[] = [];
  let [p, s] = [0, 0];
  for (const m of members.filter((m) => m.suffix.length > 0)) {
    const [np, ns] = [Math.max(p, prefixLength(m)), Math.max(s, m.suffix.length)];
    if (cur.length === size || (cur.length > 0 && np + ns > maxLength)) {
      chunks.push(cur);
      [cur, p, s] = [[], 0, 0];
    }
    cur.push(m);
    [p, s] = [Math.max(p, prefixLength(m)), Math.max(s, m.suffix.length)];
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** Longest first, ties by content: lm-eval's Collator order, deterministic across batch sizes. */
function sortByLength<T>(xs: T[], ids: (x: T) => number[]): T[] {
  const key = new Map(xs.map((x) => [x, ids(x).join(",")]));
  return xs.sort(
    (a, b) =>
      ids(b).length - ids(a).length ||
      (key.get(a)! < key.get(b)! ? -1 : key.get(a)! > key.get(b)! ? 1 : 0),
  );
}
