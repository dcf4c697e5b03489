/**
 * Tokenizers for Hugging Face checkpoints: one lethe `Tokenizer` over @huggingface/tokenizers 0.2.0
 * (the JS port of HF `tokenizers`), fed a `tokenizer.json` object that is either read from disk or
 * converted in memory from an older format. No BPE is hand-written here; the library tokenizes.
 *
 * Formats (first found in a directory wins, or pass the file itself):
 *  - `tokenizer.json` (byte-level BPE, Metaspace BPE, Unigram...) as HF `tokenizers` writes it;
 *  - GPT-2's `vocab.json` + `merges.txt`, converted like transformers' `GPT2Converter`
 *    (`src/transformers/convert_slow_tokenizer.py`);
 *  - SentencePiece `tokenizer.model` (BPE only, i.e. LLaMA): the `ModelProto` protobuf
 *    (google/sentencepiece `src/sentencepiece_model.proto`) is parsed here and converted like
 *    transformers' `LlamaConverter` in legacy mode: BPE with byte fallback, merges ordered by the
 *    score of the merged piece (`generate_merges`), normalizer Prepend("▁") + Replace(" ", "▁"),
 *    decoder Replace + ByteFallback + Fuse + Strip(1 leading space);
 *  - llama2.c's `tokenizer.bin` / `tok{N}.bin` (karpathy/llama2.c `tokenizer.py` export, read by
 *    `run.c` `build_tokenizer`): i32 max_token_length, then per token f32 score, i32 len, bytes.
 *    `run.c` `encode` prepends a dummy "▁", splits into code points (bytes 3..258 as fallback) and
 *    merges the adjacent pair whose union has the highest score: the same SentencePiece BPE, so it
 *    gets the same conversion. BOS=1, EOS=2, UNK=0.
 *
 * Beside it, `tokenizer_config.json` and `special_tokens_map.json` (transformers
 * `tokenization_utils_base.py`): bos/eos/unk/pad tokens, `add_bos_token`/`add_eos_token` (which
 * replace the post-processor's special tokens, as `LlamaTokenizerFast.update_post_processor` does),
 * `clean_up_tokenization_spaces` (default false, recent transformers' default), `padding_side`,
 * `truncation_side`, and `chat_template` (or a `chat_template.jinja` file), rendered with
 * @huggingface/jinja as `apply_chat_template(..., tokenize=False)` does.
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { z } from "zod";

/** Any problem with a tokenizer file; the message starts with the file path. */
export class TokenizerFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "TokenizerFileError";
  }
}

export type Side = "left" | "right";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface BatchEncodeOptions {
  /** Add the model's special tokens (BOS/EOS...) around each text. @default true */
  addSpecialTokens?: boolean;
  /** Truncate each sequence, special tokens included, to at most this many ids. */
  maxLength?: number;
  /** @default the tokenizer's `paddingSide` ("right" unless tokenizer_config.json says otherwise) */
  paddingSide?: Side;
  /** @default the tokenizer's `truncationSide` */
  truncationSide?: Side;
  /** Id padded with; needed when the tokenizer has no pad token (GPT-2, LLaMA). @default padTokenId */
  padTokenId?: number;
}

export interface BatchEncoding {
  inputIds: number[][];
  attentionMask: number[][];
}

type Json = Record<string, unknown>;

