/**
 * Loads lethe's native addon (native/lethe.cc, built to build/lethe.node) and configures libtorch
 * for this machine. This is the only file that touches the addon; everything else goes through
 * src/tensor/.
 *
 * The addon links the libtorch of a PyTorch 2.x install (scripts/build-native.mjs); `LETHE_ADDON`
 * loads another build (e.g. build/lethe-cuda.node).
 *
 * Threads: libtorch uses all cores for intra-op work (`LETHE_THREADS` overrides). OpenMP keeps
 * libgomp's default wait policy (spin briefly, then sleep), as Python PyTorch does: with MKL and
 * oneDNN on libgomp's own threads nothing fights a spinning thread, and forcing PASSIVE made small
 * models train 1.6× slower (bench/RESULTS.md). A policy set in the environment is respected.
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

/** A c10d process group's rendezvous and backend (src/tensor/dist.ts). */
export interface ProcessGroupOptions {
  backend: "gloo" | "nccl";
  /** The rendezvous store's address (MASTER_ADDR, MASTER_PORT). */
  host: string;
  port: number;
  /** This process hosts the store (rank 0, unless a launcher hosts it as torchrun's agent does). */
  isServer: boolean;
  rank: number;
  world: number;
  /** Bounds the rendezvous and every collective. */
  timeoutMs: number;
  /** The address this rank's Gloo transport binds to; default: `host` when it is a loopback one, else this machine's host name. */
  localHost?: string;
}

/** The generic exports of native/lethe.cc. */
export interface NativeAddon {
  init(errorClass: typeof TorchError): {
    /** libtorch version the addon was compiled against (TORCH_VERSION) */
    torch: string;
    /** version of the libtorch install actually loaded (e.g. "2.13.0+cpu") */
    torchLoaded: string;
    cudaCompiled: boolean;
    cuda: boolean;
    cudaDevices: number;
    threads: number;
    /** The addon's c10d process groups (src/tensor/dist.ts): built with Gloo's / NCCL's headers. */
    gloo: boolean;
    nccl: boolean;
    /**
     * "os": glibc's defaults; "retain" (LETHE_MALLOC=retain): freed memory stays in the process
     * (glibc's mmap and trim thresholds at 1 GiB): faster small-model steps, higher peak RSS.
     */
    malloc: "retain" | "os";
  };
  config(): {
    showConfig: string;
    parallelInfo: string;
    cpuCapability: string;
    mkl: string;
    mkldnn: string;
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
  autocast(device: string, enabled: boolean, scalarType: number): boolean;
  generator(seed: number, device: string): number;
  freeGenerator(id: number): void;
  rngState(device: string): number;
  setRngState(device: string, state: number): void;
  manualSeed(seed: number): void;
  setNumThreads(n: number): number;
  stats(): {
    liveTensors: number;
    slots: number;
    storages: number;
    generators: number;
    /** Ops looked up so far that take an unboxed fast path (absent from addons built before them). */
    fastPaths?: number;
  };
  processGroup(o: Required<ProcessGroupOptions>): number;
  collective(
    group: number,
    op: string,
    tensors: number[],
    o: { reduce?: string; root?: number; async?: boolean },
  ): number | undefined;
  wait(work: number): void;
  store(group: number, op: "add" | "get" | "set", key: string, value?: number | string): unknown;
  destroyGroup(group: number): void;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const addonPath = resolve(process.env.LETHE_ADDON ?? join(root, "build", "lethe.node"));
if (!existsSync(addonPath)) {
  throw new Error(
    `lethe: native addon not found at ${addonPath}; run \`npm run build:native\` (see README)`,
  );
}

export const native = createRequire(import.meta.url)(addonPath) as NativeAddon;
export const build = native.init(TorchError);

/** Sets libtorch's intra-op threads; returns the number in use. */
export function setNumThreads(n: number): number {
  return native.setNumThreads(n);
}

build.threads = setNumThreads(Number(process.env.LETHE_THREADS ?? availableParallelism()));
