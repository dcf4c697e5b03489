/**
 * lethe's tensor engine: libtorch tensors, autograd and scopes, from TypeScript.
 * The only layer that imports the native addon (src/tensor/native.ts).
 */
export { TorchError, build, setNumThreads } from "./native.js";
export { type DType, dtypeInfo, isDType } from "./dtype.js";
export {
  Tensor,
  Generator,
  type Shape,
  type Scalar,
  tidy,
  keep,
  noGrad,
  autocast,
  getRngState,
  setRngState,
  isGradEnabled,
  liveTensors,
  op,
  opN,
  opValue,
  opId,
  hasOp,
} from "./tensor.js";
export * from "./ops.js";
export {
  NativeProcessGroup,
  Work,
  type Backend,
  type ReduceOp,
  type ProcessGroupOptions,
} from "./dist.js";
