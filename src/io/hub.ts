/**
 * The Hugging Face Hub: download one file, or the files a model needs, into the hub's shared cache,
 * so a model fetched here is found by transformers and huggingface_hub and the other way round.
 *
 * Reference: huggingface_hub `file_download.py` (`hf_hub_download`, `get_hf_file_metadata`,
 * `http_get`) and `_snapshot_download.py`, and huggingface.js `hub/src/lib/download-file.ts`,
 * `download-file-to-cache-dir.ts`, `snapshot-download.ts`:
 *  - URL `{HF_ENDPOINT}/{repo}/resolve/{revision}/{path}`; a HEAD request (following only
 *    same-host redirects, so the hub's own headers are read, not the CDN's) gives the commit
 *    (`X-Repo-Commit`), the blob id (`X-Linked-Etag` for LFS files, which is their sha256, else
 *    `ETag`, the git blob sha1) and the size (`X-Linked-Size`, else `Content-Length`);
 *  - cache `{cacheDir}/models--{org}--{name}/` with `blobs/{etag}`, `snapshots/{commit}/{path}` (a
 *    relative symlink to the blob, a copy where symlinks fail), `refs/{revision}` (the commit);
 *  - a download goes to `blobs/{etag}.incomplete` and resumes with `Range: bytes={size}-`;
 *  - `HF_HUB_OFFLINE=1` resolves from the cache only; `HF_TOKEN` is sent as a Bearer token;
 *  - the file listing is `{HF_ENDPOINT}/api/models/{repo}/revision/{revision}` (`sha`, `siblings`);
 *  - dataset repos (`repoType: "dataset"`) resolve under `{HF_ENDPOINT}/datasets/{repo}/` and cache
 *    in `datasets--{org}--{name}/` (their parquet export: hub_datasets.ts).
 * Beyond huggingface_hub, a blob whose etag is a sha256 is hashed and rejected on mismatch, and
 * every name the server supplies (commit, etag, listed file paths) is checked before it becomes
 * part of a cache path, so a hostile or broken endpoint cannot make lethe write outside the cache.
 */
import {
  copyFile,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { sha256File } from "./hash.js";

/** Any failure talking to the hub or its cache; the message names the repo and file. */
export class HubError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HubError";
  }
}

/** What every hub call takes besides the repo. */
export interface HubOptions {
  /** Branch, tag or commit. @default "main" */
  revision?: string;
  /** @default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub */
  cacheDir?: string;
  /** Access token for private or gated repos. @default $HF_TOKEN */
  token?: string;
  /** @default $HF_ENDPOINT, else "https://huggingface.co" */
  endpoint?: string;
  /** Resolve from the cache only. @default $HF_HUB_OFFLINE is "1" or "true" */
  offline?: boolean;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Model repos live at `{endpoint}/{repo}`, dataset repos at `{endpoint}/datasets/{repo}`. @default "model" */
  repoType?: "model" | "dataset";
}

/**
 * Attempts per download: a dropped connection resumes from the bytes already on disk
 * (huggingface_hub's `http_get` retries 5 times the same way).
 */
const DOWNLOAD_ATTEMPTS = 5;
/** Same-host redirects followed by the HEAD request (renamed repos answer with one or two). */
const MAX_REDIRECTS = 5;
/** The listing is a small JSON document; a bigger body is not the hub's answer. */
const MAX_LISTING_BYTES = 64 << 20;

const COMMIT_HASH = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/**
 * A blob file name: the hub's etags are a git sha1 or a sha256 in hex; other endpoints may send
 * other tokens, so letters, digits, `_`, `-` and `.` are taken, but never a leading `.` (which
 * would allow `.` and `..`), and at most 255 characters (one file name on common filesystems).
 */
const BLOB_NAME = /^[\w-][\w.-]{0,254}$/;
/** Longest repo path accepted: 4096 characters, Linux's PATH_MAX (in bytes) for a whole path. */
const MAX_PATH_CHARS = 4096;

function settings(o: HubOptions) {
  const env = process.env;
  return {
    revision: o.revision ?? "main",
    cacheDir:
      o.cacheDir ??
      env.HF_HUB_CACHE ??
      join(env.HF_HOME ?? join(homedir(), ".cache", "huggingface"), "hub"),
    token: o.token ?? env.HF_TOKEN,
    endpoint: (o.endpoint ?? env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, ""),
    offline:
      o.offline ?? ["1", "true", "yes", "on"].includes((env.HF_HUB_OFFLINE ?? "").toLowerCase()),
    fetch: o.fetch ?? globalThis.fetch,
    repoType: o.repoType ?? "model",
  };
}
type Settings = ReturnType<typeof settings>;
export { settings as hubSettings, cachedCommit as cachedHubCommit, checkPath as checkHubPath };

