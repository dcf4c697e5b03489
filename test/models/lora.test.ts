/**
 * Tests for src/models/lora.ts and src/io/peft.ts (PEFT's LoRA: tuners/lora/layer.py,
 * utils/save_and_load.py): a fresh adapter (B = 0) leaves logits unchanged for every registered
 * architecture, merged equals unmerged, only adapter weights get gradients and change in a
 * training step, save → load round trips, and the saved names and config are PEFT's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadLoraAdapter, saveLoraAdapter } from "../../src/io/peft.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { applyLora, loraLayers, mergeLora, unmergeLora } from "../../src/models/lora.js";
import type { LanguageModel } from "../../src/models/types.js";
import { SGD } from "../../src/optim/index.js";
import {
  crossEntropy,
  Generator,
  noGrad,
  tensor,
  tidy,
  type Tensor,
} from "../../src/tensor/index.js";
import { tinyFamilies, tinyModel } from "./tiny.js";

const inputIds = (): Tensor =>
  tensor(
    [
      [3, 14, 15, 9, 2, 6],
      [5, 35, 8, 9, 7, 9],
    ],
    { dtype: "int64" },
  );

/** Logits of a fixed batch (teacher-forced decoder input for encoder-decoder models). */
function logits(model: LanguageModel): Tensor {
  return noGrad(() => forward(model));
}
function forward(model: LanguageModel): Tensor {
  const ids = inputIds();
  return model.kind === "causal"
    ? model.forward({ inputIds: ids }).logits
    : model.forward({ inputIds: ids, decoderInputIds: ids.slice(1, 0, 4) }).logits;
}

function maxDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().max().item());
}

/** Gives every B random values so the adapters do something. */
function randomizeB(model: LanguageModel, seed = 1): void {
  const g = new Generator(seed);
  noGrad(() => {
    for (const [, l] of loraLayers(model)) l.lora_B.weight.normal_(0, 0.2, g);
  });
}

