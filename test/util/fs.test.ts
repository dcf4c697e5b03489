/**
 * src/util/fs.ts: writeAtomic replaces a file whole, and when the rename fails (here the target
 * is a folder) the error reaches the caller and no temporary file is left beside it. Errors keep
 * the system's code and name the file: on a read-only file system makeDir, writeAtomic and
 * `lethe run --out` report EROFS (Node's recursive mkdir says ENOENT there), and a full disk's
 * ENOSPC names the file being written. Both file systems are tmpfs mounts in a user namespace
 * (`unshare -rm`); where that is not allowed, a non-root user gets the EACCES half through
 * chmod, and root skips with the reason. removeStaleTemps removes what a kill -9 leaves of dead
 * processes only; checkWritable refuses a missing, read-only or wrong folder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkWritable,
  makeDir,
  pidAlive,
  removeStaleTemps,
  writeAtomic,
} from "../../src/util/fs.js";
import { dataPath, repoRoot, sharedDataRoot } from "../helpers/data.js";

test("writeAtomic replaces a file whole; a failed rename leaves no temporary file", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-fs-"));
  try {
    const file = join(dir, "a.json");
    writeFileSync(file, "old");
    writeAtomic(file, "new text\n");
    assert.equal(readFileSync(file, "utf8"), "new text\n");
    const folder = join(dir, "b");
    mkdirSync(join(folder, "inside"), { recursive: true });
    assert.throws(() => writeAtomic(folder, "x"), /EISDIR|ENOTEMPTY|EEXIST|not a directory|EPERM/);
    assert.deepEqual(readdirSync(dir).sort(), ["a.json", "b"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const usernsWorks =
  spawnSync("unshare", ["-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], { stdio: "ignore" })
    .status === 0;

/** Runs `script` (an ES module) in a user namespace with `ro` a read-only and `full` a 64 KiB tmpfs. */
function inNamespace(script: string, ro: string, full: string): string {
  const mounts = `mount -t tmpfs -o ro tmpfs ${ro} && mount -t tmpfs -o size=64k tmpfs ${full}`;
  const r = spawnSync(
    "unshare",
    [
      "-rm",
      "sh",
      "-c",
      `${mounts} && exec "$0" --import tsx --input-type=module -e "$1"`,
      process.execPath,
      script,
    ],
    { cwd: repoRoot, encoding: "utf8", env: { ...process.env, LETHE_DATA: sharedDataRoot } },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test("a read-only out dir reports EROFS, not ENOENT; ENOSPC names the file", async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), "lethe-fs-errors-"));
  try {
    const ro = join(tmp, "ro");
    const full = join(tmp, "full");
    mkdirSync(ro);
    mkdirSync(full);
    if (!usernsWorks) {
      if (process.getuid?.() === 0)
        return t.skip(
          "unshare -rm is not allowed here and root ignores chmod: no read-only folder",
        );
      console.log("# unshare -rm is not allowed here: EACCES through chmod only");
      chmodSync(ro, 0o555);
      assert.throws(() => makeDir(join(ro, "study", "runs")), /EACCES.*\/ro\/study/);
      assert.throws(() => writeAtomic(join(ro, "a.json"), "{}"), /EACCES.*a\.json/);
      return;
    }
    const tiny = join(repoRoot, "examples", "tiny-study.yaml");
    const script = `
      const { checkWritable, makeDir, writeAtomic } = await import(${JSON.stringify(join(repoRoot, "src/util/fs.ts"))});
      const out = {};
      const attempt = (k, f) => { try { f(); out[k] = "ok"; } catch (e) { out[k] = e.code + " | " + e.message; } };
      attempt("mkdir", () => makeDir(${JSON.stringify(join(ro, "study", "runs"))}));
      attempt("write", () => writeAtomic(${JSON.stringify(join(ro, "a.json"))}, "{}"));
      attempt("check", () => checkWritable(${JSON.stringify(join(ro, "out.json"))}, "--output"));
      attempt("full", () => writeAtomic(${JSON.stringify(join(full, "big.json"))}, "x".repeat(1 << 20)));
      out.left = (await import("node:fs")).readdirSync(${JSON.stringify(full)});
      if (${dataPath("models", "stories260K", "tok512.bin") !== null}) {
        const { loadStudy } = await import(${JSON.stringify(join(repoRoot, "src/continual/config.ts"))});
        const { runStudy } = await import(${JSON.stringify(join(repoRoot, "src/continual/study.ts"))});
        try { await runStudy(loadStudy(${JSON.stringify(tiny)}), ${JSON.stringify(join(ro, "study"))}); out.run = "ok"; }
        catch (e) { out.run = e.code + " | " + e.message; }
      }
      process.stdout.write(JSON.stringify(out));`;
    const out = JSON.parse(inNamespace(script, ro, full)) as Record<string, string | string[]>;
    console.log(`# ${JSON.stringify(out)}`);
    assert.match(out.mkdir as string, /^EROFS \| .*\/ro\/study/);
    assert.match(out.write as string, /^EROFS \| .*\/ro\/a\.json/);
    assert.match(
      out.check as string,
      /--output .*out\.json: folder .*ro is not writable \(EROFS\)/,
    );
    assert.match(out.full as string, /^ENOSPC \| .*\/full\/big\.json: ENOSPC/);
    assert.deepEqual(out.left, [], "no temporary file is left on the full disk");
    if (out.run !== undefined) assert.match(out.run as string, /^EROFS \| .*\/ro\/study/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("checkWritable refuses a missing folder, a folder as the file, a path under a file", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-fs-check-"));
  try {
    checkWritable(join(dir, "out.json"), "--output");
    assert.throws(
      () => checkWritable(join(dir, "nope", "out.json"), "--output"),
      /^Error: --output .*nope\/out\.json: folder .*nope does not exist$/,
    );
    assert.throws(() => checkWritable(dir, "--output"), /--output .*: is a folder/);
    writeFileSync(join(dir, "file"), "");
    assert.throws(
      () => checkWritable(join(dir, "file", "out.json"), "--out"),
      /--out .*: .*file is not a folder/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("removeStaleTemps removes the temporaries of dead processes, nothing else", () => {
  const dir = mkdtempSync(join(tmpdir(), "lethe-fs-temps-"));
  try {
    const gone = spawnSync(process.execPath, ["-e", "0"]).pid!;
    assert.ok(!pidAlive(gone) && pidAlive(process.pid) && !pidAlive(0) && !pidAlive(-1));
    const files = [
      `a.json.tmp-${gone}`,
      `keep.json.tmp-${process.pid}`,
      "results.json",
      `sub/deep/b.safetensors.tmp-${gone}`,
      `lock.tmp-${gone}-0/x.json`,
      `.model.tmp-${gone}-1712345678901/config.json`,
      "ckpt-2/tmp-notes.txt",
    ];
    for (const f of files) {
      mkdirSync(join(dir, f, ".."), { recursive: true });
      writeFileSync(join(dir, f), "");
    }
    const removed = removeStaleTemps(dir).map((p) => p.slice(dir.length + 1));
    assert.deepEqual(removed.sort(), [
      `.model.tmp-${gone}-1712345678901`,
      `a.json.tmp-${gone}`,
      `lock.tmp-${gone}-0`,
      `sub/deep/b.safetensors.tmp-${gone}`,
    ]);
    for (const f of [`keep.json.tmp-${process.pid}`, "results.json", "ckpt-2/tmp-notes.txt"])
      assert.ok(existsSync(join(dir, f)), f);
    writeFileSync(join(dir, "sub", `c.tmp-${gone}`), "");
    assert.deepEqual(removeStaleTemps(dir, { recursive: false }), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
