/**
 * Pretrained models as Hugging Face stores them: load a model directory (local, or `hf:org/name[@rev]`
 * through the hub cache) and save one that transformers' `from_pretrained` loads.
 *
 * Reference: transformers `modeling_utils.py` (`PreTrainedModel.save_pretrained`: config.json with
 * `architectures` and `torch_dtype`, weights in `model.safetensors` with metadata `{"format": "pt"}`,
 * shards `model-00001-of-0000N.safetensors` + `model.safetensors.index.json` (`metadata.total_size`,
 * `weight_map`) over `max_shard_size` (default "5GB" = 5·10⁹ bytes, huggingface_hub
 * `split_torch_state_dict_into_shards`), tied weights stored once under the name that is not in
 * `_tied_weights_keys`; `from_pretrained`: `base_model_prefix` added when a checkpoint was saved from
 * the base model, `_keys_to_ignore_on_load_unexpected`: each family states both in its own file,
 * `ModelFamily.checkpoint`) and `generation/configuration_utils.py`
 * (`GenerationConfig.from_model_config`).
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { familyOf, parseModelConfig, type LanguageModel } from "../models/index.js";
import { loraLayers, type LoraLinear } from "../models/lora.js";
import { type DType, dtypeInfo, fromBytes, noGrad, type Tensor, tidy } from "../tensor/index.js";
import { saveTensors } from "./checkpoint.js";
import { type HubOptions, snapshotDownload } from "./hub.js";
import { CONVERT_HINT, TorchCheckpoint } from "./pickle.js";
import { SAFE_DTYPES, SafetensorsFile } from "./safetensors.js";
import { loadTokenizer, type Tokenizer } from "./tokenizer.js";

/** A problem with a model directory; the message names the file and the tensor or field. */
export class PretrainedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PretrainedError";
  }
}

export type ComputeDtype = "float32" | "float16" | "bfloat16";

/** Largest JSON file (config, index, generation config) read: 100 MB; real indexes are a few MB. */
const MAX_JSON_BYTES = 100_000_000;
/** transformers' default `max_shard_size`, "5GB" (decimal, as huggingface_hub parses it). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

const SAFE_SINGLE = "model.safetensors";
const SAFE_INDEX = "model.safetensors.index.json";
const BIN_SINGLE = "pytorch_model.bin";
const BIN_INDEX = "pytorch_model.bin.index.json";

/** Files a tokenizer may consist of (copied on save); the first four are what loadTokenizer reads. */
const TOKENIZER_FILES = [
  "tokenizer.json",
  "vocab.json",
  "tokenizer.model",
  "tokenizer.bin",
  "merges.txt",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "spiece.model",
];

/** config.json fields `GenerationConfig.from_model_config` copies when there is no generation_config.json. */
const GENERATION_FIELDS = [
  "bos_token_id",
  "eos_token_id",
  "pad_token_id",
  "decoder_start_token_id",
];

export interface LoadPretrainedOptions extends HubOptions {
  /** Dtype of the model's floating-point tensors. @default "float32" */
  dtype?: ComputeDtype;
  /** @default "cpu" */
  device?: string;
}

export interface Pretrained {
  model: LanguageModel;
  config: LanguageModel["config"];
  /** generation_config.json, or the token ids config.json gives (`GenerationConfig.from_model_config`). */
  generationConfig: Record<string, unknown>;
  /** null when the directory has no tokenizer files. */
  tokenizer: Tokenizer | null;
  /** The directory the files were read from (the snapshot folder for `hf:` refs). */
  dir: string;
}

/** `hf:org/name[@revision]` → hub repo and revision; anything else is a local directory. */
export function parseModelRef(
  ref: string,
): { repo: string; revision: string | null } | { dir: string } {
  if (!ref.startsWith("hf:")) return { dir: resolve(ref) };
  const m = /^hf:([\w.-]+(?:\/[\w.-]+)?)(?:@(.+))?$/.exec(ref);
  if (m === null)
    throw new PretrainedError(
      `"${ref}" is not a hub reference (expected hf:org/name or hf:org/name@revision)`,
    );
  return { repo: m[1], revision: m[2] ?? null };
}