for (const { modelType, family } of tinyFamilies()) {
  test(`${modelType}: a fresh adapter on ${family.loraTargets.join(", ")} leaves the logits unchanged`, () => {
    const model = tinyModel(modelType);
    const before = logits(model);
    applyLora(model, { r: 4, alpha: 8 });
    assert.ok(loraLayers(model).length > 0);
    const d = maxDiff(before, logits(model));
    console.log(`# ${modelType} fresh adapter maxdiff ${d}`);
    assert.equal(d, 0);
    model.dispose();
  });

  test(`${modelType}: merged equals unmerged, and unmerge restores the base weights`, () => {
    const model = tinyModel(modelType);
    const base = logits(model);
    applyLora(model, { r: 4, alpha: 16 });
    randomizeB(model);
    const adapted = logits(model);
    assert.ok(maxDiff(base, adapted) > 1e-3, "the adapter changes the logits");
    mergeLora(model);
    const merged = logits(model);
    const d = maxDiff(adapted, merged);
    const tol =
      1e-5 *
      Math.max(
        1,
        tidy(() => adapted.abs().max().item()),
      ); // relative to the logits
    console.log(`# ${modelType} merged vs unmerged maxdiff ${d} (tolerance ${tol})`);
    assert.ok(d < tol, `merged differs by ${d}`);
    unmergeLora(model);
    assert.ok(maxDiff(adapted, logits(model)) < tol);
    noGrad(() => loraLayers(model).forEach(([, l]) => l.lora_B.weight.zero_()));
    const back = maxDiff(base, logits(model));
    console.log(`# ${modelType} base after merge, unmerge, B = 0: maxdiff ${back}`);
    assert.ok(back < tol, "with B = 0 after unmerge the base model is back");
    model.dispose();
  });

  test(`${modelType}: only adapter weights get gradients and change in a training step`, () => {
    const model = tinyModel(modelType);
    applyLora(model, { r: 4, alpha: 8, dropout: 0.1 });
    model.train();
    const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad);
    assert.ok(trainable.length > 0);
    assert.ok(
      trainable.every(([n]) => /\.lora_[AB]\.weight$/.test(n)),
      trainable.map(([n]) => n).join(", "),
    );
    const snapshot = new Map(model.namedParameters().map(([n, p]) => [n, p.clone()]));
    tidy(() => {
      const out = forward(model);
      const V = out.size(-1);
      const target = tensor(
        [...Array(out.numel() / V).keys()].map((i) => (i * 7) % V),
        { dtype: "int64" },
      );
      crossEntropy(out.reshape(-1, V), target).backward();
    });
    for (const [n, p] of model.namedParameters())
      assert.equal(p.grad !== null, /\.lora_[AB]\.weight$/.test(n), `gradient of ${n}`);
    new SGD([{ params: trainable.map(([, p]) => p) }], { lr: 0.1 }).step();
    for (const [n, p] of model.namedParameters()) {
      const changed = maxDiff(snapshot.get(n)!, p) > 0;
      // B starts at 0, so A's first gradient is 0: only B moves in the first step.
      assert.equal(
        changed,
        n.endsWith("lora_B.weight"),
        `${n} ${changed ? "changed" : "unchanged"}`,
      );
    }
    model.dispose();
  });

  test(`${modelType}: save → load round trip in PEFT's layout`, () => {
    const dir = mkdtempSync(join(tmpdir(), "lethe-lora-"));
    try {
      const model = tinyModel(modelType);
      applyLora(model, { r: 2, alpha: 4, dropout: 0.05 });
      randomizeB(model);
      const want = logits(model);
      saveLoraAdapter(model, dir, { baseModelNameOrPath: "tiny" });
      const fresh = tinyModel(modelType);
      const config = loadLoraAdapter(fresh, dir);
      assert.deepEqual([config.r, config.alpha, config.dropout], [2, 4, 0.05]);
      assert.equal(maxDiff(want, logits(fresh)), 0);
      const json = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
      assert.equal(json.task_type, model.kind === "causal" ? "CAUSAL_LM" : "SEQ_2_SEQ_LM");
      assert.deepEqual(json.target_modules, family.loraTargets);
      model.dispose();
      fresh.dispose();
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
}

test("llama: PEFT's exact key names, shapes and adapter_config.json", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-lora-"));
  try {
    const model = tinyModel("llama");
    applyLora(model, { r: 4, alpha: 8 });
    saveLoraAdapter(model, dir, { baseModelNameOrPath: "meta-llama/Llama-2-7b-hf" });
    const file = SafetensorsFile.open(join(dir, "adapter_model.safetensors"));
    const keys = [...file.keys()].sort();
    assert.deepEqual(keys, [
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
    ]);
    // hidden 32, 4 heads, 2 kv heads: q_proj 32 → 32, v_proj 32 → 16.
    assert.deepEqual(
      file.info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape,
      [4, 32],
    );
    assert.deepEqual(
      file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape,
      [16, 4],
    );
    assert.equal(
      file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").dtype,
      "F32",
    );
    assert.deepEqual(file.metadata, { format: "pt" });
    file.close();
    const json = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    assert.equal(json.peft_type, "LORA");
    assert.equal(json.r, 4);
    assert.equal(json.lora_alpha, 8);
    assert.equal(json.lora_dropout, 0);
    assert.equal(json.bias, "none");
    assert.equal(json.fan_in_fan_out, false);
    assert.equal(json.base_model_name_or_path, "meta-llama/Llama-2-7b-hf");
    assert.deepEqual(Object.keys(json), Object.keys(json).sort(), "sorted keys, as PEFT writes");
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("gpt2: Conv1D targets use fan_in_fan_out with A (r, in) and B (out, r)", () => {
  const model = tinyModel("gpt2");
  const config = applyLora(model, { r: 4 });
  assert.equal(config.fanInFanOut, true);
  const [[path, layer]] = loraLayers(model);
  assert.equal(path, "transformer.h.0.attn.c_attn");
  assert.deepEqual(layer.weight.shape, [32, 96]); // Conv1D (in, out)
  assert.deepEqual(layer.lora_A.weight.shape, [4, 32]);
  assert.deepEqual(layer.lora_B.weight.shape, [96, 4]);
  // A is kaiming-uniform(a=√5): U(±1/√in).
  const a = layer.lora_A.weight.toNumbers();
  assert.ok(Math.max(...a.map(Math.abs)) <= 1 / Math.sqrt(32));
  assert.ok(Math.max(...a.map(Math.abs)) > 0.5 / Math.sqrt(32));
  model.dispose();
});

test("adapter and config errors name what is wrong", () => {
  const model = tinyModel("llama");
  assert.throws(
    () => applyLora(model, { targetModules: ["q_prj"] }),
    /target modules \["q_prj"\] not found/,
  );
  assert.throws(
    () => applyLora(model, { targetModules: ["embed_tokens"] }),
    /model\.embed_tokens" is a Embedding/,
  );
  applyLora(model, { targetModules: "model\\.layers\\.1\\.mlp\\.(up|down)_proj" });
  assert.deepEqual(
    loraLayers(model).map(([p]) => p),
    ["model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"],
  );
  assert.throws(() => applyLora(model), /already has LoRA adapters/);
  const dir = mkdtempSync(join(tmpdir(), "lethe-lora-"));
  try {
    writeFileSync(
      join(dir, "adapter_config.json"),
      JSON.stringify({
        peft_type: "LORA",
        r: 4,
        lora_alpha: 8,
        target_modules: ["q_proj"],
        use_dora: true,
      }),
    );
    assert.throws(
      () => loadLoraAdapter(tinyModel("llama"), dir),
      /adapter_config\.json: field "use_dora": DoRA/,
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
  model.dispose();
});
