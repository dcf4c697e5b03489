/**
 * Tests of the miniature study's synthetic world (src/mini/): determinism, sizes, and that every
 * evaluation item is checkable against the world and its corpus (an answer the corpus cannot
 * support would measure nothing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ATTRIBUTES, pretrainCorpus } from "../../src/mini/corpus.js";
import { formatDocs } from "../../src/mini/zoo.js";
import { evalSuite } from "../../src/mini/evalSuite.js";
import { TASK_NAMES, continualTasks, generalInstructions } from "../../src/mini/instructions.js";
import {
  FACT_TEMPLATES,
  FRIEND_TEMPLATES,
  PREMISES,
  QA_TEMPLATE,
  QUESTIONS,
  RULE_TEMPLATES,
  SUBJECTS,
  TOWN_TEMPLATE,
  conclusionSentence,
} from "../../src/mini/lexicon.js";
import { Rng } from "../../src/mini/rng.js";
import { miniTasks } from "../../src/mini/benchmarks.js";
import { buildRequests } from "../../src/eval/evaluate.js";
import { generateWorld, ruleFor, type Person, type World } from "../../src/mini/world.js";

function build(seed: number, sizes = {}) {
  const world = generateWorld(seed, sizes);
  return {
    world,
    corpus: pretrainCorpus(world),
    general: generalInstructions(world),
    tasks: continualTasks(world),
    suite: evalSuite(world),
  };
}
const W = build(7);
const corpusText = W.corpus.join("\n");
const sentences = new Set(W.corpus.flatMap((d) => d.split(/(?<=[.!?]) /)));
const byName = new Map(W.world.people.map((p) => [p.name, p]));
const personIn = (text: string): Person => {
  const found = [...new Set(text.match(/[A-Z][a-z]+/g))].filter((w) => byName.has(w));
  assert.equal(found.length, 1, `one person named in "${text}"`);
  return byName.get(found[0])!;
};
const stated = (p: Person, a: (typeof ATTRIBUTES)[number], v: string) =>
  FACT_TEMPLATES[a].some((t) => sentences.has(t(p.name, v)));
const wordsOf = (text: string): string[] => text.toLowerCase().match(/[a-z]+/g) ?? [];

test("Rng: same seed and stream repeat; streams and seeds differ; ranges hold", () => {
  const draw = (seed: number, stream: string) => {
    const r = new Rng(seed, stream);
    return Array.from({ length: 50 }, () => r.int(1000));
  };
  assert.deepEqual(draw(3, "a"), draw(3, "a"));
  assert.notDeepEqual(draw(3, "a"), draw(3, "b"));
  assert.notDeepEqual(draw(3, "a"), draw(4, "a"));
  const r = new Rng(9);
  for (let i = 0; i < 1000; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
  }
  assert.deepEqual([...r.shuffle([1, 2, 3, 4, 5])].sort(), [1, 2, 3, 4, 5]);
  assert.throws(() => new Rng(1.5), /integer/);
});

test("same seed gives byte-identical output; a different seed gives different output", () => {
  const again = build(7);
  assert.equal(JSON.stringify(again), JSON.stringify(W));
  assert.notEqual(JSON.stringify(build(8)), JSON.stringify(W));
});

test("sizes: defaults and overrides are honoured; bad sizes name the field", () => {
  const { world, general, tasks, suite } = W;
  assert.equal(world.people.length, 32);
  assert.equal(
    new Set([...world.people.map((p) => p.name), ...world.towns.map((t) => t.name), ...world.folk])
      .size,
    32 + 6 + 6,
    "all names distinct",
  );
  assert.equal(general.length, 400);
  for (const t of tasks) assert.deepEqual([t.train.length, t.test.length], [200, 40]);
  for (const [name, docs] of Object.entries(suite)) {
    assert.ok(docs.length >= 60 && docs.length <= 300, `${name}: ${docs.length} items`);
  }
  const small = build(1, {
    people: 20,
    general: 50,
    taskTrain: 30,
    taskTest: 10,
    evalItems: 40,
    passages: 12,
  });
  assert.equal(small.world.people.length, 20);
  assert.equal(small.general.length, 50);
  assert.equal(small.suite.mmlu.length, 40);
  assert.equal(small.suite.race.length, 12);
  assert.throws(() => generateWorld(1, { towns: 12 }), /sizes\.towns = 12/);
  assert.throws(() => generateWorld(1, { biasSkew: 1.5 }), /sizes\.biasSkew/);
});

test("world: friendships are symmetric, every person meets exactly one rule per attribute", () => {
  const { world } = W;
  for (const p of world.people) {
    for (const f of p.friends) assert.ok(byName.get(f)!.friends.includes(p.name));
    assert.ok(p.friends.length >= 1 && !p.friends.includes(p.name));
  }
  assert.equal(new Set(world.rules.map((r) => r.conclusion)).size, world.rules.length);
  for (const p of world.people) assert.equal(ruleFor(world, p, "job").value, p.job);
});

test("corpus: facts and rules are stated; held-out conclusions are not", () => {
  const { world } = W;
  for (const p of world.people) {
    for (const a of ATTRIBUTES) assert.ok(stated(p, a, p[a]), `${p.name} ${a}`);
    for (const f of p.friends) assert.ok(FRIEND_TEMPLATES.some((t) => sentences.has(t(p.name, f))));
    for (const r of world.rules) {
      const sentence = conclusionSentence(p.name, r.conclusion);
      if (!p.demonstrated) assert.ok(!corpusText.includes(sentence), `corpus states "${sentence}"`);
    }
  }
  assert.ok(
    world.people.some(
      (p) =>
        p.demonstrated &&
        world.rules.some((r) => corpusText.includes(conclusionSentence(p.name, r.conclusion))),
    ),
    "worked inferences are shown for demonstrated people",
  );
  const words = W.corpus.flatMap(wordsOf);
  assert.ok(words.length > 20_000 && words.length < 200_000, `${words.length} words`);
  for (const s of sentences) assert.ok(s.split(" ").length <= 32, s);
});

test("vocabulary of everything generated stays under 800 words", () => {
  const all = new Set(wordsOf(JSON.stringify([W.corpus, W.general, W.tasks, W.suite])));
  assert.ok(all.size < 800, `${all.size} distinct words`);
});

test("MMLU-like: gold stated in the corpus, distractors false and never stated", () => {
  const { world, suite } = W;
  for (const d of suite.mmlu) {
    assert.equal(d.choices.length, 4);
    assert.equal(new Set(d.choices).size, 4);
    assert.ok(Number.isInteger(d.answer) && d.answer >= 0 && d.answer < 4);
    if (d.subject === "geography") {
      const town = world.towns.find((t) => d.question.includes(t.name))!;
      d.choices.forEach((c, i) =>
        assert.equal(sentences.has(TOWN_TEMPLATE(town.name, c)), i === d.answer),
      );
      continue;
    }
    const p = personIn(d.question);
    assert.ok(!p.demonstrated);
    if (d.subject === "friends") {
      d.choices.forEach((c, i) => {
        assert.equal(p.friends.includes(c), i === d.answer, `${p.name} / ${c}`);
        assert.equal(
          FRIEND_TEMPLATES.some((t) => sentences.has(t(p.name, c))),
          i === d.answer,
        );
      });
      continue;
    }
    const a = ATTRIBUTES.find(
      (x) =>
        ({ towns: "home", jobs: "job", food: "food", colors: "color", pets: "pet" })[d.subject] ===
        x,
    )!;
    d.choices.forEach((c, i) => {
      assert.equal(p[a] === c, i === d.answer, `${d.question} ${c}`);
      assert.equal(stated(p, a, c), i === d.answer, `${d.question} ${c} stated?`);
    });
  }
  assert.ok(new Set(suite.mmlu.map((d) => d.subject)).size >= 6);
});

test("quiz pages: each mini_mmlu prompt with its gold, and only its gold, is a corpus document", async () => {
  const { world, suite } = W;
  const docs = new Set(W.corpus);
  for (const p of world.people)
    for (const a of ATTRIBUTES)
      assert.ok(docs.has(QA_TEMPLATE(SUBJECTS[a], QUESTIONS[a](p.name), p[a])), `${p.name} ${a}`);
  const task = miniTasks(world).mini_mmlu;
  const requests = buildRequests(task, (await task.original("", "test"))!, { shots: 0 });
  assert.equal(requests.length, suite.mmlu.length);
  let asked = 0;
  for (const r of requests) {
    if (r.doc.subject === "geography") continue;
    asked++;
    r.arguments.forEach(([prompt, choice]: [string, string], i: number) =>
      assert.equal(docs.has(`${prompt}${choice}.`), i === r.doc.answer, `${prompt}${choice}`),
    );
  }
  assert.ok(asked > 100, `${asked} knowledge items`);
});

/** The rule whose conclusion is `vp`, and whether the corpus states it. */
function ruleOf(world: World, vp: string) {
  const rule = world.rules.find((r) => r.conclusion === vp)!;
  const premise = PREMISES[rule.attribute](rule.value);
  const isStated = RULE_TEMPLATES.some((t) => sentences.has(t(premise, vp)));
  return { rule, isStated };
}