/** Loads a model directory (or `hf:org/name[@rev]`) with its config, generation config and tokenizer. */
export async function loadPretrained(
  ref: string,
  o: LoadPretrainedOptions = {},
): Promise<Pretrained> {
  const where = parseModelRef(ref);
  let dir: string;
  if ("dir" in where) dir = where.dir;
  else {
    if (where.revision !== null && o.revision !== undefined && o.revision !== where.revision) {
      throw new PretrainedError(
        `${ref}: revision ${where.revision} conflicts with the revision option ${o.revision}`,
      );
    }
    dir = await snapshotDownload(where.repo, { ...o, revision: where.revision ?? o.revision });
  }
  if (!existsSync(join(dir, "config.json"))) {
    throw new PretrainedError(
      `${ref}: ${join(dir, "config.json")} is missing; a model directory needs config.json`,
    );
  }
  const configFile = join(dir, "config.json");
  const config = parseModelConfig(readJson(configFile), configFile);
  const generationFile = join(dir, "generation_config.json");
  const generationConfig = existsSync(generationFile)
    ? readJson(generationFile)
    : Object.fromEntries(
        GENERATION_FIELDS.filter((k) => config[k] != null).map((k) => [k, config[k]]),
      );

  const model = familyOf(config.model_type, configFile).create(config, { seed: 0 });
  try {
    model.eval();
    if (o.dtype !== undefined && o.dtype !== "float32") model.to(o.dtype);
    if (o.device !== undefined && o.device !== "cpu") model.to(o.device);
    loadWeights(model, dir);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const hasTokenizer = TOKENIZER_FILES.slice(0, 4).some((f) => existsSync(join(dir, f)));
  const tokenizer = hasTokenizer ? await loadTokenizer(dir) : null;
  return { model, config, generationConfig, tokenizer, dir };
}

/** One weights file: tensor names, shapes, and each tensor read on demand. */
interface WeightFile {
  path: string;
  keys(): string[];
  shape(name: string): number[];
  tensor(name: string): Tensor;
  close(): void;
}

function openSafetensors(path: string): WeightFile {
  const f = SafetensorsFile.open(path);
  return {
    path,
    keys: () => f.keys(),
    shape: (name) => f.info(name).shape,
    tensor: (name) => {
      const { dtype, shape } = f.info(name);
      return fromBytes(f.read(name), SAFE_DTYPES[dtype].name, shape);
    },
    close: () => f.close(),
  };
}

function openTorch(path: string): WeightFile {
  const f = TorchCheckpoint.open(path);
  return {
    path,
    keys: () => f.keys(),
    shape: (name) => f.info(name).shape,
    tensor: (name) => f.tensor(name),
    close: () => f.close(),
  };
}

/** The weight files of `dir`: safetensors (single or sharded) first, else pytorch_model.bin. */
function openWeights(dir: string): WeightFile[] {
  const sharded = (index: string, open: (p: string) => WeightFile): WeightFile[] => {
    const indexFile = join(dir, index);
    const weightMap = readJson(indexFile).weight_map;
    if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
      throw new PretrainedError(
        `${indexFile}: field "weight_map" must be an object of tensor name → shard file`,
      );
    }
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== "string" || basename(shard) !== shard) {
        throw new PretrainedError(
          `${indexFile}: weight_map["${name}"] = ${JSON.stringify(shard)} is not a file name in ${dir}`,
        );
      }
      byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
    }
    const files: WeightFile[] = [];
    try {
      for (const [shard, names] of byShard) {
        const path = join(dir, shard);
        if (!existsSync(path))
          throw new PretrainedError(`${indexFile}: shard ${shard} is missing from ${dir}`);
        const f = open(path);
        files.push(f);
        const have = new Set(f.keys());
        const absent = names.filter((n) => !have.has(n));
        if (absent.length > 0) {
          throw new PretrainedError(
            `${indexFile}: tensors [${absent.join(", ")}] are mapped to ${shard} but are not in it`,
          );
        }
        const extra = f.keys().filter((n) => weightMap[n as keyof typeof weightMap] !== shard);
        if (extra.length > 0) {
          throw new PretrainedError(
            `${path}: tensors [${extra.join(", ")}] are not mapped to this shard by ${index}`,
          );
        }
      }
    } catch (err) {
      for (const f of files) f.close();
      throw err;
    }
    return files;
  };
  if (existsSync(join(dir, SAFE_INDEX))) return sharded(SAFE_INDEX, openSafetensors);
  if (existsSync(join(dir, SAFE_SINGLE))) return [openSafetensors(join(dir, SAFE_SINGLE))];
  try {
    if (existsSync(join(dir, BIN_INDEX))) return sharded(BIN_INDEX, openTorch);
    if (existsSync(join(dir, BIN_SINGLE))) return [openTorch(join(dir, BIN_SINGLE))];
  } catch (err) {
    if (err instanceof PretrainedError) throw err;
    throw new PretrainedError(
      `${(err as Error).message}\n(${dir} has only pickle weights; ${CONVERT_HINT})`,
    );
  }
  throw new PretrainedError(
    `${dir}: no weights found (looked for ${SAFE_SINGLE}, ${SAFE_INDEX}, ${BIN_SINGLE}, ${BIN_INDEX})`,
  );
}

