/**
 * Flag parsing shared by every `lethe` command: node's parseArgs in strict mode, where an
 * unknown flag is an error that suggests the closest known one and repeats the usage.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { didYouMean } from "../util/suggest.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `argv`; `positionals` says whether bare arguments (e.g. a run directory) are allowed. */
export function parseFlags<O extends Options>(
  argv: string[],
  options: O,
  usage: string,
  positionals = false,
) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: positionals });
  } catch (e) {
    const m = /Unknown option '(--?[\w-]+)'/.exec((e as Error).message);
    const hint = m
      ? didYouMean(
          m[1],
          Object.keys(options).map((k) => `--${k}`),
        )
      : "";
    throw new Error(`${(e as Error).message}.${hint}\nusage: ${usage}`);
  }
}
