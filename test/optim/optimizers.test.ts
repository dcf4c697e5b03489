/**
 * AdamW and SGD against references written here in plain JS, with Math.fround after every
 * operation to follow float32 arithmetic, from the update rules of torch/optim/adamw.py and
 * sgd.py (`_single_tensor_*`); and optimizer state save/load through a
 * safetensors file: resuming from saved state continues the run bit for bit.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { Linear, Module } from "../../src/nn/index.js";
import {
  crossEntropy,
  Generator,
  randint,
  randn,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from "../../src/tensor/index.js";
import { AdamW, type Optimizer, SGD } from "../../src/optim/index.js";
import { jsRandom } from "../tensor/helpers.js";

const f = Math.fround;

/** Float32 params with per-step float32 gradients, for the engine and for a JS reference. */
interface Case {
  params: number[][];
  grads: number[][][]; // [step][param][i]
}

function makeCase(steps: number): Case {
  const sizes = [6, 3];
  return {
    params: sizes.map((n, i) => jsRandom(100 + i, n).map(f)),
    grads: Array.from({ length: steps }, (_, s) =>
      sizes.map((n, i) => jsRandom(200 + 10 * s + i, n).map((v) => f(v * 0.5))),
    ),
  };
}

/** Runs `opt` (built over the two tensors) on the case's gradients; returns the final params. */
function runEngine(c: Case, build: (ps: Tensor[]) => Optimizer): number[][] {
  const ps = c.params.map((v) => tensor(v).requiresGrad_(true));
  const opt = build(ps);
  try {
    for (const gs of c.grads) {
      tidy(() => ps.forEach((p, i) => (p.grad = tensor(gs[i]))));
      opt.step();
      opt.zeroGrad();
    }
    return ps.map((p) => p.toNumbers());
  } finally {
    opt.dispose();
    for (const p of ps) p.dispose();
  }
}

function maxDiff(a: number[][], b: number[][]): number {
  return Math.max(...a.flatMap((xs, i) => xs.map((x, j) => Math.abs(x - b[i][j]))));
}

/**
 * libtorch's optimizer kernels vs the JS float32 reference: the same float32 ops, but kernels may
 * fuse a multiply-add (AVX2 vs AVX-512) and round once less. Max diff within 1e-6 of the
 * parameters' magnitude (8 ulps).
 */
function assertMatchesReference(got: number[][], ref: number[][], what: string): void {
  const d = maxDiff(got, ref);
  const scale = Math.max(...ref.flat().map(Math.abs));
  console.log(`# ${what}: max diff ${d.toExponential(2)} (max |p| ${scale.toFixed(3)})`);
  assert.ok(d <= 1e-6 * scale, `${what}: max diff ${d}, max |p| ${scale}`);
}

test("AdamW matches a float32 JS reference over 5 steps (weight decay, bias correction, two groups)", () => {
  const c = makeCase(5);
  const lr = 0.01;
  const [b1, b2] = [0.9, 0.98];
  const eps = 1e-6;
  const wds = [0.1, 0]; // group 0 decays, group 1 does not
  const lrScales = [1, 0.5];
  const ref = c.params.map((p) => p.slice());
  const m = ref.map((p) => p.map(() => 0));
  const v = ref.map((p) => p.map(() => 0));
  c.grads.forEach((gs, s) => {
    const t = s + 1;
    ref.forEach((p, k) => {
      const glr = lr * lrScales[k];
      const bc1 = 1 - b1 ** t;
      const bc2 = 1 - b2 ** t;
      for (let i = 0; i < p.length; i++) {
        const g = gs[k][i];
        p[i] = f(p[i] * f(1 - glr * wds[k])); // decoupled decay: p ← p(1 − lr·wd)
        m[k][i] = f(f(m[k][i] * f(b1)) + f(g * f(1 - b1)));
        v[k][i] = f(f(v[k][i] * f(b2)) + f(f(g * g) * f(1 - b2)));
        const denom = f(f(f(Math.sqrt(v[k][i])) / f(Math.sqrt(bc2))) + f(eps));
        p[i] = f(p[i] - f(f(glr / bc1) * f(m[k][i] / denom)));
      }
    });
  });
  const got = runEngine(
    c,
    ([p0, p1]) =>
      new AdamW(
        [
          { params: [p0], weightDecay: wds[0] },
          { params: [p1], weightDecay: wds[1], lrScale: lrScales[1] },
        ],
        { lr, betas: [b1, b2], eps },
      ),
  );
  assertMatchesReference(got, ref, "AdamW vs JS reference");
  assert.ok(maxDiff(got, c.params) > 1e-3, "parameters moved");
});

test("AdamW defaults are torch's: betas (0.9, 0.999), eps 1e-8, weight decay 0.01", () => {
  const opt = new AdamW([{ params: [] }], { lr: 1 });
  assert.deepEqual(opt.betas, [0.9, 0.999]);
  assert.equal(opt.eps, 1e-8);
  assert.equal(opt.groups[0].weightDecay, 0.01);
});

