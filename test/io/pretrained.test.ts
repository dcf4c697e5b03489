/**
 * loadPretrained / savePretrained: save → load round trips for every registered architecture,
 * dtype handling, shape / key errors naming file and tensor, HF checkpoint quirks, shards, and
 * pytorch_model.bin (refused when it holds code; read safely when torch.save wrote a state dict).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import {
  createModel,
  families,
  parseModelConfig,
  type LanguageModel,
} from "../../src/models/index.js";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { CONVERT_HINT } from "../../src/io/pickle.js";
import { loadPretrained, savePretrained } from "../../src/io/pretrained.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { dataPath, skipReason } from "../helpers/data.js";

/** A tiny config per registered model_type; a new family must add one here. */
const TINY: Record<string, Record<string, unknown>> = {
  gpt2: { vocab_size: 64, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2 },
  llama: {
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    tie_word_embeddings: true,
  },
  mistral: {
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
  qwen2: {
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
  bloom: { vocab_size: 64, hidden_size: 16, n_layer: 2, n_head: 2 },
  gpt_neox: {
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 2,
  },
  t5: { vocab_size: 64, d_model: 16, d_kv: 8, d_ff: 32, num_layers: 2, num_heads: 2 },
  mt5: { vocab_size: 64, d_model: 16, d_kv: 8, d_ff: 32, num_layers: 2, num_heads: 2 },
};

function tiny(modelType: string, seed = 1): LanguageModel {
  const raw = TINY[modelType];
  assert.ok(raw, `no tiny config for registered model_type "${modelType}": add one to TINY`);
  return createModel(parseModelConfig({ model_type: modelType, ...raw }), { seed }).eval();
}

/** Logits of a fixed batch as numbers (frees every tensor it makes). */
function logits(model: LanguageModel): number[] {
  return tidy(() => {
    const ids = tensor(
      [
        [1, 5, 9, 2, 7],
        [3, 3, 8, 0, 4],
      ],
      { dtype: "int64" },
    );
    const out =
      model.kind === "causal"
        ? model.forward({ inputIds: ids }).logits
        : model.forward({ inputIds: ids, decoderInputIds: ids.slice(1, 0, 3) }).logits;
    return out.float().toNumbers();
  });
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "lethe-pretrained-"));
}