/** `{cacheDir}/models--org--name` (or `datasets--org--name`), the repo's folder in the hub cache. */
export function repoCacheDir(
  repo: string,
  cacheDir: string,
  repoType: "model" | "dataset" = "model",
): string {
  checkRepo(repo);
  return join(cacheDir, `${repoType}s--${repo.replaceAll("/", "--")}`);
}

function checkRepo(repo: string): void {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.includes("..")) {
    throw new HubError(`"${repo}" is not a hub repo id (expected "org/name")`);
  }
}

/**
 * Why `path` is not a safe relative path inside a repo folder, or null when it is: non-empty
 * `/`-separated segments, none `.` or `..`, no backslash (a separator on Windows), no NUL or other
 * control character, not absolute.
 */
function unsafePathReason(path: string): string | null {
  if (path === "") return "it is empty";
  if (path.length > MAX_PATH_CHARS) return `it is over ${MAX_PATH_CHARS} characters`;
  if (path.startsWith("/")) return "it is absolute";
  if (path.includes("\\")) return "it contains a backslash";
  if (/[\u0000-\u001f\u007f]/.test(path)) return "it contains a control character";
  const segments = path.split("/");
  if (segments.some((p) => p === "")) return "it has an empty segment";
  if (segments.some((p) => p === "." || p === "..")) return "it has a . or .. segment";
  return null;
}

function checkPath(repo: string, path: string, what = "file path"): void {
  const why = unsafePathReason(path);
  if (why !== null) {
    throw new HubError(
      `${repo}: ${what} ${JSON.stringify(path)} is not a relative path inside the repo (${why})`,
    );
  }
}

/** A commit a server or the cache names must be 40 hex digits before it names a snapshot folder. */
function checkCommit(repo: string, commit: string, source: string): string {
  if (!COMMIT_HASH.test(commit)) {
    throw new HubError(
      `${repo}: ${source} gave commit ${JSON.stringify(commit)}, which is not 40 hex digits; refusing to use it as a cache folder name`,
    );
  }
  return commit;
}

function headers(s: Settings, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(s.token ? { Authorization: `Bearer ${s.token}` } : {}), ...extra };
}

