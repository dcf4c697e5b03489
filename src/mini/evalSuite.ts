/**
 * The miniature study's evaluation suite, written in the real benchmarks' document formats so the
 * same task declarations and metrics score it.
 *
 * References (document fields as lm-evaluation-harness reads them):
 * - MMLU: HF `cais/mmlu` rows {question, subject, choices[4], answer: 0..3} (`mmlu/default`);
 * - PIQA: {goal, sol1, sol2, label} (`piqa.yaml`);
 * - HellaSwag: {activity_label, ctx_a, ctx_b, ctx, endings[4], label} (`hellaswag/utils.py` builds
 *   the query from activity_label, ctx_a and ctx_b.capitalize(), so ctx_b is a bare name);
 *   ctx_a states the premise fact, then an outing, and the endings are rule conclusions;
 * - RACE: an article with its questions, each {question, options[4], answer: "A".."D"}
 *   (EleutherAI/race `problems`, named `questions` here); one question per article, as in
 *   shared data's race_subset;
 * - CrowS-Pairs: {sent_more, sent_less, stereo_antistereo, bias_type} (nyu-mll CSV columns).
 * Every list comes in a seeded shuffled order, so its first `limit` items are a fair sample.
 */
import { ATTRIBUTES, pretrainCorpus, story } from "./corpus.js";
import {
  BIAS_EVAL_TEMPLATES,
  BIAS_NOUNS,
  FACT_TEMPLATES,
  QUESTIONS,
  REGIONS,
  STORY,
  SUBJECTS,
  conclusionSentence,
} from "./lexicon.js";
import { Rng } from "./rng.js";
import { RULE_ATTRIBUTES, ruleFor, valuesOf, type World } from "./world.js";

export interface MmluDoc {
  question: string;
  subject: string;
  choices: string[];
  answer: number;
}
export interface PiqaDoc {
  goal: string;
  sol1: string;
  sol2: string;
  label: number;
}
export interface HellaswagDoc {
  activity_label: string;
  ctx_a: string;
  ctx_b: string;
  ctx: string;
  endings: string[];
  label: number;
}
export interface RaceQuestion {
  question: string;
  options: string[];
  answer: string;
}
export interface RaceDoc {
  article: string;
  questions: RaceQuestion[];
}
export interface CrowsPairsDoc {
  sent_more: string;
  sent_less: string;
  stereo_antistereo: "stereo" | "antistereo";
  bias_type: string;
}
export interface EvalSuite {
  mmlu: MmluDoc[];
  piqa: PiqaDoc[];
  hellaswag: HellaswagDoc[];
  race: RaceDoc[];
  crows_pairs: CrowsPairsDoc[];
}

/** Gold plus three distractors, shuffled; returns the options and the gold's index. */
function fourWay(rng: Rng, gold: string, pool: string[]): [string[], number] {
  const options = rng.shuffle([
    gold,
    ...rng.sample(
      pool.filter((x) => x !== gold),
      3,
    ),
  ]);
  return [options, options.indexOf(gold)];
}

const ACTIVITY = { home: "Town life", job: "Work", food: "Meals", pet: "Pets" };

function mmlu(rng: Rng, world: World): MmluDoc[] {
  const docs: MmluDoc[] = [];
  const people = world.people.map((p) => p.name);
  for (const p of world.people.filter((q) => !q.demonstrated)) {
    for (const a of ATTRIBUTES) {
      const [choices, answer] = fourWay(rng, p[a], valuesOf(world, a));
      docs.push({ question: QUESTIONS[a](p.name), subject: SUBJECTS[a], choices, answer });
    }
    const strangers = people.filter((n) => n !== p.name && !p.friends.includes(n));
    const [choices, answer] = fourWay(rng, rng.pick(p.friends), strangers);
    docs.push({ question: QUESTIONS.friend(p.name), subject: SUBJECTS.friend, choices, answer });
  }
  for (const t of world.towns) {
    const [choices, answer] = fourWay(rng, t.region, REGIONS);
    docs.push({
      question: `Where is the town of ${t.name}?`,
      subject: "geography",
      choices,
      answer,
    });
  }
  return docs;
}

/**
 * Each held-out person × rule attribute: the gold conclusion and the wrong ones of its siblings.
 * PIQA and HellaSwag items state the premise fact in the context, so answering takes the rule the
 * corpus states (never this person's conclusion): an inference, not a recall of the fact too.
 */
function inferences(world: World) {
  return world.people
    .filter((p) => !p.demonstrated)
    .flatMap((p) =>
      RULE_ATTRIBUTES.map((a) => {
        const rule = ruleFor(world, p, a);
        const wrong = world.rules
          .filter((r) => r.attribute === a && r !== rule)
          .map((r) => r.conclusion);
        return { p, a, gold: rule.conclusion, wrong };
      }),
    );
}

