/**
 * The built-in miniature study (`lethe study`): Luo et al. 2023 (arXiv 2308.08747) on a synthetic
 * world, end to end on a CPU. A preset names the world, the zoo and the grid; `runMiniStudy`
 * writes the world's data, builds (or finds) the zoo, and runs the grid through the ordinary study
 * runner (src/continual/run.ts), so its folder is a study folder like any other: `lethe resume`,
 * `lethe status` and `lethe report` work on it, and its `study.yaml` reruns it with `lethe run`.
 *
 * The grid answers the paper's four questions with sequential fine-tuning on every zoo model —
 * scale (dec-s < dec-m < dec-l), decoder-only vs encoder-decoder (dec-* vs encdec-*), instruction
 * tuned vs base (dec-m-instruct vs dec-m), bias (mini_crows_pairs over stages) — and compares
 * mitigations against sequential on dec-m. Five stages in the paper's task order, two seeds.
 */
import { homedir } from "node:os";
import { join } from "node:path";
import { parseStudy } from "../continual/config.js";
import { type RunnerOptions } from "../continual/run.js";
import { runStudy } from "../continual/study.js";
import type { TrainConfigInput } from "../train/config.js";
import type { ProgressEvent } from "../train/progress.js";
import { lookup } from "../util/suggest.js";
import { writeWorldData } from "./data.js";
import { MINI_METRIC, MINI_TASK_NAMES } from "./benchmarks.js";
import { buildZoo, ZOO, ZOO_QUICK, type ZooModelSpec } from "./zoo.js";
import { generateWorld, QUICK_SIZES, type WorldSizes } from "./world.js";

export interface Preset {
  description: string;
  world: { seed: number; sizes: Partial<WorldSizes> };
  zoo: Record<string, ZooModelSpec>;
  seeds: number[];
  /** Methods run on `methodsModel` beside sequential (which every zoo model runs). */
  methods: (
    string | { name: string | string[]; options?: Record<string, unknown>; label?: string }
  )[];
  methodsModel: string;
  train: TrainConfigInput;
  budget: { maxTrain: number; maxTest: number };
  /** Tokens generated per continual-task test prompt. */
  maxGenToks: number;
  /** First N docs of each benchmark (the world's lists are shuffled); null: all of them. */
  evalLimit: number | null;
  /** FG confidence intervals: bootstrap resamples of the items. */
  bootstrapIters: number;
}

/** Fine-tuning as the paper does it (AdamW, cosine, response-only loss), scaled to toy models. */
const FINETUNE: TrainConfigInput = {
  lr: 1e-3,
  epochs: 2,
  batchSize: 8,
  gradAccum: 1,
  warmup: 0.1,
  maxLength: 128,
  checkpointEvery: 0,
};

/** The paper's comparisons (sequential on every zoo model) and two mitigations on dec-m. */
const DEFAULT: Preset = {
  description: "the paper's four comparisons and replay / general mixing, 5 stages, 2 seeds",
  world: { seed: 0, sizes: {} },
  zoo: ZOO,
  seeds: [0, 1],
  methods: [
    { name: "replay", options: { ratio: 0.2 } },
    { name: "mix_general", options: { ratio: 0.2 } },
  ],
  methodsModel: "dec-m",
  train: FINETUNE,
  budget: { maxTrain: 96, maxTest: 12 },
  maxGenToks: 24,
  evalLimit: null,
  bootstrapIters: 1000,
};

export const PRESETS = {
  default: DEFAULT,
  quick: {
    ...DEFAULT,
    description: "the default grid on a smaller world and zoo (tests, a first look)",
    world: { seed: 0, sizes: QUICK_SIZES },
    zoo: ZOO_QUICK,
    train: { ...FINETUNE, epochs: 1 },
    budget: { maxTrain: 32, maxTest: 6 },
    maxGenToks: 16,
    evalLimit: 60,
    bootstrapIters: 200,
  },
  full: {
    ...DEFAULT,
    description: "the default world and zoo, three seeds, every full-tuning method",
    seeds: [0, 1, 2],
    methods: [
      ...DEFAULT.methods,
      "ewc",
      "l2sp",
      "lwf",
      "ema",
      "wise_ft",
      "agem",
      "merge",
      { name: "merge", options: { mode: "ties" }, label: "merge_ties" },
      "sam",
      { name: ["replay", "lwf"], options: { replay: { ratio: 0.2 } } }, // a combination
      "osf",
      // The methods that write text: lengths capped near the world's own (targets < 24 tokens).
      { name: "sdft", options: { max_new_tokens: 24 } },
      { name: "lamol", options: { max_new_tokens: 24 } },
      { name: "ssr", options: { max_new_tokens: 24 } },
    ],
  },
} satisfies Record<string, Preset>;

