/**
 * Tests for `lethe eval` (src/cli/eval.ts): on a tiny random LLaMA saved with savePretrained and
 * the real LLaMA-2 tokenizer, `--tasks piqa,mmlu --limit 2` writes lm-eval v0.4.x's results
 * layout (results.piqa["acc,none"], groups.mmlu, n-samples, configs, samples[i].doc_id); a rerun
 * comes entirely from the cache; a LoRA adapter (--adapter) changes the fingerprint and the
 * scores; a misspelled flag gets "Did you mean".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { evalCommand } from "../../src/cli/eval.js";
import { saveLoraAdapter } from "../../src/io/peft.js";
import { savePretrained } from "../../src/io/pretrained.js";
import { applyLora, loraLayers } from "../../src/models/lora.js";
import { llamaFamily } from "../../src/models/llama.js";
import { noGrad } from "../../src/tensor/index.js";
import { dataPath, skipReason } from "../helpers/data.js";
import { capture } from "../helpers/capture.js";

const llamaTok = dataPath("tokenizers", "llama2");
const bench = dataPath("benchmarks");

function tinyLlama() {
  const config = llamaFamily.parseConfig({
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: 256,
    initializer_range: 0.3,
  });
  return llamaFamily.create(config, { seed: 11 });
}

/** Runs evalCommand in-process; its exit code and what it printed. */
const run = (argv: string[]) => capture(() => evalCommand(argv));

test("lethe eval writes lm-eval's layout, reruns from cache, honours --adapter", async (t) => {
  if (!llamaTok || !bench) return t.skip(skipReason("tokenizers/llama2 | benchmarks"));
  const tmp = mkdtempSync(join(tmpdir(), "lethe-cli-eval-"));
  try {
    const model = tinyLlama();
    const modelDir = join(tmp, "model");
    await savePretrained(model, modelDir, { tokenizerDir: llamaTok });
    const output = join(tmp, "out.json");
    const cacheDir = join(tmp, "cache");
    const argv = [
      ...["--model", modelDir, "--tasks", "piqa,mmlu", "--limit", "2"],
      ...["--data-dir", bench, "--output", output, "--log-samples", "--cache-dir", cacheDir],
    ];
    const first = await run(argv);
    assert.equal(first.code, 0);
    const res = JSON.parse(readFileSync(output, "utf8"));
    const acc = res.results.piqa["acc,none"];
    assert.ok(typeof acc === "number" && acc >= 0 && acc <= 1);
    assert.equal(typeof res.results.piqa["acc_norm,none"], "number");
    assert.deepEqual(res["n-samples"].piqa, { original: 1838, effective: 2 });
    assert.equal(res["n-samples"].mmlu_anatomy.effective, 2);
    assert.equal(typeof res.groups.mmlu["acc,none"], "number");
    assert.ok(res.group_subtasks.mmlu.includes("mmlu_stem"));
    assert.equal(res.configs.piqa.task, "piqa");
    assert.equal(res.configs.piqa.output_type, "multiple_choice");
    assert.deepEqual(
      res.samples.piqa.map((s: { doc_id: number }) => s.doc_id),
      [0, 1],
    );
    assert.equal(res.samples.piqa[0].filtered_resps.length, 2);
    assert.equal(res.config.batch_size, 32);
    assert.match(first.out, /piqa/);
    assert.match(first.out, /\| *acc *\|/);
    assert.match(first.out, /(\d+) requests scored, 0 from cache/);
    assert.ok(readdirSync(tmp).every((f) => !f.includes(".tmp")));

    // Unchanged files: every request comes from the cache and the results are identical.
    const again = await run(argv);
    assert.match(again.out, /\n0 requests scored, [1-9]\d* from cache/);
    assert.deepEqual(JSON.parse(readFileSync(output, "utf8")).results, res.results);

    // A LoRA adapter with a non-zero B: another fingerprint, other scores.
    applyLora(model, { r: 2, seed: 1 });
    noGrad(() => loraLayers(model).forEach(([, l]) => l.lora_B.weight.fill_(0.5)));
    const adapterDir = join(tmp, "adapter");
    saveLoraAdapter(model, adapterDir);
    const adapted = await run([...argv, "--adapter", adapterDir]);
    assert.match(adapted.out, /[1-9]\d* requests scored, 0 from cache/);
    const ra = JSON.parse(readFileSync(output, "utf8"));
    assert.notDeepEqual(
      ra.samples.piqa[0].filtered_resps,
      res.samples.piqa[0].filtered_resps,
      "the adapter changes log-likelihoods",
    );

    // --precision bf16-mixed: its own cache entries, scores close to float32's, said in model_args.
    const mixed = await run([...argv, "--precision", "bf16-mixed"]);
    assert.equal(mixed.code, 0);
    assert.match(mixed.out, /[1-9]\d* requests scored, 0 from cache/);
    const rm = JSON.parse(readFileSync(output, "utf8"));
    assert.match(rm.config.model_args, /,precision=bf16-mixed$/);
    const ll = (r: typeof res) =>
      r.samples.piqa.flatMap((s: { filtered_resps: [number, boolean][] }) =>
        s.filtered_resps.map((x) => x[0]),
      ) as number[];
    const [a, b] = [ll(rm), ll(res)];
    assert.notDeepEqual(a, b, "bf16 matmuls change the log-likelihoods a little");
    a.forEach((x, i) =>
      assert.ok(Math.abs(x - b[i]) <= 0.05 * Math.abs(b[i]) + 0.05, `bf16-mixed ${x} vs ${b[i]}`),
    );
    model.dispose();
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("lethe eval: a misspelled flag is an error suggesting the right one", async () => {
  await assert.rejects(evalCommand(["--batchsize", "4"]), /Did you mean "--batch-size"\?/);
  await assert.rejects(evalCommand(["--tasks", "piqa"]), /--model is required/);
});

test("a bad --output fails at once, before the model loads or any request is scored", async () => {
  const tmp = mkdtempSync(join(tmpdir(), "lethe-cli-eval-out-"));
  try {
    const argv = ["--model", join(tmp, "no-model"), "--tasks", "piqa", "--data-dir", tmp];
    await assert.rejects(
      run([...argv, "--output", join(tmp, "missing", "out.json")]),
      /^Error: --output .*\/missing\/out\.json: folder .*\/missing does not exist$/,
    );
    await assert.rejects(run([...argv, "--output", tmp]), /^Error: --output .*: is a folder$/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