/** The `tokenizer.json` object handed to the library (HF `tokenizers` serialization). */
interface TokenizerJson extends Json {
  model: Json;
  added_tokens: AddedTokenJson[];
  normalizer: Json | null;
  pre_tokenizer: Json | null;
  post_processor: Json | null;
  decoder: Json | null;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

const SpecialTokenField = z.union([z.string(), z.looseObject({ content: z.string() }), z.null()]);

/** The fields of tokenizer_config.json / special_tokens_map.json lethe reads; others pass through. */
const TokenizerConfigSchema = z.looseObject({
  bos_token: SpecialTokenField.optional(),
  eos_token: SpecialTokenField.optional(),
  unk_token: SpecialTokenField.optional(),
  pad_token: SpecialTokenField.optional(),
  additional_special_tokens: z.array(SpecialTokenField).optional(),
  add_bos_token: z.boolean().optional(),
  add_eos_token: z.boolean().optional(),
  clean_up_tokenization_spaces: z.boolean().optional(),
  padding_side: z.enum(["left", "right"]).optional(),
  truncation_side: z.enum(["left", "right"]).optional(),
  chat_template: z
    .union([z.string(), z.array(z.object({ name: z.string(), template: z.string() }))])
    .optional(),
});
type TokenizerConfig = z.infer<typeof TokenizerConfigSchema>;

/** What a format reader yields: the tokenizer.json object and the defaults its slow class has. */
interface TokenizerSource {
  json: TokenizerJson;
  defaults: TokenizerConfig;
}

type SourceReader = (file: string) => Promise<TokenizerSource>;

/** Tokenizer files by name, in the order a directory is searched. */
const TOKENIZER_FILES = {
  "tokenizer.json": readTokenizerJson,
  "vocab.json": readGpt2VocabMerges,
  "tokenizer.model": readSentencePieceModel,
  "tokenizer.bin": readLlama2cTokenizer,
} satisfies Record<string, SourceReader>;

/** llama2.c names tokenizers trained with a custom vocab `tok{vocab_size}.bin`. */
const LLAMA2C_CUSTOM_NAME = /^tok\d+\.bin$/;

/**
 * Loads the tokenizer in `path`: a directory (searched for the files above) or one tokenizer file.
 * tokenizer_config.json, special_tokens_map.json and chat_template.jinja are read beside it.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  const file = (await stat(path)).isDirectory() ? await findTokenizerFile(path) : path;
  const dir = dirname(file);
  const source = await readerFor(file)(file);
  const config: TokenizerConfig = { ...source.defaults };
  for (const name of ["tokenizer_config.json", "special_tokens_map.json"]) {
    const raw = await readJsonIfPresent(join(dir, name));
    if (raw === null) continue;
    const parsed = TokenizerConfigSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new TokenizerFileError(
        join(dir, name),
        `field "${issue.path.join(".")}": ${issue.message}`,
      );
    }
    Object.assign(config, parsed.data);
  }
  const jinja = join(dir, "chat_template.jinja");
  const chatTemplate = (await exists(jinja))
    ? await readFile(jinja, "utf8")
    : pickChatTemplate(config.chat_template);
  return new Tokenizer(file, source.json, config, chatTemplate);
}

async function findTokenizerFile(dir: string): Promise<string> {
  for (const name of Object.keys(TOKENIZER_FILES)) {
    if (await exists(join(dir, name))) return join(dir, name);
  }
  const custom = (await readdir(dir)).filter((n) => LLAMA2C_CUSTOM_NAME.test(n)).sort();
  if (custom.length > 0) return join(dir, custom[0]);
  throw new TokenizerFileError(
    dir,
    `no tokenizer file found (looked for ${Object.keys(TOKENIZER_FILES).join(", ")}, tok{N}.bin)`,
  );
}

function readerFor(file: string): SourceReader {
  const name = basename(file);
  if (name in TOKENIZER_FILES) return TOKENIZER_FILES[name as keyof typeof TOKENIZER_FILES];
  if (name.endsWith(".json")) return readTokenizerJson;
  if (name.endsWith(".model")) return readSentencePieceModel;
  if (name.endsWith(".bin")) return readLlama2cTokenizer;
  throw new TokenizerFileError(
    file,
    `unknown tokenizer format; expected one of ${Object.keys(TOKENIZER_FILES).join(", ")}`,
  );
}

/** The template named "default" when tokenizer_config.json lists several (transformers' rule). */
function pickChatTemplate(t: TokenizerConfig["chat_template"]): string | null {
  if (t === undefined) return null;
  if (typeof t === "string") return t;
  return t.find((x) => x.name === "default")?.template ?? null;
}

function tokenContent(t: z.infer<typeof SpecialTokenField> | undefined): string | null {
  if (t === undefined || t === null) return null;
  return typeof t === "string" ? t : t.content;
}

/** A tokenizer as transformers' `PreTrainedTokenizerFast` behaves for single sequences. */
export class Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** Whether `encode` with special tokens starts with BOS / ends with EOS (GPT-2: no, no). */
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  readonly paddingSide: Side;
  readonly truncationSide: Side;
  private readonly hf: HfTokenizer;
  /** Special ids the post-processor puts before and after a single sequence. */
  private readonly prefix: number[];
  private readonly suffix: number[];
  private readonly specialTokens: Record<string, string | string[] | null>;

