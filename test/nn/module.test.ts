/**
 * nn.Module semantics as torch.nn.Module has them: dotted names from properties (nested modules
 * and arrays → `layers.0.`), tied tensors listed once, buffers (persistent or not), loadStateDict
 * with shape checks naming the tensor and missing/unexpected keys, train/eval, dtype moves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Dropout,
  Embedding,
  LayerNorm,
  Linear,
  Module,
  StateDictError,
} from "../../src/nn/index.js";
import {
  arange,
  Generator,
  liveTensors,
  ones,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../../src/tensor/index.js";

class Block extends Module {
  fc: Linear;
  norm: LayerNorm;
  drop = new Dropout(0.5);
  constructor(g: Generator) {
    super();
    this.fc = new Linear(4, 4, { generator: g });
    this.norm = new LayerNorm(4);
  }
}

class Net extends Module {
  embed: Embedding;
  layers: Block[];
  head: Linear;
  position_ids!: Tensor;
  cache!: Tensor;
  constructor(seed = 0) {
    super();
    const g = new Generator(seed);
    this.embed = new Embedding(6, 4, { generator: g });
    this.layers = [new Block(g), new Block(g)];
    this.head = new Linear(4, 6, { bias: false, generator: g });
    this.registerBuffer("position_ids", arange(8));
    this.registerBuffer("cache", zeros([2]), false);
  }
}

const PARAMS = [
  "embed.weight",
  "layers.0.fc.weight",
  "layers.0.fc.bias",
  "layers.0.norm.weight",
  "layers.0.norm.bias",
  "layers.1.fc.weight",
  "layers.1.fc.bias",
  "layers.1.norm.weight",
  "layers.1.norm.bias",
  "head.weight",
];

test("dotted names for nested modules and arrays; buffers; parameter count", () => {
  const net = new Net();
  try {
    assert.deepEqual(
      net.namedParameters().map(([k]) => k),
      PARAMS,
    );
    assert.deepEqual(
      net.namedBuffers().map(([k]) => k),
      ["position_ids", "cache"],
    );
    // As torch's state_dict: a module's own tensors first, then its children's.
    assert.deepEqual([...net.stateDict().keys()], ["position_ids", ...PARAMS]);
    assert.ok(!net.stateDict().has("cache"), "non-persistent buffer left out");
    assert.deepEqual(
      [...net.namedModules()].map(([k]) => k),
      [
        "",
        "embed",
        "layers.0",
        "layers.0.fc",
        "layers.0.norm",
        "layers.0.drop",
        "layers.1",
        "layers.1.fc",
        "layers.1.norm",
        "layers.1.drop",
        "head",
      ],
    );
    assert.ok(net.parameters().every((p) => p.requiresGrad));
    assert.equal(net.position_ids.requiresGrad, false);
    assert.equal(net.numParameters(), 24 + 2 * (16 + 4 + 4 + 4) + 24);
    // stateDict shares the module's tensors.
    assert.equal(net.stateDict().get("head.weight"), net.head.weight);
  } finally {
    net.dispose();
  }
});

test("a tied tensor appears once, under its first name, and stays tied through to(dtype)", () => {
  const net = new Net();
  try {
    const before = liveTensors();
    net.head.weight.dispose();
    net.head.weight = net.embed.weight; // (6, 4) both
    assert.equal(liveTensors(), before - 1);
    const names = net.namedParameters().map(([k]) => k);
    assert.deepEqual(names, PARAMS.slice(0, 9));
    assert.equal(net.numParameters(), 24 + 2 * 28);
    assert.ok(!net.stateDict().has("head.weight"));
    net.to("float64");
    assert.equal(net.head.weight, net.embed.weight, "still one tensor after the cast");
    assert.equal(net.embed.weight.dtype, "float64");
  } finally {
    net.dispose();
  }
});

test("to(dtype) casts floating tensors only and keeps requiresGrad and values", () => {
  const net = new Net(5);
  try {
    const w = tidy(() => net.layers[1].fc.weight.toNumbers());
    const live = liveTensors();
    net.to("float64");
    assert.equal(liveTensors(), live, "old tensors freed");
    for (const [k, p] of net.namedParameters()) {
      assert.equal(p.dtype, "float64", k);
      assert.equal(p.requiresGrad, true, k);
    }
    assert.equal(net.position_ids.dtype, "int64", "integer buffer untouched");
    assert.equal(net.cache.dtype, "float64");
    assert.deepEqual(
      net.layers[1].fc.weight.toNumbers(),
      w.map((v) => v),
    ); // float32 → float64 exact
    net.to("cpu");
    assert.equal(net.embed.weight.device, "cpu");
  } finally {
    net.dispose();
  }
});

test("loadStateDict copies values; shape errors name the tensor; missing and unexpected keys", () => {
  const a = new Net(1);
  const b = new Net(2);
  try {
    tidy(() => {
      b.loadStateDict(a.stateDict());
      for (const [k, t] of a.stateDict())
        assert.deepEqual(b.stateDict().get(k)!.toBytes(), t.toBytes(), k);
      assert.notEqual(b.embed.weight, a.embed.weight, "copied, not shared");
      a.embed.weight.detach().fill_(7);
      assert.notEqual(b.embed.weight.toNumbers()[0], 7);

      const bad = new Map(a.stateDict());
      bad.set("layers.1.fc.weight", ones([4, 5]));
      assert.throws(
        () => b.loadStateDict(bad, { source: "ckpt.safetensors" }),
        (e: unknown) =>
          e instanceof StateDictError &&
          e.message ===
            'ckpt.safetensors: tensor "layers.1.fc.weight" has shape [4,5] but the model expects [4,4]',
      );

      const partial = new Map(a.stateDict());
      partial.delete("head.weight");
      partial.set("lm_head.weight", ones([6, 4]));
      assert.throws(
        () => b.loadStateDict(partial),
        (e: unknown) =>
          e instanceof StateDictError &&
          /missing \[head\.weight\], unexpected \[lm_head\.weight\]/.test(e.message),
      );
      b.head.weight.detach().fill_(3);
      const r = b.loadStateDict(partial, { strict: false });
      assert.deepEqual(r, { missing: ["head.weight"], unexpected: ["lm_head.weight"] });
      assert.deepEqual(
        new Set(b.head.weight.toNumbers()),
        new Set([3]),
        "missing tensor left as it was",
      );
      // dtypes convert on load.
      const f64 = new Map(
        [...a.stateDict()].map(([k, t]) => [k, t.to(k === "position_ids" ? "int64" : "float64")]),
      );
      b.loadStateDict(f64);
      assert.equal(b.embed.weight.dtype, "float32");
      assert.deepEqual(b.embed.weight.toNumbers(), a.embed.weight.toNumbers());
    });
  } finally {
    a.dispose();
    b.dispose();
  }
});

test("train() and eval() set the flag on every module; Dropout follows it", () => {
  const net = new Net();
  try {
    assert.ok([...net.namedModules()].every(([, m]) => m.training));
    net.eval();
    assert.ok([...net.namedModules()].every(([, m]) => !m.training));
    tidy(() => {
      const x = tensor([1, 2, 3, 4]);
      assert.deepEqual(net.layers[0].drop.forward(x).toNumbers(), [1, 2, 3, 4]);
      net.train();
      assert.ok(net.layers[1].drop.training);
      const y = ones([1000]);
      const out = net.layers[0].drop.forward(y).toNumbers();
      assert.ok(
        out.some((v) => v === 0) && out.some((v) => v === 2),
        "training dropout zeroes and scales",
      );
    });
  } finally {
    net.dispose();
  }
});
