/**
 * GradScaler (src/optim/grad_scaler.ts) against torch.amp.GradScaler("cpu") itself (the venv's
 * torch): the same scale after every step of a sequence with injected inf/NaN gradients and a
 * short growth interval, the same skipped steps, and AdamW's parameters equal bit for bit. Plus
 * the update rule by hand and option checks.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import test from "node:test";
import { AdamW, allFinite, GradScaler } from "../../src/optim/index.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";

const TORCH_SCALER = `
import json, sys, torch
c = json.load(sys.stdin)
p = torch.tensor(c["param"], dtype=torch.float32, requires_grad=True)
w = torch.tensor(c["weights"], dtype=torch.float32)
opt = torch.optim.AdamW([p], lr=0.01)
s = torch.amp.GradScaler("cpu", init_scale=c["init"], growth_factor=2.0, backoff_factor=0.5,
                         growth_interval=c["interval"])
out = []
for bad in c["bad"]:
    opt.zero_grad()
    s.scale((p * w).sum()).backward()
    if bad:
        p.grad[1] = float(bad)
    s.unscale_(opt)
    s.step(opt)
    s.update()
    out.append({"scale": s.get_scale(), "param": p.detach().tolist()})
print(json.dumps(out))
`;

test("GradScaler equals torch.amp.GradScaler: scales, skipped steps and parameters", (t) => {
  if (!pythonHas("torch")) return t.skip(`${PYTHON} with torch is absent`);
  const param = [0.5, -1.25, 2, 0.125].map(Math.fround);
  const weights = [1.5, -0.75, 0.25, 3].map(Math.fround);
  // inf at step 3, NaN at step 7, inf twice in a row at 10–11; growth every 3 finite steps.
  const bad: (0 | "inf" | "nan")[] = [0, 0, "inf", 0, 0, 0, "nan", 0, 0, "inf", "inf", 0, 0, 0];
  const init = 2 ** 10;
  const interval = 3;
  const r = spawnSync(PYTHON, ["-c", TORCH_SCALER], {
    input: JSON.stringify({ param, weights, init, interval, bad }),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const want = JSON.parse(r.stdout) as { scale: number; param: number[] }[];

  const p = tensor(param).requiresGrad_(true);
  const w = tensor(weights);
  const opt = new AdamW([{ params: [p] }], { lr: 0.01 });
  const scaler = new GradScaler({ initScale: init, growthInterval: interval });
  const skipped: number[] = [];
  try {
    bad.forEach((b, i) => {
      opt.zeroGrad();
      tidy(() => scaler.scaleLoss(p.mul(w).sum()).backward());
      if (b) tidy(() => p.grad!.narrow(0, 1, 1).fill_(b === "inf" ? Infinity : NaN));
      scaler.unscale([p.grad!]);
      const found = !allFinite([p.grad!]);
      if (found) skipped.push(i + 1);
      else opt.step();
      scaler.update(found);
      assert.equal(scaler.scale, want[i].scale, `step ${i + 1}: scale`);
      assert.deepEqual(p.toNumbers(), want[i].param, `step ${i + 1}: parameters`);
    });
  } finally {
    opt.dispose();
    p.dispose();
    w.dispose();
  }
  console.log(`# scales ${want.map((x) => x.scale).join(" ")}; skipped ${skipped.join(", ")}`);
  assert.deepEqual(skipped, [3, 7, 10, 11]);
  assert.equal(opt.stepCount, bad.length - 4);
});

test("GradScaler: backoff halves, growth after the interval, state round trip, bad options", () => {
  const s = new GradScaler();
  assert.equal(s.scale, 65536);
  s.update(true);
  assert.equal(s.scale, 32768);
  for (let i = 0; i < 1999; i++) s.update(false);
  assert.deepEqual(s.state(), { scale: 32768, growthTracker: 1999 });
  s.update(false);
  assert.deepEqual(s.state(), { scale: 65536, growthTracker: 0 });
  const top = new GradScaler({ initScale: 2 ** 127, growthInterval: 1 });
  top.update(false); // 2^128 overflows float32: the scale stays
  assert.equal(top.scale, 2 ** 127);
  const copy = new GradScaler();
  copy.loadState(s.state());
  assert.deepEqual(copy.state(), s.state());
  assert.throws(() => new GradScaler({ growthFactor: 1 }), /growthFactor must be > 1/);
  assert.throws(() => new GradScaler({ backoffFactor: 1 }), /backoffFactor must be in \(0, 1\)/);
  assert.throws(() => new GradScaler({ growthInterval: 0 }), /growthInterval/);
  assert.throws(() => new GradScaler({ initScale: 0 }), /initScale/);
});