/** The commit a revision names in the cache: itself if it is a commit hash, else `refs/{revision}`. */
async function cachedCommit(
  repo: string,
  repoDir: string,
  revision: string,
): Promise<string | null> {
  if (COMMIT_HASH.test(revision)) return revision;
  const file = join(repoDir, "refs", revision);
  const ref = await readFile(file, "utf8").catch(() => null);
  return ref === null ? null : checkCommit(repo, ref.trim(), `the cache file ${file}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** "W/\"abc\"" → "abc", as huggingface_hub's `_normalize_etag`. */
function normalizeEtag(etag: string | null): string | null {
  return etag === null ? null : etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

interface FileMetadata {
  commit: string;
  etag: string;
  size: number | null;
}

/** HEAD of a file's resolve URL; null on 404. Follows same-host redirects only. */
async function fileMetadata(
  s: Settings,
  repo: string,
  url: string,
  what: string,
): Promise<FileMetadata | null> {
  let current = url;
  for (let hops = 0; ; hops++) {
    const res = await s.fetch(current, {
      method: "HEAD",
      headers: headers(s, { "Accept-Encoding": "identity" }),
      redirect: "manual",
    });
    if (res.status >= 300 && res.status < 400 && res.headers.get("location")) {
      const next = new URL(res.headers.get("location")!, current);
      if (next.host === new URL(current).host && hops < MAX_REDIRECTS) {
        current = next.href;
        continue;
      }
    } else if (res.status === 404) return null;
    else if (!res.ok) throw statusError(res, repo, what, current);
    const commit = res.headers.get("x-repo-commit");
    const etag = normalizeEtag(res.headers.get("x-linked-etag") ?? res.headers.get("etag"));
    if (commit === null || etag === null) {
      throw new HubError(
        `${repo}: ${what}: ${current} answered without X-Repo-Commit and ETag headers; is ${s.endpoint} a Hugging Face hub?`,
      );
    }
    checkCommit(repo, commit, `${what}: the X-Repo-Commit header from ${current}`);
    if (!BLOB_NAME.test(etag)) {
      throw new HubError(
        `${repo}: ${what}: ${current} answered ETag ${JSON.stringify(etag)}, which is not a blob name (letters, digits, _ - ., no leading dot); refusing to use it as a cache file name`,
      );
    }
    const sizeHeader = res.headers.get("x-linked-size") ?? res.headers.get("content-length");
    const size = sizeHeader === null ? null : Number(sizeHeader);
    if (size !== null && !(Number.isSafeInteger(size) && size >= 0)) {
      throw new HubError(
        `${repo}: ${what}: ${current} announced size ${JSON.stringify(sizeHeader)}, not a byte count`,
      );
    }
    return { commit, etag, size };
  }
}

function statusError(res: Response, repo: string, what: string, url: string): HubError {
  const hint =
    res.status === 401 || res.status === 403
      ? " (private or gated repo: set HF_TOKEN to a token with access)"
      : "";
  return new HubError(`${repo}: ${what}: HTTP ${res.status} ${res.statusText} from ${url}${hint}`);
}

export interface DownloadFileParams extends HubOptions {
  /** "org/name" */
  repo: string;
  /** Path of the file inside the repo, e.g. "config.json". */
  path: string;
}

/**
 * Downloads one file of a model repo into the cache (or finds it there) and returns its path under
 * `snapshots/{commit}/`. Returns null when the hub answers 404 for the file.
 */
export async function downloadFile(p: DownloadFileParams): Promise<string | null> {
  const s = settings(p);
  const { repo, path } = p;
  checkRepo(repo);
  checkPath(repo, path);
  checkPath(repo, s.revision, "revision");
  const repoDir = repoCacheDir(repo, s.cacheDir, s.repoType);
  const what = `${path} at revision ${s.revision}`;

  const commit = await cachedCommit(repo, repoDir, s.revision);
  const cached = commit === null ? null : join(repoDir, "snapshots", commit, path);
  if (cached !== null && (await exists(cached)) && (s.offline || COMMIT_HASH.test(s.revision)))
    return cached;
  if (s.offline) {
    throw new HubError(`${repo}: ${what} is not in the cache ${repoDir} and HF_HUB_OFFLINE is set`);
  }

  const prefix = s.repoType === "dataset" ? "datasets/" : "";
  const url = `${s.endpoint}/${prefix}${repo}/resolve/${encodeURIComponent(s.revision)}/${path
    .split("/")
    .map(encodeURIComponent)
    .join("/")}`;
  let meta: FileMetadata | null;
  try {
    meta = await fileMetadata(s, repo, url, what);
  } catch (err) {
    // Like huggingface_hub: when the hub cannot be reached, a cached copy of the revision will do.
    if (!(err instanceof HubError) && cached !== null && (await exists(cached))) return cached;
    throw err;
  }
  if (meta === null) return null;
  if (COMMIT_HASH.test(s.revision) && meta.commit !== s.revision) {
    throw new HubError(
      `${repo}: ${what}: the hub answered for commit ${meta.commit} instead of the requested ${s.revision}`,
    );
  }

  if (meta.commit !== s.revision) await writeAtomic(join(repoDir, "refs", s.revision), meta.commit);
  const pointer = join(repoDir, "snapshots", meta.commit, path);
  if (await exists(pointer)) return pointer;
  const blob = join(repoDir, "blobs", meta.etag);
  if (!(await exists(blob))) await downloadBlob(s, repo, url, what, blob, meta);
  await linkPointer(blob, pointer);
  return pointer;
}

/** GETs `url` into `blob`, resuming `blob.incomplete`, then checks size and sha256 and renames. */
async function downloadBlob(
  s: Settings,
  repo: string,
  url: string,
  what: string,
  blob: string,
  meta: FileMetadata,
): Promise<void> {
  const partial = `${blob}.incomplete`;
  await mkdir(dirname(blob), { recursive: true });
  let lastError: unknown = null;
  for (let attempt = 0; attempt < DOWNLOAD_ATTEMPTS; attempt++) {
    const have = (await stat(partial).catch(() => null))?.size ?? 0;
    if (meta.size !== null && have === meta.size) break;
    const res = await s.fetch(url, {
      headers: headers(s, {
        "Accept-Encoding": "identity",
        ...(have > 0 ? { Range: `bytes=${have}-` } : {}),
      }),
      redirect: "follow",
    });
    if (!res.ok || res.body === null) throw statusError(res, repo, what, url);
    // 206: the server honoured the Range; 200: it sent the whole file, so start over.
    const fh = await open(partial, res.status === 206 ? "a" : "w");
    try {
      const reader = res.body.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) await fh.write(r.value);
      lastError = null;
      break;
    } catch (err) {
      lastError = err;
    } finally {
      await fh.close();
    }
  }
  if (lastError !== null) {
    throw new HubError(
      `${repo}: ${what}: download failed ${DOWNLOAD_ATTEMPTS} times (${(lastError as Error).message}); ${partial} is kept and the next call resumes it`,
    );
  }
  const size = (await stat(partial)).size;
  if (meta.size !== null && size !== meta.size) {
    await rm(partial, { force: true });
    throw new HubError(`${repo}: ${what}: got ${size} bytes but the hub announced ${meta.size}`);
  }
  if (SHA256.test(meta.etag)) {
    const got = sha256File(partial);
    if (got !== meta.etag) {
      await rm(partial, { force: true });
      throw new HubError(
        `${repo}: ${what}: sha256 of the downloaded bytes is ${got} but the hub's ETag says ${meta.etag}; the file was discarded`,
      );
    }
  }
  await rename(partial, blob);
}

