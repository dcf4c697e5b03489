/** Runs a CLI command function in-process, capturing what it writes. */

/**
 * Runs `fn`; returns its exit code and what it wrote to stdout and stderr. Strings are lethe's;
 * the test runner's own messages to its parent (buffers) pass through.
 */
export async function capture(
  fn: () => Promise<number>,
): Promise<{ code: number; out: string; err: string }> {
  const [stdout, stderr] = [process.stdout.write, process.stderr.write];
  let out = "";
  let err = "";
  process.stdout.write = ((s: string | Uint8Array, ...rest: never[]) =>
    typeof s === "string"
      ? ((out += s), true)
      : stdout.call(process.stdout, s, ...rest)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array, ...rest: never[]) =>
    typeof s === "string"
      ? ((err += s), true)
      : stderr.call(process.stderr, s, ...rest)) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    [process.stdout.write, process.stderr.write] = [stdout, stderr];
  }
}
