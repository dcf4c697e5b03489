/**
 * src/util/fs.ts writeAtomic: the target gets the whole text, and when the rename fails (here the
 * target is a folder) the error reaches the caller and no temporary file is left beside it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeAtomic } from "../../src/util/fs.js";

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
