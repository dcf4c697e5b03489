/**
 * The one reader of data rows, for evaluation benchmarks and continual (instruction) tasks alike:
 * JSON Lines, JSON, CSV/TSV and Parquet files, folders in the Hugging Face Hub dataset layout,
 * and the typed field checks rows go through. Every error names the file and, where there is one,
 * the 1-based line or row and the field.
 *
 * Rules, the same for every caller:
 * - A UTF-8 byte-order mark at the start of a text file is dropped (Excel and Windows tools write
 *   one; JSON.parse and CSV headers would otherwise see "\uFEFF" as data).
 * - Parquet INT64 values (BigInt in hyparquet) become numbers when they are safe integers and
 *   decimal strings otherwise, so no value silently loses precision.
 * - `.json` holds a list of objects; a file that is not one JSON value but is JSON Lines is read
 *   as JSON Lines (CT0's releases name JSON Lines `.json`, and HF's `json` builder reads both).
 * - CSV quotes fields RFC 4180's way; TSV has no quoting (IANA text/tab-separated-values: a field
 *   holds no tab), so OpenBookQA's bare quotes are text. Blank lines are skipped, as pandas does.
 * - Row locations: "file:line" (JSON Lines, CSV/TSV), "file: item n" (JSON list), "file: row n"
 *   (Parquet), all 1-based.
 *
 * References: Hugging Face Hub dataset layout (huggingface.co/docs/hub/datasets-file-names-and-splits:
 * `{split}.{ext}`, `{split}-00000-of-0000n.{ext}`, and the same under `data/`); RFC 4180 (CSV);
 * IANA text/tab-separated-values; JSON Lines (jsonlines.org).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";

export type Row = Record<string, unknown>;

/** The rows of one file, and how an error names row i ("file:line", "file: row n"). */
export interface FileRows<R = Row> {
  path: string;
  rows: R[];
  where(i: number): string;
}

/** The formats `readRows` reads, by extension. */
export const DATA_EXTENSIONS = [".jsonl", ".json", ".csv", ".tsv", ".parquet"] as const;

/** Largest text file read whole: V8 strings stop at ~512 MiB (2^29 − 24 chars). */
export const MAX_TEXT_FILE_BYTES = 512 * 1024 * 1024;

