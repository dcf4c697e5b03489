/**
 * `lethe --version` and `lethe doctor`: what a bug report needs. --version: lethe's version, the
 * libtorch it was built against and the one it loaded, CUDA compiled in / available. doctor (or
 * `--version --verbose`) adds what libtorch reports of itself: BLAS and oneDNN, threads and the
 * CPU instruction set its kernels dispatch to.
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

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
    lines.push(
      `BLAS ${blas}${c.mkl ? ` (${c.mkl})` : ""}`,
      `oneDNN ${c.mkldnn || "not available"}`,
      `CPU ${cpus()[0]?.model ?? "unknown"}, ${cpus().length} core(s); libtorch kernels: ${c.cpuCapability}`,
      `threads ${build.threads} intra-op (LETHE_THREADS), OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY ?? "unset"}`,
      "",
      c.parallelInfo.trimEnd(),
      "",
      c.showConfig.trimEnd(),
    );
  }
  return lines.join("\n") + "\n";
}

export async function doctorCommand(argv: string[]): Promise<number> {
  if (argv.length) throw new Error(`doctor takes no arguments (got ${argv.join(" ")})`);
  process.stdout.write(await versionText(true));
  return 0;
}
