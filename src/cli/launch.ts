/**
 * `--nproc-per-node N`: starts N ranks of this same command on this machine, as torchrun does
 * (torch/distributed/run.py): each child gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, and joins the group through src/dist/. Rank 0
 * prints the progress and writes; every rank trains and evaluates its share.
 *
 * The launcher forwards SIGINT, SIGTERM and SIGUSR1 to every rank. When a rank dies, the others
 * find it lost at their next collective (src/dist/: Gloo sees the closed connection) and stop
 * with its rank in the message; any rank still alive LETHE_DIST_TIMEOUT + 30 s later is killed.
 * The exit status is the first failed rank's (0 when all succeed).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DEFAULT_TIMEOUT_S } from "../dist/index.js";
import { freePort } from "../util/net.js";

const BIN = fileURLToPath(new URL("../../bin/lethe.js", import.meta.url));

/** The parsed `--nproc-per-node`, checked. */
export function nprocOf(v: string | undefined): number {
  const n = Number(v ?? "1");
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--nproc-per-node: expected an integer >= 1, got "${v}"`);
  return n;
}

/** Whether this process should start ranks: N > 1 asked and not already one rank of a group. */
export function shouldLaunch(n: number, env: NodeJS.ProcessEnv = process.env): boolean {
  return n > 1 && !(Number(env.WORLD_SIZE ?? "1") > 1);
}

/** Runs `lethe ...argv` as `n` local ranks; resolves to the exit status. */
export async function launchLocal(n: number, argv: string[]): Promise<number> {
  const port = await freePort();
  const timeoutS = Number(process.env.LETHE_DIST_TIMEOUT ?? DEFAULT_TIMEOUT_S);
  const children: ChildProcess[] = [];
  const exits: (number | null)[] = Array(n).fill(null);
  let first: number | null = null;
  let killer: NodeJS.Timeout | null = null;
  const forward = (sig: NodeJS.Signals) => () => {
    for (const c of children) if (c.exitCode === null) c.kill(sig);
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGUSR1"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  try {
    await new Promise<void>((resolve) => {
      let left = n;
      for (let r = 0; r < n; r++) {
        const child = spawn(process.execPath, [...process.execArgv, BIN, ...argv], {
          stdio: "inherit",
          env: {
            ...process.env,
            RANK: String(r),
            LOCAL_RANK: String(r),
            WORLD_SIZE: String(n),
            LOCAL_WORLD_SIZE: String(n),
            MASTER_ADDR: "127.0.0.1",
            MASTER_PORT: String(port),
          },
        });
        children.push(child);
        child.on("exit", (code, signal) => {
          const status = code ?? 128 + (signal ? signalNumber(signal) : 0);
          exits[r] = status;
          if (status !== 0) {
            process.stderr.write(
              `lethe: rank ${r} of ${n} (pid ${child.pid}) ` +
                (signal ? `was killed by ${signal}` : `exited with status ${code}`) +
                "\n",
            );
            if (first === null) first = status;
            killer ??= setTimeout(forward("SIGKILL"), (timeoutS + 30) * 1000);
          }
          if (--left === 0) resolve();
        });
      }
    });
  } finally {
    if (killer) clearTimeout(killer);
    for (const [s, h] of handlers) process.off(s, h);
  }
  return first ?? 0;
}

function signalNumber(s: NodeJS.Signals): number {
  return { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGUSR1: 10, SIGTERM: 15 }[s as string] ?? 0;
}
