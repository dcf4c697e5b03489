/**
 * CT0's processing of the five tasks Luo et al. 2023 train in sequence, the prompt templates
 * their code used, their Alpaca-style wrapper, and their fixed-seed draw of 100,000 examples a
 * task. Pure functions of rows; the task files (src/continual/tasks/{wiki_auto,
 * empathetic_dialogues,eli5,esnli_ct0,gigaword_ct0}.ts) read the data and call these.
 *
 * References (read, reimplemented; no code copied):
 * - Scialom, Chakrabarty & Muresan 2022, "Fine-tuned Language Models are Continual Learners"
 *   (arXiv 2205.12393), code ThomasScialom/T0_continual_learning: `data_handler.py`
 *   (`PromptFormat.applyCustom` / `setConstrainAttr`, `ELI5promptFormat.filterDataset`,
 *   `WikiAutoPromptFormat.getDataset`, `ExplanationSNLI.getDataset`, `DialogueEmpathic.filterDataset`;
 *   `random.seed(666)` before each (dataset, split, prompt) pass) and `configs/{wiki_auto,
 *   empathetic_dialogues,eli5,eSNLI,gigaword}.json` (`prompt_cutsom` template lists).
 * - Luo et al. 2023, "An Empirical Study of Catastrophic Forgetting in Large Language Models
 *   During Continual Fine-tuning" (arXiv 2308.08747), code LuoXiaoHeics/Continual-Tune:
 *   `data_handler.py` (`continual_train`: which templates each task trains on), `train.py`
 *   (the wrapper, the target's `str(u).replace("['","").replace("']","")`, and `minus_data`:
 *   `np.random.seed(0)`, shuffle, first int(100000 / templates) per template).
 */
import { PyRandom } from "../eval/pyrandom.js";
import type { InstructionExample, PromptTemplate } from "./instruction.js";

// ---------------------------------------------------------------------------------------------
// Luo's wrapper

/**
 * Luo et al.'s wrapper around every CT0 prompt, byte for byte. QUIRK: their train.py writes it as
 * an f-string broken with a backslash inside the literal ("…that provides  \" + newline + 23
 * spaces of indentation + "further context…"); Python drops the backslash and newline but keeps
 * the indentation, so 25 spaces stand between "provides" and "further". Models were tuned on
 * that string, so lethe keeps it. `{example}` is the CT0 prompt; the target follows directly.
 */
export const LUO_WRAPPER =
  "Below is an instruction that describes a task, paired with an input that provides" +
  " ".repeat(25) +
  "further context. Write a response that appropriately completes the request.\n\n{example}\n\n### Response:";

/** The wrapper as a lethe template: the example's instruction is the rendered CT0 prompt. */
export const LUO_TEMPLATE: PromptTemplate = {
  name: "luo2023",
  withInput: LUO_WRAPPER.replace("{example}", "{instruction}"),
  withoutInput: LUO_WRAPPER.replace("{example}", "{instruction}"),
};

/** Python's `repr` of a str, as `str(list)` writes each item (quotes and common escapes). */
function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s
    .replaceAll("\\", "\\\\")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
    .replaceAll("\t", "\\t")
    .replaceAll(q, `\\${q}`);
  return `${q}${body}${q}`;
}

/**
 * Luo's training target: `str(u).replace("['", "").replace("']", "")`. A one-item list (e-SNLI
 * train's explanations) becomes its item; a longer list keeps its inner quotes and commas.
 */
export function luoTarget(tgt: string | readonly string[]): string {
  const s = typeof tgt === "string" ? tgt : `[${tgt.map(pyRepr).join(", ")}]`;
  return s.replaceAll("['", "").replaceAll("']", "");
}

// ---------------------------------------------------------------------------------------------
// CT0's templates (configs/*.json `prompt_cutsom`), `[key]` replaced by the row's field.

