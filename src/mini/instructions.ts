/**
 * Instruction data of the miniature study: a general instruction set (the Alpaca analogue) and
 * five continual instruction tasks modelled on those Luo et al. 2023 (arXiv 2308.08747) take from
 * Scialom et al. 2022 (CT0): simplification (ASSET), empathetic dialogue, inquisitive question
 * generation, explanation (e-SNLI) and headline generation with a required word (Gigaword).
 *
 * Reference: Alpaca's row format {instruction, input, output} (tatsu-lab/stanford_alpaca
 * `alpaca_data.json`). Each task writes its own
 * output style, so tuning on it pulls the model away from the general abilities. No row states a
 * held-out person's rule conclusion (those are what the reasoning evaluation asks).
 */
import { ATTRIBUTES, ruleSentence, story } from "./corpus.js";
import {
  COLORS,
  COMPLEX_CLAUSES,
  COMPLEX_FRAMES,
  EVENT_ADJECTIVES,
  EVENTS,
  FACT_TEMPLATES,
  FOODS,
  JOBS,
  OPPOSITES,
  PETS,
  PREMISES,
  QUESTIONS,
  STORY,
  conclusionSentence,
} from "./lexicon.js";
import { Rng } from "./rng.js";
import { RULE_ATTRIBUTES, ruleFor, valuesOf, type Person, type World } from "./world.js";

export interface InstructionRow {
  instruction: string;
  input: string;
  output: string;
}

export const TASK_NAMES = [
  "simplification",
  "empathetic_dialogue",
  "inquisitive_qg",
  "explanation",
  "headline_generation",
] as const;
export type TaskName = (typeof TASK_NAMES)[number];

export interface ContinualTask {
  name: TaskName;
  train: InstructionRow[];
  test: InstructionRow[];
}

type RowMaker = (rng: Rng, world: World) => InstructionRow;

const fact = (p: Person, a: (typeof ATTRIBUTES)[number]) => FACT_TEMPLATES[a][0](p.name, p[a]);
const other = (rng: Rng, xs: string[], not: string) => rng.pick(xs.filter((x) => x !== not));
const demonstrated = (world: World) => world.people.filter((p) => p.demonstrated);

/** The general abilities in instruction form; facts and inferences use demonstrated people. */
const GENERAL_KINDS = {
  fact: (rng, world) => {
    const p = rng.pick(demonstrated(world));
    const a = rng.pick(ATTRIBUTES);
    return { instruction: "Answer the question.", input: QUESTIONS[a](p.name), output: fact(p, a) };
  },
  yes_no: (rng, world) => {
    const p = rng.pick(demonstrated(world));
    const job = rng.pick(JOBS);
    const output = job === p.job ? `Yes, ${p.name} is a ${job}.` : `No, ${p.name} is a ${p.job}.`;
    return { instruction: "Answer yes or no.", input: `Is ${p.name} a ${job}?`, output };
  },
  inference: (rng, world) => {
    const p = rng.pick(demonstrated(world));
    const a = rng.pick(RULE_ATTRIBUTES);
    const rule = ruleFor(world, p, a);
    const input = `${fact(p, a)} ${ruleSentence(rng, rule)}`;
    const output = conclusionSentence(p.name, rule.conclusion);
    return { instruction: "What follows from these sentences?", input, output };
  },
  list: (rng, world) => {
    const [kind, xs] = rng.pick<[string, string[]]>([
      ["colors", COLORS],
      ["jobs", JOBS],
      ["foods", FOODS],
      ["pets", PETS],
      ["towns", valuesOf(world, "home")],
    ]);
    const [x, y, z] = rng.sample(xs, 3);
    return { instruction: `Name three ${kind}.`, input: "", output: `${x}, ${y} and ${z}.` };
  },
  opposite: (rng) => {
    const [x, y] = rng.shuffle(rng.pick(OPPOSITES));
    return { instruction: "Give the opposite of the word.", input: x, output: y };
  },
  summary: (rng, world) => {
    const [a, b] = rng.sample(world.people, 2);
    const s = story(rng, a.name, b.name);
    const output = `${s.a} went to the ${s.place}, bought ${s.item} and met ${s.b}.`;
    return {
      instruction: "Sum up the story in one sentence.",
      input: s.sentences.join(" "),
      output,
    };
  },
} satisfies Record<string, RowMaker>;

