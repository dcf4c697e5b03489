#!/usr/bin/env node
// The `lethe` command. It runs in the process it was started as (no worker, no re-exec), so a
// signal to this PID (kill -9, `timeout`'s SIGTERM, Ctrl-C's SIGINT) stops the work itself and the
// shell sees 128 + the signal's number.
// OpenMP keeps libgomp's own default wait policy (spin briefly, then sleep), as PyTorch does.
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
