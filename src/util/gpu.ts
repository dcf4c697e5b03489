/**
 * A CUDA device's memory as nvidia-smi reports it (`--query-gpu=memory.total|memory.free`), with
 * CUDA_VISIBLE_DEVICES respected: "cuda:1" is the second visible GPU. libtorch has no op for it
 * (Python's `torch.cuda.mem_get_info` calls the CUDA runtime directly), and nvidia-smi also answers
 * on a machine that plans for a GPU without loading libtorch's CUDA build.
 */
import { spawnSync } from "node:child_process";

export interface GpuMemory {
  /** Bytes, or null when nvidia-smi gave no figure. */
  bytes: number | null;
  /** Where the figure comes from, or why it is missing. */
  source: string;
}

export const isCuda = (device: string): boolean => device.startsWith("cuda");

export function gpuMemory(device: string, field: "total" | "free"): GpuMemory {
  const index = Number(/^cuda(?::(\d+))?$/.exec(device)?.[1] ?? 0);
  const visible = process.env.CUDA_VISIBLE_DEVICES?.split(",").map((s) => s.trim());
  const id = visible && visible[0] !== "" ? visible[index] : String(index);
  if (id === undefined)
    return { bytes: null, source: `CUDA_VISIBLE_DEVICES has no device ${index}` };
  const r = spawnSync(
    "nvidia-smi",
    [`--query-gpu=memory.${field}`, "--format=csv,noheader,nounits", `--id=${id}`],
    { encoding: "utf8", timeout: 10_000 },
  );
  const out = r.stdout?.trim() ?? "";
  const mib = Number(out);
  if (r.status !== 0 || out === "" || !(mib >= 0))
    return { bytes: null, source: "nvidia-smi did not answer" };
  return { bytes: mib * 2 ** 20, source: `nvidia-smi, GPU ${id}` };
}
