/**
 * Text generation for every architecture: greedy decoding and seeded sampling, batched with
 * left padding, stopped by max_new_tokens and stop (EOS) tokens, with or without a KV cache.
 * Reference: transformers/generation/utils.py (`GenerationMixin._sample`: unfinished rows, pad
 * after EOS, mask extended by one per step) and generation/logits_process.py
 * (`TemperatureLogitsWarper` → `TopKLogitsWarper` → `TopPLogitsWarper`, then softmax and
 * `torch.multinomial`), with GenerationConfig's defaults (temperature 1, top_k 50, top_p 1).
 * Encoder-decoder models run the encoder once and start the decoder from
 * `decoder_start_token_id`; their cache holds decoder self-attention keys/values plus the
 * cross-attention keys/values computed on the first step.
 * The uncached path re-runs the whole sequence every step: it is the oracle the cache must equal.
 * Logits that are NaN or infinite in a row still generating are an error naming the model and the
 * step (transformers would take argmax over NaN, token 0, and decode it to an empty string).
 */
import {
  cat,
  full,
  Generator,
  keep,
  multinomial,
  noGrad,
  ones,
  tensor,
  tidy,
  type Tensor,
} from "../tensor/index.js";
import type { CausalLM, LanguageModel, LayerCache, Seq2SeqLM } from "./types.js";

export interface GenerateOptions {
  /** (B, T) int64 prompt ids: left-padded for decoder-only models, the encoder input otherwise. */
  inputIds: Tensor;
  /** (B, T), 1 = token, 0 = padding. @default all ones */
  attentionMask?: Tensor | null;
  /** New tokens per row at most. */
  maxNewTokens: number;
  /** Token id(s) that end a row (kept as the row's last token). @default none */
  eosTokenId?: number | readonly number[] | null;
  /** Fed to the model for rows already finished. @default the first EOS id, else 0 */
  padTokenId?: number | null;
  /** Sample instead of taking the argmax. @default false */
  doSample?: boolean;
  /** Logits are divided by this before sampling. @default 1 */
  temperature?: number;
  /** Keep the k most likely tokens when sampling; 0 keeps all. @default 50 (transformers) */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches top_p. @default 1 */
  topP?: number;
  /** Seed of the sampling Generator. @default 0 */
  seed?: number;
  /** Reuse keys and values of earlier positions. @default true */
  useCache?: boolean;
  /** What errors call the model. @default `modelName(model)` */
  name?: string;
}

/** What errors call a model: config.json's `_name_or_path` when set, else its `model_type`. */
export function modelName(model: LanguageModel): string {
  const path = model.config._name_or_path;
  return typeof path === "string" && path !== "" ? path : `(a ${model.config.model_type} model)`;
}

/** NaN or infinite logits while generating: the model, the new token's number and the row. */
export class NonFiniteLogitsError extends Error {
  constructor(
    readonly model: string,
    /** 1-based: the first new token is step 1. */
    readonly step: number,
    readonly row: number,
    readonly value: number,
    /** What the row was; @default "row <row>" */
    where = `row ${row}`,
  ) {
    super(
      `model ${model}: logits are ${value} at generation step ${step} (${where}); ` +
        `the model's weights or activations are not finite`,
    );
    this.name = "NonFiniteLogitsError";
  }
}

/**
 * Generates up to `maxNewTokens` tokens after each row of `inputIds` and returns, per row, the
 * new token ids: up to and including the first stop token, without padding. Runs without
 * autograd and without dropout (the model's training mode is restored afterwards).
 */