export const CT0_TEMPLATES = {
  simplification_1: [
    "[normal_sentence]\n\n===\n\nGiven the above text, write it with, simpler words:",
    "[normal_sentence]\n\n===\n\nGiven this text, write it with, simpler words:",
    "[normal_sentence]\n\n===\n\nGiven the above text, rewrite it so it is easier to understand:",
    "[normal_sentence]\n\n===\n\nGiven the above text, rewrite it so it is easier to read:",
    "[normal_sentence]\n\n===\n\nGiven the above text, reformulate it so it is easier to read:",
    "[normal_sentence]\n\n===\n\nGiven the above text, reformulate it with simpler words:",
    'Make this text simpler: "[normal_sentence]"',
    'Reformulate this text with simpler words: "[normal_sentence]"',
    'Reformulate the following text with simpler words: "[normal_sentence]"',
    'Rewrite this text so it becomes easier to understand: "[normal_sentence]"',
    'Generate a text easier to understand, with similar content than this text: "[normal_sentence]"',
  ],
  // `[context]`: CT0's config names the HF field `context` (the emotion label, "sentimental"),
  // while its dialogue expansion stores that label as `context_emotion`; lethe fills in the
  // emotion label, as "Given that you are …" reads.
  dialogue_with_emotion: [
    'Given that you are "[context]", what would be your response to the the following dialogue:\n\n===\n\n[input_text]',
  ],
  generate_a_question_1: [
    'Given the following text, what could have been an inquisive question: "[text]"',
    'Given the following text, write the possible curious question it answers: "[text]"',
    'Write an inquisive question about the following text: "[text]"',
    "[text]\n\n===\n\nGiven the above text, write the possible curious question it answers:",
  ],
  explain_why: [
    'Explain why the two following sentences [gold_label_prompt]: "Sentence 1: [Sentence1]"; Sentence 2: "[Sentence2]"',
  ],
  "constrain_start+make_a_title": [
    'Make a title for this article, starting with "[TO_REPLACE_1]": [document]',
    'Make a title for this article that starts with "[TO_REPLACE_1]": [document]',
    'Make a title for this article, begining with "[TO_REPLACE_1]": [document]',
    'Make a title for this article that begins with "[TO_REPLACE_1]": [document]',
    'Make a title for this article which begins with "[TO_REPLACE_1]": [document]',
  ],
  "constrain_contain+make_a_title": [
    'Make a title for this article, containing "[TO_REPLACE_1]": [document]',
    'Make a title for this article that contains "[TO_REPLACE_1]": [document]',
    'Make a title for this article, mentioning "[TO_REPLACE_1]": [document]',
    'Make a title for this article that mentions "[TO_REPLACE_1]": [document]',
    'Make a title for this article, including "[TO_REPLACE_1]": [document]',
    'Make a title for this article that includes "[TO_REPLACE_1]": [document]',
    'Make a title for this article which includes "[TO_REPLACE_1]": [document]',
    'Make a title for this article with "[TO_REPLACE_1]": [document]',
  ],
  "constrain_end+make_a_title": [
    'Make a title for this article, ending with "[TO_REPLACE_1]": [document]',
    'Make a title for this article,by ending with "[TO_REPLACE_1]": [document]',
    'Make a title for this article that ends with "[TO_REPLACE_1]": [document]',
    'Make a title for this article, finishing with "[TO_REPLACE_1]": [document]',
    'Make a title for this article that finishes with "[TO_REPLACE_1]": [document]',
    'Make a title for this article which ends with "[TO_REPLACE_1]": [document]',
  ],
} as const satisfies Record<string, readonly string[]>;

export type Ct0PromptName = keyof typeof CT0_TEMPLATES | "generate_a_question_2";

/**
 * The templates of a prompt name. `generate_a_question_2` (Luo's second ELI5 training prompt) is
 * named in Luo's `continual_train` but its list is in no public version of CT0's eli5.json that
 * lethe could read; lethe ASSUMES it is generate_a_question_1's list (so ELI5 trains on two
 * 50,000-example draws of the same prompt family, as Luo's code draws them).
 */
