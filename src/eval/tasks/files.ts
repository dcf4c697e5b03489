/**
 * The benchmark readers are the shared dataset reader's (src/io/dataset.ts: JSON Lines, JSON,
 * CSV/TSV, Parquet, the Hub layout, typed field checks); re-exported here so each benchmark file
 * imports its readers from beside it.
 */
export {
  type FieldType,
  type Fields,
  type FileRows,
  type Row,
  checkFields,
  field,
  mapRows,
  readCsv,
  readJson,
  readJsonFolder,
  readJsonList,
  readJsonl,
  readParquet,
} from "../../io/dataset.js";