export function generate(model: LanguageModel, o: GenerateOptions): number[][] {
  const [B] = checkInputs(model, o);
  const stop = new Set(
    o.eosTokenId == null ? [] : typeof o.eosTokenId === "number" ? [o.eosTokenId] : o.eosTokenId,
  );
  const pad = o.padTokenId ?? [...stop][0] ?? 0;
  const choose = o.doSample ? sampler(o) : (logits: Tensor) => logits.argmax(-1);
  const wasTraining = model.training;
  model.eval();
  const decoder = model.kind === "causal" ? causalDecoder(model, o) : seq2seqDecoder(model, o);
  const rows: number[][] = Array.from({ length: B }, () => []);
  const done: boolean[] = new Array(B).fill(false);
  let next = null as Tensor | null; // (B, 1) ids chosen last step, fed next
  try {
    noGrad(() => {
      for (let step = 0; step < o.maxNewTokens && !done.every(Boolean); step++) {
        const prev: Tensor | null = next;
        const ids = tidy(() => {
          const logits = decoder.step(prev); // (B, V)
          const bad = logits.isfinite().logicalNot().sum(-1).toNumbers(); // (B) non-finite counts
          const row = bad.findIndex((n, b) => n > 0 && !done[b]);
          if (row >= 0) {
            const value = logits
              .select(0, row)
              .toNumbers()
              .find((x) => !Number.isFinite(x))!;
            throw new NonFiniteLogitsError(o.name ?? modelName(model), step + 1, row, value);
          }
          return choose(logits).toNumbers(); // (B) chosen ids
        });
        prev?.dispose();
        const fed = ids.map((id, b) => (done[b] ? pad : id));
        fed.forEach((id, b) => {
          if (done[b]) return;
          rows[b].push(id);
          if (stop.has(id)) done[b] = true;
        });
        next = tensor(BigInt64Array.from(fed, BigInt), {
          shape: [B, 1],
          device: o.inputIds.device,
        });
      }
    });
  } finally {
    next?.dispose(); // also when a step threw
    decoder.dispose();
    if (wasTraining) model.train();
  }
  return rows;
}

function checkInputs(model: LanguageModel, o: GenerateOptions): number[] {
  const { inputIds, attentionMask } = o;
  if (inputIds.ndim !== 2 || inputIds.dtype !== "int64")
    throw new Error(
      `generate: inputIds must be (batch, length) int64, got ${inputIds.dtype} [${inputIds.shape}]`,
    );
  if (inputIds.size(1) === 0) throw new Error("generate: inputIds has no tokens (length 0)");
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 0)
    throw new Error(`generate: maxNewTokens must be an integer >= 0, got ${o.maxNewTokens}`);
  if (attentionMask && attentionMask.shape.join(",") !== inputIds.shape.join(","))
    throw new Error(
      `generate: attentionMask has shape [${attentionMask.shape}] but inputIds has [${inputIds.shape}]`,
    );
  if (
    model.kind === "causal" &&
    attentionMask &&
    !tidy(() => attentionMask.select(1, -1).bool().all().item())
  )
    throw new Error(
      'generate: attentionMask has padding on the right; decoder-only models need left padding (paddingSide "left")',
    );
  if (o.doSample) {
    const { temperature = 1, topK = 50, topP = 1 } = o;
    if (!(temperature > 0))
      throw new Error(`generate: temperature must be > 0 when sampling, got ${temperature}`);
    if (!Number.isInteger(topK) || topK < 0)
      throw new Error(`generate: topK must be an integer >= 0, got ${topK}`);
    if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
  }
  return inputIds.shape;
}

/** Temperature → top-k → top-p → softmax → multinomial with a seeded Generator: (B, V) → (B). */
function sampler(o: GenerateOptions): (logits: Tensor) => Tensor {
  const { temperature = 1, topK = 50, topP = 1, seed = 0 } = o;
  const generator = new Generator(seed, o.inputIds.device);
  return (logits) => {
    let scores = logits.float();
    if (temperature !== 1) scores = scores.div(temperature);
    if (topK > 0) scores = topKFilter(scores, topK);
    if (topP < 1) scores = topPFilter(scores, topP);
    return multinomial(scores.softmax(-1), 1, false, generator).squeeze(1);
  };
}

/** TopKLogitsWarper: −inf below the k-th largest score of each row. */
export function topKFilter(scores: Tensor, k: number): Tensor {
  const kk = Math.min(k, scores.size(-1));
  const kth = scores.topk(kk).values.narrow(-1, kk - 1, 1); // (B, 1)
  return scores.maskedFill(scores.lt(kth), -Infinity);
}

/**
 * TopPLogitsWarper: sort ascending, drop the tokens whose cumulative probability is ≤ 1 − top_p,
 * always keep the most likely token.
 */
