/**
 * loadPretrained / savePretrained: save → load round trips for every registered architecture,
 * dtype handling, shape / key errors naming file and tensor, HF checkpoint quirks, shards, and
 * pytorch_model.bin (refused when it holds code; read safely when torch.save wrote a state dict,
 * in its zip and its legacy layout, checked against the values the reference torch wrote).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
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
import {
  createModel,
  families,
  parseModelConfig,
  type LanguageModel,
} from "../../src/models/index.js";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { CONVERT_HINT, TorchCheckpoint } from "../../src/io/pickle.js";
import { loadPretrained, savePretrained } from "../../src/io/pretrained.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";
import { dataPath, skipReason } from "../helpers/data.js";
import { storedZip } from "../helpers/zip.js";

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
      // Relative to the logits' size: bf16 kernels (AVX-512 BF16, AMX) round differently by CPU.
      if (dtype === "bfloat16") {
        const ref = logits(model);
        const scale = Math.max(...ref.map(Math.abs));
        const rel = maxDiff(logits(asIs.model), ref) / scale;
        assert.ok(rel < 0.05, `bfloat16 vs float32 logits: ${rel} of max |logit| ${scale}`);
      }
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
      storedZip({ "archive/data.pkl": pkl, "archive/version": Buffer.from("3\n") }),
    );
    await assert.rejects(loadPretrained(dir), (e: Error) => {
      assert.match(
        e.message,
        /pytorch_model\.bin: data\.pkl byte \d+: refusing to load global os\.system/,
      );
      assert.ok(e.message.includes(CONVERT_HINT));
      return true;
    });
    // A legacy-format file cut off inside its first pickle.
    writeFileSync(join(dir, "pytorch_model.bin"), Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
    await assert.rejects(
      loadPretrained(dir),
      /pytorch_model\.bin: byte 4: truncated.*\n.*save_file/s,
    );
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("pickle files that are not torch.save state dicts fail naming the file and where", () => {
  const dir = tmp();
  try {
    const path = join(dir, "pytorch_model.bin");
    // A bare pickle of the int 7: a pickle stream, but not torch's legacy magic number.
    writeFileSync(path, Buffer.from([0x80, 0x02, 0x4b, 0x07, 0x2e]));
    assert.throws(() => TorchCheckpoint.open(path), {
      name: "TorchPickleError",
      message: new RegExp(`^${path}: is a pickle but not a torch\\.save file`),
    });
    // Reading fails below the format checks (a directory): still a TorchPickleError with the path.
    assert.throws(() => TorchCheckpoint.open(dir), {
      name: "TorchPickleError",
      message: `${dir}: cannot be read (EISDIR: illegal operation on a directory, read)`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Whether the reference torch is there; prints why a test skips when it is not. */
function torchMissing(): string | null {
  if (pythonHas("torch")) return null;
  const why = `${PYTHON} with torch is not available to write torch.save files`;
  console.log(`# SKIP ${why}`);
  return why;
}

/** Runs a torch script with PYTHON; fails the test with its stderr when it fails. */
function runTorch(script: string, ...args: string[]): void {
  const r = spawnSync(PYTHON, ["-c", script, ...args]);
  assert.equal(r.status, 0, r.stderr.toString());
}

/** torch.save's two layouts: the zip one (torch >= 1.6) and the legacy one. */
const LAYOUTS = ["zip", "legacy"] as const;

/**
 * A GPT-2 state dict as `model.state_dict()` returns it: an OrderedDict whose `_metadata` maps
 * every module prefix to `{'version': 1}` (pickled with SETITEM, one entry each), with a
 * non-contiguous Conv1D view, a float16 tensor, a tied lm_head sharing storage and an old uint8
 * attn.bias buffer, saved to argv[2] + ".zip" and ".legacy". The float32 values of every tensor
 * in `spec` go to argv[3] in spec order.
 */
const TORCH_SAVE = `
import collections, json, struct, sys, torch
spec = json.load(open(sys.argv[1]))
torch.manual_seed(0)
sd = collections.OrderedDict()
for name, shape in spec.items():
    sd[name] = torch.randn(*shape)
w = sd["transformer.h.0.mlp.c_fc.weight"]
sd["transformer.h.0.mlp.c_fc.weight"] = w.t().contiguous().t()
sd["transformer.h.1.ln_1.weight"] = sd["transformer.h.1.ln_1.weight"].half()
sd["lm_head.weight"] = sd["transformer.wte.weight"]
sd["transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 4, 4, dtype=torch.uint8))
sd._metadata = collections.OrderedDict()
for name in sd:
    parts = name.split(".")[:-1]
    for i in range(len(parts) + 1):
        sd._metadata.setdefault(".".join(parts[:i]), {"version": 1})
with open(sys.argv[3], "wb") as f:
    for name in spec:
        values = sd[name].float().flatten().tolist()
        f.write(struct.pack(f"<{len(values)}f", *values))
torch.save(sd, sys.argv[2] + ".zip")
torch.save(sd, sys.argv[2] + ".legacy", _use_new_zipfile_serialization=False)
`;