  constructor(
    readonly file: string,
    json: TokenizerJson,
    config: TokenizerConfig,
    private readonly chatTemplate: string | null,
  ) {
    const names = {
      bos_token: tokenContent(config.bos_token),
      eos_token: tokenContent(config.eos_token),
      unk_token: tokenContent(config.unk_token),
      pad_token: tokenContent(config.pad_token),
    };
    const additional = (config.additional_special_tokens ?? [])
      .map(tokenContent)
      .filter((t): t is string => t !== null);
    this.hf = new HfTokenizer(json, {
      ...config,
      ...names,
      additional_special_tokens: additional,
      clean_up_tokenization_spaces: config.clean_up_tokenization_spaces ?? false,
    });
    this.specialTokens = { ...names, additional_special_tokens: additional };
    const idOf = (token: string | null, field: string): number | null => {
      if (token === null) return null;
      const id = this.hf.token_to_id(token);
      if (id === undefined) {
        throw new TokenizerFileError(file, `${field} "${token}" is not in the vocabulary`);
      }
      return id;
    };
    this.bosTokenId = idOf(names.bos_token, "bos_token");
    this.eosTokenId = idOf(names.eos_token, "eos_token");
    this.unkTokenId = idOf(names.unk_token, "unk_token");
    this.padTokenId = idOf(names.pad_token, "pad_token");
    this.vocabSize = this.hf.get_vocab(true).size;
    this.paddingSide = config.padding_side ?? "right";
    this.truncationSide = config.truncation_side ?? "right";

    if (config.add_bos_token !== undefined || config.add_eos_token !== undefined) {
      // LlamaTokenizerFast.update_post_processor: "<bos>? $A <eos>?".
      const needed = (id: number | null, field: string): number[] => {
        if (id === null)
          throw new TokenizerFileError(file, `${field} is true but there is no such token`);
        return [id];
      };
      this.prefix = config.add_bos_token ? needed(this.bosTokenId, "add_bos_token") : [];
      this.suffix = config.add_eos_token ? needed(this.eosTokenId, "add_eos_token") : [];
    } else {
      // Run the tokenizer.json post-processor on a marker to learn where it puts special tokens.
      const marker = "\u0000lethe-sequence\u0000";
      const wrapped = this.hf.post_processor?.([marker], null, true).tokens ?? [marker];
      const at = wrapped.indexOf(marker);
      const ids = (tokens: string[]) =>
        tokens.map((t) => idOf(t, "post_processor special token") as number);
      this.prefix = ids(wrapped.slice(0, at));
      this.suffix = ids(wrapped.slice(at + 1));
    }
    this.addBosToken = this.bosTokenId !== null && this.prefix[0] === this.bosTokenId;
    this.addEosToken = this.eosTokenId !== null && this.suffix.at(-1) === this.eosTokenId;
  }

  /** Token ids of `text`; with `addSpecialTokens` (default) the model's BOS/EOS are added. */
  encode(text: string, { addSpecialTokens = true }: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    return addSpecialTokens ? [...this.prefix, ...ids, ...this.suffix] : ids;
  }