export function topPFilter(scores: Tensor, topP: number): Tensor {
  const { values, indices } = scores.sort(-1, false);
  const removeSorted = values
    .softmax(-1)
    .cumsum(-1)
    .le(1 - topP); // (B, V), ascending order
  removeSorted.narrow(-1, scores.size(-1) - 1, 1).fill_(0);
  const remove = removeSorted.scatter(-1, indices, removeSorted); // back to vocabulary order
  return scores.maskedFill(remove, -Infinity);
}

/** The model side of the loop: logits (B, V) of the next position, given the last chosen ids. */
interface Decoder {
  /** `next` is null on the first step (the prompt), then the (B, 1) ids chosen last step. */
  step(next: Tensor | null): Tensor;
  dispose(): void;
}

/**
 * Holds tensors across steps outside every `tidy`, freeing the ones a step replaced; the
 * caller's own tensors (`foreign`) are never taken or freed.
 */
class Held {
  #tensors = new Set<Tensor>();
  constructor(private readonly foreign: (Tensor | null | undefined)[]) {}
  set(ts: Tensor[]): void {
    const now = new Set(keep(ts.filter((t) => !this.foreign.includes(t))));
    for (const t of this.#tensors) if (!now.has(t)) t.dispose();
    this.#tensors = now;
  }
  dispose(): void {
    this.set([]);
  }
}

const flat = (c: LayerCache[] | undefined | null): Tensor[] =>
  (c ?? []).flatMap(({ k, v }) => [k, v]);

function causalDecoder(model: CausalLM, o: GenerateOptions): Decoder {
  const held = new Held([o.inputIds, o.attentionMask]);
  let ids = o.inputIds; // (B, S): the whole sequence, for the uncached path
  let mask = o.attentionMask ?? null; // (B, S) or null when nothing is padded
  let cache: LayerCache[] | null = null;
  const grow = (next: Tensor): void => {
    if (mask)
      mask = cat([mask, ones([mask.size(0), 1], { dtype: mask.dtype, device: mask.device })], 1);
    if (!(o.useCache ?? true)) ids = cat([ids, next], 1);
  };
  return {
    step(next) {
      if (next) grow(next);
      if (!(o.useCache ?? true)) {
        held.set([ids, ...(mask ? [mask] : [])]);
        return model.forward({ inputIds: ids, attentionMask: mask }).logits.select(1, -1);
      }
      const out = model.forward({
        inputIds: next ?? ids,
        attentionMask: mask,
        cache,
        useCache: true,
        logitsToKeep: 1, // the prompt's prefill needs only its last position
      });
      cache = out.cache ?? null;
      if (!cache)
        throw new Error(`generate: ${model.config.model_type} returned no cache with useCache`);
      held.set([...flat(cache), ...(mask ? [mask] : [])]);
      return out.logits.select(1, -1);
    },
    dispose: () => held.dispose(),
  };
}

function seq2seqDecoder(model: Seq2SeqLM, o: GenerateOptions): Decoder {
  const held = new Held([o.inputIds, o.attentionMask]);
  const B = o.inputIds.size(0);
  const start = model.config.decoder_start_token_id;
  let decoderIds: Tensor | null = null; // (B, t): every decoder token, for the uncached path
  let state: { encoderHidden: Tensor; cache: LayerCache[]; crossCache: LayerCache[] } | null = null;
  const encoder = { inputIds: o.inputIds, attentionMask: o.attentionMask ?? null };
  return {
    step(next) {
      const first = full([B, 1], start, { dtype: "int64", device: o.inputIds.device });
      if (!(o.useCache ?? true)) {
        decoderIds = next && decoderIds ? cat([decoderIds, next], 1) : first;
        held.set([decoderIds]);
        return model.forward({ ...encoder, decoderInputIds: decoderIds }).logits.select(1, -1);
      }
      const out = model.forward({
        ...encoder,
        decoderInputIds: next ?? first,
        ...(state ?? {}),
        useCache: true,
      });
      if (!out.cache || !out.crossCache)
        throw new Error(`generate: ${model.config.model_type} returned no cache with useCache`);
      state = { encoderHidden: out.encoderHidden, cache: out.cache, crossCache: out.crossCache };
      held.set([state.encoderHidden, ...flat(state.cache), ...flat(state.crossCache)]);
      return out.logits.select(1, -1);
    },
    dispose: () => held.dispose(),
  };
}