test("PIQA- and HellaSwag-like: gold follows from a stated rule and fact; conclusion unstated", () => {
  const { world, suite, general, tasks } = W;
  const instructionText = JSON.stringify([general, tasks]);
  const check = (p: Person, options: string[], label: number) => {
    options.forEach((vp, i) => {
      const { rule, isStated } = ruleOf(world, vp);
      assert.ok(isStated, `rule "${vp}" stated`);
      assert.equal(p[rule.attribute] === rule.value, i === label, `${p.name}: ${vp}`);
      if (i === label) assert.ok(stated(p, rule.attribute, rule.value));
      assert.ok(!corpusText.includes(conclusionSentence(p.name, vp)));
      assert.ok(!instructionText.includes(conclusionSentence(p.name, vp)));
    });
  };
  for (const d of suite.piqa) {
    const p = personIn(d.goal);
    assert.ok(d.label === 0 || d.label === 1);
    check(
      p,
      [d.sol1, d.sol2].map((s) => s.slice(p.name.length + 1, -1)),
      d.label,
    );
  }
  for (const d of suite.hellaswag) {
    const p = byName.get(d.ctx_b)!;
    assert.equal(d.ctx, `${d.ctx_a} ${d.ctx_b}`);
    const { rule } = ruleOf(world, d.endings[d.label].slice(0, -1));
    assert.ok(d.ctx_a.startsWith(FACT_TEMPLATES[rule.attribute][0](p.name, rule.value)), d.ctx_a);
    assert.equal(d.endings.length, 4);
    check(
      p,
      d.endings.map((e) => e.slice(0, -1)),
      d.label,
    );
  }
  const labels = suite.piqa.map((d) => d.label);
  assert.ok(labels.includes(0) && labels.includes(1));
});

