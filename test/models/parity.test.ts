/**
 * Parity of GPT-2, BLOOM, GPT-NeoX and T5 against an independent implementation: for each, a
 * tiny random model whose weights, config and logits test/models/fixtures/make_parity.py wrote
 * from a forward written by hand in plain PyTorch (no transformers; float64), loaded here through
 * loadPretrained as a Hugging Face model folder (so each family's checkpoint quirks are exercised
 * too: GPT-2's base-model keys without `transformer.` and its old `attn.bias` buffers). Rebuild
 * the fixtures with `.venv/bin/python test/models/fixtures/make_parity.py`.
 */
import { test } from "node:test";
import { join } from "node:path";
import { loadTensors } from "../../src/io/checkpoint.js";
import { loadPretrained } from "../../src/io/pretrained.js";
import { tidy } from "../../src/tensor/index.js";
import { assertTensorClose, type Tol } from "../helpers/close.js";
import { repoRoot } from "../helpers/data.js";

const FIXTURES = join(repoRoot, "test", "models", "fixtures", "parity");

/**
 * lethe's float32 forward against a float64 reference: two blocks of float32 matmuls, softmaxes
 * and norms round to a few float32 ulps (2^-24 ≈ 6e-8) of the logits' scale per op; 1e-5 of the
 * largest logit leaves room for that and fails on any real difference (a wrong mask, slope or
 * rotary dimension moves logits by 1e-2 or more).
 */
const FLOAT32_VS_FLOAT64: Tol = { rtol: 1e-5 };

for (const name of ["gpt2", "bloom", "gpt_neox", "t5"]) {
  test(`${name}: logits equal a hand-written PyTorch forward (make_parity.py)`, async () => {
    const dir = join(FIXTURES, name);
    const want = loadTensors(join(dir, "expected.safetensors"));
    const { model } = await loadPretrained(dir);
    try {
      tidy(() => {
        const inputIds = want.get("input_ids")!;
        const logits =
          model.kind === "seq2seq"
            ? model.forward({ inputIds, decoderInputIds: want.get("decoder_input_ids")! }).logits
            : model.forward({ inputIds }).logits;
        assertTensorClose(logits, want.get("logits")!, FLOAT32_VS_FLOAT64, `${name} logits`);
      });
    } finally {
      model.dispose();
      for (const t of want.values()) t.dispose();
    }
  });
}
