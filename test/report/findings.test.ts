import { test } from "node:test";
import assert from "node:assert/strict";
import {
  findings,
  groupBootstrap,
  spearman,
  type Finding,
  type RunSummary,
} from "../../src/report/findings.js";
import type { Architecture } from "../../src/report/runs.js";

interface Spec {
  name: string;
  params: number;
  arch?: Architecture;
  family?: string;
  base?: string;
  /** General FG per seed (written as domain_knowledge = reasoning = value). */
  fg: number[];
  bias?: number[];
}

function summaries(specs: Spec[], method = "full"): RunSummary[] {
  return specs.flatMap((s) =>
    s.fg.map((g, seed) => ({
      model: {
        name: s.name,
        params: s.params,
        architecture: s.arch ?? "decoder-only",
        base: s.base ?? null,
        family: s.family ?? "bloomz",
      },
      method,
      seed,
      fg: { domain_knowledge: g, reasoning: g, ...(s.bias ? { bias: s.bias[seed] } : {}) },
    })),
  );
}

const byId = (fs: Finding[], id: Finding["id"]) => fs.find((f) => f.id === id)!;

test("spearman: hand-computed values, ties share ranks", () => {
  assert.equal(spearman([1, 2, 3], [30, 20, 10]), -1);
  assert.equal(spearman([1, 2, 3, 4], [1, 3, 2, 4]), 0.8); // 1 − 6·2 / (4·15)
  // y ranks (1.5, 1.5, 3): Pearson of (1,2,3) with them = 1.5 / √(2·1.5)
  assert.ok(Math.abs(spearman([1, 2, 3], [5, 5, 9]) - 1.5 / Math.sqrt(3)) < 1e-12);
  assert.equal(spearman([1, 2, 3], [4, 4, 4]), 0);
});

test("groupBootstrap: two values give [min, max]; one value gives no interval", () => {
  assert.deepEqual(
    groupBootstrap([[2, 4]], (m) => m[0]),
    { estimate: 3, lo: 2, hi: 4 },
  );
  assert.deepEqual(
    groupBootstrap([[2]], (m) => m[0]),
    { estimate: 2, lo: null, hi: null },
  );
  const d = groupBootstrap(
    [
      [10, 11, 12],
      [1, 2, 3],
    ],
    (m) => m[0] - m[1],
  );
  assert.equal(d.estimate, 9);
  assert.ok(d.lo! > 7 && d.hi! < 11 && d.lo! <= 9 && d.hi! >= 9);
});

const small = { name: "bloomz-560m", params: 5.6e8 };
const mid = { name: "bloomz-1b1", params: 1.1e9 };
const big = { name: "bloomz-3b", params: 3e9 };

test("scale: confirmed, contradicted, inconclusive, not testable", () => {
  const grows = findings(
    summaries([
      { ...small, fg: [2, 2.2, 2.1] },
      { ...mid, fg: [4, 4.3, 4.1] },
      { ...big, fg: [7, 7.4, 7.2] },
    ]),
  );
  const s = byId(grows, "scale");
  assert.equal(s.verdict, "confirmed");
  assert.equal(s.label, "confirmed");
  assert.equal(s.stat?.estimate, 1);
  assert.match(
    s.text,
    /ρ between size and general FG is 1\.00, 95% CI \[1\.00, 1\.00\] \(seeds and items\)/,
  );
  assert.match(
    s.text,
    /bloomz-560m 2\.10 \(3 seeds\), bloomz-1b1 4\.13 \(3 seeds\), bloomz-3b 7\.20 \(3 seeds\)/,
  );

  const falls = byId(
    findings(
      summaries([
        { ...small, fg: [7, 7.1, 7.2] },
        { ...mid, fg: [4, 4.1, 4.2] },
        { ...big, fg: [2, 2.1, 2.2] },
      ]),
    ),
    "scale",
  );
  assert.equal(falls.verdict, "contradicted");
  assert.equal(falls.stat?.hi, -1);

  const noisy = byId(
    findings(
      summaries([
        { ...small, fg: [1, 9, 5] },
        { ...mid, fg: [2, 8, 5] },
        { ...big, fg: [5, 5, 5] },
      ]),
    ),
    "scale",
  );
  assert.equal(noisy.verdict, "inconclusive");
  assert.equal(noisy.label, "inconclusive");
  assert.ok(noisy.stat!.lo! <= 0 && noisy.stat!.hi! > 0);

  const oneSeed = byId(
    findings(
      summaries([
        { ...small, fg: [2] },
        { ...big, fg: [7] },
      ]),
    ),
    "scale",
  );
  assert.equal(oneSeed.verdict, "inconclusive");
  assert.equal(oneSeed.label, "inconclusive (1 seed)");
  assert.match(oneSeed.text, /no interval: 1 seed and no items/);

  const oneSize = byId(findings(summaries([{ ...small, fg: [2, 3, 4] }])), "scale");
  assert.equal(oneSize.verdict, "not testable");
  assert.equal(oneSize.stat, null);
});

test("2 seeds: inconclusive however clear the seed means, unless items decide", () => {
  const two = byId(
    findings(
      summaries([
        { ...small, fg: [2, 2.1] },
        { ...mid, fg: [4, 4.1] },
        { ...big, fg: [7, 7.1] },
      ]),
    ),
    "scale",
  );
  assert.equal(two.verdict, "inconclusive");
  assert.equal(two.label, "inconclusive (2 seeds)");
  assert.equal(two.stat?.estimate, 1, "the estimate is still reported");
});