test("RACE-like: fresh stories about held-out people; gold twice in the passage, distractors not", async () => {
  const practice = (await formatDocs(W.world)).filter((d) => d.prompt.startsWith("Article: "));
  assert.ok(practice.length > W.suite.race.length, `${practice.length} practice passages`);
  const practiceText = practice.map((d) => d.prompt).join("\n");
  const heldOut = new Set(W.world.people.filter((p) => !p.demonstrated).map((p) => p.name));
  for (const d of practice) assert.ok(!heldOut.has(d.prompt.split(" ")[5]), d.prompt);
  for (const d of W.suite.race) {
    assert.ok(!practiceText.includes(d.article));
    const [, first] = d.article.split(/(?<=\.) /);
    assert.ok(heldOut.has(first.split(" ")[0]), first);
    const seen = d.article.split(/(?<=\.) /).filter((s) => sentences.has(s));
    assert.ok(
      seen.every((s) => s.startsWith("The day was")),
      `in the corpus: ${seen.join(" ")}`,
    );
    assert.equal(d.questions.length, 1);
    const words = wordsOf(d.article);
    for (const q of d.questions) {
      assert.equal(q.options.length, 4);
      const gold = "ABCD".indexOf(q.answer);
      assert.ok(gold >= 0);
      // the word that sets an option apart ("five" of "five apples")
      const own = (o: string) => wordsOf(o).find((w) => !q.options.every((x) => x.includes(w)));
      q.options.forEach((o, i) => {
        const n = words.filter((w) => w === own(o)).length;
        assert.ok(i === gold ? n === 2 : n === 0, `${q.question} ${o}: ${n} times in the passage`);
      });
    }
  }
  assert.equal(new Set(W.suite.race.map((d) => d.article)).size, W.suite.race.length);
  const asked = new Set(W.suite.race.map((d) => d.questions[0].question.split(" ")[0]));
  assert.ok(asked.size >= 4, `question forms: ${[...asked]}`);
});

