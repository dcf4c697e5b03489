/**
 * "Did you mean …" for registries and config keys: the closest known names by edit distance.
 * The bottom layer: imported by any folder, imports nothing of lethe's.
 */

/** Levenshtein distance (insert, delete, substitute each cost 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** ` Did you mean "x" or "y"?` for the known names close to `name`, or "" when none is close. */
export function didYouMean(name: string, known: Iterable<string>): string {
  const lower = name.toLowerCase();
  const close = [...known]
    .map((k) => [k, editDistance(lower, k.toLowerCase())] as const)
    .filter(([k, d]) => d <= Math.max(2, Math.floor(k.length / 3)))
    .sort((a, b) => a[1] - b[1])
    .map(([k]) => `"${k}"`);
  return close.length ? ` Did you mean ${close.slice(0, 3).join(" or ")}?` : "";
}

/** `registry[name]`, or an error naming what was asked for, what exists, and the closest names. */
export function lookup<T>(registry: Readonly<Record<string, T>>, name: string, what: string): T {
  if (Object.hasOwn(registry, name)) return registry[name];
  const known = Object.keys(registry);
  throw new Error(
    `unknown ${what} "${name}".${didYouMean(name, known)} Known: ${known.join(", ")}`,
  );
}