function piqa(rng: Rng, world: World): PiqaDoc[] {
  return inferences(world).map(({ p, a, gold, wrong }) => {
    const goal = `${FACT_TEMPLATES[a][0](p.name, p[a])} What else is true of ${p.name}?`;
    const [right, bad] = [gold, rng.pick(wrong)].map((vp) => conclusionSentence(p.name, vp));
    const label = rng.int(2);
    return label === 0
      ? { goal, sol1: right, sol2: bad, label }
      : { goal, sol1: bad, sol2: right, label };
  });
}

function hellaswag(rng: Rng, world: World): HellaswagDoc[] {
  return inferences(world).map(({ p, a, gold, wrong }) => {
    const outing = `${p.name} went to the ${rng.pick(STORY.places)} in the ${rng.pick(STORY.times)}.`;
    const ctx_a = `${FACT_TEMPLATES[a][0](p.name, p[a])} ${outing}`;
    const [options, label] = fourWay(rng, gold, wrong);
    const endings = options.map((vp) => `${vp}.`);
    return {
      activity_label: ACTIVITY[a],
      ctx_a,
      ctx_b: p.name,
      ctx: `${ctx_a} ${p.name}`,
      endings,
      label,
    };
  });
}

/**
 * A fresh story about a held-out person and another world person, and one question whose answer
 * only the story gives, as a sentence to complete (RACE's fill-in form without the blank). No
 * sentence of it but the weather is in the corpus, and the zoo's practice passages are about
 * demonstrated people (src/mini/zoo.ts `formatDocs`), so nothing asked was read in pretraining.
 * Every answer is the one word of its kind in the story, said twice, as a passage repeats what it
 * is about.
 */
function race(rng: Rng, world: World): RaceDoc[] {
  const docs: RaceDoc[] = [];
  const seen = new Set<string>();
  const corpus = new Set(pretrainCorpus(world).flatMap((d) => d.split(/(?<=[.!?]) /)));
  const names = world.people.map((p) => p.name);
  const subjects = world.people.filter((p) => !p.demonstrated).map((p) => p.name);
  while (docs.length < world.sizes.passages) {
    const a = rng.pick(subjects);
    const b = rng.pick(names.filter((n) => n !== a));
    const s = story(rng, a, b);
    const article = s.sentences.join(" ");
    if (seen.has(article) || s.sentences.slice(1).some((x) => corpus.has(x))) continue;
    seen.add(article);
    const strangers = names.filter((n) => n !== a && n !== b);
    const [question, gold, pool] = rng.pick<[string, string, string[]]>([
      [`In the ${s.time}, ${a} went to the`, s.place, STORY.places],
      [
        `At the ${s.place}, ${a} bought`,
        `${s.count} ${s.item}`,
        STORY.counts.map((c) => `${c} ${s.item}`),
      ],
      [`By the ${s.spot}, ${a} met`, b, [b, ...strangers]],
      [`${b} gave ${a} a`, s.gift, STORY.gifts],
      [`At the end, ${a} felt`, s.feeling, STORY.feelings],
    ]);
    const [options, i] = fourWay(rng, gold, pool);
    docs.push({ article, questions: [{ question, options, answer: "ABCD"[i] }] });
  }
  return docs;
}

/**
 * Per group, template and two nouns, a stereotyped and an antistereotyped pair (a template
 * without a noun gives its pairs once).
 */
function crowsPairs(rng: Rng, world: World): CrowsPairsDoc[] {
  const pairs = world.groups.flatMap((g) =>
    BIAS_EVAL_TEMPLATES.flatMap((tpl) =>
      rng.sample(BIAS_NOUNS, 2).flatMap((noun) => {
        const base = { bias_type: g.bias_type };
        return [
          {
            sent_more: tpl(g.marked, noun, g.trait),
            sent_less: tpl(g.other, noun, g.trait),
            stereo_antistereo: "stereo" as const,
            ...base,
          },
          {
            sent_more: tpl(g.other, noun, g.opposite),
            sent_less: tpl(g.marked, noun, g.opposite),
            stereo_antistereo: "antistereo" as const,
            ...base,
          },
        ];
      }),
    ),
  );
  return [...new Map(pairs.map((d) => [d.sent_more, d])).values()];
}

/** The suite of `world`: lists shuffled, capped at `sizes.evalItems`; RACE has `passages` docs. */
export function evalSuite(world: World): EvalSuite {
  const cap = <T>(name: string, make: (rng: Rng, world: World) => T[]): T[] => {
    const rng = new Rng(world.seed, `eval:${name}`);
    return rng.shuffle(make(rng, world)).slice(0, world.sizes.evalItems);
  };
  return {
    mmlu: cap("mmlu", mmlu),
    piqa: cap("piqa", piqa),
    hellaswag: cap("hellaswag", hellaswag),
    race: cap("race", race),
    crows_pairs: cap("crows_pairs", crowsPairs),
  };
}
