/**
 * Tests for src/io/tokenizer.ts on the real tokenizer files in shared/data: GPT-2 (vocab.json +
 * merges.txt), T5 (tokenizer.json, Unigram), LLaMA-2 (SentencePiece tokenizer.model and llama2.c
 * tokenizer.bin) and stories260K's tok512.bin. Expected ids are published ones, cited beside each.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer, TokenizerFileError } from "../../src/io/tokenizer.js";
import { dataPath, skipReason } from "../helpers/data.js";

const UNICODE = "Grüße, 世界! naïve café — 🤗 ∑x² ok";

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "lethe-tokenizer-"));
}

test("GPT-2 vocab.json + merges.txt: byte-level BPE with published ids", async (t) => {
  const dir = dataPath("tokenizers", "gpt2");
  if (dir === null) return t.skip(skipReason("tokenizers", "gpt2"));
  const tok = await loadTokenizer(dir);
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  // openai/tiktoken tests/test_simple_public.py (gpt2 encoding)
  assert.deepEqual(tok.encode("hello world"), [31373, 995]);
  // karpathy/build-nanogpt train_gpt2.py, the sampling prompt encoded with tiktoken "gpt2"
  assert.deepEqual(
    tok.encode("Hello, I'm a language model,"),
    [15496, 11, 314, 1101, 257, 3303, 2746, 11],
  );
  // openai/tiktoken tests: "hello <|endoftext|>" with the special token allowed
  assert.deepEqual(tok.encode("hello <|endoftext|>"), [31373, 220, 50256]);
  assert.equal(tok.vocabSize, 50257);
  assert.deepEqual(
    [tok.bosTokenId, tok.eosTokenId, tok.unkTokenId, tok.padTokenId],
    [50256, 50256, 50256, null],
  );
  assert.equal(tok.addBosToken, false);
  assert.equal(tok.addEosToken, false);
  assert.deepEqual(
    tok.encode("Hello world", { addSpecialTokens: false }),
    tok.encode("Hello world"),
  );
  assert.equal(tok.decode([31373, 220, 50256]), "hello <|endoftext|>");
  assert.equal(tok.decode([31373, 220, 50256], { skipSpecialTokens: true }), "hello ");
  assert.equal(tok.decode(tok.encode(UNICODE)), UNICODE);
  assert.equal(tok.decode([]), "");
  assert.equal(tok.tokenToId("Ġworld"), 995);
  assert.equal(tok.idToToken(995), "Ġworld");
  assert.equal(tok.tokenToId("not a gpt2 token"), null);
  assert.throws(() => tok.decode([50257]), /ids\[0\] = 50257/);
});

test("T5 tokenizer.json: Unigram with EOS appended", async (t) => {
  const dir = dataPath("tokenizers", "t5-small");
  if (dir === null) return t.skip(skipReason("tokenizers", "t5-small"));
  const tok = await loadTokenizer(dir);
  // Golden values from HF tokenizers 0.23.2 on google-t5 tokenizer.json sha256 d2acde0d... (this
  // very file), pinned in dart_sentencepiece_tokenizer's Hugging Face fixture test.
  assert.deepEqual(tok.encode("Hello world"), [8774, 296, 1]);
  assert.deepEqual(tok.encode("Hello\tworld\nagain"), [8774, 296, 541, 1]);
  assert.equal(tok.decode([8774, 296, 541, 1], { skipSpecialTokens: true }), "Hello world again");
  assert.equal(tok.decode([8774, 296, 1]), "Hello world</s>");
  assert.deepEqual(tok.encode("Hello world", { addSpecialTokens: false }), [8774, 296]);
  assert.equal(tok.vocabSize, 32100);
  assert.deepEqual(
    [tok.bosTokenId, tok.eosTokenId, tok.unkTokenId, tok.padTokenId],
    [null, 1, 2, 0],
  );
  assert.equal(tok.addBosToken, false);
  assert.equal(tok.addEosToken, true);
  assert.equal(tok.tokenToId("<extra_id_0>"), 32099);
});

test("LLaMA-2 tokenizer.model: SentencePiece BPE converted like LlamaConverter", async (t) => {
  const dir = dataPath("tokenizers", "llama2");
  if (dir === null) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(dir);
  assert.deepEqual(tok.encode("Hello world"), [1, 15043, 3186]);
  // karpathy/llama2.c test.c test_prompt_encodings: ids from Meta's Llama 2 SentencePiece tokenizer
  assert.deepEqual(tok.encode(""), [1]);
  assert.deepEqual(
    tok.encode("I believe the meaning of life is"),
    [1, 306, 4658, 278, 6593, 310, 2834, 338],
  );
  assert.deepEqual(
    tok.encode("Simply put, the theory of relativity states that "),
    [1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871],
  );
  assert.deepEqual(
    tok.encode(
      "A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
    ),
    [
      1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13, 4706,
      6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871,
    ],
  );
  assert.equal(tok.vocabSize, 32000);
  assert.deepEqual(
    [tok.bosTokenId, tok.eosTokenId, tok.unkTokenId, tok.padTokenId],
    [1, 2, 0, null],
  );
  assert.equal(tok.addBosToken, true);
  assert.equal(tok.addEosToken, false);
  // transformers LlamaTokenizerFast keeps "<s>" and the space the Strip decoder leaves after it.
  assert.equal(tok.decode([1, 15043, 3186]), "<s> Hello world");
  assert.equal(tok.decode([1, 15043, 3186], { skipSpecialTokens: true }), "Hello world");
  // Byte fallback: characters outside the vocab become <0xXX> tokens, ids 3 + byte.
  const hug = tok.encode("🤗", { addSpecialTokens: false });
  assert.deepEqual(
    hug.slice(-4),
    [...new TextEncoder().encode("🤗")].map((b) => 3 + b),
  );
  assert.equal(tok.idToToken(hug.at(-1) as number), "<0x97>");
  assert.equal(tok.decode(tok.encode(UNICODE), { skipSpecialTokens: true }), UNICODE);
});

test("llama2.c tokenizer.bin encodes like tokenizer.model", async (t) => {
  const bin = dataPath("tokenizers", "llama2", "tokenizer.bin");
  const model = dataPath("tokenizers", "llama2", "tokenizer.model");
  if (bin === null || model === null) return t.skip(skipReason("tokenizers", "llama2"));
  const fromBin = await loadTokenizer(bin);
  const fromModel = await loadTokenizer(model);
  assert.equal(fromBin.vocabSize, 32000);
  for (const text of ["Hello world", "  two  spaces\n\ttab", UNICODE, "<s>[INST] hi [/INST]"]) {
    assert.deepEqual(fromBin.encode(text), fromModel.encode(text), text);
  }
});

/**
 * llama2.c `run.c` `encode`, the slow obvious way: BOS, a dummy " " when the text is not empty, one
 * token per code point (bytes + 3 when absent), then repeatedly merge the adjacent pair whose union
 * has the highest score. Reads the .bin layout itself (i32 max_len; per token f32, i32, bytes).
 */
