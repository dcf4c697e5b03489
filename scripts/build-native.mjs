#!/usr/bin/env node
// Builds native/lethe.cc into build/lethe.node with the system C++ compiler.
// libtorch comes from $LIBTORCH (a folder with include/ and lib/: a libtorch zip or a PyTorch
// install's torch/ folder) or else Debian's libtorch-dev. Node-API headers come from npm
// (node-addon-api, node-api-headers), so no node headers are downloaded. Skips the build when
// build/lethe.node is newer than its sources and was built with the same flags.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(import.meta.url);
const src = join(root, "native", "lethe.cc");
const out = join(root, "build", "lethe.node");
const stamp = out + ".flags";

function libtorch() {
  const dir = process.env.LIBTORCH;
  if (dir) {
    if (!existsSync(join(dir, "include")) || !existsSync(join(dir, "lib")))
      throw new Error(`LIBTORCH=${dir} must contain include/ and lib/`);
    const inc = [join(dir, "include"), join(dir, "include", "torch", "csrc", "api", "include")];
    const libs = ["c10", "torch", "torch_cpu"];
    for (const cuda of ["c10_cuda", "torch_cuda"])
      if (existsSync(join(dir, "lib", `lib${cuda}.so`))) libs.push(cuda);
    // PyTorch wheels state the C++ ABI they were built with in their CMake config.
    let abi = 1;
    const cfg = join(dir, "share", "cmake", "Torch", "TorchConfig.cmake");
    if (existsSync(cfg)) {
      const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(readFileSync(cfg, "utf8"));
      if (m) abi = Number(m[1]);
    }
    return { inc, libDir: join(dir, "lib"), libs, abi };
  }
  const inc = ["/usr/include", "/usr/include/torch/csrc/api/include"];
  if (!existsSync("/usr/include/torch/csrc/api/include/torch/torch.h"))
    throw new Error("libtorch not found: install Debian's libtorch-dev or set LIBTORCH (see README)");
  return { inc, libDir: "/usr/lib/x86_64-linux-gnu", libs: ["c10", "torch", "torch_cpu"], abi: 1 };
}

const t = libtorch();
const addonInc = require("node-addon-api").include_dir;
const napiInc = require("node-api-headers").include_dir;
const cxx = process.env.CXX ?? "g++";
const args = [
  "-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden",
  "-DNAPI_VERSION=8", "-DNAPI_CPP_EXCEPTIONS", `-D_GLIBCXX_USE_CXX11_ABI=${t.abi}`,
  "-Wno-deprecated-declarations", "-Wno-unused-parameter",
  `-I${addonInc}`, `-I${napiInc}`, ...t.inc.map((i) => `-I${i}`),
  src, "-o", out + ".tmp",
  `-L${t.libDir}`, `-Wl,-rpath,${t.libDir}`, "-Wl,--no-as-needed", ...t.libs.map((l) => `-l${l}`),
];
const flags = [cxx, ...args].join(" ");

const newest = Math.max(statSync(src).mtimeMs, statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (existsSync(out) && existsSync(stamp) && statSync(out).mtimeMs > newest && readFileSync(stamp, "utf8") === flags) {
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
console.log(`lethe: building native addon against libtorch in ${t.libDir} (about a minute)`);
execFileSync(cxx, args, { stdio: "inherit" });
renameSync(out + ".tmp", out);
writeFileSync(stamp, flags);