test("save → load gives identical logits for every registered model_type", async () => {
  for (const modelType of Object.keys(families)) {
    const dir = tmp();
    const model = tiny(modelType);
    try {
      await savePretrained(model, dir);
      const loaded = await loadPretrained(dir);
      const diff = maxDiff(logits(model), logits(loaded.model));
      console.log(`# ${modelType}: max |logit diff| ${diff}`);
      assert.equal(diff, 0, modelType);
      assert.equal(loaded.config.model_type, modelType);
      assert.equal(loaded.tokenizer, null);
      const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      assert.deepEqual(config.architectures, [model.constructor.name]);
      assert.equal(config.torch_dtype, "float32");
      const f = SafetensorsFile.open(join(dir, "model.safetensors"));
      assert.deepEqual(f.metadata, { format: "pt" });
      // Tied aliases are stored once, under the canonical name, as transformers does.
      const family = families[modelType as keyof typeof families];
      for (const [alias, canonical] of family.tiedWeights?.(loaded.config) ?? []) {
        assert.ok(!f.keys().includes(alias), `${modelType}: ${alias} stored`);
        assert.ok(f.keys().includes(canonical), `${modelType}: ${canonical} not stored`);
      }
      f.close();
      loaded.model.dispose();
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test("float16 and bfloat16 checkpoints load into float32, or into the asked compute dtype", async () => {
  const model = tiny("gpt2");
  for (const dtype of ["float16", "bfloat16"] as const) {
    const dir = tmp();
    try {
      await savePretrained(model, dir, { dtype });
      assert.equal(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).torch_dtype, dtype);
      const loaded = await loadPretrained(dir);
      const rounded = tidy(
        () => new Map([...model.stateDict()].map(([k, t]) => [k, t.to(dtype).float().toNumbers()])),
      );
      for (const [k, t] of loaded.model.stateDict()) {
        assert.equal(t.dtype, "float32", k);
        assert.deepEqual(t.toNumbers(), rounded.get(k), k);
      }
      loaded.model.dispose();
      const asIs = await loadPretrained(dir, { dtype });
      for (const [k, t] of asIs.model.stateDict()) assert.equal(t.dtype, dtype, k);
      // libtorch's CPU kernels (layer_norm) have no float16 version: run bfloat16 only.
      if (dtype === "bfloat16") assert.ok(maxDiff(logits(asIs.model), logits(model)) < 0.05);
      asIs.model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  model.dispose();
});

test("a wrong-shaped, missing or unexpected tensor is an error naming the file and tensor", async () => {
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    await savePretrained(model, dir);
    const file = join(dir, "model.safetensors");
    const good = loadTensors(file);
    const rewrite = (edit: (m: Map<string, Tensor>) => void) => {
      const m = new Map(good);
      edit(m);
      saveTensors(file, m, { format: "pt" });
    };
    rewrite((m) =>
      m.set(
        "transformer.h.1.mlp.c_fc.bias",
        m.get("transformer.h.1.mlp.c_fc.bias")!.slice(0, 0, 10),
      ),
    );
    await assert.rejects(loadPretrained(dir), (e: Error) => {
      assert.match(
        e.message,
        /model\.safetensors: tensor "transformer\.h\.1\.mlp\.c_fc\.bias" has shape \[10\]/,
      );
      assert.match(e.message, /\[64\]/);
      return true;
    });
    rewrite((m) => m.delete("transformer.ln_f.bias"));
    await assert.rejects(loadPretrained(dir), /missing \[transformer\.ln_f\.bias\]/);
    rewrite((m) => m.set("transformer.h.0.mlp.extra", m.get("transformer.ln_f.bias")!));
    await assert.rejects(
      loadPretrained(dir),
      /unexpected \[transformer\.h\.0\.mlp\.extra \(model\.safetensors\)\]/,
    );
    for (const t of good.values()) t.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("HF GPT-2 quirks: base-model keys, attn.bias buffers and a stored lm_head alias load", async () => {
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    await savePretrained(model, dir);
    const file = join(dir, "model.safetensors");
    const good = loadTensors(file);
    // As openai-community/gpt2 stores it: GPT2Model names (no "transformer."), plus causal-mask buffers.
    const base = new Map([...good].map(([k, t]) => [k.replace(/^transformer\./, ""), t]));
    const mask = tidy(() => tensor([[1]], { dtype: "uint8" }));
    base.set("h.0.attn.bias", mask);
    base.set("h.1.attn.masked_bias", mask);
    saveTensors(file, base, { format: "pt" });
    const a = await loadPretrained(dir);
    assert.equal(maxDiff(logits(a.model), logits(model)), 0);
    a.model.dispose();
    // The tied head stored as well (older torch.save-style checkpoints): accepted.
    saveTensors(file, new Map([...good, ["lm_head.weight", good.get("transformer.wte.weight")!]]), {
      format: "pt",
    });
    const b = await loadPretrained(dir);
    assert.equal(maxDiff(logits(b.model), logits(model)), 0);
    b.model.dispose();
    for (const t of good.values()) t.dispose();
    mask.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a sharded save writes an index and loads back identically; a missing shard is named", async () => {
  const model = tiny("llama");
  const dir = tmp();
  try {
    await savePretrained(model, dir, { maxShardBytes: 4096 });
    const shards = readdirSync(dir).filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length > 2, `only ${shards.length} shards`);
    assert.ok(!existsSync(join(dir, "model.safetensors")));
    const index = JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8"));
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...model.stateDict().keys()].sort());
    assert.ok(shards.every((s) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(s)));
    const loaded = await loadPretrained(dir);
    assert.equal(maxDiff(logits(loaded.model), logits(model)), 0);
    loaded.model.dispose();
    unlinkSync(join(dir, shards[1]));
    await assert.rejects(loadPretrained(dir), new RegExp(`shard ${shards[1]} is missing`));
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("saving over an existing directory replaces it whole; tokenizer files are copied and loaded", async (t) => {
  const tok = dataPath("tokenizers", "gpt2");
  if (tok === null) return t.skip(skipReason("tokenizers", "gpt2"));
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    writeFileSync(join(dir, "model-00001-of-00002.safetensors"), "stale shard");
    await savePretrained(model, dir, { tokenizerDir: tok });
    assert.deepEqual(readdirSync(dir).sort(), [
      "config.json",
      "generation_config.json",
      "merges.txt",
      "model.safetensors",
      "vocab.json",
    ]);
    const loaded = await loadPretrained(dir);
    assert.ok(loaded.tokenizer !== null);
    assert.deepEqual(loaded.tokenizer.encode("Hello world"), [15496, 995]);
    assert.equal(maxDiff(logits(loaded.model), logits(model)), 0);
    loaded.model.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A stored (uncompressed) zip, laid out as torch.save writes one. */
function zip(entries: Record<string, Uint8Array>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(entries)) {
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(data.length, 20);
    cd.writeUInt32LE(data.length, 24);
    cd.writeUInt16LE(n.length, 28);
    cd.writeUInt32LE(offset, 42);
    locals.push(local, n, Buffer.from(data));
    central.push(cd, n);
    offset += 30 + n.length + data.length;
  }
  const cdBytes = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(Object.keys(entries).length, 8);
  eocd.writeUInt16LE(Object.keys(entries).length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cdBytes, eocd]);
}

test("pytorch_model.bin that calls anything but torch's tensor rebuild is refused with how to convert", async () => {
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    await savePretrained(model, dir);
    unlinkSync(join(dir, "model.safetensors"));
    // pickle protocol 2: GLOBAL os.system, ("echo pwned",), REDUCE, STOP.
    const pkl = Buffer.concat([
      Buffer.from([0x80, 0x02]),
      Buffer.from("cos\nsystem\n"),
      Buffer.from([0x58, 10, 0, 0, 0]),
      Buffer.from("echo pwned"),
      Buffer.from([0x85, 0x52, 0x2e]),
    ]);
    writeFileSync(
      join(dir, "pytorch_model.bin"),
      zip({ "archive/data.pkl": pkl, "archive/version": Buffer.from("3\n") }),
    );
    await assert.rejects(loadPretrained(dir), (e: Error) => {
      assert.match(
        e.message,
        /pytorch_model\.bin: data\.pkl byte \d+: refusing to load global os\.system/,
      );
      assert.ok(e.message.includes(CONVERT_HINT));
      return true;
    });
    writeFileSync(join(dir, "pytorch_model.bin"), Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
    await assert.rejects(loadPretrained(dir), /legacy \(pre-1\.6\) non-zip format.*\n.*save_file/s);
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

const PYTHON = "/usr/bin/python3";
const TORCH_SAVE = `
import json, sys, torch
spec = json.load(open(sys.argv[1]))
torch.manual_seed(0)
sd = {}
for name, shape in spec.items():
    sd[name] = torch.randn(*shape)
# Conv1D weights stored transposed-then-viewed: a non-contiguous view of its storage.
w = sd["transformer.h.0.mlp.c_fc.weight"]
sd["transformer.h.0.mlp.c_fc.weight"] = w.t().contiguous().t()
sd["transformer.h.1.ln_1.weight"] = sd["transformer.h.1.ln_1.weight"].half()
sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: shares storage
sd["transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 4, 4, dtype=torch.uint8))
with open(sys.argv[3], "wb") as f:
    for name in spec:
        f.write(sd[name].float().contiguous().numpy().tobytes())
torch.save(sd, sys.argv[2])
`;

test("pytorch_model.bin written by torch.save loads without running pickle", async (t) => {
  if (spawnSync(PYTHON, ["-c", "import torch"]).status !== 0) {
    return t.skip(`${PYTHON} with torch is not available to write a torch.save file`);
  }
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    await savePretrained(model, dir);
    unlinkSync(join(dir, "model.safetensors"));
    const spec = Object.fromEntries([...model.stateDict()].map(([k, v]) => [k, v.shape]));
    writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
    const r = spawnSync(PYTHON, [
      "-c",
      TORCH_SAVE,
      join(dir, "spec.json"),
      join(dir, "pytorch_model.bin"),
      join(dir, "values.f32"),
    ]);
    assert.equal(r.status, 0, r.stderr.toString());
    const loaded = await loadPretrained(dir);
    const values = new Float32Array(readFileSync(join(dir, "values.f32")).buffer.slice(0));
    let at = 0;
    for (const [k, v] of loaded.model.stateDict()) {
      const want = Array.from(values.subarray(at, at + v.numel()));
      at += v.numel();
      assert.deepEqual(v.toNumbers(), want, k);
    }
    assert.equal(at, values.length);
    loaded.model.dispose();
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
