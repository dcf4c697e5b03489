/**
 * LAMOL-style pseudo replay: at the start of stage t the model as it is then (trained through
 * stage t − 1) writes pseudo examples of every earlier task, and they make up `ratio` of every
 * micro-batch of stage t, as replay mixes real ones. No earlier task's data is kept beyond its
 * task prompt.
 *
 * A task's prompt is what its rendered prompts share: the longest common prefix (the generation
 * cue, LAMOL's task token) and the longest common suffix (the answer cue, LAMOL's ANS token). A
 * pseudo example is made in two passes: the model continues the prefix by seeded top-k sampling
 * (LAMOL: k = 20), cut at the first answer cue or newline, and the answer cue is appended; then
 * the model answers that prompt greedily. LAMOL samples both in one pass; two passes make every
 * sample well formed (LAMOL drops malformed ones), so a weak model still yields `per_task`
 * examples. LAMOL also trains the model to generate its inputs (an LM loss on the question, weight
 * 0.25); here the model is only fine-tuned on answers, as in every lethe method.
 *
 * The pseudo examples are made once per stage and kept in the plugin's state, so a resumed stage
 * replays the same ones.
 *
 * References: Sun et al. 2020, "LAMOL: LAnguage MOdeling for Lifelong Language Learning" (ICLR),
 * §3 (pseudo-sample generation, γ = 0.2, top-k 20); Robins 1995, "Catastrophic forgetting,
 * rehearsal and pseudorehearsal" (pseudo rehearsal).
 */
import { z } from "zod";
import type { SftText } from "../../train/data.js";
import type { TrainContext } from "../../train/plugin.js";
import { defineMethod, drawSeed, mixingHook, stageIndex, type MethodEnv } from "./method.js";
import { generateTexts, refusePacking, tokenizerOf, GENERATING_SCALE } from "./sdft.js";

/** The longest string every one of `xs` starts with ("" for none). */
export function commonPrefix(xs: readonly string[]): string {
  if (xs.length === 0) return "";
  let p = xs[0];
  for (const x of xs) while (!x.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/** The longest string every one of `xs` ends with ("" for none). */
export function commonSuffix(xs: readonly string[]): string {
  if (xs.length === 0) return "";
  let s = xs[0];
  for (const x of xs) while (!x.endsWith(s)) s = s.slice(1);
  return s;
}

/** A task's generation cue (prefix) and answer cue (suffix) from its prompts. */
export function taskCues(prompts: readonly string[]): { prefix: string; marker: string } {
  const prefix = commonPrefix(prompts);
  // The suffix must not overlap the prefix within the shortest prompt.
  const shortest = Math.min(...prompts.map((p) => p.length));
  const room = Math.max(0, shortest - prefix.length);
  const marker = room === 0 ? "" : commonSuffix(prompts).slice(-room);
  return { prefix, marker };
}

/**
 * The prompt of a pseudo example: prefix + the sampled continuation up to its first answer cue
 * or newline (the earlier of the two), + the answer cue.
 */
export function pseudoPrompt(prefix: string, continuation: string, marker: string): string {
  const cut = [marker === "" ? -1 : continuation.indexOf(marker), continuation.indexOf("\n")]
    .filter((i) => i >= 0)
    .reduce((a, b) => Math.min(a, b), continuation.length);
  return prefix + continuation.slice(0, cut) + marker;
}

export interface SynthesisOptions {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
}

/**
 * Pseudo prompts for one task: `n` samples continuing `context + prefix` (a few-shot context for
 * SSR, empty for LAMOL), each cut into a prompt by `pseudoPrompt`.
 */
export function samplePrompts(
  ctx: TrainContext,
  env: MethodEnv,
  method: string,
  cues: { prefix: string; marker: string },
  contexts: readonly string[],
  o: SynthesisOptions,
): string[] {
  const tok = tokenizerOf(env, method);
  const texts = generateTexts(
    ctx,
    tok,
    contexts.map((c) => c + cues.prefix),
    {
      maxNewTokens: o.maxNewTokens,
      sample: { seed: o.seed, temperature: o.temperature, topK: o.topK },
    },
  );
  return texts.map((t) => pseudoPrompt(cues.prefix, t, cues.marker));
}

/** The model's greedy answers to `prompts`, as examples. */
export function answer(
  ctx: TrainContext,
  env: MethodEnv,
  method: string,
  prompts: readonly string[],
  maxNewTokens: number,
): SftText[] {
  const texts = generateTexts(ctx, tokenizerOf(env, method), prompts, { maxNewTokens });
  return prompts.map((prompt, i) => ({ prompt, response: texts[i] }));
}

export const lamol = defineMethod({
  name: "lamol",
  description: "LAMOL pseudo replay: the model writes examples of earlier tasks, mixed in at r",
  supports: ["full", "lora"],
  edits: ["rows"],
  scale: GENERATING_SCALE,
  options: z.strictObject({
    ratio: z.number().min(0).lt(1).default(0.2), // share of each batch's rows that are pseudo (LAMOL γ = 0.2)
    per_task: z.number().int().min(1).default(32), // pseudo examples per earlier task
    max_new_tokens: z.number().int().min(1).default(64), // length cap of a sampled input and of an answer
    temperature: z.number().positive().default(1),
    top_k: z.number().int().min(0).default(20), // LAMOL: top-k 20
  }),
  create: (o, env) => {
    /** The pseudo examples replayed in each stage (those of all earlier tasks). */
    let pseudo: Record<string, SftText[]> = {};
    return {
      name: "lamol",
      supports: ["full", "lora"],
      stageStart(ctx) {
        refusePacking(ctx, "lamol");
        if (pseudo[ctx.stage]) return; // made before a kill: the same ones
        const made: SftText[] = [];
        env.stages.slice(0, stageIndex(env, ctx.stage)).forEach((task, i) => {
          const cues = taskCues(task.examples.map((e) => e.prompt));
          const prompts = samplePrompts(ctx, env, "lamol", cues, new Array(o.per_task).fill(""), {
            maxNewTokens: o.max_new_tokens,
            temperature: o.temperature,
            topK: o.top_k,
            seed: drawSeed(env.seed, "lamol", ctx.stage, i),
          });
          made.push(...answer(ctx, env, "lamol", prompts, o.max_new_tokens));
        });
        pseudo[ctx.stage] = made;
      },
      batch: mixingHook("lamol", o.ratio, env.seed, (ctx) => pseudo[ctx.stage] ?? []),
      state: () => ({ tensors: new Map(), meta: { pseudo } }),
      loadState(s) {
        pseudo = structuredClone((s.meta as { pseudo: Record<string, SftText[]> }).pseudo);
      },
    };
  },
});