test("scale uses one family: a base model and other families stay out", () => {
  const fs = findings(
    summaries([
      { ...small, fg: [2, 2.1, 2.2] },
      { ...big, fg: [7, 7.1, 7.2] },
      { name: "llama-7b", params: 6.7e9, family: "llama", fg: [1, 1.1, 1.2] },
      { name: "alpaca-7b", params: 6.7e9, family: "llama", base: "llama-7b", fg: [0.5, 0.6, 0.7] },
    ]),
  );
  assert.equal(byId(fs, "scale").verdict, "confirmed");
  assert.doesNotMatch(byId(fs, "scale").text, /llama|alpaca/);
  // A base model present in the study (BLOOM under BLOOMZ) is left out of the scale finding.
  const withBase = findings(
    summaries([
      { ...small, fg: [2, 2.1, 2.2] },
      { ...big, base: "bloom-7b1", fg: [7, 7.1, 7.2] },
      { name: "bloom-7b1", params: 7.1e9, fg: [0.1, 0.2, 0.3] },
    ]),
  );
  assert.equal(byId(withBase, "scale").verdict, "confirmed");
  assert.doesNotMatch(byId(withBase, "scale").text, /bloom-7b1 /);
});

test("architecture: encoder-decoder paired with the closest decoder-only size", () => {
  const dec = [
    { ...small, fg: [2, 2.2, 2.1] },
    { ...big, fg: [7, 7.2, 7.1] },
  ];
  const more = findings(
    summaries([
      ...dec,
      {
        name: "mt0-base",
        params: 5.8e8,
        arch: "encoder-decoder",
        family: "mt0",
        fg: [4, 4.2, 4.1],
      },
    ]),
  );
  const a = byId(more, "architecture");
  assert.equal(a.verdict, "confirmed");
  assert.ok(Math.abs(a.stat!.estimate - 2) < 1e-12);
  assert.match(a.text, /mt0-base 4\.10 \(3 seeds\) vs bloomz-560m 2\.10 \(3 seeds\)/);

  const less = byId(
    findings(
      summaries([
        ...dec,
        {
          name: "mt0-xl",
          params: 3.7e9,
          arch: "encoder-decoder",
          family: "mt0",
          fg: [5, 5.1, 5.2],
        },
      ]),
    ),
    "architecture",
  );
  assert.equal(less.verdict, "contradicted");
  assert.match(less.text, /vs bloomz-3b/);

  const overlap = byId(
    findings(
      summaries([
        ...dec,
        { name: "mt0-xl", params: 3.7e9, arch: "encoder-decoder", family: "mt0", fg: [4, 10, 5] },
      ]),
    ),
    "architecture",
  );
  assert.equal(overlap.verdict, "inconclusive");

  assert.equal(byId(findings(summaries(dec)), "architecture").verdict, "not testable");
});

test("instruction: base minus instruction-tuned general FG", () => {
  const llama = { name: "llama-7b", params: 6.7e9, family: "llama" };
  const alpaca = { name: "alpaca-7b", params: 6.7e9, family: "llama", base: "llama-7b" };
  const yes = byId(
    findings(
      summaries([
        { ...llama, fg: [9, 9.4, 9.2] },
        { ...alpaca, fg: [5, 5.2, 5.1] },
      ]),
    ),
    "instruction",
  );
  assert.equal(yes.verdict, "confirmed");
  assert.ok(Math.abs(yes.stat!.estimate - 4.1) < 1e-12);
  assert.match(yes.text, /Base minus instruction-tuned general FG: 4\.10, 95% CI/);
  const no = byId(
    findings(
      summaries([
        { ...llama, fg: [5, 5.2, 5.1] },
        { ...alpaca, fg: [9, 9.4, 9.2] },
      ]),
    ),
    "instruction",
  );
  assert.equal(no.verdict, "contradicted");
  const missingBase = byId(findings(summaries([{ ...alpaca, fg: [9, 9.4, 9.2] }])), "instruction");
  assert.equal(missingBase.verdict, "not testable");
});

test("bias: FG on the bias category above zero across models", () => {
  const falls = byId(
    findings(
      summaries([
        { ...small, fg: [1, 1, 1], bias: [2, 2.5, 2.25] },
        { ...big, fg: [1, 1, 1], bias: [3, 3.5, 3.25] },
      ]),
    ),
    "bias",
  );
  assert.equal(falls.verdict, "confirmed");
  assert.equal(falls.stat?.estimate, 2.75);
  const grows = byId(
    findings(summaries([{ ...small, fg: [1, 1, 1], bias: [-2, -2.5, -2.2] }])),
    "bias",
  );
  assert.equal(grows.verdict, "contradicted");
  const none = byId(findings(summaries([{ ...small, fg: [1, 1, 1] }])), "bias");
  assert.equal(none.verdict, "not testable");
});

test("findings compare one method: the most common by default, or the one asked for", () => {
  const rs = [
    ...summaries(
      [
        { ...small, fg: [2, 2.1, 2.2] },
        { ...big, fg: [7, 7.1, 7.2] },
      ],
      "full",
    ),
    ...summaries(
      [
        { ...small, fg: [7, 7.1, 7.2] },
        { ...big, fg: [2, 2.1, 2.2] },
      ],
      "ewc",
    ).slice(0, 4),
  ];
  assert.equal(byId(findings(rs), "scale").verdict, "confirmed");
  assert.match(byId(findings(rs), "scale").text, /method full/);
  assert.equal(byId(findings(rs, { method: "ewc" }), "scale").label, "inconclusive (1 seed)"); // bloomz-3b has one ewc seed
  assert.throws(() => findings(rs, { method: "lora" }), /no run uses method "lora"/);
});
