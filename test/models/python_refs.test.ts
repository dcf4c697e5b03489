/**
 * Cross-checks against PyTorch itself: transformers' helper functions, verbatim, run by the
 * reference interpreter (the venv's torch 2.x, src/util/python.ts) on the same inputs as lethe's
 * ports. Skipped, with the reason printed, only where that interpreter is absent.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import test from "node:test";
import { buildAlibiTensor } from "../../src/models/bloom.js";
import { relativePositionBucket } from "../../src/models/t5.js";
import { tensor, tidy } from "../../src/tensor/index.js";
import { PYTHON, pythonHas } from "../../src/util/python.js";

/** Runs `code` (which prints one JSON value) with the reference torch. */
function python(code: string): unknown {
  const r = spawnSync(PYTHON, ["-c", code], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const skip = () => (pythonHas("torch") ? false : `${PYTHON} with torch is absent`);

// transformers/models/t5/modeling_t5.py, T5Attention._relative_position_bucket, verbatim.
const T5_BUCKET = `
import json, math, torch
def _relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(
        relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1)
    )
    relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets
rp = torch.arange(-300, 301)
print(json.dumps([_relative_position_bucket(rp, b, n, m).tolist()
                  for b in (True, False) for n, m in ((32, 128), (8, 20), (32, 64))]))
`;

test(
  "T5 relative position buckets equal transformers' function under torch",
  { skip: skip() },
  () => {
    const want = python(T5_BUCKET) as number[][];
    const rp = Array.from({ length: 601 }, (_, i) => i - 300);
    let k = 0;
    for (const bidirectional of [true, false])
      for (const [n, m] of [
        [32, 128],
        [8, 20],
        [32, 64],
      ]) {
        const got = tidy(() =>
          relativePositionBucket(tensor(rp, { dtype: "int64" }), bidirectional, n, m).toNumbers(),
        );
        assert.deepEqual(got, want[k++], `bidirectional=${bidirectional} buckets=${n} max=${m}`);
      }
  },
);

// transformers/models/bloom/modeling_bloom.py, build_alibi_tensor, verbatim.
const ALIBI = `
import json, math, torch
def build_alibi_tensor(attention_mask, num_heads, dtype):
    batch_size, seq_length = attention_mask.shape
    closest_power_of_2 = 2 ** math.floor(math.log2(num_heads))
    base = torch.tensor(
        2 ** (-(2 ** -(math.log2(closest_power_of_2) - 3))), device=attention_mask.device, dtype=torch.float32
    )
    powers = torch.arange(1, 1 + closest_power_of_2, device=attention_mask.device, dtype=torch.int32)
    slopes = torch.pow(base, powers)
    if closest_power_of_2 != num_heads:
        extra_base = torch.tensor(
            2 ** (-(2 ** -(math.log2(2 * closest_power_of_2) - 3))), device=attention_mask.device, dtype=torch.float32
        )
        num_remaining_heads = min(closest_power_of_2, num_heads - closest_power_of_2)
        extra_powers = torch.arange(1, 1 + 2 * num_remaining_heads, 2, device=attention_mask.device, dtype=torch.int32)
        slopes = torch.cat([slopes, torch.pow(extra_base, extra_powers)], dim=0)
    arange_tensor = ((attention_mask.cumsum(dim=-1) - 1) * attention_mask)[:, None, :]
    alibi = slopes[..., None] * arange_tensor
    return alibi.reshape(batch_size * num_heads, 1, seq_length).to(dtype)
mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
print(json.dumps({str(h): build_alibi_tensor(mask, h, torch.float32).flatten().tolist() for h in (3, 8, 12, 16, 20)}))
`;

test(
  "BLOOM ALiBi tensor equals transformers' build_alibi_tensor under torch",
  { skip: skip() },
  () => {
    const want = python(ALIBI) as Record<string, number[]>;
    const mask = [
      [0, 0, 1, 1, 1, 1],
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1],
    ];
    for (const heads of [3, 8, 12, 16, 20]) {
      const got = tidy(() =>
        buildAlibiTensor(tensor(mask, { dtype: "int64" }), heads, "float32").toNumbers(),
      );
      // Same float32 pow kernel family; allow a few ulps relative (CPU types differ in the last bit).
      const w = want[String(heads)];
      assert.equal(got.length, w.length);
      got.forEach((g, i) =>
        assert.ok(
          Math.abs(g - w[i]) <= 1e-6 * Math.abs(w[i]),
          `heads ${heads} [${i}]: ${g} vs ${w[i]}`,
        ),
      );
    }
  },
);
