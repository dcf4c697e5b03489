/**
 * libtorch failures become exceptions: every c10::Error reaches JS as the one TorchError class
 * with libtorch's own message prefixed by the operator name, the stack points at the caller, no
 * native tensor leaks, and the process keeps working afterwards (STYLE.md #4).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  build,
  empty,
  liveTensors,
  op,
  tensor,
  tidy,
  TorchError,
  zeros,
} from "../../src/tensor/index.js";

/** Asserts `fn` throws a TorchError whose message matches, then that the engine still computes. */
function assertTorchError(fn: () => unknown, message: RegExp): void {
  const before = liveTensors();
  tidy(() => {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof TorchError, `expected TorchError, got ${String(e)}`);
      assert.equal(e.name, "TorchError");
      assert.match(e.message, message);
      assert.match(e.stack ?? "", /errors\.test\.ts/, "stack points at the caller");
      return true;
    });
  });
  assert.equal(liveTensors(), before, "a failed call leaked a tensor");
  tidy(() =>
    assert.deepEqual(
      tensor([
        [1, 2],
        [3, 4],
      ])
        .matmul(tensor([[1], [1]]))
        .toNumbers(),
      [3, 7],
    ),
  );
}

test("shape mismatch", () => {
  assertTorchError(
    () =>
      tensor([
        [1, 2],
        [3, 4],
      ]).mm(tensor([[1, 2, 3]])),
    /^aten::mm: mat1 and mat2 shapes cannot be multiplied \(2x2 and 1x3\)/,
  );
  assertTorchError(
    () => zeros([2, 3]).add(zeros([4])),
    /^aten::add\.Tensor: The size of tensor a \(3\) must match the size of tensor b \(4\)/,
  );
  assertTorchError(() => zeros([2, 3]).transpose(0, 1).view(6), /view size is not compatible/);
});

test("dtype mismatch", () => {
  assertTorchError(
    () => tensor([[1.5]]).mm(tensor([[2]], { dtype: "int64" })),
    /^aten::mm: expected scalar type Float but found Long|expected .*dtype/,
  );
});

test(
  "a CUDA device when libtorch has no CUDA",
  { skip: build.cuda ? "CUDA is available here" : false },
  () => {
    assertTorchError(() => tensor([1]).to("cuda:0"), /^aten::to\.device: .*CUDA/);
    assertTorchError(() => zeros([2], { device: "cuda:0" }), /^aten::zeros: .*CUDA/);
  },
);

test("an allocation larger than memory", () => {
  assertTorchError(
    () => empty([1e13]),
    /^aten::empty\.memory_format: .*(can't allocate memory|out of memory)/,
  );
});

test("autograd errors and unknown operators", () => {
  assertTorchError(() => tensor([1, 2]).sum().backward(), /does not require grad/);
  assertTorchError(() => op("aten::no_such_op", []), /no operator aten::no_such_op/);
});

test("using a disposed tensor throws; dispose twice is harmless", () => {
  const before = liveTensors();
  const t = tensor([1, 2, 3]);
  assert.equal(liveTensors(), before + 1);
  t.dispose();
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.equal(liveTensors(), before);
  assert.throws(() => t.add(1), /used after dispose/);
  assert.throws(() => t.toNumbers(), /used after dispose/);
  assert.throws(() => t.shape, /used after dispose/);
  {
    using u = tensor([1]);
    assert.equal(u.isDisposed, false);
    assert.equal(liveTensors(), before + 1);
  }
  assert.equal(liveTensors(), before, "`using` disposes");
});
