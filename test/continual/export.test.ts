/**
 * Export of a run's stages (src/continual/export.ts, src/cli/export.ts, the runner's `export:`
 * and a model spec's `adapter:`): for every architecture (gpt2, llama, bloom, gpt_neox, t5, mt5) a
 * one-stage run exports hf while it trains, and `lethe export` writes stage 1 (the same bytes) and
 * stage 0; each folder loads back through loadPretrained with logits equal to the run's model
 * (the base plus the stage's checkpoint, rebuilt here) and the run's tokenizer. A LoRA run of a
 * model folder exports peft (loaded back by loadLoraAdapter: equal logits) and hf (merged; config
 * fields of the base kept), and transformers and PEFT load both to the same logits (when the
 * reference venv has them); runs that start from that adapter continue it (LoRA) or merge it
 * (full), both starting from exactly the merged weights. A forced small shard size writes a valid
 * model.safetensors.index.json that loads back. Errors: bad configs, bad stages, peft of a full
 * run, a non-empty --out, a checkpoint removed.
 */
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify as toYaml } from "yaml";
import { main } from "../../src/cli/main.js";
import { expandGrid, loadStudy, parseStudy, runConfig } from "../../src/continual/config.js";
import { runStudy } from "../../src/continual/study.js";
import { loadTensors } from "../../src/io/checkpoint.js";
import { loadLoraAdapter } from "../../src/io/peft.js";
import { loadPretrained, savePretrained } from "../../src/io/pretrained.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { createModel, parseModelConfig, type LanguageModel } from "../../src/models/index.js";
import { applyLora } from "../../src/models/lora.js";
import { noGrad, tensor, tidy } from "../../src/tensor/index.js";
import { PYTHON } from "../../src/util/python.js";
import { capture } from "../helpers/capture.js";
import { dataPath, sharedDataRoot, skipReason } from "../helpers/data.js";

const TOK = ["models", "stories260K", "tok512.bin"] as const;
const TASK = ["instructions", "scialom_ct0"] as const;

/** One tiny config per architecture over tok512's 512 tokens. */
const ARCHS: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: "gpt2", vocab_size: 512, n_positions: 64, n_embd: 16, n_layer: 1, n_head: 2 },
  llama: {
    model_type: "llama",
    vocab_size: 512,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 64,
  },
  bloom: { model_type: "bloom", vocab_size: 512, hidden_size: 16, n_layer: 1, n_head: 2 },
  gpt_neox: {
    model_type: "gpt_neox",
    vocab_size: 512,
    hidden_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 32,
    max_position_embeddings: 64,
  },
  t5: {
    model_type: "t5",
    vocab_size: 512,
    d_model: 16,
    d_kv: 8,
    d_ff: 32,
    num_layers: 1,
    num_heads: 2,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 20,
    dropout_rate: 0,
  },
  mt5: {
    model_type: "mt5",
    vocab_size: 512,
    d_model: 16,
    d_kv: 8,
    d_ff: 32,
    num_layers: 1,
    num_heads: 2,
    relative_attention_num_buckets: 8,
    relative_attention_max_distance: 20,
    dropout_rate: 0,
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: false,
  },
};

/** A one-stage study (haiku, 2 steps, 1 test item, no benchmarks) with `fields` on top. */
function studyFile(dir: string, fields: Record<string, unknown>): string {
  const raw = {
    name: "export",
    dataDir: sharedDataRoot,
    methods: ["sequential"],
    orders: [["haiku"]],
    train: { lr: 3e-2, steps: 2, batchSize: 2, gradAccum: 1, warmup: 0, maxLength: 48 },
    tasks: { maxGenToks: 2 },
    budget: { maxTrain: 4, maxTest: 1 },
    eval: { benchmarks: [], bootstrapIters: 0 },
    ...fields,
  };
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "study.json");
  writeFileSync(file, JSON.stringify(raw));
  return file;
}

