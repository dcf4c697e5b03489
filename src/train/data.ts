/**
 * Supervised fine-tuning data: rendered (prompt, response) pairs → token ids with labels, the
 * per-epoch batch order, and collation into tensors.
 *
 * References:
 * - Stanford Alpaca `train.py` (tatsu-lab/stanford_alpaca): sequence = prompt + output + EOS,
 *   labels = IGNORE_INDEX (−100) on the prompt tokens. Unlike Alpaca, which tokenises the
 *   concatenation and masks `len(tokenize(prompt))` tokens, prompt and response are tokenised
 *   apart, so the mask boundary is exact and the prompt ids equal those generation starts from.
 * - transformers `trainer_pt_utils.py` `get_length_grouped_indices` (LengthGroupedSampler):
 *   a seeded permutation cut into mega-batches of up to 50 batches, each sorted longest first.
 * - transformers `DataCollatorForSeq2Seq` and T5's `_shift_right`: decoder inputs are the labels
 *   shifted right behind `decoder_start_token_id`, −100 replaced by the pad id.
 * - Causal labels stay aligned with the inputs (HF convention); the loss shifts them.
 *
 * Packing (optional) concatenates whole tokenised examples in order into rows of at most
 * `maxLength` tokens. As in trl's classic packing, attention crosses example boundaries within a
 * row and positions run on; a packed example's first token is a prompt token, so no label ever
 * asks to predict one example from the one before.
 *
 * The train layer sits below continual/: callers render prompts (continual/instruction.ts
 * `renderPrompt`) and pass text pairs here.
 */
import { Generator, op, tensor, type Tensor } from "../tensor/index.js";
import type { Tokenizer } from "../io/tokenizer.js";

/** Labels with this value carry no loss (torch's cross_entropy `ignore_index` default). */
export const IGNORE_INDEX = -100;

/** One example as text: the rendered prompt and the response it should be followed by. */
export interface SftText {
  prompt: string;
  response: string;
}

/**
 * One tokenised training row. Causal LM: `labels` has `inputIds`' length, −100 on the prompt.
 * Encoder-decoder: `inputIds` go to the encoder, `labels` are the decoder's targets.
 */
export interface SftFeatures {
  inputIds: number[];
  labels: number[];
}

export type ModelKind = "causal" | "seq2seq";

/** Collated tensors of one micro-batch (right padding). */
export interface Batch {
  /** (B, T) int64 */
  inputIds: Tensor;
  /** (B, T) int64, 1 = token, 0 = padding */
  attentionMask: Tensor;
  /** (B, T) int64 causal, (B, L) seq2seq; −100 = no loss */
  labels: Tensor;
  /** (B, L) int64, seq2seq only */
  decoderInputIds: Tensor | null;
}

/**
 * Tokenises one example. Causal: [BOS if the tokenizer adds one] + prompt, then response + EOS.
 * When the row is longer than `maxLength`, the response keeps its start (at least half the row,
 * or all of it when shorter) and the prompt keeps its end next to the response, after its BOS.
 * Seq2seq: encoder = prompt with the tokenizer's special tokens, its text cut at the end to fit
 * `maxLength` (the special tokens stay); labels = response + EOS cut at the end to `maxLength`.
 * A cut response has no EOS, so the model is never taught to stop mid-answer.
 */
export function tokenizeSft(
  tok: Tokenizer,
  ex: SftText,
  o: { kind: ModelKind; maxLength: number },
): SftFeatures {
  const L = o.maxLength;
  if (!Number.isInteger(L) || L < 2)
    throw new RangeError(`tokenizeSft: maxLength must be an integer ≥ 2, got ${L}`);
  if (tok.eosTokenId === null)
    throw new Error(
      `tokenizer ${tok.file} has no eos_token; fine-tuning appends EOS to every response`,
    );
  const response = [...tok.encode(ex.response, { addSpecialTokens: false }), tok.eosTokenId];
  if (o.kind === "seq2seq") {
    const body = tok.encode(ex.prompt, { addSpecialTokens: false });
    let inputIds = tok.encode(ex.prompt);
    if (inputIds.length > L) {
      // Cut the text, keep the special tokens around it (HF truncation; T5 keeps its "</s>").
      const start = tok.addBosToken ? 1 : 0;
      const end = inputIds.length - body.length - start;
      inputIds = [
        ...inputIds.slice(0, start),
        ...body.slice(0, L - start - end),
        ...inputIds.slice(inputIds.length - end),
      ];
    }
    return { inputIds, labels: response.slice(0, L) };
  }
  const head = tok.addBosToken && tok.bosTokenId !== null ? [tok.bosTokenId] : [];
  let prompt = [...head, ...tok.encode(ex.prompt, { addSpecialTokens: false })];
  let resp = response;
  if (prompt.length + resp.length > L) {
    const respLen = Math.min(resp.length, L - Math.min(prompt.length, Math.floor(L / 2)));
    const promptLen = L - respLen;
    if (prompt.length > promptLen) {
      const body = prompt.slice(head.length);
      const tail = Math.max(0, promptLen - head.length);
      prompt = [...head, ...body.slice(body.length - tail)].slice(0, promptLen);
    }
    resp = resp.slice(0, respLen);
  }
  return {
    inputIds: [...prompt, ...resp],
    labels: [...prompt.map(() => IGNORE_INDEX), ...resp],
  };
}

