/**
 * Tests for src/io/checkpoint.ts: every engine dtype safetensors can hold survives a save/load
 * round trip bit for bit (raw random bytes, so NaN payloads and subnormals included), the file
 * carries the safetensors dtype strings of huggingface/safetensors' torch.py, loading casts only
 * floating-point tensors, and a checkpoint of the wrong shape fails naming the tensor.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { SafetensorsFile } from "../../src/io/safetensors.js";
import { StateDictError } from "../../src/nn/index.js";
import { GPT2LMHeadModel, gpt2Config } from "../../src/models/gpt2.js";
import {
  type DType,
  dtypeInfo,
  fromBytes,
  liveTensors,
  tensor,
  type Tensor,
  tidy,
} from "../../src/tensor/index.js";

const dir = mkdtempSync(join(tmpdir(), "lethe-checkpoint-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const SAFE: Record<DType, string> = {
  float32: "F32",
  float64: "F64",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};

function randomTensor(dtype: DType, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(randomBytes(n * dtypeInfo[dtype].itemsize));
  if (dtype === "bool") for (let i = 0; i < n; i++) bytes[i] &= 1;
  return fromBytes(bytes, dtype, shape);
}

test("every dtype round-trips bit-exactly, with shapes [], [0] and non-contiguous views", () => {
  const before = liveTensors();
  tidy(() => {
    const tensors = new Map<string, Tensor>();
    for (const dtype of Object.keys(SAFE) as DType[]) {
      tensors.set(`${dtype}.matrix`, randomTensor(dtype, [3, 5]));
      tensors.set(`${dtype}.scalar`, randomTensor(dtype, []));
      tensors.set(`${dtype}.empty`, randomTensor(dtype, [0, 4]));
      tensors.set(`${dtype}.transposed`, randomTensor(dtype, [4, 6]).transpose(0, 1));
    }
    const path = join(dir, "all.safetensors");
    saveTensors(path, tensors, { format: "pt" });

    const file = SafetensorsFile.open(path);
    assert.deepEqual(file.metadata, { format: "pt" });
    for (const [name, t] of tensors) assert.equal(file.info(name).dtype, SAFE[t.dtype], name);
    file.close();

    const loaded = loadTensors(path);
    assert.deepEqual([...loaded.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const back = loaded.get(name)!;
      assert.equal(back.dtype, t.dtype, name);
      assert.deepEqual(back.shape, t.shape, name);
      assert.deepEqual(back.toBytes(), t.toBytes(), `${name}: bytes differ`);
    }
  });
  assert.equal(liveTensors(), before, "tensors leaked");
});

test("loadTensors casts floating-point tensors to `dtype` and leaves integer and bool tensors", () => {
  tidy(() => {
    const path = join(dir, "cast.safetensors");
    const w = tensor([1.5, -2.25, 1e-3], { dtype: "float16" });
    saveTensors(
      path,
      new Map([
        ["w", w],
        ["ids", tensor([7, 8, 9], { dtype: "int64" })],
        ["mask", tensor([true, false])],
      ]),
    );
    const loaded = loadTensors(path, { dtype: "float32", device: "cpu" });
    assert.equal(loaded.get("w")!.dtype, "float32");
    // float16 → float32 is exact: the float32 values are the float16 ones.
    assert.deepEqual(loaded.get("w")!.toNumbers(), w.toNumbers());
    assert.equal(loaded.get("ids")!.dtype, "int64");
    assert.deepEqual(loaded.get("ids")!.toNumbers(), [7, 8, 9]);
    assert.equal(loaded.get("mask")!.dtype, "bool");
    assert.deepEqual(loaded.get("mask")!.toNumbers(), [1, 0]);
  });
});

test("a model saved and loaded is restored exactly; a wrong-shape tensor is named", () => {
  const cfg = gpt2Config({ vocab_size: 11, n_positions: 8, n_embd: 8, n_layer: 2, n_head: 2 });
  const a = new GPT2LMHeadModel(cfg, { seed: 1 });
  const b = new GPT2LMHeadModel(cfg, { seed: 2 });
  try {
    const path = join(dir, "gpt2.safetensors");
    saveTensors(path, a.stateDict());
    tidy(() => {
      const state = loadTensors(path);
      b.loadStateDict(state, { source: path });
      for (const [name, t] of a.stateDict())
        assert.deepEqual(b.stateDict().get(name)!.toBytes(), t.toBytes(), name);

      const name = "transformer.h.1.mlp.c_fc.weight";
      state.set(name, state.get(name)!.t());
      assert.throws(
        () => b.loadStateDict(state, { source: path }),
        (e: unknown) =>
          e instanceof StateDictError &&
          e.message.includes(path) &&
          e.message.includes(`"${name}"`) &&
          e.message.includes("[32,8]") &&
          e.message.includes("[8,32]"),
      );
    });
  } finally {
    a.dispose();
    b.dispose();
  }
});
