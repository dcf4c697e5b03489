/**
 * Tests for src/cli/model.ts (`lethe logits`, `lethe generate`) on tiny model directories written
 * by savePretrained and inputs written by saveTensors: printed shapes, OUT logits equal to the
 * model's, the {"sequences": …} layout equal to generate(), the --prompt path through the real
 * stories260K model and its tokenizer, seeded sampling, and flag errors.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCommand, logitsCommand } from "../../src/cli/model.js";
import { loadTensors, saveTensors } from "../../src/io/checkpoint.js";
import { loadLlama2c } from "../../src/io/llama2c.js";
import { savePretrained } from "../../src/io/pretrained.js";
import { generate } from "../../src/models/generate.js";
import type { CausalLM } from "../../src/models/types.js";
import { noGrad, tensor, tidy, type Tensor } from "../../src/tensor/index.js";
import { dataPath, repoRoot, skipReason } from "../helpers/data.js";
import { tinyModel } from "../models/tiny.js";

/** Runs a command function and returns its exit code and the lines it printed. */
async function run(cmd: (argv: string[]) => Promise<number>, argv: string[]) {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(" "));
  try {
    return { code: await cmd(argv), lines };
  } finally {
    console.log = log;
  }
}

const ids = (rows: number[][]): Tensor => tensor(rows, { dtype: "int64" });
const INPUT_IDS = [
  [0, 0, 7, 3, 12],
  [4, 9, 21, 2, 30],
];
const MASK = [
  [0, 0, 1, 1, 1],
  [1, 1, 1, 1, 1],
];

function withDir(
  fn: (dir: string, t: TestContext) => Promise<void>,
): (t: TestContext) => Promise<void> {
  return async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "lethe-cli-"));
    try {
      await fn(dir, t);
    } finally {
      rmSync(dir, { recursive: true });
    }
  };
}

test(
  "logits: OUT holds the model's float32 logits and the shapes are printed",
  withDir(async (dir) => {
    const model = tinyModel("llama") as CausalLM;
    await savePretrained(model, join(dir, "model"));
    const inputs = join(dir, "in.safetensors");
    saveTensors(
      inputs,
      new Map([
        ["input_ids", ids(INPUT_IDS)],
        ["attention_mask", ids(MASK)],
        ["labels", ids(INPUT_IDS)], // ignored
      ]),
    );
    const out = join(dir, "out.safetensors");
    const { code, lines } = await run(logitsCommand, [
      "--model",
      join(dir, "model"),
      "--inputs",
      inputs,
      "--out",
      out,
    ]);
    assert.equal(code, 0);
    assert.deepEqual(lines, [
      "input_ids: [2, 5] int64",
      "attention_mask: [2, 5] int64",
      `logits: [2, 5, 61] float32 -> ${out}`,
    ]);
    const got = loadTensors(out);
    assert.deepEqual([...got.keys()], ["logits"]);
    const want = noGrad(
      () => model.forward({ inputIds: ids(INPUT_IDS), attentionMask: ids(MASK) }).logits,
    );
    const d = tidy(() => got.get("logits")!.sub(want).abs().max().item());
    console.log(`# logits maxdiff ${d}`);
    assert.equal(d, 0);
    model.dispose();
  }),
);

test(
  "logits: encoder-decoder models read decoder_input_ids and say when it is missing",
  withDir(async (dir) => {
    const model = tinyModel("t5");
    await savePretrained(model, join(dir, "model"));
    const inputs = join(dir, "in.safetensors");
    const dec = ids([
      [0, 5, 6],
      [0, 8, 1],
    ]);
    saveTensors(
      inputs,
      new Map([
        ["input_ids", ids(INPUT_IDS)],
        ["decoder_input_ids", dec],
      ]),
    );
    const out = join(dir, "out.safetensors");
    const { lines } = await run(logitsCommand, [
      "--model",
      join(dir, "model"),
      "--inputs",
      inputs,
      "--out",
      out,
    ]);
    assert.equal(lines.at(-1), `logits: [2, 3, 61] float32 -> ${out}`);
    const want = noGrad(
      () => model.forward({ inputIds: ids(INPUT_IDS), decoderInputIds: dec }).logits,
    );
    assert.equal(
      tidy(() => loadTensors(out).get("logits")!.sub(want).abs().max().item()),
      0,
    );
    saveTensors(inputs, new Map([["input_ids", ids(INPUT_IDS)]]));
    await assert.rejects(
      run(logitsCommand, ["--model", join(dir, "model"), "--inputs", inputs, "--out", out]),
      /in\.safetensors: no tensor "decoder_input_ids"/,
    );
    model.dispose();
  }),
);

