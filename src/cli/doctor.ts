/**
 * `lethe --version` and `lethe doctor`: what a bug report needs. --version: lethe's version, the
 * libtorch it was built against and the one it loaded, CUDA compiled in / available. doctor (or
 * `--version --verbose`) adds what libtorch reports of itself: BLAS and oneDNN, NCCL and Gloo
 * (from its build settings), threads and the CPU instruction set its kernels dispatch to; and
 * the addon's file and the compiler command it was built with (the `.flags` file
 * scripts/build-native.mjs writes beside it).
 */
import { existsSync, readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { command } from "./commands.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };

/** A `USE_X=` build setting of libtorch's show_config: ON, OFF, or null when it is not stated. */
function buildSetting(settings: string, name: string): string | null {
  const v = new RegExp(`\\b${name}=([^,\\s]+)`).exec(settings)?.[1];
  if (v === undefined) return null;
  return ["ON", "1", "TRUE", "YES"].includes(v.toUpperCase()) ? "ON" : "OFF";
}

export async function versionText(verbose: boolean): Promise<string> {
  // The addon loads here, not at import, so `lethe --help` works without a build.
  const { build, native } = await import("../tensor/native.js");
  const cuda = build.cudaCompiled
    ? `compiled in, ${build.cuda ? `available (${build.cudaDevices} device(s))` : "not available"}`
    : "not compiled in";
  const lines = [
    `lethe ${pkg.version}`,
    `libtorch ${build.torch} (built against), ${build.torchLoaded} (loaded)`,
    `CUDA ${cuda}`,
    `node ${process.version}`,
  ];
  if (verbose) {
    const c = native.config();
    const settings = /Build settings: (.*)/.exec(c.showConfig)?.[1] ?? "";
    const blas = /BLAS_INFO=([^,]+)/.exec(settings)?.[1] ?? "unknown";
    const backend = (name: string, key: string) => {
      const v = buildSetting(settings, key);
      return `${name} ${v === null ? "unknown" : v === "ON" ? "compiled in" : "not compiled in"} (libtorch ${key}=${v ?? "?"})`;
    };
    // src/tensor/native.ts loads the same file: LETHE_ADDON, else build/lethe.node.
    const addon = resolve(process.env.LETHE_ADDON ?? join(root, "build", "lethe.node"));
    const flags = existsSync(`${addon}.flags`)
      ? readFileSync(`${addon}.flags`, "utf8").trim()
      : `unknown (no ${addon}.flags)`;
    lines.push(
      backend("NCCL", "USE_NCCL"),
      backend("Gloo", "USE_GLOO"),
      `lethe's process groups: gloo ${build.gloo ? "yes" : "no (no Gloo headers at build time: apt install libgloo-dev)"}, ` +
        `nccl ${build.nccl ? "yes" : "no"}`,
      `BLAS ${blas}${c.mkl ? ` (${c.mkl})` : ""}`,
      `oneDNN ${c.mkldnn || "not available"}`,
      `CPU ${cpus()[0]?.model ?? "unknown"}, ${cpus().length} core(s); libtorch kernels: ${c.cpuCapability}`,
      `threads ${build.threads} intra-op (LETHE_THREADS), OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? "unset"}`,
      `allocator: ${build.malloc === "retain" ? "freed memory kept in the process (LETHE_MALLOC=retain: glibc thresholds 1 GiB)" : "glibc's defaults (LETHE_MALLOC=retain keeps freed memory in the process)"}`,
      `addon ${addon}`,
      `addon build flags: ${flags}`,
      "",
      c.parallelInfo.trimEnd(),
      "",
      c.showConfig.trimEnd(),
    );
  }
  return lines.join("\n") + "\n";
}

export const doctorCommand = command("doctor", async () => {
  process.stdout.write(await versionText(true));
  return 0;
});
