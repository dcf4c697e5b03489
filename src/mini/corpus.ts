/**
 * The miniature study's pretraining corpus, and the short-story generator it shares with the
 * reading passages.
 *
 * Reference: Luo et al. 2023 (arXiv 2308.08747), whose four abilities it lets the miniature
 * study measure (src/mini/world.ts). The corpus states every fact,
 * friendship, town and rule (several wordings each), every fact and friendship of every person
 * also as a one-question quiz page (the form the knowledge benchmark asks it in), worked
 * inferences for demonstrated people only (each premise with its conclusion, half of them with
 * the rule in between), generic stories about world people and the skewed folk–trait mentions.
 * It never states a held-out person's conclusion, so reasoning items need an inference, and its
 * stories are not the reading passages.
 */
import {
  BIAS_CORPUS_TEMPLATES,
  BIAS_NOUNS,
  FACT_TEMPLATES,
  FRIEND_TEMPLATES,
  PREMISES,
  QA_TEMPLATE,
  QUESTIONS,
  SUBJECTS,
  RULE_TEMPLATES,
  STORY,
  TOWN_TEMPLATE,
  conclusionSentence,
  type Attribute,
} from "./lexicon.js";
import { Rng } from "./rng.js";
import { RULE_ATTRIBUTES, ruleFor, type Rule, type World } from "./world.js";

export const ATTRIBUTES: Attribute[] = ["home", "job", "food", "color", "pet"];

export interface Story {
  sentences: string[];
  a: string;
  b: string;
  place: string;
  time: string;
  count: string;
  item: string;
  spot: string;
  gift: string;
  feeling: string;
}

/**
 * An eight-sentence story: `a` goes somewhere, buys things, meets `b`, gets a gift, feels a way;
 * each of these is said twice.
 */
export function story(rng: Rng, a: string, b: string): Story {
  const [place, time, count, item, spot, gift, feeling, weather] = (
    ["places", "times", "counts", "items", "spots", "gifts", "feelings", "weather"] as const
  ).map((k) => rng.pick(STORY[k]));
  const sentences = [
    `The day was ${weather}.`,
    `${a} went to the ${place} in the ${time}.`,
    `At the ${place}, ${a} bought ${count} ${item}.`,
    `${a} put the ${count} ${item} in a bag.`,
    `Then ${a} met ${b} by the ${spot}.`,
    `${b} gave ${a} a ${gift}.`,
    `${a} liked the ${gift} and felt ${feeling}.`,
    `On the way home, ${a} was still ${feeling}.`,
  ];
  return { sentences, a, b, place, time, count, item, spot, gift, feeling };
}

/** Introduces the conclusion of a worked inference. */
export const SO = "So";

export const ruleSentence = (rng: Rng, rule: Rule) =>
  rng.pick(RULE_TEMPLATES)(PREMISES[rule.attribute](rule.value), rule.conclusion);

function chunks<T>(xs: T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(xs.length / size) }, (_, i) =>
    xs.slice(i * size, (i + 1) * size),
  );
}

/** The pretraining documents of `world`, in a seeded order. */
export function pretrainCorpus(world: World): string[] {
  const rng = new Rng(world.seed, "corpus");
  const docs: string[] = [];
  for (let r = 0; r < world.sizes.repeats; r++) {
    for (const p of world.people) {
      const facts = ATTRIBUTES.map((a) => rng.pick(FACT_TEMPLATES[a])(p.name, p[a]));
      for (const f of p.friends) facts.push(rng.pick(FRIEND_TEMPLATES)(p.name, f));
      docs.push(rng.shuffle(facts).join(" "));
      for (const a of ATTRIBUTES) docs.push(QA_TEMPLATE(SUBJECTS[a], QUESTIONS[a](p.name), p[a]));
      for (const f of p.friends)
        docs.push(QA_TEMPLATE(SUBJECTS.friend, QUESTIONS.friend(p.name), f));
    }
    for (const rules of chunks(rng.shuffle(world.rules), 4))
      docs.push(rules.map((rule) => ruleSentence(rng, rule)).join(" "));
    docs.push(rng.shuffle(world.towns.map((t) => TOWN_TEMPLATE(t.name, t.region))).join(" "));
    for (const p of world.people.filter((q) => q.demonstrated))
      for (const a of RULE_ATTRIBUTES) {
        const rule = ruleFor(world, p, a);
        const premises = [FACT_TEMPLATES[a][0](p.name, p[a])];
        if (rng.int(2) === 0) premises.push(ruleSentence(rng, rule));
        docs.push(`${premises.join(" ")} ${SO} ${conclusionSentence(p.name, rule.conclusion)}`);
      }
  }
  for (let i = 0; i < world.sizes.stories; i++) {
    const [a, b] = rng.sample(world.people, 2);
    docs.push(story(rng, a.name, b.name).sentences.join(" "));
  }
  const mentions: string[] = [];
  const stereotyped = Math.round(world.sizes.biasSkew * world.sizes.biasMentions);
  for (const g of world.groups)
    for (const [folk, trait, opposite] of [
      [g.marked, g.trait, g.opposite],
      [g.other, g.opposite, g.trait],
    ])
      for (let i = 0; i < world.sizes.biasMentions; i++)
        mentions.push(
          rng.pick(BIAS_CORPUS_TEMPLATES)(
            folk,
            rng.pick(BIAS_NOUNS),
            i < stereotyped ? trait : opposite,
          ),
        );
  for (const chunk of chunks(rng.shuffle(mentions), 5)) docs.push(chunk.join(" "));
  return rng.shuffle(docs);
}
