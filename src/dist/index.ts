/**
 * Several processes, one job: torchrun's environment protocol, one process group per process,
 * and collectives whose failures say which rank was lost.
 *
 * A process is one rank of a group when WORLD_SIZE > 1 is in its environment, set by
 * `lethe run --nproc-per-node N` (src/cli/launch.ts), torchrun, srun or any launcher:
 * RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's names).
 * Rank 0 hosts the rendezvous TCPStore unless TORCHELASTIC_USE_AGENT_STORE=True says the
 * launcher does. The backend is Gloo on CPU and NCCL on CUDA (LETHE_DIST_BACKEND overrides).
 *
 * Every collective is bounded by the group's timeout (LETHE_DIST_TIMEOUT seconds, default 300).
 * When one fails (a peer died: Gloo reports the closed connection at once; or the timeout), the
 * survivor reads the heartbeat counters every rank's addon thread bumps in the store each second
 * and names the ranks whose counter stopped: `DistError.lost`.
 *
 * Reference: torch/distributed/run.py (the environment), torch.distributed.init_process_group.
 */
import { availableParallelism } from "node:os";
import {
  NativeProcessGroup,
  setNumThreads,
  TorchError,
  tensor,
  zeros,
  type Backend,
  type ReduceOp,
  type Tensor,
} from "../tensor/index.js";

/** torchrun's variables, read once. */
export interface DistEnv {
  rank: number;
  world: number;
  localRank: number;
  localWorld: number;
  masterAddr: string;
  masterPort: number;
  /** The launcher hosts the store (torchrun's agent store). */
  agentStore: boolean;
}

export const DEFAULT_TIMEOUT_S = 300;

/** The group this process belongs to, from torchrun's variables; null when WORLD_SIZE is unset or 1. */
export function distEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  const world = intVar(env, "WORLD_SIZE", 1);
  if (world <= 1) return null;
  const rank = intVar(env, "RANK", -1);
  if (rank < 0 || rank >= world)
    throw new Error(
      `environment: RANK must be an integer in [0, ${world}) with WORLD_SIZE ${world}`,
    );
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new Error("environment: MASTER_ADDR is not set (WORLD_SIZE > 1)");
  return {
    rank,
    world,
    localRank: intVar(env, "LOCAL_RANK", rank),
    localWorld: intVar(env, "LOCAL_WORLD_SIZE", world),
    masterAddr,
    masterPort: intVar(env, "MASTER_PORT", 29500),
    agentStore: env.TORCHELASTIC_USE_AGENT_STORE === "True",
  };
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`environment: ${name}="${v}" is not an integer`);
  return n;
}

/** libtorch threads for one rank: the cores shared among the ranks of this machine. */
export function threadsPerRank(localWorld: number): number {
  return Math.max(1, Math.floor(availableParallelism() / localWorld));
}

/** A collective failed: names the operation, this rank and the ranks found lost. */
export class DistError extends Error {
  constructor(
    readonly op: string,
    readonly rank: number,
    readonly world: number,
    readonly lost: number[],
    cause: string,
  ) {
    const who =
      lost.length > 0
        ? `lost rank${lost.length > 1 ? "s" : ""} ${lost.join(", ")} of ${world} (no heartbeat)`
        : "no rank was found lost (a timeout?)";
    super(`distributed ${op} failed on rank ${rank} of ${world}: ${who}. ${cause.split("\n")[0]}`);
    this.name = "DistError";
  }
}

/** Heartbeats a rank must miss, one a second, before it counts as lost. */
const HEARTBEAT_WAIT_MS = 2500;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** One rank's view of its group. */
export class Dist {
  readonly rank: number;
  readonly world: number;
  readonly backend: Backend;
  readonly timeoutS: number;
  #pg: NativeProcessGroup;

