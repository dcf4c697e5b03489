/**
 * SSR, Self-Synthesized Rehearsal: instead of keeping earlier tasks' data, rehearse on synthetic
 * examples. At the start of stage t, for every earlier task:
 *   1. the base model θ₀, given a few of the task's examples in context (`demos`, drawn by seed),
 *      continues the task's prompt cue and so writes `synthesize` new inputs (seeded top-k
 *      sampling; each cut into a prompt as lamol.ts does);
 *   2. the latest model (trained through stage t − 1) writes the outputs, greedily;
 *   3. `keep` of them are selected, at random or by k-means: the examples are clustered into
 *      `keep` clusters and the one nearest each centre is kept (the paper clusters sentence
 *      embeddings; here the features are hashed character trigrams, which need no second model).
 * The selected examples of all earlier tasks make up `ratio` of every micro-batch of stage t.
 * They are made once per stage and kept in the plugin's state, so a resumed stage rehearses the
 * same ones.
 *
 * θ₀: full fine-tuning reads env.startWeights() (checked at the first stage, so a θ₀ that lacks a
 * weight fails before any training, not one stage later); LoRA zeroes every lora_B for the first
 * pass.
 *
 * References: Huang et al. 2024, "Mitigating Catastrophic Forgetting in Large Language Models
 * with Self-Synthesized Rehearsal" (ACL), §3 (ICL generation by the base LLM, refinement by the
 * latest LLM, K-means selection); Arthur & Vassilvitskii 2007, "k-means++" (the seeding).
 */
import { z } from "zod";
import { trainableParameters } from "../../nn/index.js";
import type { Tensor } from "../../tensor/index.js";
import type { SftText } from "../../train/data.js";
import type { TrainContext } from "../../train/plugin.js";
import { makeRng, shuffled, type Rng } from "../rng.js";
import { withWeights } from "./ilora.js";
import { answer, samplePrompts, taskCues } from "./lamol.js";
import { defineMethod, drawSeed, mixingHook, stageIndex, type MethodEnv } from "./method.js";
import { refusePacking, GENERATING_SCALE } from "./sdft.js";

/** Hashed character-trigram counts of `text` in `dim` buckets, L2-normalised. */
export function trigramFeatures(text: string, dim = 64): number[] {
  const v = new Array<number>(dim).fill(0);
  const s = ` ${text.toLowerCase()} `;
  for (let i = 0; i + 3 <= s.length; i++) v[drawSeed(s.slice(i, i + 3)) % dim] += 1;
  const norm = Math.hypot(...v);
  return norm > 0 ? v.map((x) => x / norm) : v;
}

const dist2 = (a: readonly number[], b: readonly number[]) =>
  a.reduce((s, x, i) => s + (x - b[i]) ** 2, 0);

/**
 * Lloyd's k-means with k-means++ seeding from `rng`: the cluster of each point and the centres.
 * Stops when no assignment changes or after `iterations`. An empty cluster keeps its centre.
 */
export function kmeans(
  points: readonly (readonly number[])[],
  k: number,
  rng: Rng,
  iterations = 50,
): { assign: number[]; centres: number[][] } {
  if (k < 1 || k > points.length)
    throw new RangeError(`kmeans: k must be in [1, ${points.length}], got ${k}`);
  const centres: number[][] = [points[Math.floor(rng() * points.length)].slice()];
  while (centres.length < k) {
    const d = points.map((p) => Math.min(...centres.map((c) => dist2(p, c))));
    const total = d.reduce((a, b) => a + b, 0);
    let u = rng() * total;
    let pick = d.findIndex((x) => (u -= x) < 0);
    if (pick < 0 || total === 0) pick = points.findIndex((_, i) => d[i] === Math.max(...d));
    centres.push(points[pick].slice());
  }
  let assign = new Array<number>(points.length).fill(-1);
  for (let it = 0; it < iterations; it++) {
    const next = points.map((p) =>
      centres.reduce((best, c, j) => (dist2(p, c) < dist2(p, centres[best]) ? j : best), 0),
    );
    const changed = next.some((a, i) => a !== assign[i]);
    assign = next;
    if (!changed) break;
    centres.forEach((c, j) => {
      const members = points.filter((_, i) => assign[i] === j);
      if (members.length > 0)
        centres[j] = c.map((_, d) => members.reduce((s, m) => s + m[d], 0) / members.length);
    });
  }
  return { assign, centres };
}

