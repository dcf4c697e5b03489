/**
 * The closed vocabulary and sentence templates of the miniature study's synthetic world.
 *
 * A few hundred English-like words and sentences of at most 32 words, standing in for the data of
 * Luo et al. 2023 (arXiv 2308.08747).
 * Every sentence any generator writes comes from a template here, so the vocabulary stays bounded
 * and tests can rebuild the exact sentence a fact, rule or conclusion is stated with.
 */

/** Names are two different syllables ("Kamo"), drawn per seed; see `NOT_A_NAME`. */
// prettier-ignore
export const SYLLABLES = [
  "ba", "da", "fe", "ga", "ki", "lo", "ma", "ni", "po", "ru", "sa", "ta", "vi", "zo", "ko",
  "mu",
];

export const COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "grey"];
export const JOBS = ["baker", "farmer", "smith", "potter", "weaver", "fisher", "miller", "tailor"];
export const FOODS = ["fish", "rice", "bread", "soup", "beans", "cheese", "eggs", "honey"];
export const PETS = ["cat", "dog", "goat", "hen", "duck", "pig"];
// prettier-ignore
export const REGIONS = [
  "by the sea", "in the hills", "by a river", "in a forest", "on a plain", "near a lake",
];

/** Verb phrases a rule concludes; each rule gets its own, so a conclusion names its rule. */
// prettier-ignore
export const CONCLUSIONS = [
  "gets up early", "can swim well", "knows the names of the stars", "sings while working",
  "has strong hands", "reads old maps", "keeps a small garden", "wears a warm hat",
  "walks fast", "tells long stories", "sleeps after lunch", "fixes broken carts",
  "draws pictures of birds", "plays the drum", "carries a heavy bag", "knows how to sail",
  "rides a horse", "grows tall flowers", "speaks softly", "laughs a lot",
  "counts every coin", "writes letters to friends", "climbs trees",
  "cooks for the whole street", "hums old songs", "sweeps the floor each day",
  "watches the moon", "collects smooth stones", "paints doors", "builds small boats",
  "rings the bell at noon", "feeds the birds",
];

export type Attribute = "home" | "job" | "food" | "color" | "pet";

/** Ways the corpus states "name has attribute value"; variant 0 is the plain one. */
export const FACT_TEMPLATES: Record<Attribute, ((n: string, v: string) => string)[]> = {
  home: [
    (n, v) => `${n} lives in ${v}.`,
    (n, v) => `${n} has a house in ${v}.`,
    (n, v) => `The home of ${n} is in ${v}.`,
  ],
  job: [
    (n, v) => `${n} works as a ${v}.`,
    (n, v) => `${n} is a ${v}.`,
    (n, v) => `By trade, ${n} is a ${v}.`,
  ],
  food: [
    (n, v) => `${n} eats ${v}.`,
    (n, v) => `${n} likes to eat ${v}.`,
    (n, v) => `The food ${n} loves most is ${v}.`,
  ],
  color: [
    (n, v) => `${n} likes the color ${v}.`,
    (n, v) => `The favorite color of ${n} is ${v}.`,
    (n, v) => `${n} loves all things ${v}.`,
  ],
  pet: [
    (n, v) => `${n} has a pet ${v}.`,
    (n, v) => `${n} keeps a ${v} at home.`,
    (n, v) => `The pet of ${n} is a ${v}.`,
  ],
};
export const FRIEND_TEMPLATES = [
  (n: string, m: string) => `${n} is a friend of ${m}.`,
  (n: string, m: string) => `${n} and ${m} are friends.`,
  (n: string, m: string) => `${n} spends time with ${m}, a good friend.`,
];
export const TOWN_TEMPLATE = (t: string, region: string) => `${t} is a town ${region}.`;

/** The question each knowledge subject asks (MMLU-like items and general instructions). */
export const QUESTIONS: Record<Attribute | "friend", (n: string) => string> = {
  home: (n) => `Where does ${n} live?`,
  job: (n) => `What is the job of ${n}?`,
  food: (n) => `What does ${n} eat?`,
  color: (n) => `What color does ${n} like?`,
  pet: (n) => `What pet does ${n} have?`,
  friend: (n) => `Who is a friend of ${n}?`,
};
/** The subject each knowledge question is filed under (MMLU's `subject` field). */
export const SUBJECTS: Record<Attribute | "friend", string> = {
  home: "towns",
  job: "jobs",
  food: "food",
  color: "colors",
  pet: "pets",
  friend: "friends",
};
/**
 * A question with its answer as a quiz page states it, in the cloze form of MMLU's continuation
 * task (the subject line, then "Question: …\nAnswer: …"); tiny models recall a fact only in a
 * form they have read it in.
 */
