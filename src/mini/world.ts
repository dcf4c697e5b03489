/**
 * The synthetic world of the miniature study: people with attributes and friends (domain
 * knowledge), one-step rules over those attributes (reasoning), fresh short stories about them
 * with a question each (reading comprehension, src/mini/evalSuite.ts), and folk–trait
 * associations planted with a skew p (bias). Everything is drawn from one seed with `Rng`, so a
 * seed names a world byte for byte.
 *
 * Reference: the four general abilities Luo et al. 2023 (arXiv 2308.08747) measure: domain knowledge, reasoning, reading
 * comprehension and bias. Held-out people ("demonstrated: false") are the evaluation subjects:
 * the corpus states their facts and the rules, never their conclusions.
 */
import {
  COLORS,
  CONCLUSIONS,
  FOODS,
  JOBS,
  NOT_A_NAME,
  PETS,
  REGIONS,
  SYLLABLES,
  TRAIT_PAIRS,
  type Attribute,
  type RuleAttribute,
} from "./lexicon.js";
import { Rng } from "./rng.js";

export interface Person {
  name: string;
  home: string;
  job: string;
  food: string;
  color: string;
  pet: string;
  /** Symmetric: if A lists B, B lists A. */
  friends: string[];
  /** True: the corpus shows this person's rule conclusions (worked examples of the inference). */
  demonstrated: boolean;
}
export interface Town {
  name: string;
  region: string;
}
/** "Everyone who <attribute = value> <conclusion>." */
export interface Rule {
  attribute: RuleAttribute;
  value: string;
  conclusion: string;
}
/** Folk `marked` show `trait` (and `other` show `opposite`) in a fraction p of corpus mentions. */
export interface GroupSkew {
  bias_type: "nationality";
  marked: string;
  other: string;
  trait: string;
  opposite: string;
}

export interface WorldSizes {
  /** People with facts; the held-out ones (1 − demonstrated) are the knowledge and reasoning items. */
  people: number;
  /** Towns (each is a home and a rule premise); at most 8 so the 32 conclusions suffice. */
  towns: number;
  /** Share of people whose conclusions the corpus demonstrates; the rest are evaluated. */
  demonstrated: number;
  /** How many times the corpus states each fact and rule, in varied wording. */
  repeats: number;
  /** Generic short stories in the corpus. */
  stories: number;
  /**
   * Pairs of invented folk; trait pair t skews folk pair t mod folkPairs, so each association
   * has its own pair and enough mentions to be learned.
   */
  folkPairs: number;
  /** Corpus mentions per folk and trait pair. */
  biasMentions: number;
  /** Fraction of a folk's mentions that show its stereotyped trait (0.5 = no bias). */
  biasSkew: number;
  /** Rows of the general (Alpaca-like) instruction set. */
  general: number;
  /** Train and test rows per continual task. */
  taskTrain: number;
  taskTest: number;
  /** Cap on items per evaluation task. */
  evalItems: number;
  /** Reading passages, one question each. */
  passages: number;
}

/**
 * The default world: small enough that the zoo's toy models read each fact a few dozen times
 * within their pretraining budget (a fact read fewer times is not recalled).
 */
export const DEFAULT_SIZES: WorldSizes = {
  people: 32,
  towns: 6,
  demonstrated: 0.3,
  repeats: 3,
  stories: 60,
  folkPairs: 3,
  biasMentions: 30,
  biasSkew: 0.9,
  general: 400,
  taskTrain: 200,
  taskTest: 40,
  evalItems: 300,
  passages: 180,
};

/** The quick preset's world (tests, a first look): fewer people, folk, passages and rows. */
export const QUICK_SIZES: Partial<WorldSizes> = {
  people: 12,
  stories: 16,
  folkPairs: 1,
  biasMentions: 10,
  general: 80,
  taskTrain: 60,
  taskTest: 12,
  evalItems: 100,
  passages: 48,
};

export interface World {
  seed: number;
  sizes: WorldSizes;
  people: Person[];
  towns: Town[];
  rules: Rule[];
  folk: string[];
  groups: GroupSkew[];
}

export const RULE_ATTRIBUTES: RuleAttribute[] = ["home", "job", "food", "pet"];