/** `snapshots/{commit}/{path}` → `../../blobs/{etag}` (relative, as huggingface_hub), or a copy. */
async function linkPointer(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const tmp = `${pointer}.tmp-${process.pid}`;
  await rm(tmp, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), tmp);
  } catch {
    await copyFile(blob, tmp);
  }
  await rename(tmp, pointer);
}

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** What a model load needs: configs, tokenizer files and safetensors weights (+ index). */
export const MODEL_FILE_PATTERNS = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "spiece.model",
  "*.safetensors",
  "model.safetensors.index.json",
] as const;

/** Taken only when a repo has no safetensors weights, so the loader can read or refuse them. */
const PICKLE_WEIGHT_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"] as const;

/** fnmatch-style match of a whole repo path: `*` any run of characters, `?` one character. */
export function matchesPattern(path: string, pattern: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replaceAll("*", ".*")
    .replaceAll("?", ".");
  return new RegExp(`^${re}$`).test(path);
}

export interface SnapshotDownloadOptions extends HubOptions {
  /** Files to fetch, as fnmatch patterns. @default MODEL_FILE_PATTERNS */
  allowPatterns?: readonly string[];
}

/**
 * Downloads the files of `repo` at `revision` that match `allowPatterns` and returns the snapshot
 * folder `snapshots/{commit}`. Files already cached for that commit cost no request.
 */
export async function snapshotDownload(
  repo: string,
  o: SnapshotDownloadOptions = {},
): Promise<string> {
  const s = settings(o);
  const repoDir = repoCacheDir(repo, s.cacheDir);
  checkPath(repo, s.revision, "revision");
  if (s.offline) {
    const commit = await cachedCommit(repo, repoDir, s.revision);
    const dir = commit === null ? null : join(repoDir, "snapshots", commit);
    if (dir === null || !(await exists(dir))) {
      throw new HubError(
        `${repo}: revision ${s.revision} is not in the cache ${repoDir} and HF_HUB_OFFLINE is set`,
      );
    }
    return dir;
  }
  const { sha, files } = await listFiles(s, repo);
  const patterns = o.allowPatterns ?? [
    ...MODEL_FILE_PATTERNS,
    ...(files.some((f) => f.endsWith(".safetensors")) ? [] : PICKLE_WEIGHT_PATTERNS),
  ];
  const wanted = files.filter((f) => patterns.some((p) => matchesPattern(f, p)));
  if (sha !== s.revision) await writeAtomic(join(repoDir, "refs", s.revision), sha);
  for (const path of wanted) {
    const got = await downloadFile({ ...o, repo, path, revision: sha, cacheDir: s.cacheDir });
    if (got === null) {
      throw new HubError(
        `${repo}: ${path} is listed at revision ${s.revision} (commit ${sha}) but ${s.endpoint} answered 404 for it`,
      );
    }
  }
  const dir = join(repoDir, "snapshots", sha);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The listing API: the commit a revision points to and every file path in it. */
async function listFiles(s: Settings, repo: string): Promise<{ sha: string; files: string[] }> {
  const url = `${s.endpoint}/api/models/${repo}/revision/${encodeURIComponent(s.revision)}`;
  const res = await s.fetch(url, { headers: headers(s) });
  if (res.status === 404) {
    throw new HubError(
      `${repo}: repository or revision ${s.revision} not found at ${s.endpoint} (404); check the name, or set HF_TOKEN for a private or gated repo`,
    );
  }
  if (!res.ok) throw statusError(res, repo, `listing of revision ${s.revision}`, url);
  const text = await res.text();
  if (text.length > MAX_LISTING_BYTES) {
    throw new HubError(`${repo}: listing at ${url} is over ${MAX_LISTING_BYTES} bytes`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HubError(`${repo}: listing at ${url} is not JSON`);
  }
  const { sha, siblings } = (body ?? {}) as { sha?: unknown; siblings?: unknown };
  if (typeof sha !== "string" || !COMMIT_HASH.test(sha) || !Array.isArray(siblings)) {
    throw new HubError(`${repo}: listing at ${url} lacks "sha" (a commit hash) or "siblings"`);
  }
  const files = siblings.map((x, i) => {
    const name = (x as { rfilename?: unknown })?.rfilename;
    if (typeof name !== "string")
      throw new HubError(`${repo}: listing at ${url}: siblings[${i}] has no rfilename`);
    checkPath(repo, name, `listing at ${url}: siblings[${i}].rfilename`);
    return name;
  });
  return { sha, files };
}