  /** Text of `ids`; `skipSpecialTokens` drops BOS/EOS/pad and other special tokens. */
  decode(
    ids: number[],
    { skipSpecialTokens = false }: { skipSpecialTokens?: boolean } = {},
  ): string {
    ids.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `decode: ids[${i}] = ${id} is not a token id in [0, ${this.vocabSize})`,
        );
      }
    });
    if (ids.length === 0) return "";
    return this.hf.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.hf.id_to_token(id) ?? null;
  }

  /**
   * Encodes `texts`, truncates each to `maxLength` (special tokens kept, as transformers does)
   * and pads to the longest, with attention mask 1 on tokens and 0 on padding.
   */
  batchEncode(texts: string[], options: BatchEncodeOptions = {}): BatchEncoding {
    const {
      addSpecialTokens = true,
      maxLength,
      paddingSide = this.paddingSide,
      truncationSide = this.truncationSide,
      padTokenId = this.padTokenId,
    } = options;
    const prefix = addSpecialTokens ? this.prefix : [];
    const suffix = addSpecialTokens ? this.suffix : [];
    const budget = maxLength === undefined ? Infinity : maxLength - prefix.length - suffix.length;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || budget < 0)) {
      throw new RangeError(
        `batchEncode: maxLength ${maxLength} must be an integer >= ${prefix.length + suffix.length} (the special tokens)`,
      );
    }
    const seqs = texts.map((text) => {
      let ids = this.hf.encode(text, { add_special_tokens: false }).ids;
      if (ids.length > budget) {
        ids = truncationSide === "right" ? ids.slice(0, budget) : ids.slice(ids.length - budget);
      }
      return [...prefix, ...ids, ...suffix];
    });
    const longest = Math.max(0, ...seqs.map((s) => s.length));
    if (padTokenId === null && seqs.some((s) => s.length < longest)) {
      throw new Error(
        `batchEncode: ${this.file} has no pad token; pass padTokenId (e.g. eosTokenId ${this.eosTokenId})`,
      );
    }
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const s of seqs) {
      const pad = new Array<number>(longest - s.length).fill(padTokenId as number);
      const zeros = new Array<number>(pad.length).fill(0);
      const ones = new Array<number>(s.length).fill(1);
      inputIds.push(paddingSide === "right" ? [...s, ...pad] : [...pad, ...s]);
      attentionMask.push(paddingSide === "right" ? [...ones, ...zeros] : [...zeros, ...ones]);
    }
    return { inputIds, attentionMask };
  }

  /** The chat rendered by the tokenizer's chat template, as a string to `encode` without specials. */
  applyChatTemplate(
    messages: ChatMessage[],
    { addGenerationPrompt = false }: { addGenerationPrompt?: boolean } = {},
  ): string {
    if (this.chatTemplate === null) {
      throw new Error(
        `${this.file}: no chat template (tokenizer_config.json "chat_template" or chat_template.jinja)`,
      );
    }
    return new Template(this.chatTemplate).render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      ...this.specialTokens,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Format readers

async function readTokenizerJson(file: string): Promise<TokenizerSource> {
  const raw = await readJsonIfPresent(file);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new TokenizerFileError(file, "is not a JSON object");
  }
  const json = raw as Json;
  if (typeof json.model !== "object" || json.model === null) {
    throw new TokenizerFileError(file, `field "model" must be an object`);
  }
  return {
    json: {
      ...json,
      model: json.model as Json,
      added_tokens: (json.added_tokens ?? []) as AddedTokenJson[],
      normalizer: (json.normalizer ?? null) as Json | null,
      pre_tokenizer: (json.pre_tokenizer ?? null) as Json | null,
      post_processor: (json.post_processor ?? null) as Json | null,
      decoder: (json.decoder ?? null) as Json | null,
    },
    defaults: {},
  };
}

/** GPT-2's `<|endoftext|>`: its bos, eos and unk token (transformers `GPT2Tokenizer` defaults). */
const GPT2_ENDOFTEXT = "<|endoftext|>";

