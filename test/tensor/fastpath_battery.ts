/**
 * Child script of fastpath.test.ts: runs a battery of ops (positional, keyword and defaulted
 * arguments, in-place, views, several outputs) plus a GPT-2 forward and backward, and prints the
 * bytes of every result and gradient as one JSON line, with how many ops took the native
 * bridge's unboxed fast path. The test runs it with and without LETHE_BOXED_ONLY=1.
 */
import { gpt2Config, GPT2LMHeadModel } from "../../src/models/gpt2.js";
import {
  addmm,
  crossEntropy,
  embedding,
  Generator,
  layerNorm,
  linear,
  op,
  opN,
  randint,
  randn,
  scaledDotProductAttention,
  type Tensor,
  tidy,
  where,
} from "../../src/tensor/index.js";
import { native } from "../../src/tensor/native.js";

const out: Record<string, string> = {};
const put = (k: string, t: Tensor) =>
  (out[k] = `${t.dtype}[${t.shape}]:${Buffer.from(t.toBytes()).toString("hex")}`);
tidy(() => {
  const g = new Generator(7);
  const x = randn([2, 3, 4], { generator: g });
  const y = randn([2, 3, 4], { generator: g });
  const w = randn([5, 4], { generator: g });
  const b = randn([5], { generator: g });
  put("add", x.add(y));
  put("add_alpha", op("aten::add.Tensor", [x, y], { alpha: 2 }));
  put("add_scalar", x.add(1.5));
  put("sub", x.sub(y));
  put("mul", x.mul(y));
  put("mul_scalar", x.mul(3));
  put("div", x.div(y.abs().add(1)));
  put("matmul", x.matmul(w.t()));
  put("linear", linear(x, w, b));
  put("linear_nobias", linear(x, w));
  put("addmm", addmm(b, x.reshape(-1, 4), w.t()));
  put("view", x.view(6, 4));
  put("reshape", x.transpose(0, 1).reshape(-1));
  put("permute", x.permute(2, 0, 1).contiguous());
  put("slice_default", op("aten::slice.Tensor", [x, 1]));
  put("slice", x.slice(2, 1, 3));
  put("select", x.select(1, -1));
  put("narrow", x.narrow(2, 1, 2));
  put("unsqueeze", x.unsqueeze(0).squeeze(0));
  put("expand", b.unsqueeze(0).expand(3, 5));
  opN("aten::split.Tensor", [x, 2, 2]).forEach((t, i) => put(`split${i}`, t));
  put("softmax", x.softmax(-1));
  put("log_softmax", x.logSoftmax(-1));
  put("layer_norm", layerNorm(x, [4], null, null));
  put("layer_norm_affine", layerNorm(x, [4], w.select(0, 0), b.slice(0, 0, 4), 1e-3));
  const ids = randint(0, 5, [2, 3], { generator: g });
  put("embedding", embedding(w, ids));
  put("gather", x.gather(2, ids.clamp(0, 3).unsqueeze(-1)));
  put("index_select", op("aten::index_select", [w, 0, ids.reshape(-1)]));
  const target = randint(0, 4, [6], { generator: g });
  put("cross_entropy", crossEntropy(x.reshape(-1, 4), target));
  put(
    "cross_entropy_ls",
    crossEntropy(x.reshape(-1, 4), target, { labelSmoothing: 0.1, reduction: "sum" }),
  );
  const q = randn([1, 2, 3, 4], { generator: g });
  put("sdpa", scaledDotProductAttention(q, q.mul(0.5), q.add(1), { isCausal: true }));
  put("sdpa_scale", scaledDotProductAttention(q, q, q, { scale: 0.3 }));
  put("gelu_tanh", x.gelu("tanh"));
  put("gelu", x.gelu("none"));
  put("silu", x.silu());
  put("tanh_exp_neg", x.tanh().exp().neg());
  put("rsqrt_sqrt_pow", x.abs().add(1).rsqrt().sqrt().pow(3));
  put("mean", x.mean(-1, true));
  put("sum", x.sum(1));
  put("argmax", op("aten::argmax", [x]));
  put("argmax_dim", op("aten::argmax", [x, 1, true]));
  put("masked_fill", x.maskedFill(x.gt(0), -1));
  put("where", where(x.gt(0), x, y));
  put("to", x.to("bfloat16"));
  put("clone", x.clone());
  const z = x.clone();
  z.mul_(2)
    .add_(y)
    .add_(1)
    .div_(3)
    .lerp_(y, 0.25)
    .addcmul_(y, y, 0.5)
    .addcdiv_(y, y.abs().add(1), -0.1);
  put("inplace", z);
  z.copy_(y);
  put("copy_", z);
  z.zero_();
  put("zero_", z);
  for (const [k, msg] of [
    ["missing", () => op("aten::view", [x])],
    ["too_many", () => op("aten::neg", [x, 1])],
  ] as const)
    try {
      msg();
      out[k] = "no error";
    } catch (e) {
      out[k] = (e as Error).message;
    }
  // A GPT-2 forward and backward: the ops of a training step, gradients included.
  const model = new GPT2LMHeadModel(
    gpt2Config({ vocab_size: 64, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 }),
    { seed: 3 },
  );
  model.train(false);
  const tokens = randint(0, 64, [2, 9], { generator: g });
  const { logits } = model.forward({ inputIds: tokens.slice(1, 0, -1) });
  put("gpt2_logits", logits);
  const loss = crossEntropy(logits.reshape(-1, 64), tokens.slice(1, 1).reshape(-1));
  loss.backward();
  for (const [name, p] of model.namedParameters()) put(`grad.${name}`, p.grad!);
});
console.log(JSON.stringify({ fastPaths: native.stats().fastPaths ?? null, out }));
