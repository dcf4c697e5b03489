#!/usr/bin/env node
// Builds native/lethe.cc into build/lethe.node with the system C++ compiler, against the libtorch
// of a PyTorch 2.x install (2.11 to 2.15). Which install, first match wins:
//   LIBTORCH=DIR             a folder with include/ and lib/ (a libtorch zip, or a wheel's torch/)
//   LETHE_PYTHON=PATH        the torch that this interpreter imports
//   LIBTORCH_USE_PYTORCH=1   the torch that `python3` on the PATH imports (as the tch crate does)
//   otherwise                the project's venv, .venv/bin/python (made by scripts/setup.sh)
// CUDA is linked in when the install has libtorch_cuda.so. `--out FILE` builds elsewhere (the
// CUDA compile check builds build/lethe-cuda.node). Node-API headers come from npm
// (node-addon-api, node-api-headers). Skips the build when the output is newer than its sources
// and was built with the same flags and torch.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const src = join(root, "native", "lethe.cc");
const outArg = process.argv.indexOf("--out");
const out = resolve(outArg > 0 ? process.argv[outArg + 1] : join(root, "build", "lethe.node"));
const stamp = out + ".flags";

function torchDir() {
  if (process.env.LIBTORCH) return { dir: resolve(process.env.LIBTORCH), from: "LIBTORCH" };
  const python = process.env.LETHE_PYTHON
    ?? (process.env.LIBTORCH_USE_PYTORCH === "1" ? "python3" : join(root, ".venv", "bin", "python"));
  const from = process.env.LETHE_PYTHON ? "LETHE_PYTHON" : process.env.LIBTORCH_USE_PYTORCH === "1" ? "LIBTORCH_USE_PYTORCH" : ".venv";
  let dir;
  try {
    dir = execFileSync(python, ["-c", "import os, torch; print(os.path.dirname(torch.__file__))"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (e) {
    throw new Error(
      `lethe: no PyTorch found through ${python} (${from}): run scripts/setup.sh, or set LIBTORCH, ` +
        `LETHE_PYTHON or LIBTORCH_USE_PYTORCH=1 (see README)\n${e.stderr ?? e.message}`,
    );
  }
  return { dir, from: `${from}: ${python}` };
}

function libtorch() {
  const { dir, from } = torchDir();
  if (!existsSync(join(dir, "include")) || !existsSync(join(dir, "lib")))
    throw new Error(`lethe: libtorch in ${dir} (${from}) must contain include/ and lib/`);
  const inc = [join(dir, "include"), join(dir, "include", "torch", "csrc", "api", "include")];
  const libs = ["c10", "torch", "torch_cpu"];
  const cuda = existsSync(join(dir, "lib", "libtorch_cuda.so"));
  if (cuda) libs.push("c10_cuda", "torch_cuda");
  // PyTorch states the C++ ABI it was built with in its CMake config.
  let abi = 1;
  const cfg = join(dir, "share", "cmake", "Torch", "TorchConfig.cmake");
  if (existsSync(cfg)) {
    const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(readFileSync(cfg, "utf8"));
    if (m) abi = Number(m[1]);
  }
  const versionPy = join(dir, "version.py");
  const version = existsSync(versionPy)
    ? (/__version__ = '([^']+)'/.exec(readFileSync(versionPy, "utf8"))?.[1] ?? "?")
    : existsSync(join(dir, "build-version")) ? readFileSync(join(dir, "build-version"), "utf8").trim() : "?";
  // c10d's backends: Gloo's headers are not in the wheel (Debian's libgloo-dev, or GLOO_INCLUDE,
  // provides them; the code is in libtorch_cpu), NCCL's come with a CUDA wheel's nvidia-nccl.
  const defs = [];
  const glooInc = [process.env.GLOO_INCLUDE, "/usr/include", "/usr/local/include"].find(
    (d) => d && existsSync(join(d, "gloo", "algorithm.h")),
  );
  if (glooInc) {
    defs.push("-DUSE_C10D_GLOO");
    if (!["/usr/include", "/usr/local/include"].includes(glooInc)) inc.push(glooInc);
  }
  if (cuda) {
    const site = dirname(dir);
    const ncclInc = [join(site, "nvidia", "nccl", "include"), "/usr/include"].find((d) => existsSync(join(d, "nccl.h")));
    // ProcessGroupNCCL.hpp reaches the CUDA runtime and libraries' headers: a toolkit's (CUDA_HOME,
    // /usr/local/cuda) for the runtime, and the wheel's nvidia/cu13 for cuBLAS, cuSPARSE, cuSOLVER.
    const toolkit = [process.env.CUDA_HOME && join(process.env.CUDA_HOME, "include"), "/usr/local/cuda/include"]
      .find((d) => d && existsSync(join(d, "crt", "host_config.h")));
    const libsInc = [join(site, "nvidia", "cu13", "include"), toolkit].find((d) => d && existsSync(join(d, "cusparse.h")));
    if (ncclInc && toolkit && libsInc) {
      defs.push("-DUSE_C10D_NCCL", "-DUSE_CUDA");
      inc.push(ncclInc, ...new Set([toolkit, libsInc]));
    }
  }
  return { inc, libDir: join(dir, "lib"), libs, abi, cuda, version, defs };
}

const t = libtorch();
const addonInc = require("node-addon-api").include_dir;
const napiInc = require("node-api-headers").include_dir;
const cxx = process.env.CXX ?? "g++";
const args = [
  "-std=c++20", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall",
  "-DNAPI_VERSION=8", "-DNAPI_CPP_EXCEPTIONS", `-D_GLIBCXX_USE_CXX11_ABI=${t.abi}`, `-DLETHE_CUDA=${t.cuda ? 1 : 0}`, ...t.defs,
  "-Wno-unused-parameter",
  `-I${addonInc}`, `-I${napiInc}`, ...t.inc.map((i) => `-isystem${i}`),
  src, "-o", out + ".tmp",
  `-L${t.libDir}`, `-Wl,-rpath,${t.libDir}`, "-Wl,--no-as-needed", ...t.libs.map((l) => `-l${l}`), "-ldl",
];
const flags = [`torch ${t.version}`, cxx, ...args].join(" ");

const newest = Math.max(statSync(src).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (existsSync(out) && existsSync(stamp) && statSync(out).mtimeMs > newest && readFileSync(stamp, "utf8") === flags) {
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
console.log(`lethe: building ${out} against torch ${t.version}${t.cuda ? " (CUDA)" : ""} in ${t.libDir} (about a minute)`);
execFileSync(cxx, args, { stdio: "inherit" });
renameSync(out + ".tmp", out);
writeFileSync(stamp, flags);
