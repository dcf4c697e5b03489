/**
 * The Hub's parquet export (src/io/hub_datasets.ts) against a loopback server in the Hub's URL
 * layout: `/api/datasets/{repo}/parquet/{config}/{split}` lists shard URLs, and
 * `/datasets/{repo}/resolve/refs%2Fconvert%2Fparquet/{config}/{split}/{nnnn}.parquet` serves them
 * with X-Repo-Commit and a sha256 X-Linked-Etag, honouring Range. Download into the cache layout,
 * cache reuse, resume after a cut connection, a sha256 mismatch refused, offline mode, 404s, and a
 * real task (wiki_auto) loaded through it.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readParquet } from "../../src/io/dataset.js";
import { resolveHubDataset } from "../../src/io/hub_datasets.js";
import { loadTask } from "../../src/continual/tasks/index.js";

const FIX = join(dirname(fileURLToPath(import.meta.url)), "..", "continual", "fixtures");
const COMMIT = "fedcba9876543210fedcba9876543210fedcba98";

interface Shard {
  bytes: Buffer;
  sha: string;
}
const shard = (file: string): Shard => {
  const bytes = readFileSync(join(FIX, file));
  return { bytes, sha: createHash("sha256").update(bytes).digest("hex") };
};

/** `{repo}|{config}|{split}` → shards; what the fake hub does, changed by each test. */
const hub = {
  splits: new Map<string, Shard[]>(),
  cutOnce: new Set<string>(),
  corrupt: new Set<string>(),
  requests: [] as { method: string; path: string; range?: string }[],
};

let server: Server;
let endpoint = "";
let home = "";

function handle(req: IncomingMessage, res: ServerResponse): void {
  const raw = req.url!.split("?")[0];
  hub.requests.push({ method: req.method!, path: raw, range: req.headers.range });
  const list = /^\/api\/datasets\/(.+)\/parquet\/([^/]+)\/([^/]+)$/.exec(raw);
  if (list) {
    const [, repo, config, split] = list.map(decodeURIComponent);
    const shards = hub.splits.get(`${repo}|${config}|${split}`);
    if (!shards) return void res.writeHead(404).end("not found");
    res.writeHead(200, { "Content-Type": "application/json" });
    return void res.end(JSON.stringify(shards.map((_, n) => `${endpoint}${raw}/${n}.parquet`)));
  }
  // The revision arrives percent-encoded in one segment, as huggingface_hub sends it.
  const file =
    /^\/datasets\/(.+)\/resolve\/refs%2Fconvert%2Fparquet\/([^/]+)\/([^/]+)\/(\d{4})\.parquet$/.exec(
      raw,
    );
  const shards = file ? hub.splits.get(`${file[1]}|${file[2]}|${file[3]}`) : undefined;
  const s = file && shards ? shards[Number(file[4])] : undefined;
  if (!file || !s) return void res.writeHead(404, { "X-Error-Code": "EntryNotFound" }).end();
  let body = s.bytes;
  if (hub.corrupt.has(raw)) {
    body = Buffer.from(body);
    body[body.length - 1] ^= 0xff;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = m ? Number(m[1]) : 0;
  res.writeHead(m ? 206 : 200, {
    "X-Repo-Commit": COMMIT,
    "X-Linked-Etag": `"${s.sha}"`,
    "X-Linked-Size": String(s.bytes.length),
    ETag: `"not-the-sha"`,
    "Content-Length": String(body.length - start),
  });
  if (req.method === "HEAD") return void res.end();
  const part = body.subarray(start);
  if (hub.cutOnce.delete(raw)) {
    res.write(part.subarray(0, part.length >> 1), () =>
      setTimeout(() => res.socket?.destroy(), 100),
    );
    return;
  }
  res.end(part);
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  home = mkdtempSync(join(tmpdir(), "lethe-hubds-"));
  hub.splits.set("test/tiny|default|train", [
    shard("ct0_wiki_auto.parquet"),
    shard("ct0_empathetic_dialogues.parquet"),
  ]);
  hub.splits.set("wiki_auto|auto_acl|full", [shard("ct0_wiki_auto.parquet")]);
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(home, { recursive: true, force: true });
});

const opts = (cache: string) => ({ endpoint, cacheDir: cache, offline: false });

