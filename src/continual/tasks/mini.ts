/**
 * The miniature study's instruction tasks (`lethe study`): five continual tasks modelled on the
 * CT0 tasks Luo et al. 2023 (arXiv 2308.08747) train in order — simplification (ASSET, scored by
 * SARI), empathetic dialogue, inquisitive question generation, explanation (e-SNLI) and headline
 * generation with a required word (Gigaword), scored by ROUGE-L — and the general instruction set
 * (the Alpaca analogue) that mix_general and the instruction-tuned zoo model train on.
 *
 * Data: src/mini writes each from the synthetic world in the HF layout
 * `<data dir>/instructions/mini/<task>/{train,test}.jsonl`, rows `{instruction, input, output}`
 * (Alpaca's fields); the general set has a train split only.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { GenerationMetric, TaskDefinition } from "../instruction.js";
import { declareTask } from "./declare.js";

function miniTask(
  task: string,
  metric: GenerationMetric,
  description: string,
  hasTest = true,
): TaskDefinition {
  const name = `mini_${task}`;
  const path = join("instructions", "mini", task);
  const def = declareTask({
    name,
    description: `${description} (lethe's synthetic world)`,
    source: { path, split: "train" },
    test_split: hasTest ? { split: "test" } : null,
    prompt: "{instruction}",
    input: "{input}",
    target: "output",
    metric,
  });
  return {
    ...def,
    async load(dataDir, options) {
      if (!existsSync(join(dataDir, path)))
        throw new Error(
          `${name}: ${join(dataDir, path)} not found (\`lethe study\` writes the world's data there)`,
        );
      return def.load(dataDir, options);
    },
  };
}

export const miniTasks = {
  mini_simplification: miniTask("simplification", "sari", "Rewrite a sentence in simple words"),
  mini_empathetic_dialogue: miniTask(
    "empathetic_dialogue",
    "rougeL",
    "Reply to a speaker with empathy",
  ),
  mini_inquisitive_qg: miniTask("inquisitive_qg", "rougeL", "Ask what a reader would wonder"),
  mini_explanation: miniTask("explanation", "rougeL", "Explain whether a hypothesis follows"),
  mini_headline_generation: miniTask(
    "headline_generation",
    "rougeL",
    "Write a headline that uses a given word",
  ),
  mini_general: miniTask("general", "rougeL", "General instructions (the Alpaca analogue)", false),
} satisfies Record<string, TaskDefinition>;
