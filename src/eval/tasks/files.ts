/**
 * Readers for the file formats benchmarks ship in: JSON Lines, JSON, CSV/TSV and Parquet (the
 * Hugging Face datasets layout), and the typed field checks their rows go through. Every error
 * names the file and, where there is one, the 1-based line or row and the field; a file without
 * rows is an error (an evaluation over no documents has no score). Rows come back as plain
 * objects; Parquet INT64 values (BigInt in hyparquet) become numbers.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";

export type Row = Record<string, unknown>;

/** The rows of one file, and how an error names row i: "file:line", or "file: row n" (1-based). */
export interface FileRows<R = Row> {
  path: string;
  rows: R[];
  where(i: number): string;
}

function fileRows<R>(path: string, rows: R[], where: (i: number) => string): FileRows<R> {
  if (rows.length === 0) throw new Error(`${path}: has no rows; a benchmark file must hold data`);
  return { path, rows, where };
}

/** One JSON object per non-empty line. */
export async function readJsonl(path: string): Promise<FileRows> {
  const lines = (await readFile(path, "utf8")).split("\n");
  const rows: Row[] = [];
  const lineOf: number[] = [];
  lines.forEach((line, i) => {
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
  return fileRows(path, rows, (i) => `${path}:${lineOf[i]}`);
}

export async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/** A JSON file holding a list of objects (MathQA's release files); row i is "file: item i+1". */
export async function readJsonList(path: string): Promise<FileRows> {
  const value = await readJson(path);
  if (!Array.isArray(value))
    throw new Error(`${path}: expected a JSON list of objects, got ${describe(value)}`);
  value.forEach((v, i) => {
    if (!isObject(v))
      throw new Error(`${path}: item ${i + 1}: expected a JSON object, got ${describe(v)}`);
  });
  return fileRows(path, value as Row[], (i) => `${path}: item ${i + 1}`);
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
  return fileRows(dir, rows, (i) => paths[i]);
}

/** CSV (or TSV with `delimiter: "\t"`); with `header` the first row names the columns. */
export async function readCsv(
  path: string,
  opts: { header: true; delimiter?: string },
): Promise<FileRows>;
export async function readCsv(
  path: string,
  opts: { header: false; delimiter?: string },
): Promise<FileRows<string[]>>;
export async function readCsv(
  path: string,
  opts: { header: boolean; delimiter?: string },
): Promise<FileRows<Row | string[]>> {
  const text = await readFile(path, "utf8");
  let records: Array<{ record: Row | string[]; info: { lines: number } }>;
  try {
    records = parseCsv(text, {
      columns: opts.header,
      delimiter: opts.delimiter ?? ",",
      relax_quotes: opts.delimiter === "\t",
      quote: opts.delimiter === "\t" ? false : '"',
      info: true,
    }) as unknown as typeof records;
  } catch (e) {
    throw new Error(
      `${path}: cannot parse as ${opts.delimiter === "\t" ? "TSV" : "CSV"} (${(e as Error).message})`,
    );
  }
  // info.lines is the line a record ends on: its own line unless a quoted field spans lines.
  return fileRows(
    path,
    records.map((r) => r.record),
    (i) => `${path}:${records[i].info.lines}`,
  );
}

/** Converts each row of a file; `convert` gets the row's location for its errors. */
export function mapRows<R, T>(file: FileRows<R>, convert: (row: R, where: string) => T): T[] {
  return file.rows.map((r, i) => convert(r, file.where(i)));
}

function unBigInt(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(unBigInt);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unBigInt(x)]));
  }
  return v;
}

export async function readParquet(path: string): Promise<FileRows> {
  let rows: Row[];
  try {
    const file = await asyncBufferFromFile(path);
    rows = (await parquetReadObjects({ file, compressors })).map((r) => unBigInt(r) as Row);
  } catch (e) {
    throw new Error(`${path}: cannot read Parquet (${(e as Error).message})`);
  }
  return fileRows(path, rows, (i) => `${path}: row ${i + 1}`);
}

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

const isObject = (v: unknown): v is Row =>
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

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (isObject(v)) return "an object";
  if (typeof v === "string")
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
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
  let value: unknown = row;
  for (const key of path.split(".")) {
    if (!isObject(value) || !Object.hasOwn(value, key))
      throw new Error(`${where}: missing field "${path}" (expected ${expected(type)})`);
    value = value[key];
  }
  if (!matches(value, type))
    throw new Error(`${where}: field "${path}" must be ${expected(type)}, got ${describe(value)}`);
  return value as FieldTypes[K];
}

/** Checks every field of a schema (see `field`). */
export function checkFields(row: Row, fields: Fields, where: string): void {
  for (const [path, type] of Object.entries(fields)) field(row, path, where, type);
}
