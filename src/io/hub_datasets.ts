/**
 * A dataset split from the Hugging Face Hub's parquet export: the local paths of its parquet
 * shards, downloaded into the hub cache (or found there) and sha256-checked like model files.
 *
 * Reference: the Hub's dataset viewer docs, "List Parquet files"
 * (huggingface.co/docs/dataset-viewer/parquet), and huggingface_hub's `HfApi.list_parquet_files`
 * / `hf_hub_download(repo_type="dataset", revision="refs/convert/parquet")`:
 *  - every public dataset is converted to parquet on the `refs/convert/parquet` revision, one
 *    folder per config and split: `{config}/{split}/0000.parquet`, `0001.parquet`, …;
 *  - `GET {HF_ENDPOINT}/api/datasets/{repo}/parquet/{config}/{split}` lists the shards as a JSON
 *    array of URLs ending in `/{n}.parquet` (each redirects to shard n's resolve URL);
 *  - a shard's resolve URL is `{HF_ENDPOINT}/datasets/{repo}/resolve/refs%2Fconvert%2Fparquet/
 *    {config}/{split}/{nnnn}.parquet`, answered like any LFS file (X-Repo-Commit, X-Linked-Etag =
 *    the sha256), so hub.ts's `downloadFile` fetches it: cache `datasets--{org}--{name}/`, resume
 *    with Range after a cut connection, a sha256 mismatch refused.
 * HF_ENDPOINT, HF_TOKEN, HF_HOME / HF_HUB_CACHE and HF_HUB_OFFLINE are honoured as in hub.ts.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import {
  cachedHubCommit,
  checkHubPath,
  downloadFile,
  HubError,
  hubSettings,
  repoCacheDir,
  type HubOptions,
} from "./hub.js";

/** The revision the Hub's parquet conversion is published on. */
export const PARQUET_REVISION = "refs/convert/parquet";
/** The listing is a JSON array of URLs; a bigger body is not the Hub's answer. */
const MAX_LISTING_BYTES = 16 << 20;
/** Shards a split may have: the Hub caps a converted split at a few thousand 0–500 MB shards. */
const MAX_SHARDS = 10_000;

export interface HubDatasetParams extends Omit<HubOptions, "repoType"> {
  /** "org/name", or a legacy canonical name ("gigaword"). */
  repo: string;
  /** The dataset config ("subset"), e.g. "auto_acl"; "default" when the dataset has none. */
  config: string;
  /** e.g. "train", "full". */
  split: string;
  /** @default "refs/convert/parquet" */
  revision?: string;
}

/** How a user provides a dataset when the hub cannot; every failure message ends with it. */
function howToProvide(repo: string, config: string, split: string): string {
  return (
    `to provide ${repo} (${config}/${split}): set HF_ENDPOINT to a reachable hub or mirror, ` +
    `or put the split's files where the task reads local data (a path source in the study config)`
  );
}

/**
 * The local paths of `repo`'s parquet shards for `config`/`split`, in shard order. Downloads the
 * shards not cached yet; offline (HF_HUB_OFFLINE), answers from the cache alone.
 */
export async function resolveHubDataset(p: HubDatasetParams): Promise<string[]> {
  const s = hubSettings({ ...p, repoType: "dataset", revision: p.revision ?? PARQUET_REVISION });
  const { repo, config, split } = p;
  const name = `dataset ${repo} (${config}/${split})`;
  for (const [what, v] of [
    ["config", config],
    ["split", split],
  ] as const) {
    checkHubPath(repo, v, what);
    if (v.includes("/"))
      throw new HubError(`${repo}: ${what} ${JSON.stringify(v)} must not contain "/"`);
  }
  const repoDir = repoCacheDir(repo, s.cacheDir, "dataset");

  const cached = async (): Promise<string[]> => {
    const commit = await cachedHubCommit(repo, repoDir, s.revision);
    if (commit === null) return [];
    const dir = join(repoDir, "snapshots", commit, config, split);
    const names = await readdir(dir).catch(() => [] as string[]);
    return names
      .filter((f) => /^\d+\.parquet$/.test(f))
      .sort()
      .map((f) => join(dir, f));
  };

  if (s.offline) {
    const files = await cached();
    if (files.length === 0) {
      throw new HubError(
        `${name} is not in the cache ${repoDir} and HF_HUB_OFFLINE is set; ${howToProvide(repo, config, split)}`,
      );
    }
    return files;
  }

  const listing = `${s.endpoint}/api/datasets/${repo}/parquet/${encodeURIComponent(config)}/${encodeURIComponent(split)}`;
  let res: Response;
  try {
    res = await s.fetch(listing, {
      headers: s.token ? { Authorization: `Bearer ${s.token}` } : {},
    });
  } catch (err) {
    // Like hub.ts: when the hub cannot be reached, a cached copy will do.
    const files = await cached();
    if (files.length > 0) return files;
    throw new HubError(
      `${name}: cannot reach ${s.endpoint} (${(err as Error).message}) and nothing is cached in ${repoDir}; ${howToProvide(repo, config, split)}`,
    );
  }
  if (res.status === 404) {
    throw new HubError(
      `${name}: ${s.endpoint} has no parquet export for it (404 from ${listing}); check the repo, config and split names; ${howToProvide(repo, config, split)}`,
    );
  }
  if (!res.ok) {
    const hint = res.status === 401 || res.status === 403 ? " (gated dataset: set HF_TOKEN)" : "";
    throw new HubError(`${name}: HTTP ${res.status} from ${listing}${hint}`);
  }
  const text = await res.text();
  if (text.length > MAX_LISTING_BYTES) {
    throw new HubError(`${name}: listing at ${listing} is over ${MAX_LISTING_BYTES} bytes`);
  }
  let urls: unknown;
  try {
    urls = JSON.parse(text);
  } catch {
    throw new HubError(`${name}: listing at ${listing} is not JSON`);
  }
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_SHARDS) {
    throw new HubError(
      `${name}: listing at ${listing} is not a JSON array of 1 to ${MAX_SHARDS} shard URLs`,
    );
  }
  const shards = urls.map((u, i) => {
    // ".../parquet/{config}/{split}/{n}.parquet" (the API form) or ".../{nnnn}.parquet" (resolve).
    const m = typeof u === "string" ? /\/(\d{1,6})\.parquet$/.exec(u) : null;
    if (m === null) {
      throw new HubError(
        `${name}: listing at ${listing}: entry ${i} ${JSON.stringify(u)} is not a shard URL ending in /{n}.parquet`,
      );
    }
    return `${config}/${split}/${m[1].padStart(4, "0")}.parquet`;
  });

  const files: string[] = [];
  for (const path of shards) {
    const got = await downloadFile({ ...p, repo, path, revision: s.revision, repoType: "dataset" });
    if (got === null) {
      throw new HubError(
        `${name}: ${path} is listed but ${s.endpoint} answered 404 for it at revision ${s.revision}`,
      );
    }
    files.push(got);
  }
  return files;
}