/** The preset as a study config (the schema of src/continual/config.ts), zoo models by folder. */
export function studyConfig(
  name: string,
  preset: Preset,
  dataDir: string,
  zoo: Map<string, string>,
): Record<string, unknown> {
  const methods = preset.methods.map((m) =>
    typeof m === "string"
      ? { name: m, label: m }
      : { ...m, label: m.label ?? [m.name].flat().join("+") },
  );
  return {
    name,
    dataDir,
    models: [...zoo].map(([model, ref]) => ({
      name: model,
      ref,
      ...(preset.zoo[model].base !== undefined ? { base: preset.zoo[model].base } : {}),
      methods:
        model === preset.methodsModel
          ? ["sequential", ...methods.map((m) => m.label)]
          : ["sequential"],
    })),
    methods: ["sequential", ...methods],
    orders: ["mini"],
    seeds: preset.seeds,
    train: preset.train,
    tasks: { maxGenToks: preset.maxGenToks, until: ["\n"] },
    budget: preset.budget,
    general: { task: "mini_general" },
    eval: {
      benchmarks: MINI_TASK_NAMES.map((b) => ({
        name: b,
        metric: `${MINI_METRIC[b]},none`,
        limit: preset.evalLimit,
      })),
      bootstrapIters: preset.bootstrapIters,
    },
  };
}

export interface MiniStudyOptions {
  /** A PRESETS name. @default "default" */
  preset?: string;
  /** The study folder. */
  out: string;
  /** Where zoo models are cached by content hash. @default $LETHE_CACHE/zoo or ~/.cache/lethe/zoo */
  zooDir?: string;
  log?: RunnerOptions["log"];
  /** The grid's progress output and events (RunnerOptions). */
  progress?: RunnerOptions["progress"];
  onEvent?: RunnerOptions["onEvent"];
  /** Pretraining progress of each zoo model. */
  onPretrain?: (e: ProgressEvent) => void;
}

export const defaultZooDir = () =>
  join(process.env.LETHE_CACHE ?? join(homedir(), ".cache", "lethe"), "zoo");

/** Wall seconds of each phase of a miniature study (the runs' own timings.json split the rest). */
export interface StudyPhases {
  world: number;
  pretrain: number;
  runs: number;
}

/** Writes the world, builds the zoo, runs the grid; returns the run folders and phase times. */
export async function runMiniStudy(
  o: MiniStudyOptions,
): Promise<{ dirs: string[]; phases: StudyPhases }> {
  const name = o.preset ?? "default";
  const preset: Preset = lookup(PRESETS, name, "study preset");
  const t0 = performance.now();
  const world = generateWorld(preset.world.seed, preset.world.sizes);
  const dataDir = writeWorldData(world, join(o.out, "world"));
  const t1 = performance.now();
  o.log?.(
    `pretraining the zoo (${Object.keys(preset.zoo).join(", ")}), cached in ${o.zooDir ?? defaultZooDir()}`,
  );
  const zoo = await buildZoo(world, {
    cacheDir: o.zooDir ?? defaultZooDir(),
    spec: preset.zoo,
    onProgress: o.onPretrain,
  });
  const t2 = performance.now();
  const study = parseStudy(
    studyConfig(`mini-${name}`, preset, dataDir, zoo),
    `preset "${name}"`,
    o.out,
  );
  const dirs = await runStudy(study, o.out, {
    log: o.log,
    progress: o.progress,
    onEvent: o.onEvent,
  });
  const t3 = performance.now();
  return {
    dirs,
    phases: { world: (t1 - t0) / 1000, pretrain: (t2 - t1) / 1000, runs: (t3 - t2) / 1000 },
  };
}