export function ct0Templates(name: Ct0PromptName): readonly string[] {
  return name === "generate_a_question_2"
    ? CT0_TEMPLATES.generate_a_question_1
    : CT0_TEMPLATES[name];
}

/** Luo's `continual_train`: the CT0 prompts each task trains and tests on. */
export const LUO_PROMPTS = {
  wiki_auto: { train: ["simplification_1"], test: ["simplification_1"] },
  empathetic_dialogues: { train: ["dialogue_with_emotion"], test: ["dialogue_with_emotion"] },
  eli5: {
    train: ["generate_a_question_1", "generate_a_question_2"],
    test: ["generate_a_question_1"],
  },
  esnli: { train: ["explain_why"], test: ["explain_why"] },
  gigaword: {
    train: [
      "constrain_start+make_a_title",
      "constrain_contain+make_a_title",
      "constrain_end+make_a_title",
    ],
    test: [
      "constrain_start+make_a_title",
      "constrain_contain+make_a_title",
      "constrain_end+make_a_title",
    ],
  },
} as const satisfies Record<
  string,
  { train: readonly Ct0PromptName[]; test: readonly Ct0PromptName[] }
>;

/** One processed CT0 row: the fields its templates name, its target, and the SARI source. */
export interface Ct0Row {
  fields: Record<string, string>;
  /** The target: a string, or e-SNLI's list of explanations. */
  target: string | string[];
  /** The text a source-based metric (SARI) compares against; "" for the others. */
  source?: string;
}

/**
 * CT0's `applyCustom` over every row for one prompt name, with `random.seed(666)` first as
 * `process_datasets` does: a template drawn by `random.choice`, then for a constraint prompt the
 * target's word (`start`: the first, `end`: the last, `contain`: `random.randint(0, n-1)`)
 * substituted for `[TO_REPLACE_1]`; then each `[key]` replaced in order of `srcKeys`.
 * Training targets go through `luoTarget`; `references` keep every gold output.
 */
