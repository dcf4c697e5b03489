#!/usr/bin/env node
// The `lethe` command. It runs in the process it was started as (no worker, no re-exec), so a
// signal to this PID (kill -9, `timeout`'s SIGTERM, Ctrl-C's SIGINT) stops the work itself and the
// shell sees 128 + the signal's number.
//
// OpenMP threads must sleep instead of spin-waiting (OMP_WAIT_POLICY=PASSIVE) on few cores, and
// libgomp reads the variable once, when it is loaded with the native addon. Assigning to
// process.env calls setenv(3), so setting it here, before anything is imported (the CLI and with it
// src/tensor/native.ts, which loads the addon, come below), is enough. A policy the user set wins.
process.env.OMP_WAIT_POLICY ??= "PASSIVE";
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
