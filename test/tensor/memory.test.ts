/**
 * Native memory has one owner (STYLE.md #5): `tidy` scopes free intermediates and pass returned
 * tensors to the parent, `keep` takes a tensor out of every scope, and a 2,000-step training
 * loop of a tiny GPT-2 (forward, cross-entropy, backward, AdamW, zeroGrad, each step in `tidy`)
 * holds its live-tensor count constant and its RSS flat (the leak test CI runs; cf. sharp
 * `test/leak/leak.sh`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import {
  TorchError,
  crossEntropy,
  keep,
  liveTensors,
  ones,
  randint,
  randn,
  Generator,
  type Tensor,
  tensor,
  tidy,
} from "../../src/tensor/index.js";
import { native } from "../../src/tensor/native.js";
import { GPT2LMHeadModel, gpt2Config } from "../../src/models/gpt2.js";
import { AdamW } from "../../src/optim/index.js";

test("tidy disposes intermediates and moves returned tensors to the parent scope", () => {
  const before = liveTensors();
  let inner: Tensor[] = [];
  const out = tidy(() => {
    const a = ones([3]);
    const b = a.add(1);
    const c = b.mul(2);
    inner = [a, b];
    return c;
  });
  assert.ok(
    inner.every((t) => t.isDisposed),
    "intermediates freed",
  );
  assert.equal(out.isDisposed, false);
  assert.deepEqual(out.toNumbers(), [4, 4, 4]);
  assert.equal(liveTensors(), before + 1);
  out.dispose();
  assert.equal(liveTensors(), before);

  // Arrays, plain objects and Maps of tensors escape too; anything else made inside is freed.
  const got = tidy(() => {
    ones([1]);
    return { list: [ones([1]), ones([2])], map: new Map([["m", ones([3])]]), one: ones([4]) };
  });
  assert.equal(liveTensors(), before + 4);
  for (const t of [...got.list, got.map.get("m")!, got.one]) t.dispose();
  assert.equal(liveTensors(), before);
  assert.throws(() => tidy(() => Promise.resolve(1)), /synchronous/);
});

test("nested tidy: the inner result lives until the outer scope ends; keep() survives both", () => {
  const before = liveTensors();
  let innerResult: Tensor | undefined;
  let kept: Tensor | undefined;
  const outer = tidy(() => {
    innerResult = tidy(() => {
      kept = keep(ones([2]).mul(3));
      ones([5]); // freed with the inner scope
      return ones([2]).add(1);
    });
    assert.equal(innerResult.isDisposed, false, "inner result alive in the outer scope");
    assert.equal(liveTensors(), before + 2);
    return innerResult.add(kept!);
  });
  assert.equal(innerResult!.isDisposed, true, "inner result freed with the outer scope");
  assert.deepEqual(outer.toNumbers(), [5, 5]);
  assert.equal(kept!.isDisposed, false);
  assert.equal(liveTensors(), before + 2);
  outer.dispose();
  kept!.dispose();
  assert.equal(liveTensors(), before);
  // After a throw the scope is closed: later tensors are not collected into it.
  assert.throws(() => tidy(() => ones([1]).add(tensor([1, 2, 3]).view(7))), TorchError);
  const after = ones([1]);
  tidy(() => ones([1]));
  assert.equal(after.isDisposed, false);
  after.dispose();
});

test("tidy frees the tensors of a scope that throws", () => {
  const before = liveTensors();
  assert.throws(() =>
    tidy(() => {
      ones([1]);
      throw new Error("inside");
    }),
  );
  assert.equal(liveTensors(), before);
});

/**
 * Resident memory outside V8's heap (native tensors, allocator caches, code), after a full V8
 * collection: V8 keeps a few MB of heap pages it may or may not return, which would otherwise
 * swamp the native memory this test is about. JS-side leaks show up in liveTensors() instead.
 */
function nativeRss(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const m = process.memoryUsage();
  return m.rss - m.heapTotal;
}

test("leak: 2,000 training steps keep live tensors constant and RSS flat", () => {
  const cfg = gpt2Config({ vocab_size: 64, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 });
  const model = new GPT2LMHeadModel(cfg, { seed: 0 });
  const opt = new AdamW([{ params: model.parameters() }], { lr: 1e-3 });
  const g = new Generator(1);
  const step = () =>
    tidy(() => {
      const ids = randint(0, 64, [4, 9], { generator: g });
      const { logits } = model.forward({ inputIds: ids.narrow(1, 0, 8) });
      const loss = crossEntropy(logits.reshape(-1, 64), ids.narrow(1, 1, 8).reshape(-1));
      loss.backward();
      opt.step();
      opt.zeroGrad();
      return loss.item();
    });
  try {
    const t0 = Date.now();
    for (let i = 0; i < 500; i++) step(); // warm-up: allocator caches and JIT settle
    const live = liveTensors();
    const rss = nativeRss();
    let last = 0;
    for (let i = 500; i < 2000; i++) last = step();
    const rssEnd = nativeRss();
    console.log(
      `# leak: ${((Date.now() - t0) / 1000).toFixed(1)} s, live tensors ${live} → ${liveTensors()}, ` +
        `RSS outside the V8 heap ${(rss / 2 ** 20).toFixed(1)} → ${(rssEnd / 2 ** 20).toFixed(1)} MiB, final loss ${last.toFixed(3)}`,
    );
    assert.ok(Number.isFinite(last));
    assert.equal(liveTensors(), live, "live tensors grew");
    assert.ok(rssEnd <= rss * 1.05, `RSS grew from ${rss} to ${rssEnd} bytes (> 5%)`);
  } finally {
    opt.dispose();
    model.dispose();
  }
});

test("V8 hears of each storage once: views and .grad handles add nothing; generators are freed", () => {
  const base = native.stats();
  const x = randn([256, 256]);
  const views = tidy(() => keep([x.view(-1), x.narrow(0, 0, 8), x.t(), x.select(0, 3)]));
  assert.equal(native.stats().storages, base.storages + 1, "four views of one storage");
  const y = x.add(1);
  assert.equal(native.stats().storages, base.storages + 2, "a new result is a new storage");
  for (const t of [x, ...views]) t.dispose();
  assert.equal(native.stats().storages, base.storages + 1, "the last handle released it");
  y.dispose();
  assert.equal(native.stats().storages, base.storages);

  const gens = Array.from({ length: 50 }, (_, i) => new Generator(i));
  assert.equal(native.stats().generators, base.generators + 50);
  for (const g of gens) g.dispose();
  gens[0].dispose(); // twice is safe
  assert.equal(native.stats().generators, base.generators);
  const again = new Generator(7); // a freed slot is reused, and works
  assert.equal(native.stats().generators, base.generators + 1);
  assert.deepEqual(
    tidy(() => randint(0, 100, [5], { generator: again }).toNumbers()),
    tidy(() => randint(0, 100, [5], { generator: new Generator(7) }).toNumbers()),
  );
  again.dispose();
});
