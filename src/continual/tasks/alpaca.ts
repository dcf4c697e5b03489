/**
 * Alpaca general instruction data (Taori et al. 2023, tatsu-lab/stanford_alpaca). Data: shared
 * `instructions/alpaca/alpaca_5000.json`, a 5000-example subset of alpaca_data.json, records
 * `{instruction, input, output}`. No test split ships, so a seeded share is held out.
 * Licence CC BY-NC 4.0.
 */
import { declareTask } from "./declare.js";

export const alpaca = declareTask({
  name: "alpaca",
  description: "General instruction following (Stanford Alpaca, 5000-example subset)",
  source: { path: "instructions/alpaca/alpaca_5000.json" },
  prompt: "{instruction}",
  input: "{input}",
  target: "output",
  metric: "rougeL",
  test_split: { fraction: 0.1 },
});
