/**
 * Flat parameter buffers (src/nn/flat.ts): parameters and their gradients become views into one
 * buffer per group, and training over the flat buffers gives the same run as training over the
 * separate parameters (AdamW, 5 steps, losses and weights equal to 1e-6 relative); flattening
 * the same parameters again after `releaseGradients` reuses the buffers instead of copying.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { flattenParameters, Linear, Module, releaseGradients } from "../../src/nn/index.js";
import {
  cat,
  crossEntropy,
  Generator,
  liveTensors,
  randint,
  randn,
  type Tensor,
  tidy,
} from "../../src/tensor/index.js";
import { AdamW, type ParamGroupInput } from "../../src/optim/index.js";
import { assertNear } from "../helpers/close.js";

/**
 * The same ops over one buffer instead of several: vectorized loops split at other offsets, so
 * a value may round differently in its last bits, relative to its size.
 */
const FLAT_VS_SEPARATE = { rtol: 1e-6 };

class MLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor() {
    super();
    const g = new Generator(4);
    this.fc1 = new Linear(6, 16, { generator: g });
    this.fc2 = new Linear(16, 5, { generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.fc1.forward(x).gelu());
  }
}

const isDecay = (name: string) => (name.endsWith(".bias") ? "no_decay" : "decay");

function train(flat: boolean): { losses: number[]; weights: number[] } {
  const model = new MLP();
  let groups: ParamGroupInput[];
  if (flat) {
    const flats = flattenParameters(model, isDecay);
    groups = flats.map((f) => ({ params: f, weightDecay: f.name === "decay" ? 0.1 : 0 }));
  } else {
    const named = model.namedParameters();
    groups = ["decay", "no_decay"].map((gname) => ({
      params: named.filter(([n]) => isDecay(n) === gname).map(([, p]) => p),
      weightDecay: gname === "decay" ? 0.1 : 0,
    }));
  }
  const opt = new AdamW(groups, { lr: 0.05 });
  const data = new Generator(9);
  const losses: number[] = [];
  try {
    for (let s = 0; s < 5; s++)
      tidy(() => {
        const x = randn([8, 6], { generator: data });
        const y = randint(0, 5, [8], { generator: data });
        const loss = crossEntropy(model.forward(x), y);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        losses.push(loss.item());
      });
    const weights = tidy(() => cat(model.parameters().map((p) => p.reshape(-1))).toNumbers());
    return { losses, weights };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

test("training over flat buffers equals training over separate parameters", () => {
  const a = train(false);
  const b = train(true);
  console.log(`# losses ${a.losses.map((l) => l.toFixed(6)).join(", ")}`);
  assert.ok(a.losses[4] < a.losses[0], "the model learns");
  for (let i = 0; i < 5; i++) assertNear(a.losses[i], b.losses[i], FLAT_VS_SEPARATE, `step ${i}`);
  const maxDiff = Math.max(...a.weights.map((w, i) => Math.abs(w - b.weights[i])));
  const scale = Math.max(...a.weights.map(Math.abs));
  console.log(
    `# flat vs separate weights: max diff ${maxDiff.toExponential(2)} (max |w| ${scale.toFixed(3)})`,
  );
  assert.ok(maxDiff <= FLAT_VS_SEPARATE.rtol * scale, `max diff ${maxDiff}`);
});

test("parameters and gradients are views into the flat buffers", () => {
  const model = new MLP();
  try {
    const before = tidy(() => model.parameters().map((p) => p.toNumbers()));
    const flats = flattenParameters(model, isDecay);
    assert.deepEqual(
      flats.map((f) => f.name),
      ["decay", "no_decay"],
    );
    const decay = flats[0];
    assert.deepEqual(decay.params, [
      { name: "fc1.weight", offset: 0, shape: [16, 6] },
      { name: "fc2.weight", offset: 96, shape: [5, 16] },
    ]);
    assert.deepEqual(decay.data.shape, [176]);
    assert.equal(decay.data.requiresGrad, false);
    tidy(() => {
      // Values survive the move, and parameters are still trainable leaves.
      assert.deepEqual(
        model.parameters().map((p) => p.toNumbers()),
        before,
      );
      assert.ok(model.parameters().every((p) => p.requiresGrad));
      // Writing into the flat buffer changes the module's parameter.
      decay.data.narrow(0, 96, 80).fill_(0.25);
      assert.deepEqual(new Set(model.fc2.weight.toNumbers()), new Set([0.25]));
      model.fc1.bias!.detach().fill_(-1);
      assert.deepEqual(flats[1].data.narrow(0, 0, 16).toNumbers(), Array(16).fill(-1));
      // Backward accumulates into the flat gradient buffer.
      model
        .forward(randn([3, 6], { generator: new Generator(1) }))
        .sum()
        .backward();
      const grads = cat(
        model
          .namedParameters()
          .filter(([n]) => isDecay(n) === "decay")
          .map(([, p]) => p.grad!.reshape(-1)),
      );
      assert.deepEqual(decay.grad.toNumbers(), grads.toNumbers());
      assert.ok(decay.grad.abs().sum().item() > 0);
      decay.grad.zero_();
      assert.deepEqual(new Set(model.fc1.weight.grad!.toNumbers()), new Set([0]));
    });
  } finally {
    model.dispose();
  }
});

test("flattening again after releaseGradients reuses the buffers: no second copy of the weights", () => {
  const model = new MLP();
  try {
    const first = flattenParameters(model, isDecay);
    const views = model.parameters();
    const before = tidy(() => views.map((p) => p.toNumbers()));
    releaseGradients(model, first);
    assert.ok(
      views.every((p) => p.grad === null),
      "gradients dropped",
    );
    const live = liveTensors();
    const second = flattenParameters(model, isDecay);
    // The same parameter tensors, the same data buffers: nothing was copied or replaced.
    assert.ok(model.parameters().every((p, i) => p === views[i]));
    assert.ok(second.every((f, i) => f.data === first[i].data));
    assert.equal(liveTensors(), live + second.length, "only the gradient buffers are new");
    tidy(() => {
      assert.deepEqual(
        model.parameters().map((p) => p.toNumbers()),
        before,
      );
      second[0].data.narrow(0, 96, 80).fill_(0.5);
      assert.deepEqual(new Set(model.fc2.weight.toNumbers()), new Set([0.5]));
      model
        .forward(randn([3, 6], { generator: new Generator(1) }))
        .sum()
        .backward();
      assert.ok(second[0].grad.abs().sum().item() > 0, "backward fills the new gradient buffer");
    });
    // Another set of trainable parameters: copied again, into new buffers.
    releaseGradients(model, second);
    model.fc2.bias!.requiresGrad_(false);
    const third = flattenParameters(model, isDecay);
    assert.ok(third[0].data !== first[0].data);
    assert.ok(model.fc1.weight !== views[0]);
    assert.deepEqual(
      third.map((f) => f.params.map((p) => p.name)),
      [["fc1.weight", "fc2.weight"], ["fc1.bias"]],
    );
    releaseGradients(model, third);
  } finally {
    model.dispose();
  }
});