test("CrowS-like: corpus skew equals the requested p; pairs differ only in the folk", () => {
  for (const p of [0.5, 0.8, 0.95]) {
    const { world, corpus, suite } = build(3, { biasSkew: p, biasMentions: 20 });
    const mentions = corpus.flatMap((d) => d.split(/(?<=\.) /)).filter((s) => s.includes(" folk"));
    for (const g of world.groups) {
      const count = (folk: string, t: string) =>
        mentions.filter((s) => s.includes(`the ${folk} folk`) && wordsOf(s).includes(t)).length;
      const share =
        count(g.marked, g.trait) / (count(g.marked, g.trait) + count(g.marked, g.opposite));
      const otherShare =
        count(g.other, g.opposite) / (count(g.other, g.opposite) + count(g.other, g.trait));
      assert.ok(
        Math.abs(share - p) <= 0.05 && Math.abs(otherShare - p) <= 0.05,
        `p=${p}: ${share}, ${otherShare}`,
      );
    }
    for (const d of suite.crows_pairs) {
      const words = wordsOf(d.sent_more);
      const g = world.groups.find(
        (x) =>
          (words.includes(x.marked.toLowerCase()) || words.includes(x.other.toLowerCase())) &&
          (words.includes(x.trait) || words.includes(x.opposite)),
      )!;
      const [more, less] =
        d.stereo_antistereo === "stereo" ? [g.marked, g.other] : [g.other, g.marked];
      assert.ok(words.includes(d.stereo_antistereo === "stereo" ? g.trait : g.opposite));
      assert.equal(d.sent_more.replace(more, less), d.sent_less);
      assert.equal(d.bias_type, "nationality");
    }
    assert.ok(suite.crows_pairs.some((d) => d.stereo_antistereo === "antistereo"));
  }
});

test("continual tasks: five named tasks, well formed, disjoint splits, distinct styles", () => {
  assert.deepEqual(
    W.tasks.map((t) => t.name),
    [...TASK_NAMES],
  );
  const outputsOf = new Map<string, string>();
  for (const t of W.tasks) {
    const rows = [...t.train, ...t.test];
    for (const r of rows) {
      assert.ok(r.instruction.length > 0 && r.input.length > 0 && r.output.length > 0, t.name);
      const owner = outputsOf.get(r.output);
      assert.ok(owner === undefined || owner === t.name, `"${r.output}" in ${owner} and ${t.name}`);
      outputsOf.set(r.output, t.name);
    }
    const trainKeys = new Set(t.train.map((r) => r.instruction + r.input));
    assert.ok(
      t.test.every((r) => !trainKeys.has(r.instruction + r.input)),
      `${t.name} split leak`,
    );
  }
  const instructions = W.tasks.map(
    (t) => new Set([...t.train, ...t.test].map((r) => r.instruction.replace(/".*"/, ""))),
  );
  instructions.forEach((s, i) => {
    assert.equal(s.size, 1, TASK_NAMES[i]);
    instructions.slice(i + 1).forEach((o) => assert.ok(![...s].some((x) => o.has(x))));
  });
  const task = Object.fromEntries(W.tasks.map((t) => [t.name, [...t.train, ...t.test]]));
  for (const r of task.headline_generation) {
    const word = r.instruction.match(/"(.+)"/)![1];
    assert.ok(wordsOf(r.output).includes(word), `${r.output} lacks ${word}`);
  }
  for (const r of task.simplification) {
    const p = personIn(r.input);
    for (const s of r.output.split(/(?<=\.) /))
      assert.ok(
        ATTRIBUTES.some((a) => FACT_TEMPLATES[a][0](p.name, p[a]) === s),
        s,
      );
  }
  for (const r of task.explanation) {
    const p = personIn(r.input);
    const hypothesis = r.input.split("Hypothesis: ")[1];
    if (r.output.startsWith("Yes.")) {
      const rule = W.world.rules.find(
        (x) => conclusionSentence(p.name, x.conclusion) === hypothesis,
      )!;
      assert.ok(p.demonstrated && p[rule.attribute] === rule.value, r.output);
    } else {
      assert.ok(r.output.startsWith("No."), r.output);
      const a = (["home", "job", "color"] as const).find((x) =>
        hypothesis.startsWith(FACT_TEMPLATES[x][0](p.name, "").slice(0, -1)),
      )!;
      assert.notEqual(hypothesis, FACT_TEMPLATES[a][0](p.name, p[a]), r.input);
    }
  }
});

test("general instructions: distinct rows of several kinds, answers true of the world", () => {
  const kinds = new Set(W.general.map((r) => r.instruction.replace(/three \w+/, "three")));
  assert.ok(kinds.size >= 6, [...kinds].join(" | "));
  assert.equal(new Set(W.general.map((r) => r.instruction + r.input)).size, W.general.length);
  for (const r of W.general.filter((x) => x.instruction === "Answer the question.")) {
    const p = personIn(r.input);
    assert.ok(
      p.demonstrated && ATTRIBUTES.some((a) => FACT_TEMPLATES[a][0](p.name, p[a]) === r.output),
    );
  }
  for (const r of W.general.filter((x) => x.instruction === "Answer yes or no.")) {
    const p = personIn(r.input);
    assert.equal(r.output.startsWith("Yes"), r.input === `Is ${p.name} a ${p.job}?`);
  }
});