/**
 * Copies every checkpoint tensor into the model, one at a time (bytes → tensor → copy into the
 * parameter, converting dtype and device). Names are matched first, so a missing, unexpected or
 * wrong-shaped tensor is reported before anything is read.
 */
function loadWeights(model: LanguageModel, dir: string): void {
  const family = familyOf(model.config.model_type);
  const quirks = family.checkpoint;
  const own = model.stateDict();
  // Every name of a tied group resolves to the one name the model's stateDict uses.
  const target = new Map<string, string>([...own.keys()].map((k) => [k, k]));
  for (const [alias, canonical] of family.tiedWeights?.(model.config) ?? []) {
    const t = target.get(alias) ?? target.get(canonical);
    if (t !== undefined) {
      target.set(alias, t);
      target.set(canonical, t);
    }
  }
  const files = openWeights(dir);
  try {
    const all = files.flatMap((f) => f.keys());
    const prefix = quirks.basePrefix;
    const addPrefix = prefix !== null && !all.some((k) => k.startsWith(`${prefix}.`));
    const plan: { file: WeightFile; key: string; into: string }[] = [];
    const loaded = new Set<string>();
    const unexpected: string[] = [];
    for (const file of files) {
      for (const key of file.keys()) {
        // A base-model checkpoint's keys get the prefix; keys outside the base (lm_head) do not.
        const name = addPrefix && !target.has(key) ? `${prefix}.${key}` : key;
        const into = target.get(name);
        if (into === undefined) {
          if (!quirks.ignore.some(([re]) => re.test(name)))
            unexpected.push(`${key} (${basename(file.path)})`);
          continue;
        }
        if (loaded.has(into)) continue; // a tied alias whose canonical tensor is stored too
        const want = own.get(into)!.shape;
        const got = file.shape(key);
        if (want.join(",") !== got.join(",")) {
          throw new PretrainedError(
            `${file.path}: tensor "${key}" has shape [${got.join(", ")}] but the model's "${into}" is [${want.join(", ")}]`,
          );
        }
        loaded.add(into);
        plan.push({ file, key, into });
      }
    }
    const missing = [...own.keys()].filter((k) => !loaded.has(k));
    if (missing.length > 0 || unexpected.length > 0) {
      throw new PretrainedError(
        `${dir}: weights do not match ${model.constructor.name}: ` +
          (missing.length > 0 ? `missing [${missing.join(", ")}]` : "") +
          (missing.length > 0 && unexpected.length > 0 ? "; " : "") +
          (unexpected.length > 0 ? `unexpected [${unexpected.join(", ")}]` : ""),
      );
    }
    noGrad(() => {
      for (const { file, key, into } of plan)
        tidy(() => void own.get(into)!.copy_(file.tensor(key)));
    });
  } finally {
    for (const f of files) f.close();
  }
}

