/**
 * examples/luo2023.yaml is the paper's experiment (Luo et al. 2023, arXiv 2308.08747): `lethe run
 * --dry-run` resolves it without loading weights, and a model's train overrides end up in its
 * runs' config.yaml (the effective values), which reads back as the same run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { expandGrid, loadStudy, parseStudy, runConfig } from "../../src/continual/config.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const example = join(root, "examples", "luo2023.yaml");

test("lethe run --dry-run examples/luo2023.yaml: 9 models × 5 tasks × 13 benchmarks in 4 categories", () => {
  const t0 = Date.now();
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "bin", "lethe.js"),
      "run",
      "--dry-run",
      example,
      "--nproc-per-node",
      "8",
    ],
    { cwd: root, encoding: "utf8", env: { ...process.env, LETHE_DATA: tmpdir() } },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout;
  process.stdout.write(out);
  assert.match(out, /^study luo2023: 9 models × 1 method × 1 order × 1 seed = 9 runs$/m);
  assert.match(
    out,
    /luo2023 \(5 tasks\): wiki_auto → empathetic_dialogues → eli5 → esnli_ct0 → gigaword_ct0/,
  );
  assert.match(out, /benchmarks \(13 in 4 categories\):/);
  for (const [cat, n] of [
    ["domain_knowledge", 4],
    ["reasoning", 6],
    ["reading_comprehension", 2],
    ["bias", 1],
  ] as const)
    assert.match(out, new RegExp(`^  ${cat} \\(${n}\\):$`, "m"));
  assert.match(out, /mmlu_stem: 5-shot, acc,none, 19 lm-eval tasks/);
  assert.match(out, /boolq: 0-shot/);
  const line = (m: string) => out.split("\n").find((l) => l.startsWith(`  ${m}:`))!;
  for (const m of [
    "bloomz-1b1",
    "bloomz-1b7",
    "bloomz-3b",
    "bloomz-7b1",
    "bloom-7b1",
    "mt0-large",
    "mt0-xl",
  ])
    assert.match(
      line(m),
      /lr 0\.00002 constant \(warmup 0\), 3 epochs, batch 4 × accum 32 = 128 per step \(4 per device, 4 accum on 8 ranks\), max length 512/,
      m,
    );
  for (const m of ["llama-7b", "alpaca-7b"]) assert.match(line(m), /cosine \(warmup 0\.03\)/, m);
  assert.match(line("alpaca-7b"), /hf:chavinlo\/alpaca-native.*base llama-7b/);
  assert.match(line("bloomz-7b1"), /base bloom-7b1/);
  assert.ok(Date.now() - t0 < 30_000, "no weights were loaded");
  // Ranks that do not divide gradAccum are refused before anything runs.
  const bad = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "bin", "lethe.js"),
      "run",
      "--dry-run",
      example,
      "--nproc-per-node",
      "3",
    ],
    { cwd: root, encoding: "utf8", env: { ...process.env, LETHE_DATA: tmpdir() } },
  );
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /gradAccum 32 is not a multiple of 3 ranks/);
});

test("a model's train overrides are its runs' effective train config", () => {
  const study = loadStudy(example, { LETHE_DATA: tmpdir() });
  const grid = expandGrid(study);
  const llama = runConfig(
    study,
    grid.find((r) => r.model.name === "llama-7b")!,
  );
  const bloomz = runConfig(
    study,
    grid.find((r) => r.model.name === "bloomz-1b1")!,
  );
  assert.equal(llama.train.schedule, "cosine");
  assert.equal(llama.train.warmup, 0.03);
  assert.equal(bloomz.train.schedule, "constant");
  assert.equal(bloomz.train.warmup, 0);
  assert.equal(llama.train.lr, 2e-5);
  assert.equal(llama.models[0].train, undefined, "the run's config states the merged values once");
  // The run's config.yaml reads back as the same run: same effective values, same text.
  const dir = mkdtempSync(join(tmpdir(), "lethe-luo-"));
  try {
    const file = join(dir, "config.yaml");
    writeFileSync(file, stringify(llama));
    const again = loadStudy(file);
    assert.equal(again.config.train.schedule, "cosine");
    assert.equal(stringify(runConfig(again, expandGrid(again)[0])), readFileSync(file, "utf8"));
  } finally {
    rmSync(dir, { recursive: true });
  }
  // A misspelled override names its field.
  const raw = {
    name: "s",
    dataDir: "/",
    models: [{ name: "m", ref: "x", train: { shedule: "cosine" } }],
    methods: ["sequential"],
    orders: [["asset"]],
  };
  assert.throws(() => parseStudy(raw, "s.yaml", "/"), /s\.yaml.*models\.0\.train.*shedule/);
  // Fields outside the overridable set (maxLength) are refused too.
  raw.models[0].train = { maxLength: 128 } as never;
  assert.throws(() => parseStudy(raw, "s.yaml", "/"), /models\.0\.train.*maxLength/);
});
