/**
 * The hub client against a loopback server that serves a model directory in the hub's URL layout
 * (`/api/models/{repo}/revision/{rev}`, `/{repo}/resolve/{rev}/{path}`, ETag = sha256, Range, LFS
 * files redirected to a second "CDN" server): download, cache reuse, resume, sha256 rejection,
 * token, 404 and offline behaviour, end to end through loadPretrained("hf:..."); and a hostile
 * server whose commit, ETag and file names try to make lethe write outside HF_HOME.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { downloadFile, repoCacheDir, snapshotDownload } from "../../src/io/hub.js";
import { loadPretrained, savePretrained } from "../../src/io/pretrained.js";
import {
  createModel,
  parseModelConfig,
  type CausalLM,
  type LanguageModel,
} from "../../src/models/index.js";
import { tensor, tidy } from "../../src/tensor/index.js";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const REPO = "test/tiny";

interface Served {
  bytes: Buffer;
  sha: string;
}

/** What the fake hub does; tests change it between loads. */
const hub = {
  files: new Map<string, Served>(),
  /** Paths whose next body is cut off halfway (the socket is destroyed), once each. */
  cutOnce: new Set<string>(),
  /** Paths served with one byte flipped (the ETag still names the real sha256). */
  corrupt: new Set<string>(),
  /** Paths listed but answered with 404. */
  gone: new Set<string>(),
  requests: [] as { method: string; url: string; auth?: string; range?: string }[],
};

let hubServer: Server;
let cdnServer: Server;
let endpoint = "";
let cdn = "";
let model: LanguageModel;
let modelDir = "";

function send(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  headers: Record<string, string>,
): void {
  const f = hub.files.get(path)!;
  let body = f.bytes;
  if (hub.corrupt.has(path)) {
    body = Buffer.from(body);
    body[body.length - 1] ^= 0xff;
  }
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = m ? Number(m[1]) : 0;
  res.writeHead(m ? 206 : 200, {
    ...headers,
    "Content-Length": String(body.length - start),
    ...(m ? { "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
  });
  if (req.method === "HEAD") return void res.end();
  const part = body.subarray(start);
  if (hub.cutOnce.delete(path)) {
    // Close after the client has taken the half in (a stream error drops chunks not yet read).
    res.write(part.subarray(0, part.length >> 1), () =>
      setTimeout(() => res.socket?.destroy(), 100),
    );
    return;
  }
  res.end(part);
}

function handleHub(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url!, endpoint);
  hub.requests.push({
    method: req.method!,
    url: url.pathname,
    auth: req.headers.authorization,
    range: req.headers.range,
  });
  if (url.pathname === `/api/models/${REPO}/revision/main`) {
    res.writeHead(200, { "Content-Type": "application/json" });
    return void res.end(
      JSON.stringify({
        id: REPO,
        sha: COMMIT,
        siblings: [...hub.files.keys()].map((rfilename) => ({ rfilename })),
      }),
    );
  }
  const m = new RegExp(`^/${REPO}/resolve/(main|${COMMIT})/(.+)$`).exec(url.pathname);
  const path = m ? decodeURIComponent(m[2]) : "";
  if (!m || !hub.files.has(path) || hub.gone.has(path)) {
    res.writeHead(404, { "X-Error-Code": "EntryNotFound" });
    return void res.end("Entry not found");
  }
  const f = hub.files.get(path)!;
  if (path.endsWith(".safetensors")) {
    // LFS files: the hub answers 302 to its CDN, with the sha256 as X-Linked-Etag.
    res.writeHead(302, {
      Location: `${cdn}/blobs/${f.sha}?path=${encodeURIComponent(path)}`,
      "X-Repo-Commit": COMMIT,
      "X-Linked-Etag": `"${f.sha}"`,
      "X-Linked-Size": String(f.bytes.length),
      ETag: `"not-the-sha"`,
    });
    return void res.end();
  }
  send(req, res, path, { "X-Repo-Commit": COMMIT, ETag: `"${f.sha}"` });
}

function handleCdn(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url!, cdn);
  hub.requests.push({
    method: req.method!,
    url: `cdn:${url.pathname}`,
    auth: req.headers.authorization,
    range: req.headers.range,
  });
  send(req, res, url.searchParams.get("path")!, { ETag: `"${url.pathname.split("/").pop()}"` });
}

