/**
 * Tests for src/io/hash.ts: FIPS 180-4 test vectors, and a file larger than one read chunk
 * hashed in pieces equals the one-shot hash of its whole contents.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256File } from "../../src/io/hash.js";

const dir = mkdtempSync(join(tmpdir(), "lethe-hash-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("sha256File matches the FIPS 180-4 vectors for '' and 'abc'", () => {
  const empty = join(dir, "empty");
  const abc = join(dir, "abc");
  writeFileSync(empty, "");
  writeFileSync(abc, "abc");
  assert.equal(
    sha256File(empty),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  assert.equal(sha256File(abc), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

test("sha256File of a multi-chunk file equals the one-shot hash of its bytes", () => {
  const path = join(dir, "big");
  const bytes = randomBytes((9 << 20) + 123);
  writeFileSync(path, bytes);
  assert.equal(sha256File(path), createHash("sha256").update(bytes).digest("hex"));
});