async function readGpt2VocabMerges(vocabFile: string): Promise<TokenizerSource> {
  const raw = await readJsonIfPresent(vocabFile);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new TokenizerFileError(vocabFile, "is not a JSON object of token -> id");
  }
  for (const [token, id] of Object.entries(raw)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new TokenizerFileError(
        vocabFile,
        `token ${JSON.stringify(token)}: id ${id} is not an integer >= 0`,
      );
    }
  }
  const vocab = raw as Record<string, number>;
  const mergesFile = join(dirname(vocabFile), "merges.txt");
  if (!(await exists(mergesFile)))
    throw new TokenizerFileError(mergesFile, "is missing (needed beside vocab.json)");
  const merges: [string, string][] = [];
  (await readFile(mergesFile, "utf8")).split("\n").forEach((line, i) => {
    if (line === "" || (i === 0 && line.startsWith("#version"))) return;
    const pair = line.split(" ");
    if (pair.length !== 2 || !(pair[0] in vocab) || !(pair[1] in vocab)) {
      throw new TokenizerFileError(
        mergesFile,
        `line ${i + 1}: "${line}" is not two vocab tokens separated by a space`,
      );
    }
    merges.push([pair[0], pair[1]]);
  });
  const added =
    GPT2_ENDOFTEXT in vocab ? [addedToken(vocab[GPT2_ENDOFTEXT], GPT2_ENDOFTEXT, true)] : [];
  return {
    json: {
      version: "1.0",
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: {
        type: "ByteLevel",
        add_prefix_space: false,
        trim_offsets: true,
        use_regex: true,
      },
      post_processor: {
        type: "ByteLevel",
        add_prefix_space: true,
        trim_offsets: false,
        use_regex: true,
      },
      decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: "",
        end_of_word_suffix: "",
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    },
    defaults:
      added.length > 0
        ? { bos_token: GPT2_ENDOFTEXT, eos_token: GPT2_ENDOFTEXT, unk_token: GPT2_ENDOFTEXT }
        : {},
  };
}

function addedToken(id: number, content: string, special: boolean): AddedTokenJson {
  return {
    id,
    content,
    special,
    normalized: !special,
    single_word: false,
    lstrip: false,
    rstrip: false,
  };
}

/** `ModelProto.SentencePiece.Type` (sentencepiece_model.proto). */
const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

interface SentencePieceModel {
  pieces: SentencePiece[];
  modelType: number;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  addDummyPrefix: boolean;
}

/** `TrainerSpec.ModelType.BPE`; UNIGRAM (1) models ship a tokenizer.json on the Hub instead. */
const SPM_MODEL_TYPE_BPE = 2;

async function readSentencePieceModel(file: string): Promise<TokenizerSource> {
  const m = parseSentencePieceModel(file, new Uint8Array(await readFile(file)));
  if (m.modelType !== SPM_MODEL_TYPE_BPE) {
    throw new TokenizerFileError(
      file,
      `trainer_spec.model_type ${m.modelType} is not BPE (2); only BPE models (LLaMA) are converted, use a tokenizer.json`,
    );
  }
  const at = (id: number) => (id >= 0 && id < m.pieces.length ? m.pieces[id].piece : null);
  return {
    json: llamaBpeJson(file, m.pieces, m.byteFallback, m.unkId, m.addDummyPrefix),
    defaults: {
      bos_token: at(m.bosId),
      eos_token: at(m.eosId),
      unk_token: at(m.unkId),
      pad_token: at(m.padId),
      add_bos_token: true,
      add_eos_token: false,
    },
  };
}

/** Reads the ModelProto fields the conversion needs; unknown fields are skipped by wire type. */
function parseSentencePieceModel(file: string, bytes: Uint8Array): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [],
    modelType: 1,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    addDummyPrefix: true,
  };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  for (const f of protoFields(file, bytes, "ModelProto")) {
    if (f.field === 1 && f.bytes) {
      const p: SentencePiece = { piece: "", score: 0, type: PieceType.NORMAL };
      for (const g of protoFields(file, f.bytes, `pieces[${m.pieces.length}]`)) {
        if (g.field === 1 && g.bytes) p.piece = utf8.decode(g.bytes);
        else if (g.field === 2 && g.fixed32 !== undefined) p.score = g.fixed32;
        else if (g.field === 3 && g.varint !== undefined) p.type = Number(g.varint);
      }
      m.pieces.push(p);
    } else if (f.field === 2 && f.bytes) {
      for (const g of protoFields(file, f.bytes, "trainer_spec")) {
        if (g.varint === undefined) continue;
        const int32 = Number(BigInt.asIntN(32, g.varint));
        if (g.field === 3) m.modelType = int32;
        else if (g.field === 35) m.byteFallback = g.varint !== 0n;
        else if (g.field === 40) m.unkId = int32;
        else if (g.field === 41) m.bosId = int32;
        else if (g.field === 42) m.eosId = int32;
        else if (g.field === 43) m.padId = int32;
      }
    } else if (f.field === 3 && f.bytes) {
      for (const g of protoFields(file, f.bytes, "normalizer_spec")) {
        if (g.field === 3 && g.varint !== undefined) m.addDummyPrefix = g.varint !== 0n;
      }
    }
  }
  if (m.pieces.length === 0) throw new TokenizerFileError(file, "ModelProto has no pieces");
  return m;
}