test(
  "generate --inputs writes {sequences} equal to generate() on the model",
  withDir(async (dir) => {
    const model = tinyModel("gpt2");
    await savePretrained(model, join(dir, "model"));
    const inputs = join(dir, "in.safetensors");
    saveTensors(
      inputs,
      new Map([
        ["input_ids", ids(INPUT_IDS)],
        ["attention_mask", ids(MASK)],
      ]),
    );
    const out = join(dir, "out.json");
    const argv = [
      "--model",
      join(dir, "model"),
      "--inputs",
      inputs,
      "--max-new-tokens",
      "6",
      "--out",
      out,
    ];
    const { code, lines } = await run(generateCommand, argv);
    assert.equal(code, 0);
    const json = JSON.parse(readFileSync(out, "utf8"));
    assert.deepEqual(Object.keys(json), ["sequences"]);
    const want = generate(model, {
      inputIds: ids(INPUT_IDS),
      attentionMask: ids(MASK),
      maxNewTokens: 6,
    });
    assert.deepEqual(json.sequences, want);
    assert.deepEqual(
      lines,
      want.map((r) => JSON.stringify(r)),
      "without a tokenizer it prints ids",
    );

    // --sample with --seed is reproducible; another seed differs.
    const sampled = async (seed: string) => {
      await run(generateCommand, [
        ...argv,
        "--sample",
        "--temperature",
        "1.5",
        "--top-p",
        "0.95",
        "--seed",
        seed,
      ]);
      return JSON.parse(readFileSync(out, "utf8")).sequences as number[][];
    };
    const a = await sampled("3");
    assert.deepEqual(await sampled("3"), a);
    assert.notDeepEqual(await sampled("4"), a);
    assert.deepEqual(
      a,
      generate(model, {
        inputIds: ids(INPUT_IDS),
        attentionMask: ids(MASK),
        maxNewTokens: 6,
        doSample: true,
        temperature: 1.5,
        topP: 0.95,
        seed: 3,
      }),
    );
    model.dispose();
  }),
);

test(
  "generate --prompt: stories260K continues the empty prompt as llama2.c does",
  withDir(async (dir, t) => {
    const src = dataPath("models", "stories260K");
    if (src === null) return t.skip(skipReason("models", "stories260K"));
    const model = await loadLlama2c(join(src, "stories260K.bin"));
    await savePretrained(model, join(dir, "model"));
    copyFileSync(join(src, "tok512.bin"), join(dir, "model", "tokenizer.bin"));
    const out = join(dir, "out.json");
    const argv = [
      "--model",
      join(dir, "model"),
      "--prompt",
      "",
      "--max-new-tokens",
      "30",
      "--out",
      out,
    ];
    const { lines } = await run(generateCommand, argv);
    assert.equal(lines.length, 1);
    const text = JSON.parse(lines[0]) as string;
    assert.ok(text.startsWith("Once upon a time, there was a little girl named Lily."), text);
    assert.equal(JSON.parse(readFileSync(out, "utf8")).sequences[0].length, 30);
    model.dispose();
  }),
);