export interface SavePretrainedOptions {
  /**
   * Copy these tokenizer files (tokenizer.json, vocab.json + merges.txt, tokenizer_config.json, ...)
   * beside the model. A file (e.g. llama2.c's `tok512.bin`) is copied under the name loadTokenizer
   * looks for (`tokenizer.bin`), with the tokenizer config files of its folder.
   */
  tokenizerDir?: string;
  /** Dtype of the stored floating-point tensors. @default the model's */
  dtype?: ComputeDtype;
  /** Bytes per safetensors shard before splitting. @default DEFAULT_MAX_SHARD_BYTES (5 GB) */
  maxShardBytes?: number;
  /** generation_config.json content. @default the config's token ids (`from_model_config`) */
  generationConfig?: Record<string, unknown>;
  /**
   * config.json content, e.g. the base model's own (fields lethe does not read kept verbatim);
   * `torch_dtype` (and `dtype`, if present) become the stored dtype. @default the model's config
   */
  config?: Record<string, unknown>;
}

/**
 * Writes `dir` as transformers' save_pretrained does: config.json, model.safetensors (or shards and
 * an index), generation_config.json, tokenizer files. Everything is written into a temp folder
 * beside `dir` that then replaces it, so a crash leaves either the old directory or the new one.
 * A model with LoRA adapters is saved merged, as PEFT's `merge_and_unload()` then
 * `save_pretrained`: each target weight W is stored as W + (alpha / r)·B A under its own name
 * and no adapter tensor is stored; the model itself is not changed.
 */