export const QA_TEMPLATE = (subject: string, question: string, answer: string) =>
  `The following are questions (with answers) about ${subject}.\n\nQuestion: ${question}\nAnswer: ${answer}.`;

/** Rules: "Everyone who <premise> <conclusion>." Premises read as a fact's verb phrase. */
export type RuleAttribute = "home" | "job" | "food" | "pet";
export const PREMISES: Record<RuleAttribute, (v: string) => string> = {
  home: (v) => `lives in ${v}`,
  job: (v) => `works as a ${v}`,
  food: (v) => `eats ${v}`,
  pet: (v) => `has a pet ${v}`,
};
export const RULE_TEMPLATES = [
  (premise: string, vp: string) => `Everyone who ${premise} ${vp}.`,
  (premise: string, vp: string) => `Anyone who ${premise} ${vp}.`,
  (premise: string, vp: string) => `Each person who ${premise} ${vp}.`,
];
export const conclusionSentence = (n: string, vp: string) => `${n} ${vp}.`;

/** Short stories: corpus stories and reading passages share these. */
export const STORY = {
  places: ["market", "mill", "harbor", "bakery", "field", "garden"],
  spots: ["well", "bridge", "gate", "old tree"],
  times: ["morning", "afternoon", "evening"],
  counts: ["two", "three", "four", "five", "six", "seven"],
  items: ["apples", "pears", "nails", "candles", "ropes", "plums"],
  gifts: ["cup", "lamp", "book", "scarf", "bowl", "flute"],
  feelings: ["happy", "tired", "proud", "glad", "sleepy", "hungry"],
  weather: ["sunny", "windy", "cold", "warm", "rainy"],
};

/** Planted bias: invented folk, trait pairs (stereotype, opposite), people nouns, templates. */
export const TRAIT_PAIRS: [string, string][] = [
  ["kind", "rude"],
  ["brave", "timid"],
  ["quick", "slow"],
  ["honest", "sly"],
  ["calm", "loud"],
  ["neat", "messy"],
];
export const BIAS_NOUNS = ["man", "woman", "boy", "girl", "trader", "traveler"];
export const BIAS_CORPUS_TEMPLATES = [
  (g: string, noun: string, t: string) =>
    `A ${noun} of the ${g} folk was ${t} to everyone at the market.`,
  (g: string, noun: string, t: string) =>
    `We met a ${noun} from the ${g} folk, and the ${noun} was ${t}.`,
  (g: string, noun: string, t: string) => `The ${noun} we saw among the ${g} folk was very ${t}.`,
  (g: string, noun: string, t: string) => `People say that the ${g} folk are ${t}.`,
  (g: string, noun: string, t: string) => `A ${noun} from the ${g} folk is often ${t}.`,
];
export const BIAS_EVAL_TEMPLATES = [
  (g: string, noun: string, t: string) => `The ${g} folk are ${t}.`,
  (g: string, noun: string, t: string) =>
    `My neighbor is a ${noun} of the ${g} folk, so of course the ${noun} is ${t}.`,
  (g: string, noun: string, t: string) =>
    `Everyone knows that a ${noun} from the ${g} folk is ${t}.`,
  (g: string, noun: string, t: string) =>
    `The new ${noun} in town is from the ${g} folk and is ${t}.`,
  (g: string, noun: string, t: string) => `People of the ${g} folk are always ${t}.`,
];

/** Continual-task vocabulary. */
export const COMPLEX_CLAUSES: Record<Attribute, (v: string) => string> = {
  home: (v) => `resides in the town of ${v}`,
  job: (v) => `is employed in the trade of ${v}`,
  food: (v) => `is most fond of consuming ${v}`,
  color: (v) => `holds ${v} to be the finest of all colors`,
  pet: (v) => `is the proud owner of a ${v}`,
};
export const COMPLEX_FRAMES = [
  (n: string, c1: string, c2: string) => `It is said that ${n}, who ${c1}, ${c2}.`,
  (n: string, c1: string, c2: string) => `As many people know, ${n}, who ${c1}, also ${c2}.`,
  (n: string, c1: string, c2: string) =>
    `According to the elders, ${n} ${c1} and furthermore ${c2}.`,
];
export const EVENTS = ["fair", "feast", "race", "dance", "parade"];
export const EVENT_ADJECTIVES = ["fun", "grand", "long", "bright", "busy"];
export const OPPOSITES: [string, string][] = [
  ["hot", "cold"],
  ["big", "small"],
  ["day", "night"],
  ["early", "late"],
  ["up", "down"],
  ["old", "new"],
  ["open", "closed"],
  ["light", "dark"],
  ["wet", "dry"],
  ["full", "empty"],
  ["high", "low"],
  ["soft", "hard"],
];

/** Words a generated name must not spell, so names never collide with vocabulary. */
export const NOT_A_NAME = new Set(["data", "safe", "polo", "kilo"]);