test(
  "generate refuses --max-new-tokens beyond the model's context and an --out folder that is not there",
  withDir(async (dir) => {
    const inputs = join(dir, "in.safetensors");
    saveTensors(inputs, new Map([["input_ids", ids(INPUT_IDS)]]));
    const argv = (model: string, n: string) => [
      ...["--model", join(dir, model), "--inputs", inputs, "--max-new-tokens", n],
    ];
    for (const type of ["llama", "gpt2"]) {
      const model = tinyModel(type);
      await savePretrained(model, join(dir, type));
      model.dispose();
    }
    await assert.rejects(
      run(generateCommand, argv("llama", "1e9")),
      /--max-new-tokens 1000000000 exceeds the model's context length 2048 \(.*\/llama\/config\.json "max_position_embeddings"\)/,
    );
    await assert.rejects(
      run(generateCommand, argv("gpt2", "65")),
      /--max-new-tokens 65 exceeds the model's context length 64 \(.*\/gpt2\/config\.json "n_positions"\)/,
    );
    await assert.rejects(
      run(generateCommand, [
        "--model",
        join(dir, "gpt2"),
        "--inputs",
        inputs,
        "--max-new-tokens=-1",
      ]),
      /--max-new-tokens must be >= 0/,
    );
    const { code } = await run(generateCommand, [
      ...argv("gpt2", "2"),
      "--out",
      join(dir, "o.json"),
    ]);
    assert.equal(code, 0);
    await assert.rejects(
      run(generateCommand, [...argv("gpt2", "2"), "--out", join(dir, "no", "o.json")]),
      /--out .*\/no\/o\.json: folder .*\/no does not exist/,
    );
    await assert.rejects(
      run(logitsCommand, [...argv("gpt2", "2").slice(0, 4), "--out", join(dir, "no", "o.st")]),
      /--out .*\/no\/o\.st: folder .*\/no does not exist/,
    );
  }),
);

test(
  "flag errors name the flag and suggest the right one",
  withDir(async (dir) => {
    await assert.rejects(
      run(logitsCommand, ["--modle", dir]),
      /Unknown option '--modle'.*Did you mean "--model"\?/s,
    );
    await assert.rejects(run(logitsCommand, ["--model", dir]), /--inputs is required/);
    await assert.rejects(
      run(generateCommand, [
        "--model",
        dir,
        "--prompt",
        "x",
        "--max-new-tokens",
        "2",
        "--temperature",
        "0.5",
      ]),
      /--temperature needs --sample/,
    );
    await assert.rejects(
      run(generateCommand, [
        "--model",
        dir,
        "--prompt",
        "x",
        "--inputs",
        "y",
        "--max-new-tokens",
        "2",
      ]),
      /exactly one of --prompt and --inputs/,
    );
    await assert.rejects(
      run(generateCommand, ["--model", dir, "--prompt", "x", "--max-new-tokens", "2.5"]),
      /must be an integer/,
    );
  }),
);

test(
  "bin/lethe.js logits runs the same command",
  withDir(async (dir, t) => {
    const main = readFileSync(join(repoRoot, "src", "cli", "main.ts"), "utf8");
    if (!main.includes("logitsCommand"))
      return t.skip("src/cli/main.ts does not wire logitsCommand yet");
    const model = tinyModel("llama") as CausalLM;
    await savePretrained(model, join(dir, "model"));
    const inputs = join(dir, "in.safetensors");
    saveTensors(inputs, new Map([["input_ids", ids(INPUT_IDS)]]));
    const out = join(dir, "out.safetensors");
    const stdout = execFileSync(
      "node",
      [
        join(repoRoot, "bin", "lethe.js"),
        "logits",
        "--model",
        join(dir, "model"),
        "--inputs",
        inputs,
        "--out",
        out,
      ],
      { encoding: "utf8" },
    );
    assert.match(stdout, /logits: \[2, 5, 61\] float32/);
    const want = noGrad(() => model.forward({ inputIds: ids(INPUT_IDS) }).logits);
    assert.equal(
      tidy(() => loadTensors(out).get("logits")!.sub(want).abs().max().item()),
      0,
    );
    model.dispose();
  }),
);
