/**
 * Schema errors (zod) as lethe reports them: `<source>: field "a.b": message`, and for a
 * misspelled key the closest known ones ("Did you mean …"). Bottom layer: imports only zod.
 */
import type { z } from "zod";
import { didYouMean } from "./suggest.js";

/** `schema.parse(value)`, throwing the first issue as `<source>: field "…": …`. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, source: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new Error(formatIssue(r.error.issues[0], schema, source));
}

/** The first issue of a failed parse as "<source>: field "a.b": message", with suggestions. */
export function formatIssue(issue: z.core.$ZodIssue, schema: z.ZodType, source: string): string {
  const at = issue.path.join(".");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0];
    const field = at ? `${at}.${key}` : key;
    const known = knownKeys(schema, issue.path);
    return `${source}: field "${field}": unknown field.${didYouMean(key, known)}${known.length ? ` Fields: ${known.join(", ")}` : ""}`;
  }
  return `${source}: field "${at || "(top level)"}": ${issue.message}`;
}

/** The keys of the object schema at `path` (through defaults, optionals, arrays, unions). */
function knownKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = (schema as unknown as { def: Record<string, unknown> }).def;
  switch (def.type) {
    case "default":
    case "optional":
    case "nullable":
    case "pipe":
      return knownKeys((def.innerType ?? def.in) as z.ZodType, path);
    case "array":
      return knownKeys(def.element as z.ZodType, path.slice(1));
    case "union":
      return (def.options as z.ZodType[]).flatMap((o) => knownKeys(o, path));
    case "object": {
      const shape = def.shape as Record<string, z.ZodType>;
      if (path.length === 0) return Object.keys(shape);
      const next = shape[String(path[0])];
      return next ? knownKeys(next, path.slice(1)) : [];
    }
    case "record":
      return path.length === 0 ? [] : knownKeys(def.valueType as z.ZodType, path.slice(1));
    default:
      return [];
  }
}