/** Tokenises every example; an error names the example's index. */
export function tokenizeAll(
  tok: Tokenizer,
  examples: readonly SftText[],
  o: { kind: ModelKind; maxLength: number },
): SftFeatures[] {
  return examples.map((ex, i) => {
    if (typeof ex?.prompt !== "string" || typeof ex.response !== "string")
      throw new TypeError(`examples[${i}]: needs string fields "prompt" and "response"`);
    return tokenizeSft(tok, ex, o);
  });
}

/** Greedy packing of causal rows, in order, into rows of at most `maxLength` tokens. */
export function pack(features: readonly SftFeatures[], maxLength: number): SftFeatures[] {
  const rows: SftFeatures[] = [];
  let cur: SftFeatures = { inputIds: [], labels: [] };
  for (const f of features) {
    if (cur.inputIds.length > 0 && cur.inputIds.length + f.inputIds.length > maxLength) {
      rows.push(cur);
      cur = { inputIds: [], labels: [] };
    }
    cur.inputIds.push(...f.inputIds);
    cur.labels.push(...f.labels);
  }
  if (cur.inputIds.length > 0) rows.push(cur);
  return rows;
}

/** Labels that carry loss (a causal row's first label predicts nothing, so it is not counted). */
export function labelTokens(f: SftFeatures, kind: ModelKind): number {
  let n = 0;
  for (let i = kind === "causal" ? 1 : 0; i < f.labels.length; i++)
    if (f.labels[i] !== IGNORE_INDEX) n++;
  return n;
}

/** Tokens a row feeds the model (encoder and decoder), for tokens/s. */
export function rowTokens(f: SftFeatures, kind: ModelKind): number {
  return kind === "causal" ? f.inputIds.length : f.inputIds.length + f.labels.length;
}

/** The most batches one length-sorted mega-batch holds (LengthGroupedSampler's default). */
const MEGA_BATCH_MULT = 50;

/**
 * The example order of one epoch: a permutation from torch's generator seeded with `seed`, cut
 * into mega-batches of `batch · min(⌊n / 4·batch⌋, 50)` (at least one batch), each sorted by
 * length, longest first (stable). `batch` is the optimizer step's batch (micro-batch size ×
 * accumulation), so accumulation never changes which examples share a step.
 */
export function epochOrder(lengths: readonly number[], batch: number, seed: number): number[] {
  const n = lengths.length;
  const perm = op("aten::randperm.generator", [n], { generator: new Generator(seed).handle });
  const order = perm.toNumbers();
  perm.dispose();
  const mult = Math.max(1, Math.min(Math.floor(n / (4 * batch)), MEGA_BATCH_MULT));
  const mega = batch * mult;
  const out: number[] = [];
  for (let i = 0; i < n; i += mega)
    out.push(...order.slice(i, i + mega).sort((a, b) => lengths[b] - lengths[a]));
  return out;
}

/**
 * Pads rows into one batch on `device`. Causal: inputs padded with `padId`, labels with −100.
 * Seq2seq: encoder inputs likewise; decoder inputs = [decoderStart, labels[:-1]] with −100 → padId.
 */
export function collate(
  rows: readonly SftFeatures[],
  o: { kind: ModelKind; padId: number; decoderStartId?: number; device?: string },
): Batch {
  if (rows.length === 0) throw new Error("collate: empty batch");
  const padded = (seqs: number[][], value: number): Tensor => {
    const T = Math.max(...seqs.map((s) => s.length));
    const flat = new BigInt64Array(seqs.length * T).fill(BigInt(value));
    seqs.forEach((s, i) => s.forEach((v, j) => (flat[i * T + j] = BigInt(v))));
    return tensor(flat, { shape: [seqs.length, T], device: o.device });
  };
  const inputIds = padded(
    rows.map((r) => r.inputIds),
    o.padId,
  );
  const attentionMask = padded(
    rows.map((r) => r.inputIds.map(() => 1)),
    0,
  );
  const labels = padded(
    rows.map((r) => r.labels),
    IGNORE_INDEX,
  );
  if (o.kind === "causal") return { inputIds, attentionMask, labels, decoderInputIds: null };
  if (o.decoderStartId === undefined) throw new Error("collate: seq2seq needs decoderStartId");
  const start = o.decoderStartId;
  const shifted = rows.map((r) => [
    start,
    ...r.labels.slice(0, -1).map((v) => (v === IGNORE_INDEX ? o.padId : v)),
  ]);
  return { inputIds, attentionMask, labels, decoderInputIds: padded(shifted, o.padId) };
}