interface ProtoField {
  field: number;
  varint?: bigint;
  fixed32?: number;
  bytes?: Uint8Array;
}

/** Protobuf wire format: a key varint (field << 3 | wire type), then the value. */
function* protoFields(file: string, buf: Uint8Array, where: string): Generator<ProtoField> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const fail = (msg: string): never => {
    throw new TokenizerFileError(file, `${where} at byte ${pos}: ${msg}`);
  };
  const varint = (): bigint => {
    let v = 0n;
    // A varint is at most 10 bytes (64 bits, 7 per byte).
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= buf.length) fail("truncated varint");
      const b = buf[pos++];
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
    return fail("varint longer than 10 bytes");
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { field, varint: varint() };
    else if (wire === 1) {
      if (pos + 8 > buf.length) fail("truncated fixed64");
      pos += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) fail(`length ${len} runs past the end`);
      yield { field, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) fail("truncated fixed32");
      yield { field, fixed32: view.getFloat32(pos, true) };
      pos += 4;
    } else fail(`unsupported wire type ${wire} for field ${field}`);
  }
}

/**
 * Longest token llama2.c's format may declare: `run.c` allocates `max_token_length * 2 + 3` bytes
 * for merging; real files say 7 (stories260K) and 27 (LLaMA-2). 1024 leaves room for any vocab.
 */
const LLAMA2C_MAX_TOKEN_LENGTH = 1024;
/** llama2.c's fixed layout: <unk>=0, <s>=1, </s>=2, then the 256 byte-fallback tokens. */
const LLAMA2C_FIRST_BYTE_ID = 3;
const LLAMA2C_SPECIAL: Record<number, { piece: string; type: number }> = {
  0: { piece: "<unk>", type: PieceType.UNKNOWN },
  1: { piece: "<s>", type: PieceType.CONTROL },
  2: { piece: "</s>", type: PieceType.CONTROL },
};

async function readLlama2cTokenizer(file: string): Promise<TokenizerSource> {
  const bytes = await readFile(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  if (bytes.length < 4)
    throw new TokenizerFileError(file, "too short for the max_token_length header");
  const maxLen = view.getInt32(0, true);
  if (maxLen < 1 || maxLen > LLAMA2C_MAX_TOKEN_LENGTH) {
    throw new TokenizerFileError(
      file,
      `max_token_length ${maxLen} is outside [1, ${LLAMA2C_MAX_TOKEN_LENGTH}]`,
    );
  }
  const pieces: SentencePiece[] = [];
  for (let pos = 4; pos < bytes.length;) {
    const id = pieces.length;
    if (pos + 8 > bytes.length)
      throw new TokenizerFileError(file, `token ${id} at byte ${pos}: truncated header`);
    const score = view.getFloat32(pos, true);
    const len = view.getInt32(pos + 4, true);
    if (len < 1 || len > maxLen || pos + 8 + len > bytes.length) {
      throw new TokenizerFileError(
        file,
        `token ${id} at byte ${pos}: length ${len} is outside [1, ${maxLen}] or past the end`,
      );
    }
    let text: string;
    try {
      text = utf8.decode(bytes.subarray(pos + 8, pos + 8 + len));
    } catch {
      throw new TokenizerFileError(file, `token ${id} at byte ${pos}: not valid UTF-8`);
    }
    pos += 8 + len;
    const isByte = id >= LLAMA2C_FIRST_BYTE_ID && id < LLAMA2C_FIRST_BYTE_ID + 256;
    if (isByte && text !== byteToken(id - LLAMA2C_FIRST_BYTE_ID)) {
      throw new TokenizerFileError(
        file,
        `token ${id} is "${text}", expected ${byteToken(id - LLAMA2C_FIRST_BYTE_ID)}`,
      );
    }
    // tokenizer.py exports "▁" as " " and BOS/EOS as "\n<s>\n", "\n</s>\n".
    const special = LLAMA2C_SPECIAL[id];
    const type = isByte ? PieceType.BYTE : PieceType.NORMAL;
    pieces.push(
      special ? { ...special, score } : { piece: text.replaceAll(" ", "▁"), score, type },
    );
  }
  if (pieces.length < LLAMA2C_FIRST_BYTE_ID + 256) {
    throw new TokenizerFileError(
      file,
      `has ${pieces.length} tokens; llama2.c needs at least 259 (<unk>, <s>, </s>, 256 bytes)`,
    );
  }
  return {
    json: llamaBpeJson(file, pieces, true, 0, true),
    defaults: {
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "<unk>",
      pad_token: null,
      add_bos_token: true,
      add_eos_token: false,
    },
  };
}

function byteToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}

