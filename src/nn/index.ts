/** nn: modules with Hugging Face-style dotted parameter names, and the basic layers. */
export { Module, StateDictError, trainableParameters } from "./module.js";
export {
  Linear,
  Embedding,
  LayerNorm,
  RMSNorm,
  Dropout,
  parameter,
  normalLinear,
} from "./layers.js";
export { flattenParameters, releaseGradients, type FlatParameters } from "./flat.js";