test("pytorch_model.bin from torch.save of a state dict with _metadata loads, zip and legacy layouts", async (t) => {
  const missing = torchMissing();
  if (missing) return t.skip(missing);
  const model = tiny("gpt2");
  const dir = tmp();
  try {
    await savePretrained(model, dir);
    unlinkSync(join(dir, "model.safetensors"));
    const spec = Object.fromEntries([...model.stateDict()].map(([k, v]) => [k, v.shape]));
    writeFileSync(join(dir, "spec.json"), JSON.stringify(spec));
    const valuesFile = join(dir, "values.f32");
    runTorch(TORCH_SAVE, join(dir, "spec.json"), join(dir, "saved"), valuesFile);
    for (const layout of LAYOUTS) {
      const bin = join(dir, "pytorch_model.bin");
      copyFileSync(join(dir, `saved.${layout}`), bin);
      const head = readFileSync(bin).subarray(0, 2).toString("latin1");
      assert.equal(head === "PK" ? "zip" : "legacy", layout);
      const loaded = await loadPretrained(dir);
      const values = new Float32Array(readFileSync(valuesFile).buffer.slice(0));
      let at = 0;
      for (const [k, v] of loaded.model.stateDict()) {
        const want = Array.from(values.subarray(at, at + v.numel()));
        at += v.numel();
        assert.deepEqual(v.toNumbers(), want, `${layout}: ${k}`);
      }
      assert.equal(at, values.length);
      console.log(`# ${layout}: ${at} values equal torch's`);
      loaded.model.dispose();
    }
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Tensors of every storage type, views (offset, transposed, strided, broadcast), a scalar and an
 * empty tensor, in an OrderedDict with _metadata, and a one-tensor dict, saved in both layouts
 * to argv[1] + ".{zip,legacy}" and ".one.{zip,legacy}". argv[2] gets {name: [dtype, shape, values]}.
 */
const TORCH_DTYPES = `
import collections, json, sys, torch
torch.manual_seed(0)
base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
sd = collections.OrderedDict()
sd["f64.view"] = base[1:, ::2]
sd["f64.t"] = base.t()
sd["f32"] = torch.randn(3, 5)
sd["f16"] = torch.randn(2, 3).half()
sd["bf16"] = torch.randn(7).bfloat16()
sd["i64"] = torch.tensor([-(2**40), 7, 0])
sd["i32"] = torch.tensor([-5, 2**31 - 1], dtype=torch.int32)
sd["i16"] = torch.tensor([-300, 300], dtype=torch.int16)
sd["i8"] = torch.tensor([-128, 127], dtype=torch.int8)
sd["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
sd["bool"] = torch.tensor([True, False, True])
sd["scalar"] = torch.tensor(3.5)
sd["empty"] = torch.zeros(0, 4)
sd["expanded"] = torch.arange(3.0).expand(4, 3)
sd._metadata = collections.OrderedDict([("", {"version": 1})])
dtypes = {torch.float64: "float64", torch.float32: "float32", torch.float16: "float16",
          torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32",
          torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}
want = {k: [dtypes[v.dtype], list(v.shape), v.double().flatten().tolist()] for k, v in sd.items()}
json.dump(want, open(sys.argv[2], "w"))
one = collections.OrderedDict([("w", torch.ones(2, 2))])
for layout in ["zip", "legacy"]:
    torch.save(sd, f"{sys.argv[1]}.{layout}", _use_new_zipfile_serialization=layout == "zip")
    torch.save(one, f"{sys.argv[1]}.one.{layout}", _use_new_zipfile_serialization=layout == "zip")
`;

test("TorchCheckpoint reads every storage type, views, scalars and one-tensor files as torch wrote them", async (t) => {
  const missing = torchMissing();
  if (missing) return t.skip(missing);
  const dir = tmp();
  try {
    runTorch(TORCH_DTYPES, join(dir, "saved"), join(dir, "want.json"));
    const want = JSON.parse(readFileSync(join(dir, "want.json"), "utf8")) as Record<
      string,
      [string, number[], number[]]
    >;
    for (const layout of LAYOUTS) {
      const bin = join(dir, `saved.${layout}`);
      const f = TorchCheckpoint.open(bin);
      try {
        assert.deepEqual(f.keys(), Object.keys(want));
        for (const [name, [dtype, shape, values]] of Object.entries(want)) {
          assert.deepEqual(f.info(name), { dtype, shape }, `${layout}: ${name}`);
          const got = tidy(() => f.tensor(name).to("float64").toNumbers());
          assert.deepEqual(got, values, `${layout}: ${name}`);
        }
      } finally {
        f.close();
      }
      // One tensor: the dict is pickled with SETITEM, the legacy key list with APPEND.
      const one = TorchCheckpoint.open(join(dir, `saved.one.${layout}`));
      assert.deepEqual(one.keys(), ["w"]);
      assert.deepEqual(
        tidy(() => one.tensor("w").toNumbers()),
        [1, 1, 1, 1],
      );
      one.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
