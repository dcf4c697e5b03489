/**
 * The one flag parser of every `lethe` command, and the help text made from the same
 * declaration. A command states its arguments and options once (src/cli/commands.ts): each option
 * with its type, value placeholder, default and one line of help. parseFlags turns that into
 * node's parseArgs in strict mode and checks what parseArgs cannot (required options, choices,
 * the number of arguments); helpText and usageLine print it.
 *
 * A mistake in the command line is a UsageError (exit status 2); an unknown option suggests the
 * closest known one, as misspelled config keys do (STYLE.md #18). Every command takes -h/--help.
 *
 * Reference: POSIX utility conventions (usage errors exit 2; `--help` prints to stdout, exit 0),
 * node's util.parseArgs.
 */
import { parseArgs } from "node:util";
import { didYouMean } from "../util/suggest.js";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  /** One line: what the option does. */
  readonly help: string;
  /** Placeholder of the value in usage lines: DIR, N, OUT.json (string options). */
  readonly value?: string;
  /** The value when the option is not given; parseArgs fills it in. */
  readonly default?: string;
  /** The default in words, where it is not one constant (e.g. "runs/<study name>"). */
  readonly defaultText?: string;
  readonly short?: string;
  readonly required?: boolean;
  /** The values allowed. */
  readonly choices?: readonly string[];
}

export type Options = Readonly<Record<string, OptionSpec>>;

/** The bare arguments of a command (e.g. a run directory), `min` to `max` of them. */
export interface ArgsSpec {
  readonly name: string;
  readonly help: string;
  readonly min: number;
  readonly max: number;
}

export interface CommandSpec<O extends Options = Options> {
  /** One line: the command list of `lethe --help` and the README's command table. */
  readonly summary: string;
  /** The usage line after `lethe NAME`, where options depend on each other; else derived. */
  readonly usage?: string;
  readonly args?: ArgsSpec;
  readonly options: O;
  /** Paragraphs after the options: files read and written, what the output means. */
  readonly notes?: string;
}

type ValueOf<S extends OptionSpec> = S["type"] extends "boolean"
  ? boolean
  : S extends { default: string } | { required: true }
    ? string
    : string | undefined;

export type Values<O extends Options> = { -readonly [K in keyof O]: ValueOf<O[K]> };

export interface Parsed<O extends Options> {
  values: Values<O>;
  positionals: string[];
  /** -h or --help was given: print the help, run nothing (required options are not checked). */
  help: boolean;
}

/** A mistake in the command line: unknown option, missing argument, bad value (exit 2). */
export class UsageError extends Error {}

const HELP: OptionSpec = { type: "boolean", short: "h", help: "print this help" };

/** Parses `argv` against a command's declaration; throws UsageError naming what is wrong. */
export function parseFlags<O extends Options>(argv: string[], spec: CommandSpec<O>): Parsed<O> {
  const options = { ...spec.options, help: HELP } as Options;
  const config: Record<string, { type: "string" | "boolean"; short?: string; default?: string }> =
    {};
  for (const [k, o] of Object.entries(options)) {
    config[k] = { type: o.type };
    if (o.short !== undefined) config[k].short = o.short;
    if (o.default !== undefined) config[k].default = o.default;
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: config,
      strict: true,
      allowPositionals: true,
    }) as typeof parsed;
  } catch (e) {
    const m = /^Unknown option '(-[^']*)'/.exec((e as Error).message);
    if (!m) throw new UsageError((e as Error).message);
    const known = Object.keys(options).map((k) => `--${k}`);
    throw new UsageError(`Unknown option '${m[1]}'.${didYouMean(m[1].split("=")[0], known)}`);
  }
  const values = parsed.values;
  for (const [k, o] of Object.entries(options)) if (o.type === "boolean") values[k] ??= false;
  const help = values.help === true;
  delete values.help;
  if (!help) {
    for (const [k, o] of Object.entries(spec.options)) {
      const v = values[k];
      if (o.required && (v === undefined || v === "")) throw new UsageError(`--${k} is required`);
      if (o.choices && typeof v === "string" && !o.choices.includes(v))
        throw new UsageError(
          `--${k} must be one of ${o.choices.join(", ")}, got "${v}".${didYouMean(v, o.choices)}`,
        );
    }
    checkArgs(parsed.positionals, spec.args);
  }
  return { values: values as Values<O>, positionals: parsed.positionals, help };
}

function checkArgs(got: string[], args: ArgsSpec | undefined): void {
  const [min, max] = args ? [args.min, args.max] : [0, 0];
  if (got.length > max)
    throw new UsageError(
      max === 0
        ? `unexpected argument "${got[0]}" (this command takes none)`
        : `expected ${max === 1 ? "one" : `at most ${max}`} ${args!.name}, got ${got.length}`,
    );
  if (got.length < min) throw new UsageError(`missing ${args!.name}`);
}

/** An integer flag value (undefined stays undefined); UsageError otherwise. */
export function intValue(v: string | undefined, flag: string, min?: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || (min !== undefined && n < min))
    throw new UsageError(
      `--${flag} must be an integer${min === undefined ? "" : ` >= ${min}`}, got "${v}"`,
    );
  return n;
}

/** A finite number flag value (undefined stays undefined); UsageError otherwise. */
export function numberValue(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n))
    throw new UsageError(`--${flag} must be a number, got "${v}"`);
  return n;
}

function argsSynopsis(a: ArgsSpec): string {
  const name = a.max > 1 ? `${a.name}...` : a.name;
  return a.min === 0 ? `[${name}]` : name;
}

function valueOf(o: OptionSpec): string {
  return o.type === "boolean" ? "" : ` ${o.value ?? o.choices?.join("|") ?? "VALUE"}`;
}

/** `lethe NAME ARGS --required VALUE [options]`. */
export function usageLine(name: string, spec: CommandSpec): string {
  if (spec.usage !== undefined) return `lethe ${name} ${spec.usage}`.trimEnd();
  const parts = [`lethe ${name}`];
  if (spec.args) parts.push(argsSynopsis(spec.args));
  const options = Object.entries(spec.options);
  for (const [k, o] of options) if (o.required) parts.push(`--${k}${valueOf(o)}`);
  if (options.some(([, o]) => !o.required)) parts.push("[options]");
  return parts.join(" ");
}

/** Two aligned columns, the second starting at the same place on every line. */
export function columns(rows: [string, string][], indent = "  "): string {
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `${indent}${l.padEnd(width)}  ${r}`.trimEnd()).join("\n");
}

/** `lethe NAME --help`: usage, summary, arguments, every option with its default, notes. */
export function helpText(name: string, spec: CommandSpec): string {
  const out = [`usage: ${usageLine(name, spec)}`, "", spec.summary];
  if (spec.args) out.push("", "arguments:", columns([[spec.args.name, spec.args.help]]));
  const rows: [string, string][] = Object.entries(spec.options).map(([k, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${k}${valueOf(o)}`;
    const def = o.default ?? o.defaultText;
    const notes = [o.required ? "required" : "", def !== undefined ? `default: ${def}` : ""]
      .filter((s) => s !== "")
      .join("; ");
    return [flag, `${o.help}${notes ? ` (${notes})` : ""}`];
  });
  rows.push([`-${HELP.short}, --help`, HELP.help]);
  out.push("", "options:", columns(rows));
  if (spec.notes) out.push("", spec.notes.trimEnd());
  return out.join("\n") + "\n";
}