async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<[Server, string]> {
  const server = createServer(handler);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
}

before(async () => {
  [hubServer, endpoint] = await listen(handleHub);
  [cdnServer, cdn] = await listen(handleCdn);
  process.env.HF_ENDPOINT = endpoint;
  process.env.HF_TOKEN = "hf_loopback_token";
  delete process.env.HF_HUB_OFFLINE;
  model = createModel(
    parseModelConfig({
      model_type: "gpt2",
      vocab_size: 64,
      n_positions: 16,
      n_embd: 16,
      n_layer: 2,
      n_head: 2,
    }),
    { seed: 7 },
  ).eval();
  modelDir = mkdtempSync(join(tmpdir(), "lethe-hub-model-"));
  await savePretrained(model, modelDir);
  for (const name of readdirSync(modelDir)) {
    const bytes = readFileSync(join(modelDir, name));
    hub.files.set(name, { bytes, sha: createHash("sha256").update(bytes).digest("hex") });
  }
});

after(() => {
  hubServer.close();
  cdnServer.close();
  model.dispose();
  rmSync(modelDir, { recursive: true, force: true });
  delete process.env.HF_ENDPOINT;
  delete process.env.HF_TOKEN;
});

function freshCache(): string {
  hub.requests.length = 0;
  return mkdtempSync(join(tmpdir(), "lethe-hub-cache-"));
}

function logits(m: LanguageModel): number[] {
  return tidy(() =>
    (m as CausalLM)
      .forward({ inputIds: tensor([[3, 1, 4, 1, 5, 9, 2, 6]], { dtype: "int64" }) })
      .logits.toNumbers(),
  );
}

