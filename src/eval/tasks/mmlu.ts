/**
 * MMLU (Hendrycks et al. 2021), 57 subjects, as lm-eval v0.4.x `lm_eval/tasks/mmlu/default/`:
 * `_default_template_yaml` (test split, few-shot from dev with the `first_n` sampler, prompt
 * "{question.strip()}\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:", choices A-D, target `answer`), one
 * `mmlu_<subject>.yaml` per subject with description "The following are multiple choice questions
 * (with answers) about <subject with spaces>.\n\n", and the groups mmlu_stem / mmlu_other /
 * mmlu_social_sciences / mmlu_humanities / mmlu (acc, weighted by size). Categories as in
 * `_generate_configs.py`. Data: HF `cais/mmlu` (<subject>/<split>-*.parquet) or the original
 * release CSVs `<split>/<subject>_<split>.csv` (no header: question, A, B, C, D, answer letter).
 */
import { join } from "node:path";
import { existsSync } from "node:fs";
import { accMean, defineTask, type Doc, type GroupConfig, type Task } from "../task.js";
import { mapRows, readCsv } from "./files.js";

type Category = "stem" | "other" | "social_sciences" | "humanities";

export const MMLU_SUBJECTS = {
  abstract_algebra: "stem",
  anatomy: "stem",
  astronomy: "stem",
  business_ethics: "other",
  clinical_knowledge: "other",
  college_biology: "stem",
  college_chemistry: "stem",
  college_computer_science: "stem",
  college_mathematics: "stem",
  college_medicine: "other",
  college_physics: "stem",
  computer_security: "stem",
  conceptual_physics: "stem",
  econometrics: "social_sciences",
  electrical_engineering: "stem",
  elementary_mathematics: "stem",
  formal_logic: "humanities",
  global_facts: "other",
  high_school_biology: "stem",
  high_school_chemistry: "stem",
  high_school_computer_science: "stem",
  high_school_european_history: "humanities",
  high_school_geography: "social_sciences",
  high_school_government_and_politics: "social_sciences",
  high_school_macroeconomics: "social_sciences",
  high_school_mathematics: "stem",
  high_school_microeconomics: "social_sciences",
  high_school_physics: "stem",
  high_school_psychology: "social_sciences",
  high_school_statistics: "stem",
  high_school_us_history: "humanities",
  high_school_world_history: "humanities",
  human_aging: "other",
  human_sexuality: "social_sciences",
  international_law: "humanities",
  jurisprudence: "humanities",
  logical_fallacies: "humanities",
  machine_learning: "stem",
  management: "other",
  marketing: "other",
  medical_genetics: "other",
  miscellaneous: "other",
  moral_disputes: "humanities",
  moral_scenarios: "humanities",
  nutrition: "other",
  philosophy: "humanities",
  prehistory: "humanities",
  professional_accounting: "other",
  professional_law: "humanities",
  professional_medicine: "other",
  professional_psychology: "social_sciences",
  public_relations: "social_sciences",
  security_studies: "social_sciences",
  sociology: "social_sciences",
  us_foreign_policy: "social_sciences",
  virology: "other",
  world_religions: "humanities",
} as const satisfies Record<string, Category>;

export type MmluSubject = keyof typeof MMLU_SUBJECTS;

interface MmluDoc extends Doc {
  question: string;
  subject: string;
  choices: string[];
  answer: number;
}

const LETTERS = ["A", "B", "C", "D"];
/** HF split name → folder and file suffix of the original release. */
const ORIGINAL_SPLIT: Record<string, string> = { test: "test", validation: "val", dev: "dev" };

async function readOriginal(
  dataDir: string,
  subject: string,
  split: string,
): Promise<Doc[] | null> {
  const folder = ORIGINAL_SPLIT[split];
  const path = folder && join(dataDir, "mmlu", folder, `${subject}_${folder}.csv`);
  if (!path || !existsSync(path)) return null;
  return mapRows(await readCsv(path, { header: false }), (r, where): MmluDoc => {
    const answer = LETTERS.indexOf(r[5]);
    if (r.length !== 6 || answer < 0) {
      throw new Error(`${where}: expected question,A,B,C,D,answer(A-D), got ${JSON.stringify(r)}`);
    }
    return { question: r[0], subject, choices: r.slice(1, 5), answer };
  });
}

/** The prompt letters the four choices and scores `answer` against them. */
function checkChoices(doc: Doc, where: string): void {
  const n = (doc.choices as string[]).length;
  if (n !== LETTERS.length)
    throw new Error(`${where}: field "choices" must hold ${LETTERS.length} answers, got ${n}`);
  if ((doc.answer as number) < 0 || (doc.answer as number) >= n)
    throw new Error(`${where}: field "answer" ${doc.answer} is not an index of the ${n} choices`);
}

function mmluTask(subject: MmluSubject): Task<MmluDoc> {
  return defineTask<MmluDoc>({
    task: `mmlu_${subject}`,
    version: 1,
    datasetPath: "cais/mmlu",
    datasetName: subject,
    dir: "mmlu",
    original: (dataDir, split) => readOriginal(dataDir, subject, split),
    fields: { question: "string", choices: "string[]", answer: "integer" },
    checkDoc: checkChoices,
    testSplit: "test",
    validationSplit: "validation",
    fewshotSplit: "dev",
    fewshotSampler: "first_n",
    description: `The following are multiple choice questions (with answers) about ${subject.split("_").join(" ")}.\n\n`,
    docToText: (d) =>
      `${d.question.trim()}\n` +
      d.choices.map((c, i) => `${LETTERS[i]}. ${c}`).join("\n") +
      "\nAnswer:",
    docToChoice: () => LETTERS,
    docToTarget: (d) => d.answer,
    outputType: "multiple_choice",
    metrics: [accMean],
  });
}

export const mmluTasks = Object.fromEntries(
  (Object.keys(MMLU_SUBJECTS) as MmluSubject[]).map((s) => [`mmlu_${s}`, mmluTask(s)]),
) as Record<`mmlu_${MmluSubject}`, Task<MmluDoc>>;

const CATEGORIES: Category[] = ["stem", "other", "social_sciences", "humanities"];
const byAcc = [{ metric: "acc", weight_by_size: true }];

export const mmluGroups: Record<string, GroupConfig> = {
  mmlu: {
    group: "mmlu",
    version: 2,
    task: CATEGORIES.map((c) => `mmlu_${c}`),
    aggregate: byAcc,
    category: "domain_knowledge",
  },
  ...Object.fromEntries(
    CATEGORIES.map((c): [string, GroupConfig] => [
      `mmlu_${c}`,
      {
        group: `mmlu_${c}`,
        alias: c,
        version: 2,
        task: Object.entries(MMLU_SUBJECTS)
          .filter(([, cat]) => cat === c)
          .map(([s]) => `mmlu_${s}`),
        aggregate: byAcc,
        category: "domain_knowledge",
      },
    ]),
  ),
};