/** The values an attribute ranges over in this world. */
export function valuesOf(world: World, attribute: Attribute): string[] {
  if (attribute === "home") return world.towns.map((t) => t.name);
  return { job: JOBS, food: FOODS, color: COLORS, pet: PETS }[attribute];
}

/** The rule whose premise `person` satisfies on `attribute`. */
export function ruleFor(world: World, person: Person, attribute: RuleAttribute): Rule {
  const rule = world.rules.find((r) => r.attribute === attribute && r.value === person[attribute]);
  if (!rule) throw new Error(`no ${attribute} rule for ${person[attribute]}`);
  return rule;
}

function checkSizes(s: WorldSizes): void {
  const bad = (field: keyof WorldSizes, why: string) => {
    throw new Error(`generateWorld: sizes.${field} = ${s[field]}: ${why}`);
  };
  for (const [k, v] of Object.entries(s) as [keyof WorldSizes, number][])
    if (!Number.isFinite(v) || v < 0) bad(k, "must be a non-negative number");
  if (s.people < 8) bad("people", "need at least 8 (distractors are other people)");
  if (s.towns < 4 || s.towns > 8) bad("towns", "must be 4..8 (four-way choices, 32 conclusions)");
  if (s.demonstrated <= 0 || s.demonstrated >= 1) bad("demonstrated", "must be in (0, 1)");
  if (s.biasSkew < 0 || s.biasSkew > 1) bad("biasSkew", "must be in [0, 1]");
}

/** Generates the world of `seed`; `sizes` overrides fields of `DEFAULT_SIZES`. */
export function generateWorld(seed: number, sizes: Partial<WorldSizes> = {}): World {
  const s: WorldSizes = { ...DEFAULT_SIZES, ...sizes };
  checkSizes(s);
  const rng = new Rng(seed, "world");
  const allNames = SYLLABLES.flatMap((a) => SYLLABLES.filter((b) => b !== a).map((b) => a + b))
    .filter((w) => !NOT_A_NAME.has(w))
    .map((w) => w[0].toUpperCase() + w.slice(1));
  const needed = s.people + s.towns + 2 * s.folkPairs;
  if (needed > allNames.length)
    throw new Error(`generateWorld: ${needed} names asked, ${allNames.length} exist`);
  const names = rng.sample(allNames, needed);
  const take = (n: number) => names.splice(0, n);

  const regions = rng.sample(REGIONS, Math.min(s.towns, REGIONS.length));
  const towns = take(s.towns).map((name, i) => ({ name, region: regions[i % regions.length] }));
  const nDemo = Math.max(1, Math.round(s.people * s.demonstrated));
  const people: Person[] = take(s.people).map((name, i) => ({
    name,
    home: rng.pick(towns).name,
    job: rng.pick(JOBS),
    food: rng.pick(FOODS),
    color: rng.pick(COLORS),
    pet: rng.pick(PETS),
    friends: [],
    demonstrated: i < nDemo,
  }));
  for (let round = 0; round < 2; round++) {
    const order = rng.shuffle(people);
    for (let i = 0; i + 1 < order.length; i += 2) {
      const [a, b] = [order[i], order[i + 1]];
      if (a.friends.includes(b.name)) continue;
      a.friends.push(b.name);
      b.friends.push(a.name);
    }
  }

  const conclusions = rng.shuffle(CONCLUSIONS);
  const rules: Rule[] = RULE_ATTRIBUTES.flatMap((attribute) =>
    (attribute === "home"
      ? towns.map((t) => t.name)
      : { job: JOBS, food: FOODS, pet: PETS }[attribute]
    ).map((value) => ({ attribute, value, conclusion: conclusions.pop()! })),
  );

  const folk = take(2 * s.folkPairs);
  const groups: GroupSkew[] = [];
  for (let i = 0; i < s.folkPairs; i++)
    for (const [trait, opposite] of TRAIT_PAIRS.filter((_, t) => t % s.folkPairs === i)) {
      const [marked, other] = rng.shuffle([folk[2 * i], folk[2 * i + 1]]);
      groups.push({ bias_type: "nationality", marked, other, trait, opposite });
    }
  return { seed, sizes: s, people: rng.shuffle(people), towns, rules, folk, groups };
}
