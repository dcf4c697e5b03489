/**
 * AdamW against torch.optim.AdamW itself (the venv's torch, whose libtorch lethe links): the same
 * kernels in the same order, so the parameters after every step are equal bit for bit.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import test from "node:test";
import { AdamW } from "../../src/optim/index.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";
import { jsRandom } from "../tensor/helpers.js";

const TORCH_ADAMW = `
import json, sys, torch
c = json.load(sys.stdin)
ps = [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in c["params"]]
opt = torch.optim.AdamW([{"params": [ps[0]], "weight_decay": 0.1},
                         {"params": [ps[1]], "weight_decay": 0.0, "lr": c["lr"] * 0.5}],
                        lr=c["lr"], betas=(0.9, 0.98), eps=1e-6)
out = []
for gs in c["grads"]:
    for p, g in zip(ps, gs):
        p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
    out.append([p.detach().tolist() for p in ps])
print(json.dumps(out))
`;

test("AdamW equals torch.optim.AdamW bit for bit over 6 steps (two groups)", (t) => {
  if (!pythonHas("torch")) return t.skip(`${PYTHON} with torch is absent`);
  const f = Math.fround;
  const params = [jsRandom(1, 7).map(f), jsRandom(2, 5).map(f)];
  const grads = Array.from({ length: 6 }, (_, s) =>
    params.map((p, i) => jsRandom(10 + 2 * s + i, p.length).map((v) => f(v * 0.3))),
  );
  const lr = 0.01;
  const r = spawnSync(PYTHON, ["-c", TORCH_ADAMW], {
    input: JSON.stringify({ params, grads, lr }),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const want = JSON.parse(r.stdout) as number[][][];

  const ps = params.map((p) => tensor(p).requiresGrad_(true));
  const opt = new AdamW(
    [
      { params: [ps[0]], weightDecay: 0.1 },
      { params: [ps[1]], weightDecay: 0, lrScale: 0.5 },
    ],
    { lr, betas: [0.9, 0.98], eps: 1e-6 },
  );
  try {
    grads.forEach((gs, s) => {
      tidy(() => ps.forEach((p, i) => (p.grad = tensor(gs[i]))));
      opt.step();
      opt.zeroGrad();
      assert.deepEqual(
        ps.map((p) => p.toNumbers()),
        want[s],
        `step ${s + 1}`,
      );
    });
  } finally {
    opt.dispose();
    ps.forEach((p) => p.dispose());
  }
});