function runCEncode(file: string, text: string): number[] {
  const buf = readFileSync(file);
  const vocab: string[] = [];
  const scores: number[] = [];
  for (let pos = 4; pos < buf.length;) {
    const len = buf.readInt32LE(pos + 4);
    scores.push(buf.readFloatLE(pos));
    vocab.push(buf.subarray(pos + 8, pos + 8 + len).toString("utf8"));
    pos += 8 + len;
  }
  const lookup = new Map(vocab.map((v, i) => [v, i]));
  const ids = [1];
  if (text !== "") ids.push(lookup.get(" ") as number);
  for (const ch of text) {
    const id = lookup.get(ch);
    if (id !== undefined) ids.push(id);
    else ids.push(...[...Buffer.from(ch, "utf8")].map((b) => b + 3));
  }
  for (;;) {
    let best = -Infinity;
    let at = -1;
    let merged = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const id = lookup.get(vocab[ids[i]] + vocab[ids[i + 1]]);
      if (id !== undefined && scores[id] > best) [best, at, merged] = [scores[id], i, id];
    }
    if (at < 0) return ids;
    ids.splice(at, 2, merged);
  }
}

test("stories260K tok512.bin: llama2.c's merge-by-score encoding", async (t) => {
  const dir = dataPath("models", "stories260K");
  if (dir === null) return t.skip(skipReason("models", "stories260K"));
  const tok = await loadTokenizer(dir);
  assert.equal(tok.vocabSize, 512);
  assert.deepEqual([tok.bosTokenId, tok.eosTokenId, tok.unkTokenId], [1, 2, 0]);
  const ids = tok.encode("Once upon a time");
  assert.equal(ids[0], 1);
  assert.ok(ids.length < "Once upon a time".length, `merges happened: ${ids}`);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "Once upon a time");
  const file = join(dir, "tok512.bin");
  for (const text of [
    "Once upon a time",
    "Lily saw a big, red ball.\nShe smiled!",
    UNICODE,
    "a  b",
  ]) {
    assert.deepEqual(tok.encode(text), runCEncode(file, text), text);
    assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);
  }
});

test("batchEncode pads and truncates on either side", async (t) => {
  const dir = dataPath("tokenizers", "t5-small");
  if (dir === null) return t.skip(skipReason("tokenizers", "t5-small"));
  const tok = await loadTokenizer(dir);
  const texts = ["Hello world", "Hello world again"];
  const right = tok.batchEncode(texts);
  assert.deepEqual(right.inputIds, [
    [8774, 296, 1, 0],
    [8774, 296, 541, 1],
  ]);
  assert.deepEqual(right.attentionMask, [
    [1, 1, 1, 0],
    [1, 1, 1, 1],
  ]);
  const left = tok.batchEncode(texts, { paddingSide: "left" });
  assert.deepEqual(left.inputIds, [
    [0, 8774, 296, 1],
    [8774, 296, 541, 1],
  ]);
  assert.deepEqual(left.attentionMask, [
    [0, 1, 1, 1],
    [1, 1, 1, 1],
  ]);
  // Truncation keeps the special tokens, as transformers does.
  assert.deepEqual(tok.batchEncode(texts, { maxLength: 3 }).inputIds, [
    [8774, 296, 1],
    [8774, 296, 1],
  ]);
  assert.deepEqual(tok.batchEncode(texts, { maxLength: 3, truncationSide: "left" }).inputIds, [
    [8774, 296, 1],
    [296, 541, 1],
  ]);
  assert.throws(() => tok.batchEncode(texts, { maxLength: 0 }), /maxLength 0/);
});