/** Indices of `keep` of `points`: the member nearest each k-means centre (distinct, ascending). */
export function kmeansSelect(
  points: readonly (readonly number[])[],
  keep: number,
  rng: Rng,
): number[] {
  if (keep >= points.length) return points.map((_, i) => i);
  const { assign, centres } = kmeans(points, keep, rng);
  const chosen = new Set<number>();
  centres.forEach((c, j) => {
    let best = -1;
    points.forEach((p, i) => {
      if (assign[i] === j && !chosen.has(i) && (best < 0 || dist2(p, c) < dist2(points[best], c)))
        best = i;
    });
    if (best >= 0) chosen.add(best);
  });
  // Empty clusters leave places: fill them with the lowest unused indices.
  for (let i = 0; chosen.size < keep && i < points.length; i++) chosen.add(i);
  return [...chosen].sort((a, b) => a - b);
}

/** The parameters that differ in θ₀, with θ₀'s values (null = zero). */
function startSwaps(ctx: TrainContext, env: MethodEnv): [Tensor, Tensor | null][] {
  const params = trainableParameters(ctx.model);
  if (ctx.kind === "lora")
    return params.filter(([n]) => n.endsWith("lora_B.weight")).map(([, p]) => [p, null]);
  const start = env.startWeights();
  return params.map(([n, p]) => {
    const t = start.get(n);
    if (!t) throw new Error(`ssr: the starting weights have no tensor "${n}"`);
    return [p, t];
  });
}

export const ssr = defineMethod({
  name: "ssr",
  description: "SSR: θ₀ synthesises earlier-task inputs in context, the latest model answers",
  supports: ["full", "lora"],
  edits: ["rows"],
  scale: GENERATING_SCALE,
  options: z.strictObject({
    ratio: z.number().min(0).lt(1).default(0.1), // share of each batch's rows that are rehearsed
    demos: z.number().int().min(0).default(2), // in-context examples per synthesis prompt
    synthesize: z.number().int().min(1).default(32), // candidates per earlier task
    keep: z.number().int().min(1).default(8), // rehearsed examples per earlier task
    select: z.enum(["random", "kmeans"]).default("kmeans"),
    max_new_tokens: z.number().int().min(1).default(64),
    temperature: z.number().positive().default(1),
    top_k: z.number().int().min(0).default(20),
  }),
  needsStartWeights: (_, kind) => kind === "full",
  create: (o, env) => {
    /** The rehearsed examples of each stage (those of all earlier tasks). */
    let rehearsal: Record<string, SftText[]> = {};
    let checked = false;
    return {
      name: "ssr",
      supports: ["full", "lora"],
      stageStart(ctx) {
        refusePacking(ctx, "ssr");
        if (!checked) {
          startSwaps(ctx, env);
          checked = true;
        }
        if (rehearsal[ctx.stage]) return; // made before a kill: the same ones
        const made: SftText[] = [];
        env.stages.slice(0, stageIndex(env, ctx.stage)).forEach((task, i) => {
          const rng = makeRng(drawSeed(env.seed, "ssr", ctx.stage, i));
          const contexts = Array.from({ length: o.synthesize }, () =>
            shuffled(task.examples, rng)
              .slice(0, o.demos)
              .map((d) => `${d.prompt}${d.response}\n\n`)
              .join(""),
          );
          const cues = taskCues(task.examples.map((e) => e.prompt));
          const prompts = withWeights(ctx, startSwaps(ctx, env), () =>
            samplePrompts(ctx, env, "ssr", cues, contexts, {
              maxNewTokens: o.max_new_tokens,
              temperature: o.temperature,
              topK: o.top_k,
              seed: drawSeed(env.seed, "ssr-sample", ctx.stage, i),
            }),
          );
          const candidates = answer(ctx, env, "ssr", prompts, o.max_new_tokens);
          const picked =
            o.select === "kmeans"
              ? kmeansSelect(
                  candidates.map((c) => trigramFeatures(c.prompt + c.response)),
                  o.keep,
                  rng,
                )
              : shuffled(
                  candidates.map((_, j) => j),
                  rng,
                )
                  .slice(0, o.keep)
                  .sort((a, b) => a - b);
          made.push(...picked.map((j) => candidates[j]));
        });
        rehearsal[ctx.stage] = made;
      },
      batch: mixingHook("ssr", o.ratio, env.seed, (ctx) => rehearsal[ctx.stage] ?? []),
      state: () => ({ tensors: new Map(), meta: { rehearsal } }),
      loadState(s) {
        rehearsal = structuredClone((s.meta as { rehearsal: Record<string, SftText[]> }).rehearsal);
      },
    };
  },
});
