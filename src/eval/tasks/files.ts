/**
 * Readers for the file formats benchmarks ship in: JSON Lines, JSON, CSV/TSV and Parquet (the
 * Hugging Face datasets layout). Every error names the file and, where there is one, the line.
 * Rows come back as plain objects; Parquet INT64 values (BigInt in hyparquet) become numbers.
 */
import { readFile } from "node:fs/promises";
import { parse as parseCsv } from "csv-parse/sync";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";

export type Row = Record<string, unknown>;

/** One JSON object per non-empty line. */
export async function readJsonl(path: string): Promise<Row[]> {
  const lines = (await readFile(path, "utf8")).split("\n");
  const rows: Row[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      rows.push(JSON.parse(line) as Row);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: invalid JSON line (${(e as Error).message})`);
    }
  });
  return rows;
}

export async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

/** CSV (or TSV with `delimiter: "\t"`); with `header` the first row names the columns. */
export async function readCsv(
  path: string,
  opts: { header: boolean; delimiter?: string },
): Promise<string[][] | Row[]> {
  const text = await readFile(path, "utf8");
  try {
    return parseCsv(text, {
      columns: opts.header,
      delimiter: opts.delimiter ?? ",",
      relax_quotes: opts.delimiter === "\t",
      quote: opts.delimiter === "\t" ? false : '"',
    }) as string[][] | Row[];
  } catch (e) {
    throw new Error(
      `${path}: cannot parse as ${opts.delimiter === "\t" ? "TSV" : "CSV"} (${(e as Error).message})`,
    );
  }
}

function unBigInt(v: unknown): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map(unBigInt);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unBigInt(x)]));
  }
  return v;
}

export async function readParquet(path: string): Promise<Row[]> {
  try {
    const file = await asyncBufferFromFile(path);
    const rows = await parquetReadObjects({ file, compressors });
    return rows.map((r) => unBigInt(r) as Row);
  } catch (e) {
    throw new Error(`${path}: cannot read Parquet (${(e as Error).message})`);
  }
}

/** A required field of a row, with the file and row in the error when it is missing. */
export function field<T = unknown>(row: Row, name: string, where: string): T {
  if (!(name in row)) throw new Error(`${where}: missing field "${name}"`);
  return row[name] as T;
}
