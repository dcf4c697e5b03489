/**
 * Collectives over PyTorch's own c10d (native/lethe.cc): a TCPStore for the rendezvous, then
 * ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA builds). Only the calls; who talks to whom,
 * the torchrun environment and what a failure means live in src/dist/.
 *
 * Reference: torch.distributed (`init_process_group`, `all_reduce`, `broadcast`, `reduce`,
 * `all_gather`, `reduce_scatter`, `barrier`, `Work.wait`).
 */
import { hostname } from "node:os";
import { native, type ProcessGroupOptions } from "./native.js";
import type { Tensor } from "./tensor.js";

export type { ProcessGroupOptions };
export type Backend = ProcessGroupOptions["backend"];
export type ReduceOp = "sum" | "avg" | "max" | "min";

/** A pending asynchronous collective (`async_op=True`). */
export class Work {
  #id: number | null;
  constructor(id: number) {
    this.#id = id;
  }
  wait(): void {
    if (this.#id === null) return;
    const id = this.#id;
    this.#id = null;
    native.wait(id);
  }
}

/** One c10d process group. Every call blocks until done, or throws a TorchError on failure. */
export class NativeProcessGroup {
  #id: number | null;
  readonly rank: number;
  readonly world: number;
  readonly backend: Backend;

  constructor(o: ProcessGroupOptions) {
    this.#id = native.processGroup({
      ...o,
      // Gloo binds to the address this host name resolves to, as torch's default device does.
      localHost: o.localHost ?? (isLoopback(o.host) ? o.host : hostname()),
    });
    this.rank = o.rank;
    this.world = o.world;
    this.backend = o.backend;
  }

  get id(): number {
    if (this.#id === null) throw new Error("the process group was destroyed");
    return this.#id;
  }

  collective(
    op: "allreduce" | "broadcast" | "reduce" | "allgather" | "reduceScatter" | "barrier",
    tensors: Tensor[],
    o: { reduce?: ReduceOp; root?: number; async?: boolean } = {},
  ): Work | null {
    const id = native.collective(
      this.id,
      op,
      tensors.map((t) => t.handle),
      o,
    );
    return typeof id === "number" ? new Work(id) : null;
  }

  /** The store's counter `key` plus `n` (heartbeats, flags). */
  storeAdd(key: string, n: number): number {
    return native.store(this.id, "add", key, n) as number;
  }
  /** The store's value of `key`, "" when absent (never waits). */
  storeGet(key: string): string {
    return native.store(this.id, "get", key) as string;
  }
  storeSet(key: string, value: string): void {
    native.store(this.id, "set", key, value);
  }

  destroy(): void {
    if (this.#id !== null) native.destroyGroup(this.#id);
    this.#id = null;
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "::1";
}
