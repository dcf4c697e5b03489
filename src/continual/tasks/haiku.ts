/**
 * Haiku generation (Scialom et al. 2022, "Fine-tuned Language Models are Continual Learners",
 * CT0's HGen-style "Haiku" task). Data: shared `instructions/scialom_ct0/haiku/haiku{train,test}.json`
 * from ThomasScialom/T0_continual_learning, JSON Lines despite the .json name, records
 * `{"translation": {"en1": instruction, "en2": haiku}}`; 9741 train / 974 test.
 */
import { declareTask } from "./declare.js";

export const haiku = declareTask({
  name: "haiku",
  description: "Write a haiku about a given topic (CT0)",
  source: { path: "instructions/scialom_ct0/haiku/haikutrain.json" },
  test_split: { path: "instructions/scialom_ct0/haiku/haikutest.json" },
  prompt: "{translation.en1}",
  target: "translation.en2",
  metric: "rougeL",
});
