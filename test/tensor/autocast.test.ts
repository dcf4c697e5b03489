/** autocast: torch.autocast's switch through the dispatcher (bf16 matmuls, fp32 parameters). */
import assert from "node:assert/strict";
import test from "node:test";
import { autocast, manualSeed, randn, tidy } from "../../src/tensor/index.js";

test("autocast runs matmuls in bfloat16, keeps parameters and their gradients in float32", () => {
  tidy(() => {
    manualSeed(3);
    const w = randn([32, 48]).requiresGrad_(true);
    const x = randn([8, 32]);
    const y = autocast("cpu", "bfloat16", () => x.matmul(w));
    assert.equal(y.dtype, "bfloat16");
    assert.equal(x.matmul(w).dtype, "float32", "autocast is off again afterwards");
    const ref = x.matmul(w);
    const rel = y.float().sub(ref).abs().max().item() / ref.abs().max().item();
    assert.ok(rel < 2 ** -6, `bf16 matmul vs fp32: relative ${rel}`);
    y.float().sum().backward();
    assert.equal(w.grad!.dtype, "float32");
  });
});

test("autocast restores the state after an exception", () => {
  tidy(() => {
    const a = randn([4, 4]);
    assert.throws(() =>
      autocast("cpu", "bfloat16", () => {
        throw new Error("inside");
      }),
    );
    assert.equal(a.matmul(a).dtype, "float32");
  });
});
