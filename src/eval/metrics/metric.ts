/**
 * The interface every generation metric implements, `defineMetric` (input checks, default
 * corpus score) and the Python-whitespace helpers they share. Scores are on a 0–100 scale throughout (sacreBLEU, SARI and the official
 * SQuAD script report that way; ROUGE-L and exact match are ×100 of their 0–1 fractions), so a
 * continual-task accuracy matrix can mix metrics without rescaling.
 * Reference for `splitWhitespace`: Python's `str.split()` with no argument (CPython
 * `Py_UNICODE_ISSPACE`), which sacreBLEU, SQuAD's `evaluate-v1.1.py` and HF's SARI all use.
 */

export interface GenerationMetric {
  /** The metric key as lm-eval / HF `evaluate` spell it (`exact_match`, `rougeL`, ...). */
  name: string;
  higherIsBetter: boolean;
  /** Whether `sources` (the inputs the predictions were made from) are required, as for SARI. */
  needsSources: boolean;
  /**
   * Corpus score in [0, 100]. `references[i]` holds the (one or more) references of
   * `predictions[i]`; `sources[i]` its input where `needsSources`.
   */
  corpus(predictions: string[], references: string[][], sources?: string[]): number;
  /** Score of one item in [0, 100]: the per-item value used for item-level forgetting analysis. */
  sentence(prediction: string, references: string[], source?: string): number;
}

/** What a metric file declares; `defineMetric` adds the input checks and the default corpus. */
export interface MetricDefinition {
  name: string;
  higherIsBetter: boolean;
  needsSources: boolean;
  sentence(prediction: string, references: string[], source?: string): number;
  /** Corpus score from already checked inputs; defaults to the mean of `sentence` over items. */
  corpus?(predictions: string[], references: string[][], sources?: string[]): number;
}

/**
 * A `GenerationMetric` whose `corpus` and `sentence` throw clear errors unless the inputs line
 * up: same non-zero length, at least one reference per item, sources where needed.
 */
export function defineMetric(def: MetricDefinition): GenerationMetric {
  const { name, needsSources } = def;
  const checkItem = (references: string[], source: string | undefined, where: string): void => {
    if (references.length === 0) throw new Error(`${name}: ${where} has no references`);
    if (needsSources && source === undefined) throw new Error(`${name}: ${where} has no source`);
  };
  return {
    name,
    higherIsBetter: def.higherIsBetter,
    needsSources,
    sentence(prediction, references, source) {
      checkItem(references, source, "the item");
      return def.sentence(prediction, references, source);
    },
    corpus(predictions, references, sources) {
      const n = predictions.length;
      if (n === 0) throw new Error(`${name}: no predictions to score`);
      if (references.length !== n) {
        throw new Error(`${name}: ${n} predictions but ${references.length} reference lists`);
      }
      if (sources !== undefined && sources.length !== n) {
        throw new Error(`${name}: ${n} predictions but ${sources.length} sources`);
      }
      references.forEach((refs, i) => checkItem(refs, sources?.[i], `item ${i}`));
      if (def.corpus) return def.corpus(predictions, references, sources);
      let total = 0;
      predictions.forEach((p, i) => (total += def.sentence(p, references[i], sources?.[i])));
      return total / n;
    },
  };
}

/** Python's whitespace set (`str.isspace`): JS `\s` lacks \x1c-\x1f and \x85, adds \ufeff. */
const PY_WHITESPACE =
  "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const SPLIT = new RegExp(`[${PY_WHITESPACE}]+`);
const TRAILING = new RegExp(`[${PY_WHITESPACE}]+$`);

/** Python's `s.split()`: split on runs of whitespace, dropping empty pieces. */
export function splitWhitespace(s: string): string[] {
  return s.split(SPLIT).filter((t) => t.length > 0);
}

/** Python's `s.rstrip()`. */
export function rstripWhitespace(s: string): string {
  return s.replace(TRAILING, "");
}
