/**
 * SDFT, self-distillation fine-tuning: before a stage trains, the model as it is then rewrites
 * every target of the stage. It is shown the prompt together with the original response through
 * the distillation template and answers greedily; the stage then trains on (prompt, rewrite).
 * A rewrite in the model's own words stays close to its own output distribution, which is what
 * the paper finds narrows forgetting. An empty rewrite keeps the original response (the paper
 * keeps the original where the rewrite fails its check).
 *
 * The rewrites are made once per stage and kept in the plugin's state, so a stage resumed after a
 * kill trains on the same targets instead of regenerating them from half-trained weights. Rows
 * are matched to their examples by token ids, so packing (rows of several examples) is refused.
 *
 * Also `generateTexts`, the batched greedy or seeded-sampling generation the generating methods
 * (sdft, lamol, ssr) share: prompts are tokenised as the stage's rows are and left-padded.
 *
 * References: Yang et al. 2024, "Self-Distillation Bridges Distribution Gap in Language Model
 * Fine-Tuning" (ACL), §3 and its distillation template; transformers `generate` (greedy, left
 * padding) as src/models/generate.ts implements it.
 */
import { z } from "zod";
import { tensor, type Tensor } from "../../tensor/index.js";
import { generate } from "../../models/generate.js";
import { trainableParameters } from "../../nn/index.js";
import type { Tokenizer } from "../../io/tokenizer.js";
import { IGNORE_INDEX, type SftFeatures, type SftText } from "../../train/data.js";
import type { TrainContext, TrainPlugin } from "../../train/plugin.js";
import { defineMethod, stageIndex, type MethodEnv } from "./method.js";

/** The distillation template: {prompt} and {response} are replaced. */
export const SDFT_TEMPLATE =
  "Below is an instruction that describes a task, with a reference answer. " +
  "Using the reference answer as a guide, write your own response.\n\n" +
  "### Instruction:\n{prompt}\n\n### Reference Answer:\n{response}\n\n### Response:\n";

/** The template with every {prompt} and {response} filled in one pass (the text put in is not scanned again). */
export function distillPrompt(template: string, ex: SftText): string {
  return template.replace(/\{(prompt|response)\}/g, (_, k: "prompt" | "response") => ex[k]);
}

/** A rewrite as the new target: the original response when the rewrite is blank. */
export function rewriteTarget(original: string, rewrite: string): string {
  return rewrite.trim() === "" ? original : rewrite;
}

/** The tokenizer of `env`, or an error naming the method that needs it. */
export function tokenizerOf(env: MethodEnv, method: string): Tokenizer {
  if (!env.tokenizer)
    throw new Error(`method "${method}" generates text and needs the tokenizer (env.tokenizer)`);
  return env.tokenizer;
}

/** Refuses packing: these methods match rows to examples. */
export function refusePacking(ctx: TrainContext, method: string): void {
  if (ctx.config.packing)
    throw new Error(
      `method "${method}" rewrites or adds whole examples; it cannot run with packing (train.packing: false)`,
    );
}

export interface GenerateTextOptions {
  maxNewTokens: number;
  /** Seeded sampling (temperature, top-k) instead of greedy decoding. */
  sample?: { seed: number; temperature: number; topK: number };
}

/**
 * The model's continuation of each prompt as text (special tokens, and ids past the tokenizer's
 * vocabulary, dropped), in batches of the stage's batch size. Prompts keep their end when longer than maxLength − maxNewTokens.
 */