test("batchEncode without a pad token needs padTokenId", async (t) => {
  const dir = dataPath("tokenizers", "llama2");
  if (dir === null) return t.skip(skipReason("tokenizers", "llama2"));
  const tok = await loadTokenizer(dir);
  assert.throws(() => tok.batchEncode(["Hello", "Hello world"]), /no pad token/);
  const out = tok.batchEncode(["Hello", "Hello world"], { padTokenId: 2, paddingSide: "left" });
  assert.deepEqual(out.inputIds, [
    [2, 1, 15043],
    [1, 15043, 3186],
  ]);
  assert.deepEqual(out.attentionMask, [
    [0, 1, 1],
    [1, 1, 1],
  ]);
});

/** meta-llama/Llama-2-7b-chat-hf tokenizer_config.json "chat_template" (Jinja escapes kept). */
const LLAMA2_CHAT_TEMPLATE = String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`;

test("chat template and add_bos_token/add_eos_token from tokenizer_config.json", async (t) => {
  const model = dataPath("tokenizers", "llama2", "tokenizer.model");
  if (model === null) return t.skip(skipReason("tokenizers", "llama2"));
  const dir = tmp();
  symlinkSync(model, join(dir, "tokenizer.model"));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({
      chat_template: LLAMA2_CHAT_TEMPLATE,
      bos_token: { content: "<s>" },
      eos_token: "</s>",
    }),
  );
  const tok = await loadTokenizer(dir);
  const chat = [
    { role: "system", content: "You are assistant." },
    { role: "user", content: "hello" },
    { role: "assistant", content: "how can I help you?" },
    { role: "user", content: "how much is 2+2?" },
  ];
  // Prompt and ids served by vLLM for meta-llama/Llama-2-7b-chat-hf, as pinned in an
  // openvino.genai chat-template test (chat3).
  const prompt = tok.applyChatTemplate(chat, { addGenerationPrompt: true });
  assert.equal(
    prompt,
    "<s>[INST] <<SYS>>\nYou are assistant.\n<</SYS>>\n\nhello [/INST] how can I help you? </s><s>[INST] how much is 2+2? [/INST]",
  );
  assert.deepEqual(
    tok.encode(prompt, { addSpecialTokens: false }),
    [
      1, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3492, 526, 20255, 29889, 13, 29966, 829,
      14816, 29903, 6778, 13, 13, 12199, 518, 29914, 25580, 29962, 920, 508, 306, 1371, 366, 29973,
      29871, 2, 1, 518, 25580, 29962, 920, 1568, 338, 29871, 29906, 29974, 29906, 29973, 518, 29914,
      25580, 29962,
    ],
  );
  assert.throws(() => tok.applyChatTemplate([{ role: "assistant", content: "hi" }]), /alternate/);

  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ add_bos_token: false, add_eos_token: true }),
  );
  const eosOnly = await loadTokenizer(dir);
  assert.deepEqual(eosOnly.encode("Hello world"), [15043, 3186, 2]);
  assert.equal(eosOnly.addBosToken, false);
  assert.equal(eosOnly.addEosToken, true);
  assert.throws(() => eosOnly.applyChatTemplate(chat), /no chat template/);
});

test("bad input is reported with the file and field", async (t) => {
  const dir = tmp();
  await assert.rejects(
    loadTokenizer(dir),
    (e: unknown) => e instanceof TokenizerFileError && /no tokenizer file found/.test(e.message),
  );

  writeFileSync(join(dir, "tok512.bin"), Buffer.from([7, 0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 0]));
  await assert.rejects(loadTokenizer(dir), /tok512\.bin: token 0 at byte 4: length 99/);

  const t5 = dataPath("tokenizers", "t5-small", "tokenizer.json");
  if (t5 === null) return t.skip(skipReason("tokenizers", "t5-small"));
  const bad = tmp();
  symlinkSync(t5, join(bad, "tokenizer.json"));
  writeFileSync(join(bad, "tokenizer_config.json"), JSON.stringify({ padding_side: "middle" }));
  await assert.rejects(loadTokenizer(bad), /tokenizer_config\.json: field "padding_side"/);
  writeFileSync(join(bad, "tokenizer_config.json"), JSON.stringify({ pad_token: "<not-a-token>" }));
  await assert.rejects(loadTokenizer(bad), /pad_token "<not-a-token>" is not in the vocabulary/);
});