test("a split's shards download into the hub cache layout, then come from it", async () => {
  const cache = join(home, "dl");
  hub.requests.length = 0;
  const files = await resolveHubDataset({
    repo: "test/tiny",
    config: "default",
    split: "train",
    ...opts(cache),
  });
  const snap = join(cache, "datasets--test--tiny", "snapshots", COMMIT, "default", "train");
  assert.deepEqual(files, [join(snap, "0000.parquet"), join(snap, "0001.parquet")]);
  assert.deepEqual(readFileSync(files[1]), hub.splits.get("test/tiny|default|train")![1].bytes);
  assert.equal(
    readFileSync(join(cache, "datasets--test--tiny", "refs", "refs", "convert", "parquet"), "utf8"),
    COMMIT,
  );
  assert.equal((await readParquet(files[0])).rows.length, 6);
  assert.equal(hub.requests.filter((r) => r.method === "GET").length, 3, "listing + 2 shards");

  hub.requests.length = 0;
  assert.deepEqual(
    await resolveHubDataset({
      repo: "test/tiny",
      config: "default",
      split: "train",
      ...opts(cache),
    }),
    files,
  );
  assert.equal(hub.requests.filter((r) => r.method === "GET").length, 1, "only the listing again");

  // Offline: the cache alone, not one request.
  hub.requests.length = 0;
  const offline = await resolveHubDataset({
    repo: "test/tiny",
    config: "default",
    split: "train",
    cacheDir: cache,
    endpoint,
    offline: true,
  });
  assert.deepEqual(offline, files);
  assert.equal(hub.requests.length, 0);
});

test("a shard cut off halfway resumes with a Range request", async () => {
  const cache = join(home, "resume");
  const path = "/datasets/test/tiny/resolve/refs%2Fconvert%2Fparquet/default/train/0001.parquet";
  hub.cutOnce.add(path);
  hub.requests.length = 0;
  const files = await resolveHubDataset({
    repo: "test/tiny",
    config: "default",
    split: "train",
    ...opts(cache),
  });
  const gets = hub.requests.filter((r) => r.method === "GET" && r.path === path);
  assert.equal(gets.length, 2);
  assert.match(gets[1].range ?? "", /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(gets[1].range!)![0]) > 0);
  const want = hub.splits.get("test/tiny|default|train")![1];
  assert.equal(createHash("sha256").update(readFileSync(files[1])).digest("hex"), want.sha);
});

test("a shard whose sha256 does not match the hub's is refused and not cached", async () => {
  const cache = join(home, "corrupt");
  const path = "/datasets/test/tiny/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet";
  hub.corrupt.add(path);
  try {
    await assert.rejects(
      resolveHubDataset({ repo: "test/tiny", config: "default", split: "train", ...opts(cache) }),
      /default\/train\/0000\.parquet.*sha256 of the downloaded bytes is [0-9a-f]{64} but the hub's ETag says [0-9a-f]{64}; the file was discarded/,
    );
  } finally {
    hub.corrupt.delete(path);
  }
  const blobs = join(cache, "datasets--test--tiny", "blobs");
  assert.deepEqual(existsSync(blobs) ? readdirSync(blobs) : [], []);
});

test("offline without a cached copy, an unknown split, an unreachable hub: errors name the dataset and the fixes", async () => {
  const cache = join(home, "errors");
  await assert.rejects(
    resolveHubDataset({
      repo: "test/tiny",
      config: "default",
      split: "train",
      cacheDir: cache,
      endpoint,
      offline: true,
    }),
    /dataset test\/tiny \(default\/train\) is not in the cache .* HF_HUB_OFFLINE is set; .*HF_ENDPOINT.*local/,
  );
  await assert.rejects(
    resolveHubDataset({
      repo: "test/tiny",
      config: "default",
      split: "validation",
      ...opts(cache),
    }),
    /dataset test\/tiny \(default\/validation\): .* has no parquet export for it \(404/,
  );
  await assert.rejects(
    resolveHubDataset({
      repo: "test/tiny",
      config: "default",
      split: "train",
      cacheDir: cache,
      endpoint: "http://127.0.0.1:9",
      offline: false,
    }),
    /cannot reach http:\/\/127\.0\.0\.1:9 .*nothing is cached.*HF_ENDPOINT/,
  );
  await assert.rejects(
    resolveHubDataset({ repo: "test/tiny", config: "../x", split: "train", ...opts(cache) }),
    /config "\.\.\/x"/,
  );
});

test("the wiki_auto task loads through HF_ENDPOINT's parquet export, then offline from the cache", async () => {
  const saved = { ...process.env };
  const dataDir = mkdtempSync(join(tmpdir(), "lethe-hubds-data-"));
  process.env.HF_ENDPOINT = endpoint;
  process.env.HF_HOME = join(home, "task");
  delete process.env.HF_HUB_CACHE;
  delete process.env.HF_HUB_OFFLINE;
  try {
    const task = await loadTask("wiki_auto", dataDir);
    assert.equal(task.test.length, 6);
    assert.deepEqual(task.test[1].references, ["Paris is the capital of France."]);
    process.env.HF_HUB_OFFLINE = "1";
    hub.requests.length = 0;
    assert.deepEqual(await loadTask("wiki_auto", dataDir), task);
    assert.equal(hub.requests.length, 0);
  } finally {
    process.env = saved;
    rmSync(dataDir, { recursive: true, force: true });
  }
});