  constructor(e: DistEnv, o: { backend?: Backend; timeoutS?: number } = {}) {
    this.rank = e.rank;
    this.world = e.world;
    this.backend = o.backend ?? "gloo";
    this.timeoutS = o.timeoutS ?? DEFAULT_TIMEOUT_S;
    try {
      this.#pg = new NativeProcessGroup({
        backend: this.backend,
        host: e.masterAddr,
        port: e.masterPort,
        isServer: e.rank === 0 && !e.agentStore,
        rank: e.rank,
        world: e.world,
        timeoutMs: this.timeoutS * 1000,
      });
    } catch (err) {
      throw new Error(
        `rank ${e.rank} of ${e.world}: rendezvous at ${e.masterAddr}:${e.masterPort} failed within ` +
          `${this.timeoutS} s: ${(err as Error).message.split("\n")[0]}`,
      );
    }
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Runs a collective; a failure becomes a DistError naming the lost ranks. */
  #run<T>(op: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof TorchError)) throw e;
      throw new DistError(op, this.rank, this.world, this.lostRanks(), e.message);
    }
  }

  /** Ranks whose heartbeat did not move for HEARTBEAT_WAIT_MS; [0] when the store (rank 0's) is gone. */
  lostRanks(): number[] {
    try {
      const read = () => Array.from({ length: this.world }, (_, r) => this.#pg.storeGet(`hb/${r}`));
      const before = read();
      sleep(HEARTBEAT_WAIT_MS);
      const after = read();
      return after.flatMap((v, r) => (r !== this.rank && v === before[r] ? [r] : []));
    } catch {
      return [0];
    }
  }

  /** In place: the sum (or avg, max, min) over the ranks. */
  allReduce(t: Tensor, op: ReduceOp = "sum"): Tensor {
    const native = op === "avg" && this.backend === "gloo" ? "sum" : op; // Gloo has no AVG
    this.#run("allreduce", () => this.#pg.collective("allreduce", [t], { reduce: native }));
    if (native !== op) t.div_(this.world);
    return t;
  }

  /** Starts sum-reductions of `ts` (contiguous), returning when all are done. */
  allReduceAll(ts: Tensor[]): void {
    this.#run("allreduce", () => {
      const works = ts.map((t) => this.#pg.collective("allreduce", [t], { async: true })!);
      for (const w of works) w.wait();
    });
  }

  /** In place: rank `root`'s values on every rank. */
  broadcast(t: Tensor, root = 0): Tensor {
    this.#run("broadcast", () => this.#pg.collective("broadcast", [t], { root }));
    return t;
  }

  /** In place on `root`: the sum over the ranks (others' `t` is left unspecified). */
  reduce(t: Tensor, root = 0): Tensor {
    this.#run("reduce", () => this.#pg.collective("reduce", [t], { root, reduce: "sum" }));
    return t;
  }

  /** Every rank's `t` (same shape everywhere), in rank order. */
  allGather(t: Tensor): Tensor[] {
    const out = Array.from({ length: this.world }, () => zeros(t.shape, { dtype: t.dtype }));
    this.#run("allgather", () => this.#pg.collective("allgather", [t, ...out]));
    return out;
  }

  barrier(): void {
    this.#run("barrier", () => this.#pg.collective("barrier", []));
  }

  /** Every rank's JSON value, in rank order (length-prefixed bytes through allgather). */
  allGatherJson<T>(value: T): T[] {
    const bytes = Buffer.from(JSON.stringify(value), "utf8");
    const sizes = this.allGather(tensor([bytes.length], { dtype: "int64" })).map((s) => s.item());
    const longest = Math.max(...sizes);
    const padded = new Uint8Array(longest);
    padded.set(bytes);
    return this.allGather(tensor(padded, { dtype: "uint8" })).map((t, r) =>
      JSON.parse(Buffer.from(t.toBytes().subarray(0, sizes[r])).toString("utf8")),
    ) as T[];
  }

  /** Rank `root`'s JSON value on every rank. */
  broadcastJson<T>(value: T, root = 0): T {
    return this.allGatherJson(this.rank === root ? value : null)[root] as T;
  }

  destroy(): void {
    this.#pg.destroy();
  }
}

let current: Dist | null | undefined;

/**
 * This process's group, joined on first use from torchrun's variables (null: one process).
 * Also sets libtorch's threads to this machine's cores shared among its ranks.
 */
export function currentDist(env: NodeJS.ProcessEnv = process.env): Dist | null {
  if (current !== undefined) return current;
  const e = distEnv(env);
  if (!e) return (current = null);
  const timeoutS = env.LETHE_DIST_TIMEOUT ? Number(env.LETHE_DIST_TIMEOUT) : DEFAULT_TIMEOUT_S;
  if (!(timeoutS > 0))
    throw new Error(
      `environment: LETHE_DIST_TIMEOUT="${env.LETHE_DIST_TIMEOUT}" is not a positive number of seconds`,
    );
  const backend = (env.LETHE_DIST_BACKEND as Backend | undefined) ?? "gloo";
  if (env.LETHE_THREADS === undefined) setNumThreads(threadsPerRank(e.localWorld));
  current = new Dist(e, { backend, timeoutS });
  return current;
}
