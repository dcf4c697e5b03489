/**
 * `lethe logits` and `lethe generate`: run a Hugging Face model directory on inputs from a
 * safetensors file (or a prompt) so its outputs can be checked against transformers'.
 *
 *   lethe logits --model DIR --inputs IN.safetensors --out OUT.safetensors
 *     IN: int64 input_ids [B,T], optional attention_mask [B,T], decoder_input_ids [B,T'] for
 *     encoder-decoder models; other tensors are ignored. OUT: float32 logits [B,T,V]
 *     (T' for encoder-decoder models), as `model(**inputs).logits`.
 *   lethe generate --model DIR (--prompt TEXT | --inputs IN.safetensors) --max-new-tokens N
 *                  [--sample --temperature T --top-p P --seed S] [--out OUT.json]
 *     IN: input_ids (left-padded for decoder-only models, the encoder input otherwise) and
 *     attention_mask. OUT: {"sequences": [[new token ids…], …]}, as transformers'
 *     `generate(...)[:, prompt_length:]` with padding after EOS removed. N is at most the model's
 *     context length (config.json's n_positions, max_position_embeddings or n_ctx, as lm-eval's
 *     max_length).
 * OUT's folder is checked (exists, writable) before the model loads.
 * Sampling settings not given come from generation_config.json, then transformers' defaults
 * (temperature 1, top_k 50, top_p 1); stop tokens are its eos_token_id.
 */
import { writeFileSync } from "node:fs";
import { maxLengthOf } from "../eval/model_lm.js";
import { loadTensors, saveTensors } from "../io/checkpoint.js";
import { loadPretrained, type Pretrained } from "../io/pretrained.js";
import { generate } from "../models/generate.js";
import { noGrad, tensor, tidy, type Tensor } from "../tensor/index.js";
import { checkWritable } from "../util/fs.js";
import { command } from "./commands.js";
import { intValue, numberValue, UsageError } from "./flags.js";

/** input_ids, attention_mask and (encoder-decoder) decoder_input_ids of an inputs file, checked. */
function readInputs(
  file: string,
  m: Pretrained,
  names: string[],
  device: string,
): Map<string, Tensor> {
  const all = loadTensors(file, { device });
  const out = new Map<string, Tensor>(); // in the order of `names`
  for (const k of names) if (all.has(k)) out.set(k, all.get(k)!);
  for (const [k, t] of all) if (!out.has(k)) t.dispose(); // other tensors are ignored
  const ids = out.get("input_ids");
  if (!ids) throw new Error(`${file}: no tensor "input_ids" (int64 [batch, length])`);
  const [B, T] = ids.shape;
  const V = m.config.vocab_size;
  for (const k of names.filter((n) => out.has(n))) {
    const t = out.get(k)!;
    const isMask = k === "attention_mask";
    if (t.ndim !== 2 || t.size(0) !== B || (isMask && t.size(1) !== T))
      throw new Error(
        `${file}: tensor "${k}" has shape [${t.shape}]; expected [${B}, ${isMask ? T : "length"}]`,
      );
    if (isMask ? !["int64", "int32", "bool"].includes(t.dtype) : t.dtype !== "int64")
      throw new Error(`${file}: tensor "${k}" has dtype ${t.dtype}; expected int64`);
    if (isMask)
      out.set(
        k,
        tidy(() => t.long()),
      );
    else {
      const [lo, hi] = tidy(() => [t.min().item(), t.max().item()]);
      if (lo < 0 || hi >= V)
        throw new Error(
          `${file}: tensor "${k}" has token ids in [${lo}, ${hi}], outside the vocabulary [0, ${V})`,
        );
    }
  }
  return out;
}

