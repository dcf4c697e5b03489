/**
 * The one dataset reader (src/io/dataset.ts): every format, the byte-order mark, the Hub layout's
 * split finder, INT64 values, and errors that name the file, the row and the field.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  field,
  hfSplitFiles,
  mapRows,
  readCsv,
  readDataset,
  readJsonList,
  readRows,
} from "../../src/io/dataset.js";
import { repoRoot } from "../helpers/data.js";

const tmp = mkdtempSync(join(tmpdir(), "lethe-dataset-"));
const BOM = "\uFEFF";
const PARQUET = join(repoRoot, "test", "io", "fixtures", "dataset_rows.parquet");

function write(name: string, text: string): string {
  const file = join(tmp, name);
  mkdirSync(join(file, ".."), { recursive: true });
  writeFileSync(file, text);
  return file;
}

test("every format reads to the same rows, a leading BOM dropped", async () => {
  const want = [
    { q: "a, b", n: "1" },
    { q: 'say "hi"', n: "2" },
  ];
  const files = [
    write("f.jsonl", `${BOM}{"q": "a, b", "n": "1"}\n\n{"q": "say \\"hi\\"", "n": "2"}\n`),
    write("f.json", `${BOM}${JSON.stringify(want)}`),
    write("f.csv", `${BOM}q,n\n"a, b",1\n\n"say ""hi""",2\n`),
    // TSV is unquoted (IANA text/tab-separated-values): a quote is text.
    write("f.tsv", `${BOM}q\tn\na, b\t1\nsay "hi"\t2\n`),
    // CT0's releases: JSON Lines under a .json name.
    write("lines.json", `{"q": "a, b", "n": "1"}\n{"q": "say \\"hi\\"", "n": "2"}\n`),
  ];
  for (const f of files) assert.deepEqual((await readRows(f)).rows, want, f);
  // Row locations: the line for line formats, the item for a JSON list.
  assert.equal((await readRows(files[0])).where(1), `${files[0]}:3`);
  assert.equal((await readRows(files[1])).where(1), `${files[1]}: item 2`);
  assert.equal((await readRows(files[2])).where(1), `${files[2]}:4`);
  assert.equal((await readRows(files[4])).where(1), `${files[4]}:2`);
  await assert.rejects(readRows(write("f.txt", "x")), /f\.txt: unknown data format/);
});

test("Parquet: INT64 → number when exact, else its decimal string; structs and lists kept", async () => {
  const file = await readRows(PARQUET);
  assert.equal(file.rows.length, 3);
  assert.deepEqual(file.rows[0], { text: "first", id: 1, meta: { n: 10, s: "a" }, tags: ["x"] });
  // 2^53 + 1 has no double: a number would silently read 2^53.
  assert.equal(file.rows[1].id, "9007199254740993");
  assert.equal(file.where(2), `${PARQUET}: row 3`);
  assert.throws(
    () => mapRows(file, (r, where) => field(r, "text", where, "string")),
    new RegExp(`dataset_rows\\.parquet: row 3: field "text" must be a string, got null`),
  );
  assert.equal(field(file.rows[1], "meta.s", file.where(1), "string"), "b");
  await assert.rejects(
    readRows(write("bad.parquet", "PAR1 not really")),
    /bad\.parquet: cannot read Parquet/,
  );
});

test("bad rows and fields are named by file, line and field", async () => {
  const jsonl = write("bad.jsonl", '{"a": 1}\n\n{"a": \n');
  await assert.rejects(readRows(jsonl), new RegExp(`${jsonl}:3: invalid JSON line`));
  const notObj = write("arr.jsonl", '{"a": 1}\n[1, 2]\n');
  await assert.rejects(readRows(notObj), new RegExp(`${notObj}:2: expected a JSON object`));
  const list = write("list.json", '[{"a": 1}, 7]');
  await assert.rejects(readJsonList(list), new RegExp(`${list}: item 2: expected a JSON object`));
  const broken = write("broken.json", '[{"a": 1},');
  await assert.rejects(readRows(broken), new RegExp(`${broken}: invalid JSON`));
  const csv = write("short.csv", "a,b\n1,2\n3\n");
  await assert.rejects(readRows(csv), /short\.csv: cannot parse as CSV/);
  const ok = await readRows(write("typed.csv", "a,b\n1,2\nx,\n"));
  assert.throws(
    () => mapRows(ok, (r, where) => field(r, "c", where, "string")),
    /typed\.csv:2: missing field "c" \(expected a string\)/,
  );
  // An empty file is an error unless the caller allows it (a mini task's empty test split).
  const empty = write("empty.jsonl", "\n\n");
  await assert.rejects(readRows(empty), /empty\.jsonl: has no rows/);
  assert.deepEqual((await readRows(empty, { nonEmpty: false })).rows, []);
  await assert.rejects(readRows(join(tmp, "absent.jsonl")), /absent\.jsonl: file not found/);
  // Header-less CSV gives arrays (MMLU's release).
  const raw = await readCsv(write("raw.csv", "q,a,b\n"), { header: false });
  assert.deepEqual(raw.rows, [["q", "a", "b"]]);
});

test("Hub layout: exact split file first, else shards of one format, at the top or in data/", async () => {
  const hub = join(tmp, "hub");
  write("hub/data/train-00000-of-00002.jsonl", '{"x": "a"}\n');
  write("hub/data/train-00001-of-00002.jsonl", '{"x": "b"}\n');
  write("hub/data/test-00000-of-00001.parquet", "unused");
  write("hub/data/test-00000-of-00001.jsonl", '{"x": "t"}\n');
  const train = await readDataset(hub, { split: "train" });
  assert.deepEqual(
    train.rows.map((r) => r.x),
    ["a", "b"],
  );
  assert.equal(train.where(1), join(hub, "data", "train-00001-of-00002.jsonl:1"));
  // One format: .jsonl before .parquet in DATA_EXTENSIONS, never both.
  assert.deepEqual(hfSplitFiles(hub, "test"), [join(hub, "data", "test-00000-of-00001.jsonl")]);
  assert.deepEqual(hfSplitFiles(hub, "test", [".parquet"]), [
    join(hub, "data", "test-00000-of-00001.parquet"),
  ]);
  // `{split}.{ext}` at the top wins over shards under data/.
  write("hub/train.csv", "x\ntop\n");
  assert.deepEqual((await readDataset(hub)).rows, [{ x: "top" }]);
  assert.deepEqual(hfSplitFiles(hub, "validation"), []);
  await assert.rejects(
    readDataset(hub, { split: "validation" }),
    /no "validation" split found \(looked for validation\.\* and validation-\*\.\* here and in data\/\)/,
  );
  // "train-" is a shard prefix; "trainer.jsonl" is not the train split.
  write("other/trainer.jsonl", '{"x": 1}\n');
  assert.deepEqual(hfSplitFiles(join(tmp, "other"), "train"), []);
});