test("SGD with momentum, dampening, Nesterov and weight decay matches a float32 JS reference", () => {
  const c = makeCase(5);
  const configs = [
    { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.01 },
    { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0 },
    { lr: 0.05, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.1 },
  ];
  for (const o of configs) {
    const ref = c.params.map((p) => p.slice());
    const buf: (number[] | null)[] = ref.map(() => null);
    for (const gs of c.grads)
      ref.forEach((p, k) => {
        let d = gs[k].map((g, i) => (o.weightDecay ? f(g + f(f(o.weightDecay) * p[i])) : g));
        if (o.momentum) {
          const b = buf[k];
          buf[k] =
            b === null
              ? d.slice()
              : b.map((x, i) => f(f(x * f(o.momentum)) + f(d[i] * f(1 - o.dampening))));
          d = o.nesterov ? d.map((x, i) => f(x + f(f(o.momentum) * buf[k]![i]))) : buf[k]!;
        }
        for (let i = 0; i < p.length; i++) p[i] = f(p[i] - f(f(o.lr) * d[i]));
      });
    const got = runEngine(c, (ps) => new SGD([{ params: ps }], o));
    assertMatchesReference(got, ref, `SGD ${JSON.stringify(o)} vs JS reference`);
  }
});

const dir = mkdtempSync(join(tmpdir(), "lethe-optim-"));
after(() => rmSync(dir, { recursive: true, force: true }));

class Net extends Module {
  fc1 = new Linear(5, 8, { generator: new Generator(1) });
  fc2 = new Linear(8, 3, { generator: new Generator(2) });
}

function stepOn(net: Net, opt: Optimizer, s: number): void {
  tidy(() => {
    const g = new Generator(50 + s);
    const x = randn([4, 5], { generator: g });
    const loss = crossEntropy(
      net.fc2.forward(net.fc1.forward(x).relu()),
      randint(0, 3, [4], { generator: g }),
    );
    loss.backward();
    opt.step();
    opt.zeroGrad();
  });
}

test("optimizer state saved after 3 steps and loaded into a fresh optimizer continues bitwise", () => {
  for (const make of [
    (n: Net) => new AdamW([{ params: n.parameters() }], { lr: 0.02 }),
    (n: Net) => new SGD([{ params: n.parameters() }], { lr: 0.1, momentum: 0.9 }),
  ]) {
    const a = new Net();
    const optA = make(a);
    const b = new Net();
    const optB = make(b);
    try {
      for (let s = 0; s < 3; s++) stepOn(a, optA, s);
      const weights = join(dir, "model.safetensors");
      const state = join(dir, "optimizer.safetensors");
      const sd = optA.stateDict();
      assert.ok(sd.tensors.size > 0);
      saveTensors(weights, a.stateDict());
      saveTensors(state, sd.tensors, { step: String(sd.step), lr: String(sd.lr) });
      for (let s = 3; s < 6; s++) stepOn(a, optA, s);

      tidy(() => b.loadStateDict(loadTensors(weights)));
      const loaded = loadTensors(state);
      optB.loadStateDict({ step: 3, lr: 0.02, tensors: loaded });
      for (const t of loaded.values()) t.dispose();
      optB.lr = optA.lr;
      assert.equal(optB.stepCount, 3);
      for (let s = 3; s < 6; s++) stepOn(b, optB, s);
      for (const [k, t] of a.stateDict())
        assert.deepEqual(
          b.stateDict().get(k)!.toBytes(),
          t.toBytes(),
          `${optA.constructor.name} ${k}`,
        );
      for (const [k, t] of optA.stateDict().tensors)
        assert.deepEqual(optB.stateDict().tensors.get(k)!.toBytes(), t.toBytes(), k);

      // A state that does not fit the parameters is refused, naming the entry.
      const [key] = sd.tensors.keys();
      assert.throws(
        () => optB.loadStateDict({ step: 1, lr: 1, tensors: new Map([[key, zeros([2])]]) }),
        new RegExp(`optimizer state "${key.replace(/\./g, "\\.")}" has shape \\[2\\]`),
      );
      assert.throws(
        () =>
          optB.loadStateDict({ step: 1, lr: 1, tensors: new Map([["7.0.exp_avg", zeros([2])]]) }),
        /"7\.0\.exp_avg" names a parameter this optimizer does not have/,
      );
    } finally {
      for (const o of [optA, optB]) o.dispose();
      a.dispose();
      b.dispose();
    }
  }
});

test("optimizer loadStateDict called inside tidy keeps the loaded state", () => {
  const a = new Net();
  const opt = new AdamW([{ params: a.parameters() }], { lr: 0.02 });
  try {
    stepOn(a, opt, 0);
    const saved = new Map([...opt.stateDict().tensors].map(([k, t]) => [k, t.clone()]));
    tidy(() => opt.loadStateDict({ step: 1, lr: 0.02, tensors: saved }));
    for (const t of opt.stateDict().tensors.values()) assert.equal(t.isDisposed, false);
    stepOn(a, opt, 1);
    for (const t of saved.values()) t.dispose();
  } finally {
    opt.dispose();
    a.dispose();
  }
});