/** Reads a whole UTF-8 text file, its byte-order mark dropped; refuses files past the limit. */
export function readText(file: string): string {
  if (!existsSync(file)) throw new Error(`${file}: file not found`);
  const size = statSync(file).size;
  if (size > MAX_TEXT_FILE_BYTES) {
    throw new Error(
      `${file}: ${size} bytes is over the ${MAX_TEXT_FILE_BYTES}-byte limit for text data`,
    );
  }
  const text = readFileSync(file, "utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Rows of a file; with `nonEmpty` a file without rows is an error (a score over none is none). */
function fileRows<R>(
  path: string,
  rows: R[],
  where: (i: number) => string,
  nonEmpty: boolean,
): FileRows<R> {
  if (nonEmpty && rows.length === 0)
    throw new Error(`${path}: has no rows; a data file must hold data`);
  return { path, rows, where };
}

/** Whether an empty file is an error. @default true */
export interface ReadOptions {
  nonEmpty?: boolean;
}

function parseJsonLines(path: string, text: string): { rows: Row[]; lineOf: number[] } {
  const rows: Row[] = [];
  const lineOf: number[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: invalid JSON line (${(e as Error).message})`);
    }
    if (!isObject(value))
      throw new Error(`${path}:${i + 1}: expected a JSON object, got ${describe(value)}`);
    rows.push(value);
    lineOf.push(i + 1);
  });
  return { rows, lineOf };
}

/** One JSON object per non-empty line. */
export async function readJsonl(path: string, opts: ReadOptions = {}): Promise<FileRows> {
  const { rows, lineOf } = parseJsonLines(path, readText(path));
  return fileRows(path, rows, (i) => `${path}:${lineOf[i]}`, opts.nonEmpty ?? true);
}

/** One JSON value. */
export async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(readText(path));
  } catch (e) {
    if ((e as Error).message.startsWith(`${path}:`)) throw e;
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * A JSON file holding a list of objects (MathQA's release files; row i is "file: item i+1"), or
 * JSON Lines under a `.json` name (rows named by line).
 */
export async function readJsonList(path: string, opts: ReadOptions = {}): Promise<FileRows> {
  const text = readText(path);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    let lines: ReturnType<typeof parseJsonLines> | null = null;
    try {
      lines = parseJsonLines(path, text);
    } catch {
      // Neither form: the JSON error is the one to report.
    }
    if (lines === null || lines.rows.length < 2)
      throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
    const { rows, lineOf } = lines;
    return fileRows(path, rows, (i) => `${path}:${lineOf[i]}`, opts.nonEmpty ?? true);
  }
  if (!Array.isArray(value))
    throw new Error(`${path}: expected a JSON list of objects, got ${describe(value)}`);
  value.forEach((v, i) => {
    if (!isObject(v))
      throw new Error(`${path}: item ${i + 1}: expected a JSON object, got ${describe(v)}`);
  });
  return fileRows(path, value as Row[], (i) => `${path}: item ${i + 1}`, opts.nonEmpty ?? true);
}

/**
 * One JSON object per file (RACE's and MuTual's releases): the files of `dir` named `*<ext>`,
 * in `order` of their names (default: Python's `sorted`, by code point, as HF loading scripts
 * list them), empty files skipped as those scripts do; row i is named by its file.
 */
export async function readJsonFolder(
  dir: string,
  ext: string,
  order: (a: string, b: string) => number = (a, b) =>
    Buffer.compare(Buffer.from(a), Buffer.from(b)),
): Promise<FileRows> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(ext)).sort(order);
  const rows: Row[] = [];
  const paths: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    if ((await stat(path)).size === 0) continue;
    const value = await readJson(path);
    if (!isObject(value))
      throw new Error(`${path}: expected a JSON object, got ${describe(value)}`);
    rows.push(value);
    paths.push(path);
  }
  if (rows.length === 0) throw new Error(`${dir}: has no *${ext} files with data`);
  return fileRows(dir, rows, (i) => paths[i], true);
}

export interface CsvOptions extends ReadOptions {
  /** The first record names the columns. */
  header: boolean;
  /** "," (CSV, quoted) or "\t" (TSV, unquoted). @default "," */
  delimiter?: string;
}

/** CSV (or TSV with `delimiter: "\t"`); with `header` the first row names the columns. */
export async function readCsv(path: string, opts: CsvOptions & { header: true }): Promise<FileRows>;
export async function readCsv(
  path: string,
  opts: CsvOptions & { header: false },
): Promise<FileRows<string[]>>;
export async function readCsv(path: string, opts: CsvOptions): Promise<FileRows<Row | string[]>> {
  const text = readText(path);
  const tsv = opts.delimiter === "\t";
  let records: Array<{ record: Row | string[]; info: { lines: number } }>;
  try {
    records = parseCsv(text, {
      columns: opts.header,
      delimiter: opts.delimiter ?? ",",
      relax_quotes: tsv,
      quote: tsv ? false : '"',
      skip_empty_lines: true,
      info: true,
    }) as unknown as typeof records;
  } catch (e) {
    throw new Error(`${path}: cannot parse as ${tsv ? "TSV" : "CSV"} (${(e as Error).message})`);
  }
  // info.lines is the line a record ends on: its own line unless a quoted field spans lines.
  return fileRows(
    path,
    records.map((r) => r.record),
    (i) => `${path}:${records[i].info.lines}`,
    opts.nonEmpty ?? true,
  );
}

/** Converts each row of a file; `convert` gets the row's location for its errors. */
export function mapRows<R, T>(file: FileRows<R>, convert: (row: R, where: string) => T): T[] {
  return file.rows.map((r, i) => convert(r, file.where(i)));
}

/** INT64 → number when exact, else its decimal string; nested lists and structs alike. */
function unBigInt(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(unBigInt);
  if (isObject(v) && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unBigInt(x)]));
  }
  return v;
}

export async function readParquet(path: string, opts: ReadOptions = {}): Promise<FileRows> {
  if (!existsSync(path)) throw new Error(`${path}: file not found`);
  let rows: Row[];
  try {
    const file = await asyncBufferFromFile(path);
    rows = (await parquetReadObjects({ file, compressors })).map((r) => unBigInt(r) as Row);
  } catch (e) {
    throw new Error(`${path}: cannot read Parquet (${(e as Error).message})`);
  }
  return fileRows(path, rows, (i) => `${path}: row ${i + 1}`, opts.nonEmpty ?? true);
}

/** Reads one data file of any of DATA_EXTENSIONS; the format comes from the extension. */
export async function readRows(path: string, opts: ReadOptions = {}): Promise<FileRows> {
  switch (extname(path)) {
    case ".jsonl":
      return readJsonl(path, opts);
    case ".json":
      return readJsonList(path, opts);
    case ".csv":
      return readCsv(path, { ...opts, header: true });
    case ".tsv":
      return readCsv(path, { ...opts, header: true, delimiter: "\t" });
    case ".parquet":
      return readParquet(path, opts);
    default:
      throw new Error(
        `${path}: unknown data format (expected one of ${DATA_EXTENSIONS.join(", ")})`,
      );
  }
}

/**
 * The files holding `split` of a dataset folder in the Hugging Face Hub layout, or [] when it has
 * none: `{split}.{ext}` (the first of `extensions` present), else the shards `{split}-*.{ext}` of
 * the first extension that has any, sorted by name; looked for in `dir`, then in `dir/data`.
 * One format only, so a folder holding train.jsonl and train.parquet never reads both.
 */
export function hfSplitFiles(
  dir: string,
  split: string,
  extensions: readonly string[] = DATA_EXTENSIONS,
): string[] {
  for (const sub of [dir, join(dir, "data")]) {
    if (!existsSync(sub) || !statSync(sub).isDirectory()) continue;
    const names = readdirSync(sub);
    for (const ext of extensions) {
      if (names.includes(`${split}${ext}`)) return [join(sub, `${split}${ext}`)];
    }
    for (const ext of extensions) {
      const shards = names
        .filter((f) => extname(f) === ext && basename(f, ext).startsWith(`${split}-`))
        .sort();
      if (shards.length > 0) return shards.map((f) => join(sub, f));
    }
  }
  return [];
}

/** The rows of every file, in order, each keeping its own location. */
export function concatRows(files: readonly FileRows[], path: string): FileRows {
  const rows: Row[] = [];
  const where: Array<[FileRows, number]> = [];
  for (const f of files) f.rows.forEach((r, i) => (rows.push(r), where.push([f, i])));
  return { path, rows, where: (i) => where[i][0].where(where[i][1]) };
}

/**
 * Reads a data file, or one split of a folder in the Hub layout (shards concatenated in name
 * order). A folder without the split is an error listing what was looked for.
 */
export async function readDataset(
  path: string,
  opts: ReadOptions & { split?: string } = {},
): Promise<FileRows> {
  if (!existsSync(path)) throw new Error(`${path}: not found`);
  if (!statSync(path).isDirectory()) return readRows(path, opts);
  const split = opts.split ?? "train";
  const files = hfSplitFiles(path, split);
  if (files.length === 0)
    throw new Error(
      `${path}: no "${split}" split found (looked for ${split}.* and ${split}-*.* here and in data/)`,
    );
  return concatRows(await Promise.all(files.map((f) => readRows(f, opts))), path);
}

/**
 * Reads files that hold one field per line, aligned by line number (e-SNLI, ASSET). A final
 * newline is optional; every file must have the same number of lines.
 */
export function readAlignedLines(files: readonly string[]): string[][] {
  const columns = files.map((f) => {
    const lines = readText(f).split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    return lines;
  });
  columns.forEach((col, i) => {
    if (col.length !== columns[0].length) {
      throw new Error(
        `${files[i]}: ${col.length} lines, but ${files[0]} has ${columns[0].length} (files must align)`,
      );
    }
  });
  return columns[0].map((_, row) => columns.map((col) => col[row]));
}

// ---------------------------------------------------------------------------------------------
// Field checks

/** The value types a field is checked against, and what each reads as in TypeScript. */
interface FieldTypes {
  string: string;
  integer: number;
  number: number;
  boolean: boolean;
  object: Row;
  "string[]": string[];
  "integer[]": number[];
  "object[]": Row[];
  /** HF hellaswag's label is a string ("3"), the original release's an integer. */
  "string|integer": string | number;
  /** HF race's `problems` is a Python literal string, lethe's own files hold the list. */
  "string|object[]": string | Row[];
  /** SuperGLUE BoolQ's label: true/false, or "true"/"false" in repackagings. */
  "boolean|string": boolean | string;
}
export type FieldType = keyof FieldTypes;

/** A doc schema: dotted field path (`choices.text`) → type. */
export type Fields = Record<string, FieldType>;

export const isObject = (v: unknown): v is Row =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

const IS: Record<string, (v: unknown) => boolean> = {
  string: (v) => typeof v === "string",
  integer: (v) => Number.isSafeInteger(v),
  number: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
  object: isObject,
};

const NAME: Record<string, string> = {
  string: "a string",
  integer: "an integer",
  number: "a number",
  boolean: "true or false",
  object: "an object",
};

function matches(value: unknown, type: string): boolean {
  return type
    .split("|")
    .some((t) =>
      t.endsWith("[]") ? Array.isArray(value) && value.every(IS[t.slice(0, -2)]) : IS[t](value),
    );
}

function expected(type: string): string {
  return type
    .split("|")
    .map((t) =>
      t.endsWith("[]") ? `a list of ${NAME[t.slice(0, -2)].replace(/^an? /, "")}s` : NAME[t],
    )
    .join(" or ");
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (isObject(v)) return "an object";
  if (typeof v === "string")
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** The value at dotted `path` of `row` ("a.b" reads field b of object field a), unchecked. */
export function fieldValue(row: Row, path: string, where: string, wanted = "a value"): unknown {
  let value: unknown = row;
  for (const key of path.split(".")) {
    if (!isObject(value) || !Object.hasOwn(value, key))
      throw new Error(`${where}: missing field "${path}" (expected ${wanted})`);
    value = value[key];
  }
  return value;
}

/**
 * The field at dotted `path` of `row`, checked to be of `type`; the error names `where` (file and
 * line), the field, the expected type and what was found.
 */
export function field<K extends FieldType>(
  row: Row,
  path: string,
  where: string,
  type: K,
): FieldTypes[K] {
  const value = fieldValue(row, path, where, expected(type));
  if (!matches(value, type))
    throw new Error(`${where}: field "${path}" must be ${expected(type)}, got ${describe(value)}`);
  return value as FieldTypes[K];
}

/** Checks every field of a schema (see `field`). */
export function checkFields(row: Row, fields: Fields, where: string): void {
  for (const [path, type] of Object.entries(fields)) field(row, path, where, type);
}
