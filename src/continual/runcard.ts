/**
 * The run card (`run-card.json`, format "lethe-run-card" version 1): what a run needs to be
 * reproduced and audited — its config and seeds, the git commit, library versions, the hardware,
 * facts about the model (read by the report: params, architecture, family), and the sha256 of
 * every data file it can read (tokenizer, model files, the instruction data and the benchmark
 * folders used). In the spirit of Mitchell et al. 2019, "Model Cards for Model Reporting", and
 * of lm-eval's results `config` / `git_hash` / `pretty_env_info` fields.
 *
 * File hashes are cached per study in `file-hashes.json` under the cache folder, keyed by path,
 * size and mtime, so a grid hashes each file once.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { arch, cpus, hostname, platform, release, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "../tensor/index.js";
import { sha256File } from "../io/hash.js";
import type { LanguageModel } from "../models/index.js";
import { expandTaskNames, getTask } from "../eval/tasks/index.js";
import type { Study, StudyConfig, RunSpec } from "./config.js";
import { writeAtomic } from "../util/fs.js";

export const RUN_CARD_FORMAT = { name: "lethe-run-card", version: 1 } as const;

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface RunCard {
  format: typeof RUN_CARD_FORMAT;
  run: { name: string; model: string; method: string; order: string[]; seed: number };
  config: StudyConfig;
  seeds: { run: number; train: number; tasks: number; model: number | null };
  git: { commit: string | null; dirty: boolean | null };
  versions: Record<string, string>;
  hardware: Record<string, unknown>;
  model: {
    params: number;
    architecture: "decoder-only" | "encoder-decoder";
    family: string;
    /** The model it was instruction-tuned from (config `models[].base`). */
    base?: string;
  };
  /** Absolute path → sha256 of every data file the run may read. */
  data: Record<string, string>;
}

function git(args: string[]): string | null {
  const r = spawnSync("git", ["-C", REPO, ...args], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : null;
}

function packageVersion(name: string): string | null {
  const file = join(REPO, "node_modules", name, "package.json");
  if (!existsSync(file)) return null;
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

/** Every regular file under `path` (a file or a folder), sorted. */
function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { recursive: true, encoding: "utf8" })
    .map((f) => join(path, f))
    .filter((f) => statSync(f).isFile())
    .sort();
}

/** sha256 of files, remembered by (path, size, mtime) in `<cacheDir>/file-hashes.json`. */
export class FileHashes {
  readonly #file: string;
  readonly #known: Record<string, { size: number; mtimeMs: number; sha256: string }>;
  #dirty = false;

  constructor(cacheDir: string) {
    this.#file = join(cacheDir, "file-hashes.json");
    this.#known = existsSync(this.#file) ? JSON.parse(readFileSync(this.#file, "utf8")) : {};
  }

  hash(path: string): string {
    const { size, mtimeMs } = statSync(path);
    const k = this.#known[path];
    if (k && k.size === size && k.mtimeMs === mtimeMs) return k.sha256;
    const sha256 = sha256File(path);
    this.#known[path] = { size, mtimeMs, sha256 };
    this.#dirty = true;
    return sha256;
  }

  save(): void {
    if (!this.#dirty) return;
    writeAtomic(this.#file, JSON.stringify(this.#known));
    this.#dirty = false;
  }
}

/** The data files a run may read: tokenizer, model folder, instructions/, used benchmark folders. */
export function dataFiles(study: Study, run: RunSpec, modelDir: string | null): string[] {
  const c = study.config;
  const benchDir = c.benchmarksDir ?? join(c.dataDir, "benchmarks");
  const folders = new Set<string>();
  for (const b of study.benchmarks)
    for (const leaf of expandTaskNames(b.name)) folders.add(join(benchDir, getTask(leaf).dir));
  return [
    ...(run.model.build ? [run.model.build.tokenizer] : []),
    ...(modelDir ? filesUnder(modelDir) : []),
    ...filesUnder(join(c.dataDir, "instructions")),
    // Tasks declared in the config read their own files (hub sources are sha-checked on download).
    ...c.tasks.define
      .flatMap((d) => [d.source, d.test_split])
      .flatMap((s) => (s !== null && "path" in s ? [s.path].flat() : []))
      .flatMap(filesUnder),
    ...[...folders].sort().flatMap(filesUnder),
  ];
}

export function makeRunCard(
  study: Study,
  run: RunSpec,
  config: StudyConfig,
  model: LanguageModel,
  files: string[],
  hashes: FileHashes,
): RunCard {
  const data: Record<string, string> = {};
  for (const f of files) data[f] = hashes.hash(f);
  hashes.save();
  const status = git(["status", "--porcelain"]);
  const versions: Record<string, string> = { node: process.version, libtorch: build.torch };
  for (const p of ["zod", "yaml", "@huggingface/tokenizers", "hyparquet", "tsx"]) {
    const v = packageVersion(p);
    if (v) versions[p] = v;
  }
  versions.lethe = (
    JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }
  ).version;
  const cpu = cpus();
  return {
    format: RUN_CARD_FORMAT,
    run: {
      name: run.name,
      model: run.model.name,
      method: run.method.label,
      order: run.order.tasks,
      seed: run.seed,
    },
    config,
    seeds: {
      run: run.seed,
      train: run.seed,
      tasks: config.tasks.seed,
      model: run.model.build?.seed ?? null,
    },
    git: { commit: git(["rev-parse", "HEAD"]), dirty: status === null ? null : status !== "" },
    versions,
    hardware: {
      host: hostname(),
      platform: `${platform()} ${release()} ${arch()}`,
      cpu: cpu[0]?.model ?? "unknown",
      cores: cpu.length,
      memoryBytes: totalmem(),
      threads: build.threads,
      cuda: build.cuda,
      cudaDevices: build.cudaDevices,
      device: run.model.device,
      dtype: run.model.dtype,
    },
    model: {
      params: model.parameters().reduce((n, p) => n + p.numel(), 0),
      architecture: model.kind === "causal" ? "decoder-only" : "encoder-decoder",
      family: model.config.model_type,
      ...(run.model.base !== undefined ? { base: run.model.base } : {}),
    },
    data,
  };
}
