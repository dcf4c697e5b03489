/**
 * The miniature study's word-level tokenizer, written as Hugging Face `tokenizers` files so that
 * src/io/tokenizer.ts `loadTokenizer` (and transformers' `PreTrainedTokenizerFast`) load it like
 * any checkpoint's tokenizer.
 *
 * Reference: HF `tokenizers` serialization (tokenizer.json `version` "1.0"): model `WordLevel`
 * {vocab, unk_token}; pre-tokenizer `Whitespace` (pieces `\w+|[^\w\s]+`, Rust regex `\w` =
 * Alphabetic, Mark, Decimal_Number, Connector_Punctuation, Join_Control); post-processor
 * none for decoders, which see documents separated by "</s>" as GPT-2's do (a model that always
 * saw "<s>" first misreads lm-eval's contexts, which are encoded without it), and
 * `TemplateProcessing` "$A </s>" for encoder-decoders (as T5's appends EOS). Decoder `WordPiece` with `cleanup`: tokens are joined by
 * spaces and " ." " ," " ?" " !" lose their space, so the world's sentences decode to themselves.
 * Its continuation prefix mixes a word and a non-word character, which no Whitespace piece can
 * start with, so it never glues tokens. Special tokens: <pad> 0, <s> 1 (reserved), </s> 2,
 * <unk> 3; T5's decoder start is the pad token, 0.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"] as const;

/** HF `Whitespace` pre-tokenization: runs of word characters, or of other non-space characters. */
const WORD = String.raw`\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}`;
const PIECE = new RegExp(`[${WORD}]+|[^${WORD}\\s]+`, "gu");

/** No Whitespace piece starts with a word character followed by a non-word one. */
const NEVER_A_PREFIX = "a#";

export type TokenizerKind = "causal" | "seq2seq";

/** The pieces `text` splits into, as the tokenizer's pre-tokenizer splits it. */
export function wordPieces(text: string): string[] {
  return text.match(PIECE) ?? [];
}

/** The vocabulary of `texts`: the special tokens, then every distinct piece in code-point order. */
export function vocabularyOf(texts: Iterable<string>): string[] {
  const words = new Set<string>();
  for (const t of texts) for (const w of wordPieces(t)) words.add(w);
  for (const s of SPECIAL_TOKENS) words.delete(s);
  return [...SPECIAL_TOKENS, ...[...words].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))];
}

/** tokenizer.json and tokenizer_config.json of a word-level tokenizer over `vocab`. */
export function tokenizerFiles(
  vocab: readonly string[],
  kind: TokenizerKind,
): { "tokenizer.json": object; "tokenizer_config.json": object } {
  SPECIAL_TOKENS.forEach((s, i) => {
    if (vocab[i] !== s) throw new Error(`tokenizerFiles: vocab[${i}] must be "${s}"`);
  });
  if (new Set(vocab).size !== vocab.length)
    throw new Error("tokenizerFiles: the vocabulary has a duplicate word");
  const [pad, , eos, unk] = SPECIAL_TOKENS;
  const special = { SpecialToken: { id: eos, type_id: 0 } };
  const seq = (id: "A" | "B", type_id: number) => ({ Sequence: { id, type_id } });
  return {
    "tokenizer.json": {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: SPECIAL_TOKENS.map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: "Whitespace" },
      post_processor:
        kind === "causal"
          ? null
          : {
              type: "TemplateProcessing",
              single: [seq("A", 0), special],
              pair: [seq("A", 0), seq("B", 1), special],
              special_tokens: { [eos]: { id: eos, ids: [vocab.indexOf(eos)], tokens: [eos] } },
            },
      decoder: { type: "WordPiece", prefix: NEVER_A_PREFIX, cleanup: true },
      model: {
        type: "WordLevel",
        vocab: Object.fromEntries(vocab.map((w, i) => [w, i])),
        unk_token: unk,
      },
    },
    "tokenizer_config.json": {
      bos_token: null,
      eos_token: eos,
      unk_token: unk,
      pad_token: pad,
      clean_up_tokenization_spaces: false,
      model_max_length: 1_000_000,
      tokenizer_class: "PreTrainedTokenizerFast",
    },
  };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created). */
export async function writeTokenizer(
  dir: string,
  vocab: readonly string[],
  kind: TokenizerKind,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, json] of Object.entries(tokenizerFiles(vocab, kind)))
    await writeFile(join(dir, name), `${JSON.stringify(json, null, 2)}\n`);
}
