/**
 * Where the paper's five tasks (Luo et al. 2023, arXiv 2308.08747) read their data: a local copy
 * under the data root in the Hugging Face Hub layout, else the Hub's parquet export of the dataset
 * (src/io/hub_datasets.ts: cached, sha256-checked, HF_ENDPOINT / HF_HUB_OFFLINE honoured).
 * Rows go through the one dataset reader (src/io/dataset.ts).
 */
import { join } from "node:path";
import { concatRows, hfSplitFiles, readRows, type FileRows } from "../../io/dataset.js";
import { resolveHubDataset } from "../../io/hub_datasets.js";

/** A split of a Hub dataset, and the folder under `{dataDir}/instructions/` that may hold it. */
export interface Ct0Source {
  /** The lethe task reading it, named in errors. */
  task: string;
  /** Folder under `{dataDir}/instructions/` holding `{split}.{ext}` or `{split}-*.{ext}`. */
  local: string;
  /** Hub dataset id; legacy canonical ids ("gigaword") are redirected by the Hub. */
  repo: string;
  config: string;
  split: string;
}

/** The rows of a split: the local copy when there is one, else the Hub's parquet shards. */
export async function readCt0Split(dataDir: string, src: Ct0Source): Promise<FileRows> {
  const dir = join(dataDir, "instructions", src.local);
  const local = hfSplitFiles(dir, src.split);
  let files = local;
  if (files.length === 0) {
    try {
      files = await resolveHubDataset({ repo: src.repo, config: src.config, split: src.split });
    } catch (err) {
      throw new Error(
        `task "${src.task}": no local copy of split "${src.split}" in ${dir} (${src.split}.parquet/.jsonl/.json/.csv or ${src.split}-*.*), ` +
          `and the Hub's parquet export failed: ${(err as Error).message}`,
      );
    }
  }
  return concatRows(
    await Promise.all(files.map((f) => readRows(f))),
    files.length === 1 ? files[0] : dir,
  );
}
