/**
 * The registry of continual-learning mitigation methods, by the name a run config gives, and
 * `createMethod`, which checks the options against the method's schema (defaults filled, unknown
 * or misspelled fields named) and builds its plugin. Adding a method is one file plus one line
 * here. Reference: lethe STYLE.md #15–#16; lm-eval `api/registry.py` (unknown names).
 */
import { lookup } from "../instruction.js";
import type { TrainPlugin, TuningKind } from "../../train/plugin.js";
import { ewc } from "./ewc.js";
import { l2sp } from "./l2sp.js";
import { lwf } from "./lwf.js";
import type { MethodDefinition, MethodEnv } from "./method.js";
import { mixGeneral } from "./mix_general.js";
import { olora } from "./olora.js";
import { replay } from "./replay.js";
import { sequential } from "./sequential.js";
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
} as const satisfies Record<string, MethodDefinition>;

for (const [key, m] of Object.entries(methods))
  if (m.name !== key) throw new Error(`method registry: "${key}" holds method "${m.name}"`);

export type MethodName = keyof typeof methods;

/** The definition registered under `name`; an unknown name gets "Did you mean …". */
export function methodOf(name: string): MethodDefinition {
  return lookup<MethodDefinition>(methods, name, "method");
}

/** Whether method `name` with `options` reads θ₀ (`env.startWeights`) in `kind` tuning. */
export function needsStartWeights(name: string, options: unknown, kind: TuningKind): boolean {
  const def = methodOf(name);
  return def.needsStartWeights?.(parseOptions(def, name, options), kind) ?? false;
}

/** Parses `options` with the method's schema and creates its plugin for the run. */
export function createMethod(name: string, options: unknown, env: MethodEnv): TrainPlugin {
  const def = methodOf(name);
  return def.create(parseOptions(def, name, options), env);
}

function parseOptions(def: MethodDefinition, name: string, options: unknown): unknown {
  const parsed = def.options.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const fields = Object.keys((def.options as { shape?: object }).shape ?? {});
    if (issue.code === "unrecognized_keys") {
      const bad = issue.keys[0];
      lookup(Object.fromEntries(fields.map((f) => [f, f])), bad, `option of method "${name}"`);
    }
    throw new Error(`method "${name}": option "${issue.path.join(".")}": ${issue.message}`);
  }
  return parsed.data;
}

export type { MethodDefinition, MethodEnv, StageData } from "./method.js";
