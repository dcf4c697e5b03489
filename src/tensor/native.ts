/**
 * Loads lethe's native addon (native/lethe.cc, built to build/lethe.node) and configures libtorch
 * for this machine. This is the only file that touches the addon; everything else goes through
 * src/tensor/.
 *
 * Threads: libtorch uses all cores for intra-op work (`LETHE_THREADS` overrides). On few cores
 * OpenMP must not spin-wait (`OMP_WAIT_POLICY=PASSIVE`) or it fights OpenBLAS's own threads and
 * training runs 2–10× slower; the `lethe` launcher (bin/lethe.js, scripts/lethe-env) sets it
 * before libgomp loads, together with tcmalloc (glibc malloc grows ~35 MB per training step).
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Every libtorch failure (shape, dtype, device, out of memory) is thrown as this class. */
export class TorchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TorchError";
  }
}

/** The generic exports of native/lethe.cc. */
export interface NativeAddon {
  init(errorClass: typeof TorchError): {
    torch: string;
    cuda: boolean;
    cudaDevices: number;
    threads: number;
  };
  opId(name: string): number;
  opSchema(id: number): string;
  call(
    op: number,
    args: unknown[],
    kwargs?: Record<string, unknown> | null,
    discard?: boolean,
  ): unknown;
  free(id: number): void;
  meta(id: number): [number, string, boolean, ...number[]];
  fromBuffer(bytes: Uint8Array, scalarType: number, shape: number[]): number;
  toBuffer(id: number): ArrayBuffer;
  backward(
    roots: number[],
    grads: number[] | null,
    retainGraph: boolean | null,
    createGraph: boolean,
  ): void;
  grad(id: number): number | null;
  setGrad(id: number, grad: number | null): void;
  setGradEnabled(enabled: boolean): boolean;
  generator(seed: number, device: string): number;
  manualSeed(seed: number): void;
  setNumThreads(n: number): number;
  stats(): { liveTensors: number; slots: number };
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const addonPath = process.env.LETHE_ADDON ?? join(root, "build", "lethe.node");
if (!existsSync(addonPath)) {
  throw new Error(
    `lethe: native addon not found at ${addonPath}; run \`npm run build:native\` (see README)`,
  );
}
if (process.env.OMP_WAIT_POLICY === undefined) {
  process.emitWarning(
    "OMP_WAIT_POLICY is not set: run lethe through bin/lethe.js or scripts/lethe-env, or set OMP_WAIT_POLICY=PASSIVE before start; training may be several times slower",
  );
}

export const native = createRequire(import.meta.url)(addonPath) as NativeAddon;
export const build = native.init(TorchError);

/** Sets libtorch's intra-op threads; returns the number in use. */
export function setNumThreads(n: number): number {
  return native.setNumThreads(n);
}

build.threads = setNumThreads(Number(process.env.LETHE_THREADS ?? availableParallelism()));
