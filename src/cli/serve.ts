/**
 * `lethe serve DIR [--port N] [--host ADDR]`: the live dashboard of a study (src/report/serve.ts).
 * Prints the address (with the token when bound beyond loopback) and serves until interrupted.
 */
import { resolve } from "node:path";
import { existsSync } from "node:fs";
import { serve } from "../report/serve.js";
import { command } from "./commands.js";
import { UsageError } from "./flags.js";

export const serveCommand = command("serve", async ({ values, positionals: [arg] }) => {
  const dir = resolve(arg);
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port: "${values.port}" is not a port (0 to 65535)`);
  const s = await serve({ dir, host: values.host, port });
  const url = s.token === null ? s.url : `${s.url}?token=${s.token}`;
  process.stdout.write(`serving ${dir} at ${url}\n`);
  if (s.token !== null)
    process.stdout.write(
      `token: ${s.token} (every request must carry it: ?token= or x-lethe-token)\n`,
    );
  await new Promise<void>((res) => s.server.on("close", () => res()));
  return 0;
});
