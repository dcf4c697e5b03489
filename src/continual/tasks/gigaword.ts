/**
 * Headline generation with a word constraint (the "HGen" task of Scialom et al. 2022 and Luo et
 * al. 2023), built from the P3/T0 gigaword prompt templates in shared
 * `instructions/self_instruct/t0_train_50k_per_template/gigaword_*.jsonl` (yizhongw/self-instruct,
 * records `{"prompt", "completion"}`, 200 per template, completions end in "<|endoftext|>").
 *
 * The 7 templates that map a sentence to its headline are used (reverse_writing and
 * write_an_article go the other way). Each example prefixes the T0 prompt with a constraint:
 * `Include the word "w" in your answer.`, where w is a seeded pick among the headline's words of
 * 4+ letters; headlines without one are skipped. The templates share source sentences, so the
 * test split holds whole headlines (seeded), never a headline on both sides.
 */
import { field } from "../../io/dataset.js";
import { randomInt } from "../rng.js";
import { declareTask } from "./declare.js";

/** promptsource gigaword templates whose completion is the headline. */
export const HEADLINE_TEMPLATES = [
  "TLDR",
  "first_sentence_title",
  "generate_summary_for_this",
  "in_a_nutshell",
  "make_a_title",
  "write_a_title_for_this_sentence",
  "write_its_sentence",
] as const;

const END_OF_TEXT = "<|endoftext|>";
/** Words eligible as the constraint: plain lower-case words, not gigaword's "unk"/"#" tokens. */
const CONSTRAINT_WORD = /^[a-z]{4,}$/;

export const gigaword = declareTask({
  name: "gigaword",
  description: "Write a headline containing a given word (T0 gigaword templates)",
  source: {
    path: HEADLINE_TEMPLATES.map(
      (t) => `instructions/self_instruct/t0_train_50k_per_template/gigaword_${t}.jsonl`,
    ),
  },
  // The constraint word is a seeded pick among the headline's words; none, and the row goes.
  process(row, where, { rng }) {
    const prompt = field(row, "prompt", where, "string");
    const headline = field(row, "completion", where, "string").replace(END_OF_TEXT, "").trim();
    const words = headline.split(/\s+/).filter((w) => CONSTRAINT_WORD.test(w) && w !== "unk");
    if (words.length === 0) return null;
    return { prompt: prompt.trim(), headline, word: words[randomInt(rng, words.length)] };
  },
  prompt: 'Include the word "{word}" in your answer.\n{prompt}',
  target: "headline",
  metric: "rougeL",
  // The templates share source sentences: a headline never sits on both sides.
  test_split: { fraction: 0.1, group: "headline" },
});