/** transformers' `LlamaConverter` (legacy): SentencePiece BPE pieces as an HF tokenizer.json. */
function llamaBpeJson(
  file: string,
  pieces: SentencePiece[],
  byteFallback: boolean,
  unkId: number,
  addDummyPrefix: boolean,
): TokenizerJson {
  const vocab: Record<string, number> = {};
  pieces.forEach(({ piece }, id) => {
    if (Object.hasOwn(vocab, piece))
      throw new TokenizerFileError(file, `piece ${id} "${piece}" repeats piece ${vocab[piece]}`);
    vocab[piece] = id;
  });
  const added = pieces.flatMap(({ piece, type }, id) =>
    type === PieceType.UNKNOWN || type === PieceType.CONTROL || type === PieceType.USER_DEFINED
      ? [addedToken(id, piece, type !== PieceType.USER_DEFINED)]
      : [],
  );
  const replaceSpace = { type: "Replace", pattern: { String: " " }, content: "▁" };
  return {
    version: "1.0",
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: addDummyPrefix
        ? [{ type: "Prepend", prepend: "▁" }, replaceSpace]
        : [replaceSpace],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(addDummyPrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: pieces[unkId]?.piece ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: byteFallback,
      ignore_merges: false,
      vocab,
      merges: mergesByScore(pieces, vocab),
    },
  };
}

/**
 * transformers' `generate_merges(vocab, vocab_scores)`: every split of a normal piece into two
 * vocab pieces is a merge ranked by the piece's score (highest first), ties by longer left then
 * longer right part, then by the ids of the parts. SentencePiece BPE merges exactly by this score.
 */
function mergesByScore(pieces: SentencePiece[], vocab: Record<string, number>): [string, string][] {
  const merges: { left: string; right: string; score: number; ll: number; rl: number }[] = [];
  for (const { piece, score, type } of pieces) {
    if (type !== PieceType.NORMAL) continue;
    const chars = Array.from(piece);
    const local: typeof merges = [];
    for (let i = 1; i < chars.length; i++) {
      const left = chars.slice(0, i).join("");
      const right = chars.slice(i).join("");
      if (Object.hasOwn(vocab, left) && Object.hasOwn(vocab, right)) {
        local.push({ left, right, score, ll: i, rl: chars.length - i });
      }
    }
    local.sort((a, b) => vocab[a.left] - vocab[b.left] || vocab[a.right] - vocab[b.right]);
    merges.push(...local);
  }
  merges.sort((a, b) => b.score - a.score || b.ll - a.ll || b.rl - a.rl);
  return merges.map((m) => [m.left, m.right]);
}

// ---------------------------------------------------------------------------------------------

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readJsonIfPresent(file: string): Promise<unknown> {
  if (!(await exists(file))) return null;
  try {
    return JSON.parse(await readFile(file, "utf8"));
  } catch (err) {
    throw new TokenizerFileError(file, `is not valid JSON: ${(err as Error).message}`);
  }
}