export function applyCt0(
  rows: readonly Ct0Row[],
  prompt: Ct0PromptName,
  srcKeys: readonly string[],
  opts: { select?: ArrayLike<number>; where?: (i: number) => string } = {},
): InstructionExample[] {
  const templates = ct0Templates(prompt);
  const where = opts.where ?? ((i: number) => `${prompt}: row ${i + 1}`);
  const rng = new PyRandom(666);
  const constraint = prompt.startsWith("constrain_")
    ? (/^constrain_(start|contain|end)\+/.exec(prompt)?.[1] as "start" | "contain" | "end")
    : null;
  // The random stream runs over every row, as CT0 processed the whole split; only the rows in
  // `select` (Luo's draw) are built, so a 3.8M-row split costs no 3.8M prompt strings.
  const chosen: { template: string; word: string | null }[] = new Array(rows.length);
  rows.forEach((row, i) => {
    const template: string = templates[rng.randbelow(templates.length)];
    let word: string | null = null;
    if (constraint !== null) {
      // Python's str.split(): runs of whitespace, no empty words.
      const words = (typeof row.target === "string" ? row.target : row.target[0])
        .split(/\s+/)
        .filter((w) => w !== "");
      if (words.length === 0)
        throw new Error(`${where(i)}: empty target, no word to constrain the title on`);
      const at =
        constraint === "start"
          ? 0
          : constraint === "end"
            ? words.length - 1
            : rng.randbelow(words.length);
      word = words[at];
    }
    chosen[i] = { template, word };
  });
  const select = opts.select ?? [...rows.keys()];
  return Array.from(select, (i) => {
    const row = rows[i];
    let text = chosen[i].template;
    const values: Record<string, string> = { ...row.fields };
    const keys = [...srcKeys];
    if (chosen[i].word !== null) {
      values.TO_REPLACE_1 = chosen[i].word!;
      keys.push("TO_REPLACE_1");
    }
    for (const key of keys) {
      const v = values[key];
      if (v === undefined) throw new Error(`${where(i)}: missing field "${key}"`);
      text = text.replaceAll(`[${key}]`, v);
    }
    return {
      instruction: text,
      input: row.source ?? "",
      output: luoTarget(row.target),
      references: typeof row.target === "string" ? [row.target] : row.target,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Per-dataset processing

/**
 * wiki_auto `auto_acl`, split `full`, as CT0's `WikiAutoPromptFormat`: train is every row but the
 * last 10,000, test the last 4,000 (Python slicing: fewer rows give an empty train).
 */
export function wikiAutoSplits<T>(rows: readonly T[]): { train: T[]; test: T[] } {
  return {
    train: rows.slice(0, Math.max(0, rows.length - 10_000)),
    test: rows.slice(Math.max(0, rows.length - 4_000)),
  };
}

/** One row of HF `empathetic_dialogues` (one utterance). */
export interface EmpatheticUtterance {
  conv_id: string;
  utterance_idx: number;
  speaker_idx: number;
  context: string;
  prompt: string;
  utterance: string;
}

/** One CT0 dialogue example: the turns so far, and the next turn to produce. */
export interface DialogueTurn {
  conv_id: string;
  /** The emotion label (HF `context`): fills CT0's `[context]`. */
  context: string;
  /** The situation the speaker wrote (HF `prompt`), `_comma_` restored. */
  situation: string;
  idx: number;
  /** "- turn 1\n- turn 2…" */
  input_text: string;
  output_text: string;
}

/**
 * CT0's `DialogueEmpathic.filterDataset`: rows grouped into conversations in file order; a
 * conversation must start at utterance 1 and alternate speakers with consecutive indices (the
 * first turn that breaks this, and every later one, is dropped); `_comma_` becomes ","; each turn
 * i ≥ 1 is an example whose input lists turns 0..i-1 as "- text" lines.
 * QUIRK kept: a conversation that does not start at utterance 1 appends the previous conversation
 * again for each of its rows (CT0 never resets its current conversation), so that conversation's
 * turns appear more than once, as in the data CT0 and Luo trained on.
 */
export function expandDialogues(rows: readonly EmpatheticUtterance[]): DialogueTurn[] {
  interface Conv {
    conv_id: string;
    context: string;
    prompt: string;
    texts: string[];
  }
  const convs: Conv[] = [];
  let cur: Conv | null = null;
  let lastIdx = 0;
  let lastSpeaker = -1;
  for (const ex of rows) {
    if (cur === null || cur.conv_id !== ex.conv_id) {
      if (cur !== null) convs.push(cur);
      if (ex.utterance_idx !== 1) continue;
      cur = { conv_id: ex.conv_id, context: ex.context, prompt: ex.prompt, texts: [ex.utterance] };
      lastIdx = ex.utterance_idx;
      lastSpeaker = ex.speaker_idx;
      continue;
    }
    if (lastSpeaker === ex.speaker_idx || ex.utterance_idx !== lastIdx + 1) continue;
    lastIdx = ex.utterance_idx;
    lastSpeaker = ex.speaker_idx;
    cur.texts.push(ex.utterance);
  }
  if (cur !== null) convs.push(cur);
  const out: DialogueTurn[] = [];
  for (const c of convs) {
    const texts = c.texts.map((t) => t.replaceAll("_comma_", ","));
    for (let i = 1; i < texts.length; i++) {
      out.push({
        conv_id: c.conv_id,
        context: c.context,
        situation: c.prompt.replaceAll("_comma_", ","),
        idx: i,
        input_text: texts
          .slice(0, i)
          .map((t) => `- ${t}`)
          .join("\n"),
        output_text: texts[i],
      });
    }
  }
  return out;
}

/** An ELI5 post: its title and its answers with their scores. */
export interface Eli5Post {
  title: string;
  answers: { text: string[]; score: number[] };
}

/**
 * CT0's `ELI5promptFormat.filterDataset`: keep titles that start with "W" or "H" and hold exactly
 * one "?"; the text is the highest-scored answer (the first of equal scores).
 */
export function eli5Filter(posts: readonly Eli5Post[]): { question: string; text: string }[] {
  const out: { question: string; text: string }[] = [];
  for (const p of posts) {
    const q = p.title;
    if (!(q[0] === "W" || q[0] === "H") || q.split("?").length - 1 !== 1) continue;
    const best = p.answers.score.indexOf(Math.max(...p.answers.score));
    out.push({ question: q, text: p.answers.text[best] });
  }
  return out;
}

/** CT0's `ExplanationSNLI` label phrases (`d_gold_label`). */
export const ESNLI_LABEL_PROMPT = {
  entailment: "entail each other",
  contradiction: "do not entail each other",
  neutral: "are unrelated",
} as const;

/** HF `esnli`'s integer labels. */
export const ESNLI_LABELS = ["entailment", "neutral", "contradiction"] as const;

// ---------------------------------------------------------------------------------------------
// Luo's draw

/**
 * numpy's legacy `np.random.seed(seed); np.random.shuffle(np.arange(n))`, bit for bit: MT19937
 * seeded with `init_genrand(seed)`, then Fisher–Yates from the end with `random_interval(i)`
 * (a 32-bit draw masked to the bit length of i, redrawn while above i).
 * Reference: numpy `random/_mt19937.pyx` `_legacy_seeding`, `random/mtrand.pyx` `shuffle`,
 * `random/src/distributions/distributions.c` `random_interval`; Matsumoto & Nishimura 1998.
 */
export function numpyLegacyPermutation(n: number, seed: number): Uint32Array {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new Error(`numpy seed must be an integer in [0, 2^32), got ${seed}`);
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
    throw new Error(`permutation size must be an integer in [0, 2^32), got ${n}`);
  const mt = new Uint32Array(624);
  mt[0] = seed >>> 0;
  for (let i = 1; i < 624; i++)
    mt[i] = (Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i) >>> 0;
  let mti = 624;
  const next = (): number => {
    if (mti >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      mti = 0;
    }
    let y = mt[mti++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  };
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = n - 1; i >= 1; i--) {
    let mask = i;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    let j: number;
    do j = (next() & mask) >>> 0;
    while (j > i);
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/** Examples a task trains on in Luo et al. (and CT0): 100,000. */
export const LUO_TRAIN_EXAMPLES = 100_000;

/**
 * Luo's `minus_data` for one prompt's n examples: numpy seed 0, shuffle, the first
 * int(total / prompts) in shuffled order. Every prompt of a task is drawn with the same seed over
 * the same rows, so gigaword's three constraint prompts draw the same 33,333 headlines, and
 * ELI5's two prompts the same 50,000 posts, as in Luo's code.
 */
export function luoIndices(
  n: number,
  prompts: number,
  total = LUO_TRAIN_EXAMPLES,
  seed = 0,
): Uint32Array {
  return numpyLegacyPermutation(n, seed).subarray(0, Math.floor(total / prompts));
}

/**
 * A task's training examples as Luo drew them: for each prompt in order, CT0's processing of
 * every row and Luo's draw of int(total / prompts) of them; the draws concatenated.
 */
export function luoTrain(
  rows: readonly Ct0Row[],
  prompts: readonly Ct0PromptName[],
  srcKeys: readonly string[],
  where?: (i: number) => string,
  total = LUO_TRAIN_EXAMPLES,
): InstructionExample[] {
  return prompts.flatMap((p) =>
    applyCt0(rows, p, srcKeys, { select: luoIndices(rows.length, prompts.length, total), where }),
  );
}

/** A task's test examples: CT0's processing of every test row under each of Luo's test prompts. */
export function ct0Test(
  rows: readonly Ct0Row[],
  prompts: readonly Ct0PromptName[],
  srcKeys: readonly string[],
  where?: (i: number) => string,
): InstructionExample[] {
  // The gold output is the first reference (Luo's list-to-string quirk is for training only).
  return prompts.flatMap((p) =>
    applyCt0(rows, p, srcKeys, { where }).map((ex) => ({ ...ex, output: ex.references![0] })),
  );
}