export async function savePretrained(
  model: LanguageModel,
  dir: string,
  o: SavePretrainedOptions = {},
): Promise<void> {
  const family = familyOf(model.config.model_type);
  const state = new Map(model.stateDict());
  // LoRA: the adapter tensors go; an unmerged target weight is stored plus its update.
  const deltas = new Map<string, LoraLinear>();
  for (const [path, layer] of loraLayers(model)) {
    for (const k of ["lora_A", "lora_B"]) state.delete(`${path}.${k}.weight`);
    if (!layer.merged) deltas.set(`${path}.weight`, layer);
  }
  // Store each tied group once, under its canonical name (transformers drops `_tied_weights_keys`).
  for (const [alias, canonical] of family.tiedWeights?.(model.config) ?? []) {
    const t = state.get(alias);
    if (t === undefined) continue;
    if (!state.has(canonical)) state.set(canonical, t);
    if (state.get(canonical) === t) state.delete(alias);
  }
  const floats = [...state.values()].filter((t) => dtypeInfo[t.dtype].float);
  const dtype: DType = o.dtype ?? floats[0]?.dtype ?? "float32";
  const maxShard = o.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(maxShard > 0))
    throw new PretrainedError(`savePretrained: maxShardBytes must be positive, got ${maxShard}`);

  // Shards as huggingface_hub splits them: in order, a new shard when the next tensor would overflow.
  const names = [...state.keys()].sort();
  const shards: string[][] = [];
  let size = Infinity;
  let total = 0;
  for (const name of names) {
    const t = state.get(name)!;
    const bytes = t.numel() * dtypeInfo[dtypeInfo[t.dtype].float ? dtype : t.dtype].itemsize;
    if (size + bytes > maxShard) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(name);
    size += bytes;
    total += bytes;
  }
  if (shards.length === 0) shards.push([]);

  const final = resolve(dir);
  const tmp = join(dirname(final), `.${basename(final)}.tmp-${process.pid}-${Date.now()}`);
  await mkdir(tmp, { recursive: true });
  try {
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => {
      const file =
        shards.length === 1
          ? SAFE_SINGLE
          : `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
      tidy(() => {
        const cast = new Map(
          shard.map((n) => {
            const d = deltas.get(n);
            const t = d ? noGrad(() => state.get(n)!.add(d.deltaWeight())) : state.get(n)!;
            return [n, dtypeInfo[t.dtype].float && t.dtype !== dtype ? t.to(dtype) : t];
          }),
        );
        saveTensors(join(tmp, file), cast, { format: "pt" });
      });
      for (const n of shard) weightMap[n] = file;
    });
    if (shards.length > 1) {
      await writeJson(join(tmp, SAFE_INDEX), {
        metadata: { total_size: total },
        weight_map: weightMap,
      });
    }
    const config = {
      ...(o.config ?? model.config),
      architectures: o.config?.architectures ?? [model.constructor.name],
      model_type: model.config.model_type,
      torch_dtype: dtype,
      ...(o.config !== undefined && "dtype" in o.config ? { dtype } : {}), // transformers ≥ 4.56
    };
    await writeJson(join(tmp, "config.json"), sortKeys(config));
    const generation =
      o.generationConfig ??
      Object.fromEntries(
        GENERATION_FIELDS.filter((k) => model.config[k] != null).map((k) => [k, model.config[k]]),
      );
    await writeJson(join(tmp, "generation_config.json"), sortKeys(generation));
    if (o.tokenizerDir !== undefined) {
      const one = statSync(o.tokenizerDir).isFile() ? o.tokenizerDir : null;
      const from = one === null ? o.tokenizerDir : dirname(one);
      const present = new Set(await readdir(from));
      // From a folder every tokenizer file; beside one file, only the config files.
      const files = TOKENIZER_FILES.filter((f, i) => present.has(f) && (one === null || i >= 4));
      if (one !== null) await copyFile(one, join(tmp, tokenizerFileName(one)));
      else if (!files.slice(0, 4).some((f) => present.has(f))) {
        throw new PretrainedError(
          `${o.tokenizerDir}: no tokenizer file to copy (looked for ${TOKENIZER_FILES.slice(0, 4).join(", ")})`,
        );
      }
      for (const f of files) await copyFile(join(from, f), join(tmp, f));
    }
    await replaceDir(tmp, final);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Moves the finished folder `tmp` to `dir`, replacing what is there (the old folder is renamed
 * away first and removed last), so `dir` is always either the old folder or the new one.
 */
export async function replaceDir(tmp: string, dir: string): Promise<void> {
  const final = resolve(dir);
  if (!existsSync(final)) return rename(tmp, final);
  if (!statSync(final).isDirectory())
    throw new PretrainedError(`${final} exists and is not a directory`);
  const old = `${tmp}.old`;
  await rename(final, old);
  await rename(tmp, final);
  await rm(old, { recursive: true, force: true });
}

/** The name loadTokenizer reads a single tokenizer file under (llama2.c `tok512.bin` → tokenizer.bin). */
function tokenizerFileName(file: string): string {
  const name = basename(file);
  if (TOKENIZER_FILES.slice(0, 4).includes(name)) return name;
  for (const ext of [".json", ".model", ".bin"]) if (name.endsWith(ext)) return `tokenizer${ext}`;
  throw new PretrainedError(
    `${file}: not a tokenizer file (expected ${TOKENIZER_FILES.slice(0, 4).join(", ")} or a .json, .model or .bin tokenizer)`,
  );
}

function pad5(n: number): string {
  return String(n).padStart(5, "0");
}

/** transformers writes config files with sorted keys and 2-space indent. */
function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

function readJson(file: string): Record<string, unknown> {
  const size = statSync(file).size;
  if (size > MAX_JSON_BYTES)
    throw new PretrainedError(
      `${file}: ${size} bytes is over the ${MAX_JSON_BYTES}-byte limit for JSON files`,
    );
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new PretrainedError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PretrainedError(`${file}: must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}