export function generateTexts(
  ctx: TrainContext,
  tok: Tokenizer,
  prompts: readonly string[],
  o: GenerateTextOptions,
): string[] {
  const { model } = ctx;
  const device = trainableParameters(model)[0][1].device;
  const causal = model.kind === "causal";
  const keep = Math.max(1, causal ? ctx.config.maxLength - o.maxNewTokens : ctx.config.maxLength);
  const ids = prompts.map((prompt) => {
    const f = ctx.tokenize({ prompt, response: "" });
    const p = causal ? f.inputIds.filter((_, i) => f.labels[i] === IGNORE_INDEX) : f.inputIds;
    // An empty prompt (no BOS, nothing shared by a task's prompts) starts from EOS, the usual
    // document separator, so the model has a position to predict from.
    return p.length > 0 ? p.slice(-keep) : [tok.bosTokenId ?? tok.eosTokenId ?? 0];
  });
  const out: string[] = [];
  const size = Math.max(1, ctx.config.batchSize);
  for (let at = 0; at < ids.length; at += size) {
    const batch = ids.slice(at, at + size);
    const L = Math.max(...batch.map((r) => r.length));
    const pad = (r: number[], v: number) =>
      causal
        ? [...new Array(L - r.length).fill(v), ...r]
        : [...r, ...new Array(L - r.length).fill(v)];
    const ids2d = (rows: number[][]): Tensor =>
      tensor(BigInt64Array.from(rows.flat(), BigInt), { shape: [rows.length, L], device });
    const inputIds = ids2d(batch.map((r) => pad(r, tok.padTokenId ?? tok.eosTokenId ?? 0)));
    const attentionMask = ids2d(
      batch.map((r) =>
        pad(
          r.map(() => 1),
          0,
        ),
      ),
    );
    try {
      const rows = generate(model, {
        inputIds,
        attentionMask,
        maxNewTokens: o.maxNewTokens,
        eosTokenId: tok.eosTokenId,
        doSample: o.sample !== undefined,
        temperature: o.sample?.temperature,
        topK: o.sample?.topK,
        seed: o.sample ? o.sample.seed + at : undefined,
      });
      // A model's embedding may be padded beyond its tokenizer's vocabulary (Qwen2, LLaMA with
      // an added pad row): ids past it have no text and are dropped.
      for (const r of rows)
        out.push(
          tok.decode(
            r.filter((id) => id < tok.vocabSize),
            { skipSpecialTokens: true },
          ),
        );
    } finally {
      inputIds.dispose();
      attentionMask.dispose();
    }
  }
  return out;
}

/**
 * A batch hook that swaps each row for its replacement, looked up by the row's token ids; rows
 * with none pass unchanged. `table` is rebuilt by the caller at each stage start.
 */
export function replaceRows(
  table: () => ReadonlyMap<string, SftFeatures>,
): NonNullable<TrainPlugin["batch"]> {
  return (_, rows) => rows.map((r) => table().get(r.inputIds.join(",")) ?? r);
}

/** How the methods that write text with the model (sdft, lamol, ssr) behave at scale. */
export const GENERATING_SCALE = {
  distributed:
    "every rank generates the same text from the same weights (greedy, or sampling from a seed), so the ranks agree; the generation is repeated on each rank, not shared",
  precision:
    "generation runs in the model's compute dtype, so bf16 or fp16 text can differ from float32 text; the texts are kept in the state, so a resumed stage does not regenerate",
};

export const sdft = defineMethod({
  name: "sdft",
  description: "SDFT: the model rewrites each task's targets before training on them",
  supports: ["full", "lora"],
  edits: ["rows"],
  scale: GENERATING_SCALE,
  options: z.strictObject({
    max_new_tokens: z.number().int().min(1).default(128), // length cap of a rewrite
    template: z
      .string()
      .refine((t) => t.includes("{prompt}") && t.includes("{response}"), {
        message: "the template needs both {prompt} and {response}",
      })
      .default(SDFT_TEMPLATE),
  }),
  create: (o, env) => {
    /** Rewritten responses by stage, in the order of the stage's examples. */
    let rewrites: Record<string, string[]> = {};
    let table = new Map<string, SftFeatures>();
    return {
      name: "sdft",
      supports: ["full", "lora"],
      stageStart(ctx) {
        refusePacking(ctx, "sdft");
        const examples = env.stages[stageIndex(env, ctx.stage)].examples;
        if (!rewrites[ctx.stage]) {
          const tok = tokenizerOf(env, "sdft");
          const texts = generateTexts(
            ctx,
            tok,
            examples.map((ex) => distillPrompt(o.template, ex)),
            { maxNewTokens: o.max_new_tokens },
          );
          rewrites[ctx.stage] = texts.map((t, i) => rewriteTarget(examples[i].response, t));
        }
        const mine = rewrites[ctx.stage];
        table = new Map(
          examples.map((ex, i) => [
            ctx.tokenize(ex).inputIds.join(","),
            ctx.tokenize({ prompt: ex.prompt, response: mine[i] }),
          ]),
        );
      },
      batch: replaceRows(() => table),
      state: () => ({ tensors: new Map(), meta: { rewrites } }),
      loadState(s) {
        rewrites = structuredClone((s.meta as { rewrites: Record<string, string[]> }).rewrites);
      },
    };
  },
});
