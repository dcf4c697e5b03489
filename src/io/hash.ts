/**
 * SHA-256 of a file, read in fixed-size chunks so a multi-GB checkpoint hashes in constant memory.
 * Reference: FIPS 180-4 via Node's `crypto.createHash("sha256")`; the hex digest is the same as
 * `sha256sum` prints and as the Hugging Face Hub's LFS `oid` for the file.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";

/** Bytes read per call: large enough to amortise syscalls, small enough to not matter in RAM. */
const CHUNK_BYTES = 4 << 20;

/** Lower-case hex SHA-256 of the file at `path`. */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const chunk = new Uint8Array(CHUNK_BYTES);
  const fd = openSync(path, "r");
  try {
    for (let got = readSync(fd, chunk); got > 0; got = readSync(fd, chunk)) {
      hash.update(chunk.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}