/** The five continual tasks; each row's output follows from its input by the task's style. */
const TASKS = {
  simplification: (rng, world) => {
    const p = rng.pick(world.people);
    const [a1, a2] = rng.sample(ATTRIBUTES, 2);
    const frame = rng.pick(COMPLEX_FRAMES);
    const input = frame(p.name, COMPLEX_CLAUSES[a1](p[a1]), COMPLEX_CLAUSES[a2](p[a2]));
    return {
      instruction: "Rewrite the sentence in simple words.",
      input,
      output: `${fact(p, a1)} ${fact(p, a2)}`,
    };
  },
  empathetic_dialogue: (rng, world) => {
    const [gift, place, town, event] = [
      rng.pick(STORY.gifts),
      rng.pick(STORY.places),
      rng.pick(world.towns).name,
      rng.pick(EVENTS),
    ];
    const [pet, name] = [rng.pick(PETS), rng.pick(world.people).name];
    const [input, output] = rng.pick([
      [
        `I lost my ${gift} at the ${place} today.`,
        `I am so sorry you lost your ${gift}. I hope someone finds it at the ${place}.`,
      ],
      [
        `My ${pet} is sick and will not eat.`,
        `That must be hard. I hope your ${pet} feels better very soon.`,
      ],
      [
        `My friend ${name} came all the way from ${town} to see me!`,
        `How lovely! You must be so happy that ${name} came to see you.`,
      ],
      [
        `I won the ${event} in ${town} today!`,
        `Well done! You worked hard for the ${event} and you should be proud.`,
      ],
      [
        `Someone broke my ${gift} and did not say sorry.`,
        `That is not fair to you. It is fine to feel upset about your ${gift}.`,
      ],
      [
        `There is a storm over ${town} tonight and I am alone.`,
        `That sounds scary. Stay inside, keep warm, and the storm will pass.`,
      ],
    ]);
    return { instruction: "Reply to the speaker with kindness and care.", input, output };
  },
  inquisitive_qg: (rng, world) => {
    const [a, b] = rng.sample(world.people, 2).map((p) => p.name);
    const s = story(rng, a, b);
    const [event, question] = rng.pick([
      [`${a} bought ${s.count} ${s.item}.`, `Why did ${a} buy ${s.count} ${s.item}?`],
      [`${a} gave ${b} a ${s.gift}.`, `Why did ${a} give ${b} a ${s.gift}?`],
      [`${a} ran to the ${s.spot}.`, `Why did ${a} run to the ${s.spot}?`],
      [
        `${a} felt ${s.feeling} after the ${rng.pick(EVENTS)}.`,
        `What made ${a} feel ${s.feeling}?`,
      ],
    ]);
    const input = `${s.sentences[1]} ${event}`;
    return {
      instruction: "Read the text and ask a question about what you wonder.",
      input,
      output: question,
    };
  },
  explanation: (rng, world) => {
    const instruction = "Explain whether the second sentence follows from the first.";
    if (rng.next() < 0.3) {
      const p = rng.pick(demonstrated(world));
      const rule = ruleFor(world, p, rng.pick(RULE_ATTRIBUTES));
      const premise = PREMISES[rule.attribute](rule.value);
      const hypothesis = conclusionSentence(p.name, rule.conclusion);
      const output = `Yes. ${p.name} ${premise}, and everyone who ${premise} ${rule.conclusion}, so ${hypothesis}`;
      return {
        instruction,
        input: `Premise: ${fact(p, rule.attribute)} Hypothesis: ${hypothesis}`,
        output,
      };
    }
    const p = rng.pick(world.people);
    const [a, why] = rng.pick([
      ["home", "a person lives in only one town"],
      ["job", "a person has only one job"],
      ["color", "a person has only one favorite color"],
    ] as const);
    const w = other(rng, valuesOf(world, a), p[a]);
    const output = `No. ${fact(p, a).slice(0, -1)}, and ${why}, so it is not true that ${FACT_TEMPLATES[a][0](p.name, w)}`;
    return {
      instruction,
      input: `Premise: ${fact(p, a)} Hypothesis: ${FACT_TEMPLATES[a][0](p.name, w)}`,
      output,
    };
  },
  headline_generation: (rng, world) => {
    const p = rng.pick(world.people);
    const [town, event, adj, count] = [
      p.home,
      rng.pick(EVENTS),
      rng.pick(EVENT_ADJECTIVES),
      rng.pick(STORY.counts),
    ];
    const input = `Many people came to ${town} for the ${event}. ${p.name}, a ${p.job}, said the ${event} was ${adj}. The ${event} went on for ${count} days.`;
    const [word, headline] = rng.pick([
      ["crowd", `Big crowd at the ${town} ${event}`],
      ["joy", `Joy in ${town} as the ${event} comes`],
      ["days", `${town} ${event} lasts ${count} days`],
      ["news", `Good news from the ${event} in ${town}`],
      [p.job, `A ${p.job} speaks about the ${town} ${event}`],
      [adj, `A ${adj} ${event} in ${town}`],
    ]);
    return {
      instruction: `Write a headline for the news that uses the word "${word}".`,
      input,
      output: headline,
    };
  },
} satisfies Record<TaskName, RowMaker>;

/** `n` rows with distinct (instruction, input), or an error if the maker cannot supply them. */
function distinctRows(make: () => InstructionRow, n: number, what: string): InstructionRow[] {
  const seen = new Set<string>();
  const rows: InstructionRow[] = [];
  for (let tries = 0; rows.length < n; tries++) {
    if (tries > 50 * n + 1000)
      throw new Error(`${what}: only ${rows.length} distinct rows of ${n} asked`);
    const row = make();
    const key = `${row.instruction}\n${row.input}`;
    if (!seen.has(key)) (seen.add(key), rows.push(row));
  }
  return rows;
}

/** The Alpaca-like general instruction set: `sizes.general` rows of mixed kinds. */
export function generalInstructions(world: World): InstructionRow[] {
  const rng = new Rng(world.seed, "general");
  const kinds = Object.values(GENERAL_KINDS) as RowMaker[];
  return distinctRows(() => rng.pick(kinds)(rng, world), world.sizes.general, "general");
}

/** The five continual tasks in CT0's order (as listed above), with disjoint train and test rows. */
export function continualTasks(world: World): ContinualTask[] {
  return TASK_NAMES.map((name) => {
    const rng = new Rng(world.seed, `task:${name}`);
    const n = world.sizes.taskTrain + world.sizes.taskTest;
    const rows = distinctRows(() => TASKS[name](rng, world), n, name);
    return {
      name,
      train: rows.slice(0, world.sizes.taskTrain),
      test: rows.slice(world.sizes.taskTrain),
    };
  });
}
