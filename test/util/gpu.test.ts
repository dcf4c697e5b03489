/**
 * src/util/gpu.ts reads a GPU's memory from nvidia-smi. This machine has no GPU, so a stand-in
 * `nvidia-smi` script on PATH answers like the real one (one number in MiB per queried GPU) and
 * records its arguments: the test checks the query lethe sends (field, CSV form, the physical id
 * behind CUDA_VISIBLE_DEVICES) and how answers and failures are read.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gpuMemory, isCuda } from "../../src/util/gpu.js";
import { defaultPrefixCacheMb } from "../../src/eval/model_lm.js";

function withFakeSmi(
  script: string,
  env: Record<string, string | undefined>,
  fn: (dir: string) => void,
) {
  const dir = mkdtempSync(join(tmpdir(), "lethe-smi-"));
  const saved = { PATH: process.env.PATH, CUDA_VISIBLE_DEVICES: process.env.CUDA_VISIBLE_DEVICES };
  try {
    writeFileSync(join(dir, "nvidia-smi"), `#!/bin/sh\necho "$@" > "${dir}/args"\n${script}\n`);
    chmodSync(join(dir, "nvidia-smi"), 0o755);
    process.env.PATH = `${dir}:${saved.PATH}`;
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fn(dir);
  } finally {
    process.env.PATH = saved.PATH;
    if (saved.CUDA_VISIBLE_DEVICES === undefined) delete process.env.CUDA_VISIBLE_DEVICES;
    else process.env.CUDA_VISIBLE_DEVICES = saved.CUDA_VISIBLE_DEVICES;
    rmSync(dir, { recursive: true, force: true });
  }
}

test("gpuMemory: asks nvidia-smi for the field of the visible GPU and reads MiB", () => {
  withFakeSmi("echo 81559", { CUDA_VISIBLE_DEVICES: "3,5" }, (dir) => {
    const m = gpuMemory("cuda:1", "free");
    assert.equal(m.bytes, 81559 * 2 ** 20);
    assert.equal(m.source, "nvidia-smi, GPU 5");
    assert.equal(
      readFileSync(join(dir, "args"), "utf8").trim(),
      "--query-gpu=memory.free --format=csv,noheader,nounits --id=5",
    );
    assert.equal(gpuMemory("cuda", "total").source, "nvidia-smi, GPU 3");
    assert.match(readFileSync(join(dir, "args"), "utf8"), /memory\.total/);
    assert.deepEqual(gpuMemory("cuda:2", "free"), {
      bytes: null,
      source: "CUDA_VISIBLE_DEVICES has no device 2",
    });
  });
});

test("gpuMemory: a failing or silent nvidia-smi gives no figure; the prefix cache falls back", () => {
  withFakeSmi("exit 9", { CUDA_VISIBLE_DEVICES: undefined }, () => {
    assert.deepEqual(gpuMemory("cuda:0", "free"), {
      bytes: null,
      source: "nvidia-smi did not answer",
    });
    // A quarter of the 4 GiB assumed when the GPU does not say what is free.
    assert.equal(defaultPrefixCacheMb("cuda:0"), 1024);
  });
  withFakeSmi("echo 40000", { CUDA_VISIBLE_DEVICES: undefined }, () => {
    assert.equal(defaultPrefixCacheMb("cuda:0"), 10000); // a quarter of the GPU's free MiB
    assert.ok(defaultPrefixCacheMb("cpu") >= 64); // the host's RAM, not the GPU's
  });
  assert.equal(isCuda("cuda:1"), true);
  assert.equal(isCuda("cpu"), false);
});