/** `lethe logits`: float32 logits of the inputs file, written to a safetensors file. */
export const logitsCommand = command("logits", async ({ values }) => {
  const { model: modelDir, inputs: inputsFile, out: outFile, device } = values;
  checkWritable(outFile, "--out");
  const m = await loadPretrained(modelDir, { device });
  try {
    const seq2seq = m.model.kind === "seq2seq";
    const inputs = readInputs(
      inputsFile,
      m,
      ["input_ids", "attention_mask", "decoder_input_ids"],
      device,
    );
    if (seq2seq && !inputs.has("decoder_input_ids"))
      throw new Error(
        `${inputsFile}: no tensor "decoder_input_ids", which ${m.config.model_type} needs`,
      );
    const inputIds = inputs.get("input_ids")!;
    const attentionMask = inputs.get("attention_mask") ?? null;
    const logits = noGrad(() =>
      m.model.kind === "causal"
        ? m.model.forward({ inputIds, attentionMask }).logits
        : m.model.forward({
            inputIds,
            attentionMask,
            decoderInputIds: inputs.get("decoder_input_ids")!,
          }).logits,
    );
    saveTensors(outFile, new Map([["logits", logits]]));
    for (const [k, t] of inputs) console.log(`${k}: [${t.shape.join(", ")}] ${t.dtype}`);
    console.log(`logits: [${logits.shape.join(", ")}] ${logits.dtype} -> ${outFile}`);
    return 0;
  } finally {
    m.model.dispose();
  }
});

/** `lethe generate`: greedy or sampled continuation of a prompt or of an inputs file's rows. */
export const generateCommand = command("generate", async ({ values }) => {
  const { model: modelDir, device } = values;
  const maxNewTokens = intValue(values["max-new-tokens"], "max-new-tokens")!;
  if ((values.prompt === undefined) === (values.inputs === undefined))
    throw new UsageError("give exactly one of --prompt and --inputs");
  const sample = values.sample;
  for (const k of ["temperature", "top-p", "seed"] as const)
    if (values[k] !== undefined && !sample) throw new UsageError(`--${k} needs --sample`);
  if (maxNewTokens < 0) throw new UsageError(`--max-new-tokens must be >= 0, got ${maxNewTokens}`);
  const temperature = numberValue(values.temperature, "temperature");
  const topP = numberValue(values["top-p"], "top-p");
  const seed = intValue(values.seed, "seed");
  if (values.out !== undefined) checkWritable(values.out, "--out");
  const m = await loadPretrained(modelDir, { device });
  try {
    const context = maxLengthOf(m.config as Record<string, unknown>);
    if (maxNewTokens > context) {
      const field = ["n_positions", "max_position_embeddings", "n_ctx"].find(
        (k) => (m.config as Record<string, unknown>)[k] === context,
      );
      throw new Error(
        `--max-new-tokens ${maxNewTokens} exceeds the model's context length ${context} ` +
          (field ? `(${m.dir}/config.json "${field}")` : "(lm-eval's default max_length)"),
      );
    }
    const gen = m.generationConfig;
    const tokenizer = m.tokenizer;
    let inputIds: Tensor;
    let attentionMask: Tensor | null = null;
    if (values.prompt !== undefined) {
      if (!tokenizer)
        throw new Error(
          `${m.dir}: no tokenizer files, so --prompt cannot be encoded; use --inputs`,
        );
      inputIds = tensor([tokenizer.encode(values.prompt)], { dtype: "int64", device });
    } else {
      const inputs = readInputs(values.inputs!, m, ["input_ids", "attention_mask"], device);
      inputIds = inputs.get("input_ids")!;
      attentionMask = inputs.get("attention_mask") ?? null;
    }
    const eos = gen.eos_token_id ?? m.config.eos_token_id;
    const eosTokenId =
      typeof eos === "number" || Array.isArray(eos) ? (eos as number | number[]) : null;
    const pad = gen.pad_token_id ?? tokenizer?.padTokenId;
    const fromGen = (k: string): number | undefined =>
      typeof gen[k] === "number" ? (gen[k] as number) : undefined;
    const sequences = generate(m.model, {
      name: modelDir,
      inputIds,
      attentionMask,
      maxNewTokens,
      eosTokenId,
      padTokenId: typeof pad === "number" ? pad : null,
      doSample: sample,
      temperature: temperature ?? fromGen("temperature"),
      topK: fromGen("top_k"),
      topP: topP ?? fromGen("top_p"),
      seed,
    });
    if (values.out !== undefined) writeFileSync(values.out, JSON.stringify({ sequences }) + "\n");
    for (const row of sequences)
      console.log(
        tokenizer
          ? JSON.stringify(tokenizer.decode(row, { skipSpecialTokens: true }))
          : JSON.stringify(row),
      );
    return 0;
  } finally {
    m.model.dispose();
  }
});
