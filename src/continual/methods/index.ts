/**
 * The registry of continual-learning mitigation methods, by the name a run config gives; the one
 * place their options are validated (defaults filled, unknown or misspelled fields named, one
 * error format: `method "x": option "y": …`); and combinations: a run may list several methods,
 * whose plugins run in the listed order, with incompatible pairs refused with the reason.
 * Adding a method is one file plus one line here. Reference: lethe STYLE.md #15–#16; lm-eval
 * `api/registry.py` (unknown names).
 */
import { lookup, didYouMean } from "../../util/suggest.js";
import type { TrainPlugin, TuningKind } from "../../train/plugin.js";
import { agem } from "./agem.js";
import { ewc } from "./ewc.js";
import { ilora } from "./ilora.js";
import { lamol } from "./lamol.js";
import { l2sp } from "./l2sp.js";
import { lwf } from "./lwf.js";
import type { MethodDefinition, MethodEnv, MethodSetting } from "./method.js";
import { merge } from "./merge.js";
import { mixGeneral } from "./mix_general.js";
import { olora } from "./olora.js";
import { osf } from "./osf.js";
import { replay } from "./replay.js";
import { sam } from "./sam.js";
import { sdft } from "./sdft.js";
import { sequential } from "./sequential.js";
import { ssr } from "./ssr.js";
import { ema } from "./ema.js";
import { wiseFT } from "./wise_ft.js";

export const methods = {
  sequential,
  replay,
  mix_general: mixGeneral,
  ewc,
  l2sp,
  lwf,
  olora,
  wise_ft: wiseFT,
  ema,
  agem,
  merge,
  sam,
  osf,
  ilora,
  sdft,
  lamol,
  ssr,
} as const satisfies Record<string, MethodDefinition>;

for (const [key, m] of Object.entries(methods))
  if (m.name !== key) throw new Error(`method registry: "${key}" holds method "${m.name}"`);

export type MethodName = keyof typeof methods;

/** The definition registered under `name`; an unknown name gets "Did you mean …". */
export function methodOf(name: string): MethodDefinition {
  return lookup<MethodDefinition>(methods, name, "method");
}

/**
 * A bad option, as `method "x": option "y": what is wrong` (an unknown one: `method "x": unknown
 * option "y". Did you mean …`); `path` is its place inside the method's options ("ratio").
 */
export class MethodOptionError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    message: string,
  ) {
    super(`method "${method}": ${message}`);
    this.name = "MethodOptionError";
  }
}

/** `options` checked against method `name`'s schema, defaults filled; throws MethodOptionError. */
export function parseOptions(name: string, options: unknown): Record<string, unknown> {
  const def = methodOf(name);
  const parsed = def.options.safeParse(options ?? {});
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const issue = parsed.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const bad = issue.keys[0];
    const known = Object.keys((def.options as { shape?: object }).shape ?? {});
    throw new MethodOptionError(
      name,
      [...issue.path, bad].join("."),
      `unknown option "${bad}".${didYouMean(bad, known)} Options: ${known.join(", ") || "none"}`,
    );
  }
  const path = issue.path.join(".");
  throw new MethodOptionError(name, path, `option "${path}": ${issue.message}`);
}

/** One method of a run, its options as given (validated by `parseOptions`). */
export interface MethodPart {
  name: string;
  options: Record<string, unknown>;
}

/**
 * Why these methods cannot run together in this order, or null. Their hooks run in the listed
 * order; what each rewrites (`MethodDefinition.edits`) decides what may be combined.
 */
export function combinationProblem(names: readonly string[]): string | null {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) return `method "${n}" is listed twice`;
    seen.add(n);
  }
  const edits = names.map((n) => [n, methodOf(n).edits ?? []] as const);
  const doing = (e: string) => edits.filter(([, es]) => es.includes(e as never)).map(([n]) => n);
  const gradient = doing("gradient");
  if (gradient.length > 1)
    return `"${gradient[0]}" and "${gradient[1]}" both rewrite the step's gradient after the backward pass: the second rewrite would undo what the first guarantees`;
  const adapters = doing("adapters");
  if (adapters.length > 1)
    return `"${adapters[0]}" and "${adapters[1]}" both re-initialise or merge the LoRA adapters between stages`;
  const teacher = names.findIndex((n) => (methodOf(n).edits ?? []).includes("teacher-rows"));
  if (teacher >= 0) {
    const late = names.slice(teacher + 1).find((n) => (methodOf(n).edits ?? []).includes("rows"));
    if (late)
      return `"${late}" adds rows to the batches after "${names[teacher]}" has computed its targets for them; list "${late}" before "${names[teacher]}"`;
  }
  return null;
}

/** Why a method with these options cannot run in this setting, or null (its `refuse`, `supports`). */
export function settingProblem(part: MethodPart, setting: MethodSetting): string | null {
  const def = methodOf(part.name);
  if (!def.supports.includes(setting.kind))
    return `method "${part.name}" supports only ${def.supports.join(", ")} tuning; set tuning.kind: ${def.supports[0]}`;
  return def.refuse?.(parseOptions(part.name, part.options) as never, setting) ?? null;
}

/** Whether any of the methods, with their options, reads θ₀ (`env.startWeights`) in `kind` tuning. */
export function needsStartWeights(
  name: string | readonly MethodPart[],
  options: unknown,
  kind: TuningKind,
): boolean {
  const parts = typeof name === "string" ? [{ name, options: options as object }] : name;
  return parts.some((p) => {
    const def = methodOf(p.name);
    return def.needsStartWeights?.(parseOptions(p.name, p.options) as never, kind) ?? false;
  });
}

/** Parses `options` with the method's schema and creates its plugin for the run. */
export function createMethod(name: string, options: unknown, env: MethodEnv): TrainPlugin {
  const def = methodOf(name);
  const plugin = def.create(parseOptions(name, options) as never, env);
  if (
    (plugin.name !== undefined && plugin.name !== def.name) ||
    (plugin.supports !== undefined && plugin.supports.join() !== def.supports.join())
  )
    throw new Error(`method "${name}": its plugin's name or supports differ from its definition's`);
  return { ...plugin, name: def.name, supports: def.supports };
}

/** The plugins of a combination, in the listed order; an incompatible one is refused. */
export function createMethods(parts: readonly MethodPart[], env: MethodEnv): TrainPlugin[] {
  const problem = combinationProblem(parts.map((p) => p.name));
  if (problem) throw new Error(`methods ${parts.map((p) => p.name).join(" + ")}: ${problem}`);
  return parts.map((p) => createMethod(p.name, p.options, env));
}

export type { MethodDefinition, MethodEnv, StageData } from "./method.js";
