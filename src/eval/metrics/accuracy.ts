/**
 * `accuracy` for generated labels (a classification task posed as generation, as in O-LoRA's
 * and TRACE's label tasks): 100 when the prediction, stripped of surrounding whitespace, equals
 * one of the references stripped the same way, else 0; the corpus score is the mean. Unlike
 * SQuAD's `exact_match` it neither lowercases nor drops punctuation or articles, so "Positive"
 * and "positive." are different labels.
 */
import { defineMetric } from "./metric.js";

export const accuracy = defineMetric({
  name: "accuracy",
  higherIsBetter: true,
  needsSources: false,
  sentence: (prediction, references) =>
    references.some((r) => r.trim() === prediction.trim()) ? 100 : 0,
});