/** Runs a study; returns its run folders. */
async function run(file: string, out: string): Promise<string[]> {
  return runStudy(loadStudy(file), out);
}

const lethe = (...argv: string[]) => capture(() => main(argv));

/** Fixed inputs' logits as numbers (a decoder input for encoder-decoders). */
function logits(model: LanguageModel): number[] {
  return tidy(() => {
    const ids = tensor(
      [
        [1, 45, 300, 2, 7, 99],
        [3, 3, 8, 0, 4, 511],
      ],
      { dtype: "int64" },
    );
    const out = noGrad(() =>
      model.kind === "causal"
        ? model.forward({ inputIds: ids }).logits
        : model.forward({ inputIds: ids, decoderInputIds: ids.slice(1, 0, 4) }).logits,
    );
    return Array.from(out.float().toArray() as Float32Array);
  });
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

/** `model` with a run's checkpoint tensors copied in (the oracle: what the run trained). */
function withCheckpoint(model: LanguageModel, runDir: string, m = 1): LanguageModel {
  const dir = join(runDir, "checkpoints", readdirSync(join(runDir, "checkpoints"))[m - 1]);
  const file = join(dir, readdirSync(dir)[0], "model.safetensors");
  const saved = loadTensors(file);
  const { unexpected } = model.loadStateDict(saved, { strict: false });
  assert.deepEqual(unexpected, []);
  for (const t of saved.values()) t.dispose();
  return model;
}

const read = (...p: string[]) => readFileSync(join(...p));
const json = (...p: string[]) => JSON.parse(readFileSync(join(...p), "utf8"));

test("every architecture: hf exports during the run and by lethe export load back with the run's logits", async (t) => {
  const tokFile = dataPath(...TOK);
  if (!tokFile || !dataPath(...TASK)) return t.skip(skipReason(...TOK, "| instructions"));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-export-"));
  try {
    const models = Object.entries(ARCHS).map(([name, config]) => ({
      name,
      build: { config, seed: 3, tokenizer: tokFile },
    }));
    const dirs = await run(studyFile(tmp, { models, export: ["hf"] }), join(tmp, "study"));
    assert.equal(dirs.length, 6);
    const tok = await loadTokenizer(tokFile);
    const text = "Once upon a time, a little cat";
    for (const [i, [name, config]] of Object.entries(ARCHS).entries()) {
      const runDir = dirs[i];
      const base = () => createModel(parseModelConfig(config), { seed: 3 }).eval();
      const want1 = logits(withCheckpoint(base(), runDir));
      const want0 = logits(base());
      assert.ok(maxDiff(want0, want1) > 0, `${name}: training changed the model`);

      const during = join(runDir, "export", "stage-1", "hf");
      assert.deepEqual(readdirSync(during).sort(), [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.bin",
      ]);
      const after1 = join(tmp, `${name}-1`);
      const after0 = join(tmp, `${name}-0`);
      const r1 = await lethe("export", runDir, "--out", after1); // default: the last stage
      assert.equal(r1.code, 0, r1.err);
      assert.match(r1.out, /after stage 1 \(hf\)/);
      const r0 = await lethe("export", runDir, "--stage", "0", "--out", after0);
      assert.equal(r0.code, 0, r0.err);
      assert.ok(read(during, "model.safetensors").equals(read(after1, "model.safetensors")));
      assert.deepEqual(json(after1, "config.json"), json(during, "config.json"));

      for (const [dir, want] of [
        [during, want1],
        [after1, want1],
        [after0, want0],
      ] as const) {
        const p = await loadPretrained(dir);
        const d = maxDiff(logits(p.model), want);
        console.log(`# ${name} ${dir.slice(tmp.length)}: max |Δlogit| ${d}`);
        assert.equal(d, 0, `${name}: ${dir}`);
        assert.deepEqual(p.tokenizer!.encode(text), tok.encode(text));
        assert.equal(p.config.model_type, name);
        p.model.dispose();
      }
    }

    // Sharded: every tensor listed once, the files there, total_size their bytes; loads back.
    const llamaRun = dirs[1];
    const sharded = join(tmp, "sharded");
    const r = await lethe("export", llamaRun, "--out", sharded, "--max-shard-size", "4KB");
    assert.equal(r.code, 0, r.err);
    const index = json(sharded, "model.safetensors.index.json");
    const shards = readdirSync(sharded).filter((f) => f.endsWith(".safetensors"));
    assert.ok(shards.length > 2 && !shards.includes("model.safetensors"), shards.join(" "));
    assert.deepEqual([...new Set(Object.values(index.weight_map))].sort(), shards.sort());
    let total = 0;
    const listed: string[] = [];
    for (const shard of shards) {
      const f = SafetensorsFile.open(join(sharded, shard));
      let bytes = 0;
      for (const k of f.keys()) {
        assert.equal(index.weight_map[k], shard, k);
        listed.push(k);
        const { dtype, shape } = f.info(k);
        assert.equal(dtype, "F32");
        bytes += 4 * shape.reduce((a, b) => a * b, 1);
      }
      // Over the limit only when one tensor alone is (huggingface_hub's rule).
      assert.ok(bytes <= 4000 || f.keys().length === 1, `${shard}: ${bytes} bytes`);
      total += bytes;
      f.close();
    }
    assert.deepEqual(listed.sort(), Object.keys(index.weight_map).sort(), "each tensor once");
    assert.equal(index.metadata.total_size, total);
    const p = await loadPretrained(sharded);
    const llama = createModel(parseModelConfig(ARCHS.llama), { seed: 3 }).eval();
    assert.equal(maxDiff(logits(p.model), logits(withCheckpoint(llama, llamaRun))), 0);
    p.model.dispose();

    // Errors of lethe export.
    const gpt2Run = dirs[0];
    const fails = async (argv: string[], code: number, msg: RegExp) => {
      const res = await lethe("export", ...argv);
      assert.equal(res.code, code, `${argv.join(" ")}: ${res.err}`);
      assert.match(res.err, msg);
    };
    const fresh = () => join(tmp, `out-${Math.random().toString(36).slice(2)}`);
    await fails([tmp, "--out", fresh()], 1, /not a run folder \(no config\.yaml\)/);
    await fails([gpt2Run, "--stage", "2", "--out", fresh()], 1, /no stage 2: .* 0 .* to 1/);
    await fails([gpt2Run, "--stage=-1", "--out", fresh()], 2, /--stage must be an integer >= 0/);
    await fails([gpt2Run, "--format", "peft", "--out", fresh()], 1, /full fine-tuning.*export hf/);
    await fails([gpt2Run, "--format", "gguf", "--out", fresh()], 2, /--format/);
    await fails([gpt2Run, "--max-shard-size", "5XB", "--out", fresh()], 2, /size like 5GB/);
    await fails([gpt2Run, "--out", sharded], 1, /exists and is not an empty folder/);
    const unfinished = join(tmp, "unfinished");
    cpSync(gpt2Run, unfinished, { recursive: true });
    rmSync(join(unfinished, "stages", "1", "tasks.json"));
    await fails([unfinished, "--stage", "1", "--out", fresh()], 1, /stage 1 is not finished yet/);
    rmSync(join(unfinished, "stages", "0", "tasks.json"));
    await fails([unfinished, "--out", fresh()], 1, /no stage is finished yet/);
    rmSync(join(gpt2Run, "checkpoints"), { recursive: true });
    await fails([gpt2Run, "--out", fresh()], 1, /checkpoint is gone \(train\.keep: last\)/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("LoRA: peft and hf exports, and runs that start from the adapter (continued or merged)", async (t) => {
  const tokFile = dataPath(...TOK);
  if (!tokFile || !dataPath(...TASK)) return t.skip(skipReason(...TOK, "| instructions"));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-export-lora-"));
  try {
    // A base model folder, as from the hub: a config field lethe does not read must survive.
    const baseDir = join(tmp, "base");
    const config = parseModelConfig(ARCHS.llama);
    const build = () => createModel(config, { seed: 5 }).eval();
    const model = build();
    await savePretrained(model, baseDir, { tokenizerDir: tokFile });
    model.dispose();
    const cfg = json(baseDir, "config.json");
    writeFileSync(join(baseDir, "config.json"), JSON.stringify({ ...cfg, _name_or_path: "x/y" }));

    const lora = { kind: "lora", lora: { r: 4, alpha: 8, dropout: 0 } };
    const [runA] = await run(
      studyFile(join(tmp, "a"), {
        models: [{ name: "base", ref: baseDir }],
        tuning: lora,
        export: ["hf", "peft"],
      }),
      join(tmp, "a"),
    );
    const oracle = withCheckpoint(applyLoraTo(build(), { r: 4, alpha: 8 }), runA);
    const want = logits(oracle);

    const peft = join(runA, "export", "stage-1", "peft");
    assert.deepEqual(readdirSync(peft).sort(), [
      "adapter_config.json",
      "adapter_model.safetensors",
    ]);
    const ac = json(peft, "adapter_config.json");
    assert.equal(ac.base_model_name_or_path, baseDir);
    assert.equal(ac.r, 4);
    const loaded = await loadPretrained(baseDir);
    loadLoraAdapter(loaded.model, peft);
    assert.equal(maxDiff(logits(loaded.model), want), 0, "base + peft adapter = the run's model");
    loaded.model.dispose();

    const hf = join(runA, "export", "stage-1", "hf");
    const merged = await loadPretrained(hf);
    const d = maxDiff(logits(merged.model), want);
    console.log(`# LoRA merged into hf: max |Δlogit| ${d}`);
    assert.ok(d < 1e-5, `merged logits differ by ${d}`);
    const mergedWeights = SafetensorsFile.open(join(hf, "model.safetensors"));
    assert.ok(!mergedWeights.keys().some((k) => k.includes("lora_")), "no adapter tensors");
    mergedWeights.close();
    assert.equal(json(hf, "config.json")._name_or_path, "x/y", "base config.json kept");
    assert.ok(existsSync(join(hf, "tokenizer.bin")));

    // The real tools load both: transformers the hf folder, PEFT the base plus the adapter.
    const py = spawnSync(PYTHON, ["-c", PY_LOAD, hf, baseDir, peft], { encoding: "utf8" });
    if (py.error || /ModuleNotFoundError/.test(py.stderr))
      console.log(
        `# SKIP the transformers/peft check: ${PYTHON} lacks torch, transformers or peft`,
      );
    else {
      assert.equal(py.status, 0, py.stderr);
      const [hfLogits, peftLogits] = JSON.parse(py.stdout) as number[][];
      const dh = maxDiff(hfLogits, want);
      const dp = maxDiff(peftLogits, want);
      console.log(`# transformers (hf): max |Δlogit| ${dh}; PEFT (base + adapter): ${dp}`);
      assert.ok(dh < 1e-5 && dp < 1e-5, `${dh} ${dp}`);
    }

    const again = join(tmp, "peft-again");
    const r = await lethe("export", runA, "--format", "peft", "--out", again);
    assert.equal(r.code, 0, r.err);
    assert.ok(
      read(again, "adapter_model.safetensors").equals(read(peft, "adapter_model.safetensors")),
    );

    // Starting from the adapter. LoRA: trained on (the adapter's r = 4 wins over tuning.lora's 8).
    const [runB] = await run(
      studyFile(join(tmp, "b"), {
        models: [{ name: "cont", ref: baseDir, adapter: peft }],
        tuning: { kind: "lora", lora: { r: 8, alpha: 16, dropout: 0 } },
      }),
      join(tmp, "b"),
    );
    const b0 = join(tmp, "b0");
    const b1 = join(tmp, "b1");
    for (const [argv, out] of [
      [["--stage", "0"], b0],
      [["--stage", "1", "--format", "peft"], b1],
    ] as const) {
      const res = await lethe("export", runB, ...argv, "--out", out);
      assert.equal(res.code, 0, res.err);
    }
    assert.ok(read(b0, "model.safetensors").equals(read(hf, "model.safetensors")), "B starts at A");
    assert.equal(json(b1, "adapter_config.json").r, 4);
    assert.ok(
      !read(b1, "adapter_model.safetensors").equals(read(peft, "adapter_model.safetensors")),
    );

    // Full fine-tuning from the adapter: merged first. Stage 0 needs only the run's config.
    const study = loadStudy(
      studyFile(join(tmp, "c"), { models: [{ name: "full", ref: baseDir, adapter: peft }] }),
    );
    const spec = expandGrid(study)[0];
    const runC = join(tmp, "c", "runs", spec.name);
    mkdirSync(runC, { recursive: true });
    writeFileSync(join(runC, "config.yaml"), toYaml(runConfig(study, spec)));
    const c0 = join(tmp, "c0");
    const res = await lethe("export", runC, "--stage", "0", "--out", c0);
    assert.equal(res.code, 0, res.err);
    const c0w = loadTensors(join(c0, "model.safetensors"));
    const hfw = loadTensors(join(hf, "model.safetensors"));
    assert.deepEqual([...c0w.keys()].sort(), [...hfw.keys()].sort());
    for (const [k, w] of c0w)
      assert.equal(
        tidy(() => w.sub(hfw.get(k)!).abs().max().item()),
        0,
        k,
      );
    for (const w of [...c0w.values(), ...hfw.values()]) w.dispose();
    oracle.dispose();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/** Prints [logits of transformers on argv[1], of PEFT on base argv[2] + adapter argv[3]] (flat). */
const PY_LOAD = `
import json, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
ids = torch.tensor([[1, 45, 300, 2, 7, 99], [3, 3, 8, 0, 4, 511]])
hf = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
base = AutoModelForCausalLM.from_pretrained(sys.argv[2]).eval()
peft = PeftModel.from_pretrained(base, sys.argv[3]).eval()
with torch.no_grad():
    print(json.dumps([m(ids).logits.flatten().tolist() for m in (hf, peft)]))
`;

function applyLoraTo(model: LanguageModel, o: { r: number; alpha: number }): LanguageModel {
  applyLora(model, o);
  return model;
}

test("config: export and adapter are checked and name the field", (t) => {
  const tokFile = dataPath(...TOK);
  if (!tokFile) return t.skip(skipReason(...TOK));
  const base = {
    name: "s",
    dataDir: sharedDataRoot,
    models: [{ name: "m", build: { config: ARCHS.llama, tokenizer: tokFile } }],
    methods: ["sequential"],
    orders: [["haiku"]],
  };
  const parse = (extra: Record<string, unknown>) =>
    parseStudy({ ...base, ...extra }, "s.yaml", "/");
  assert.equal(parse({}).config.export, undefined, "no export unless asked");
  assert.deepEqual(parse({ export: ["hf"] }).config.export, ["hf"]);
  assert.throws(() => parse({ export: ["gguf"] }), /s\.yaml: field "export\.0"/);
  assert.throws(() => parse({ export: ["hf", "hf"] }), /field "export": "hf" is given twice/);
  assert.throws(
    () => parse({ export: ["peft"] }),
    /field "export": peft writes a LoRA adapter, and tuning.kind is full/,
  );
  assert.throws(
    () => parse({ export: ["peft"], tuning: { kind: "lora" }, methods: ["olora"] }),
    /field "export": peft cannot hold the later stages of method "olora"/,
  );
  const withAdapter = (adapter: string) => ({
    models: [{ ...base.models[0], adapter }],
  });
  assert.throws(
    () => parse(withAdapter("no/such")),
    /field "models\.0\.adapter": \/no\/such not found/,
  );
  assert.equal(parse(withAdapter("hf:org/adapter")).config.models[0].adapter, "hf:org/adapter");
});