test("hf:test/tiny@main downloads into the hub cache layout and gives the original logits", async () => {
  const cacheDir = freshCache();
  try {
    const loaded = await loadPretrained("hf:test/tiny@main", { cacheDir });
    assert.deepEqual(logits(loaded.model), logits(model));
    loaded.model.dispose();
    const repoDir = repoCacheDir(REPO, cacheDir);
    assert.equal(repoDir, join(cacheDir, "models--test--tiny"));
    assert.equal(loaded.dir, join(repoDir, "snapshots", COMMIT));
    assert.equal(readFileSync(join(repoDir, "refs", "main"), "utf8"), COMMIT);
    for (const [name, f] of hub.files) {
      assert.ok(existsSync(join(repoDir, "blobs", f.sha)), `blob of ${name}`);
      assert.ok(lstatSync(join(loaded.dir, name)).isSymbolicLink(), `${name} is not a symlink`);
    }
    // LFS weights came from the CDN after the hub's redirect; HEAD stopped at the hub's 302.
    const sha = hub.files.get("model.safetensors")!.sha;
    assert.ok(hub.requests.some((r) => r.method === "GET" && r.url === `cdn:/blobs/${sha}`));
    assert.ok(!hub.requests.some((r) => r.method === "HEAD" && r.url.startsWith("cdn:")));
    // HF_TOKEN is sent to the hub on every request.
    const onHub = hub.requests.filter((r) => !r.url.startsWith("cdn:"));
    assert.ok(onHub.length >= 1 + hub.files.size);
    assert.ok(onHub.every((r) => r.auth === "Bearer hf_loopback_token"));

    // Second load: only the listing is asked for; every file comes from the cache.
    hub.requests.length = 0;
    const again = await loadPretrained("hf:test/tiny", { cacheDir });
    assert.deepEqual(
      hub.requests.map((r) => `${r.method} ${r.url}`),
      [`GET /api/models/${REPO}/revision/main`],
    );
    assert.deepEqual(logits(again.model), logits(model));
    again.model.dispose();

    // Offline: no request at all.
    hub.requests.length = 0;
    process.env.HF_HUB_OFFLINE = "1";
    try {
      const offline = await loadPretrained("hf:test/tiny@main", { cacheDir });
      offline.model.dispose();
      await assert.rejects(
        loadPretrained("hf:test/tiny@main", { cacheDir: join(cacheDir, "empty") }),
        /not in the cache .* HF_HUB_OFFLINE/,
      );
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
    assert.equal(hub.requests.length, 0);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test("a download cut off halfway resumes with a Range request", async () => {
  const cacheDir = freshCache();
  hub.cutOnce.add("model.safetensors");
  try {
    const loaded = await loadPretrained("hf:test/tiny@main", { cacheDir });
    assert.deepEqual(logits(loaded.model), logits(model));
    loaded.model.dispose();
    const gets = hub.requests.filter((r) => r.method === "GET" && r.url.startsWith("cdn:"));
    assert.equal(gets.length, 2);
    assert.equal(gets[0].range, undefined);
    const half = hub.files.get("model.safetensors")!.bytes.length >> 1;
    assert.equal(gets[1].range, `bytes=${half}-`);
  } finally {
    hub.cutOnce.clear();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test("a file whose sha256 does not match its ETag is rejected and not cached", async () => {
  const cacheDir = freshCache();
  hub.corrupt.add("model.safetensors");
  try {
    await assert.rejects(loadPretrained("hf:test/tiny@main", { cacheDir }), (e: Error) => {
      assert.match(
        e.message,
        /test\/tiny: model\.safetensors .*sha256 of the downloaded bytes is [0-9a-f]{64} but the hub's ETag says/,
      );
      return true;
    });
    const blobs = join(repoCacheDir(REPO, cacheDir), "blobs");
    const sha = hub.files.get("model.safetensors")!.sha;
    assert.ok(
      !readdirSync(blobs).some((b) => b.startsWith(sha)),
      "corrupt blob or .incomplete left behind",
    );
    assert.ok(
      !existsSync(join(repoCacheDir(REPO, cacheDir), "snapshots", COMMIT, "model.safetensors")),
    );
    // Once the server is fixed, the same cache downloads the good file.
    hub.corrupt.clear();
    const loaded = await loadPretrained("hf:test/tiny@main", { cacheDir });
    assert.deepEqual(logits(loaded.model), logits(model));
    loaded.model.dispose();
  } finally {
    hub.corrupt.clear();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test("404s: downloadFile returns null, loads name the repo and file, unknown repos are named", async () => {
  const cacheDir = freshCache();
  try {
    assert.equal(await downloadFile({ repo: REPO, path: "no_such_file.json", cacheDir }), null);
    hub.gone.add("config.json");
    await assert.rejects(
      loadPretrained("hf:test/tiny@main", { cacheDir }),
      /test\/tiny: config\.json is listed at revision main .* answered 404/,
    );
    await assert.rejects(
      snapshotDownload("test/missing", { cacheDir }),
      /test\/missing: repository or revision main not found .* HF_TOKEN/,
    );
    await assert.rejects(loadPretrained("hf:not a repo", { cacheDir }), /is not a hub reference/);
  } finally {
    hub.gone.clear();
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

/** What the hostile hub answers: tests set a bad commit, ETag or file name, one at a time. */
const HOSTILE_REPO = "attacker/repo";
const hostile = { commit: COMMIT, etag: "a".repeat(40), siblings: ["config.json"] };

function handleHostile(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url!, "http://127.0.0.1");
  if (url.pathname === `/api/models/${HOSTILE_REPO}/revision/main`) {
    res.writeHead(200, { "Content-Type": "application/json" });
    return void res.end(
      JSON.stringify({
        sha: COMMIT,
        siblings: hostile.siblings.map((rfilename) => ({ rfilename })),
      }),
    );
  }
  const body = Buffer.from("{}");
  res.writeHead(200, {
    "X-Repo-Commit": hostile.commit,
    ETag: `"${hostile.etag}"`,
    "Content-Length": String(body.length),
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Every path under `dir`, files, folders and links alike. */
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

test("a hostile hub's commit, ETag and file names are refused and nothing is written outside HF_HOME", async () => {
  const root = mkdtempSync(join(tmpdir(), "lethe-hub-hostile-"));
  const hfHome = join(root, "home", "hf");
  mkdirSync(hfHome, { recursive: true });
  const saved = { HF_HOME: process.env.HF_HOME, HF_HUB_CACHE: process.env.HF_HUB_CACHE };
  process.env.HF_HOME = hfHome;
  delete process.env.HF_HUB_CACHE;
  const [server, url] = await listen(handleHostile);
  const o = { endpoint: url };
  try {
    // The X-Repo-Commit header names the snapshot folder: a path instead of a hash is refused.
    for (const commit of ["../../evil", "../../../../../evil", "/tmp/evil", `${COMMIT}/../x`]) {
      hostile.commit = commit;
      const refused = (e: Error) => {
        assert.match(
          e.message,
          /attacker\/repo: .*X-Repo-Commit header from http:\/\/127\.0\.0\.1/,
        );
        assert.ok(e.message.includes(`gave commit ${JSON.stringify(commit)}, which is not 40 hex`));
        return true;
      };
      await assert.rejects(
        downloadFile({ ...o, repo: HOSTILE_REPO, path: "config.json" }),
        refused,
      );
      await assert.rejects(loadPretrained(`hf:${HOSTILE_REPO}`, o), refused);
    }
    hostile.commit = COMMIT;
    // The ETag names the blob file: ".", ".." and paths are refused.
    for (const etag of ["..", ".", "../../../evil", ".hidden"]) {
      hostile.etag = etag;
      await assert.rejects(
        downloadFile({ ...o, repo: HOSTILE_REPO, path: "config.json" }),
        new RegExp(
          `answered ETag ${JSON.stringify(etag).replaceAll(".", "\\.")}, which is not a blob name`,
        ),
      );
    }
    hostile.etag = "a".repeat(40);
    // Listed file names are checked before any is used, even those no pattern would fetch.
    for (const name of [
      "../../evil.json",
      "a/../../evil.json",
      "/tmp/evil.json",
      "..\\..\\evil.json",
      "config.json\u0000.evil",
      "./config.json",
      "a//config.json",
    ]) {
      hostile.siblings = ["config.json", name];
      await assert.rejects(snapshotDownload(HOSTILE_REPO, o), (e: Error) => {
        assert.ok(
          e.message.includes(
            `siblings[1].rfilename ${JSON.stringify(name)} is not a relative path`,
          ),
          e.message,
        );
        return true;
      });
    }
    // A revision is a path under refs/ too.
    await assert.rejects(
      snapshotDownload(HOSTILE_REPO, { ...o, revision: "../../../evil" }),
      /revision "\.\.\/\.\.\/\.\.\/evil" is not a relative path/,
    );
    // Nothing beside HF_HOME, nothing named "evil" in it, no link leading out of the cache.
    assert.deepEqual(readdirSync(root), ["home"]);
    assert.deepEqual(readdirSync(join(root, "home")), ["hf"]);
    const cache = join(hfHome, "hub");
    for (const p of walk(hfHome)) {
      assert.ok(!p.includes("evil"), `${p} was created`);
      if (lstatSync(p).isSymbolicLink() && existsSync(p)) {
        const target = realpathSync(p);
        assert.ok(!relative(realpathSync(cache), target).startsWith(".."), `${p} → ${target}`);
      }
    }
  } finally {
    hostile.siblings = ["config.json"];
    server.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(root, { recursive: true, force: true });
  }
});
