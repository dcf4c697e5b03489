/**
 * `lethe serve` (src/report/serve.ts, src/cli/serve.ts) as a user runs it, beside a real
 * `lethe run` of a reduced examples/tiny-study.yaml writing the study: in headless Chromium the
 * page lists the run, its loss chart gains points while the run goes on, and the final FG and the
 * report link appear once it ends. At the HTTP level: bound to 0.0.0.0, a request through a
 * non-loopback address of this machine without the token is refused (403) and with it served;
 * bound by default, it listens on loopback only and needs no token.
 * The page as it looked mid-run goes to test/report/__output__/serve.png (LETHE_SCREENSHOT=1:
 * docs/serve.png, the README's).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { loadStudy } from "../../src/continual/config.js";
import { dataPath, repoRoot, sharedDataRoot, skipReason } from "../helpers/data.js";
import { browserMissing, CHROMIUM, screenshot } from "../helpers/browser.js";

const NEEDS = ["models", "stories260K", "tok512.bin"] as const;
const RUN = "tiny-llama__sequential__order0__seed0";
const tmp = mkdtempSync(join(tmpdir(), "lethe-serve-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});
const env = { ...process.env, LETHE_DATA: sharedDataRoot };

/** Ends this file's processes (by their own pids) once a test is done. */
function stopChildren(): void {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
}

function lethe(...args: string[]): ChildProcess & { out: string[] } {
  const c = spawn(process.execPath, [join(repoRoot, "bin", "lethe.js"), ...args], {
    cwd: repoRoot,
    env,
  }) as ChildProcess & { out: string[] };
  c.out = [];
  c.stdout!.on("data", (d: Buffer) => c.out.push(d.toString()));
  c.stderr!.on("data", (d: Buffer) => c.out.push(d.toString()));
  children.push(c);
  return c;
}

/** Starts `lethe serve`; resolves with its port and token (null: none printed). */
async function startServe(...args: string[]): Promise<{ port: number; token: string | null }> {
  const c = lethe("serve", ...args, "--port", "0");
  for (let i = 0; i < 600; i++) {
    const text = c.out.join("");
    const m = /serving \S+ at http:\/\/\S+:(\d+)\/(\?token=(\w+))?/.exec(text);
    if (m) return { port: Number(m[1]), token: m[3] ?? null };
    if (c.exitCode !== null) throw new Error(`lethe serve exited: ${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`lethe serve printed no address: ${c.out.join("")}`);
}

const externalIPv4 = () =>
  Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === "IPv4" && !a.internal)?.address ?? null;

test("a non-loopback request without the token is refused; loopback by default", async (t) => {
  t.after(stopChildren);
  const dir = join(tmp, "empty");
  mkdirSync(dir);
  const ip = externalIPv4();
  if (ip === null) return t.skip("no non-loopback IPv4 address on this machine");
  const open = await startServe(dir, "--host", "0.0.0.0");
  assert.match(open.token ?? "", /^[0-9a-f]{32}$/, "a token is printed");
  const base = `http://${ip}:${open.port}`;
  assert.equal((await fetch(`${base}/api/state`)).status, 403);
  assert.equal((await fetch(`${base}/?token=${"0".repeat(32)}`)).status, 403, "a wrong token");
  const ok = await fetch(`${base}/api/state?token=${open.token}`);
  assert.equal(ok.status, 200);
  const state = (await ok.json()) as { runs: unknown[]; note: string };
  assert.deepEqual(state.runs, []);
  assert.match(state.note, /no study\.yaml/, "a folder with no study yet says so");
  const header = await fetch(`${base}/`, { headers: { "x-lethe-token": open.token! } });
  assert.equal(header.status, 200);

  const local = await startServe(dir);
  assert.equal(local.token, null, "no token on loopback");
  assert.equal((await fetch(`http://127.0.0.1:${local.port}/`)).status, 200);
  await assert.rejects(
    fetch(`http://${ip}:${local.port}/`, { signal: AbortSignal.timeout(3000) }),
    "not reachable from outside",
  );
});

test("the page follows a concurrent lethe run: runs, a growing loss chart, the final FG", async (t) => {
  t.after(stopChildren);
  if (!dataPath(...NEEDS)) return t.skip(skipReason(...NEEDS));
  if (browserMissing()) return t.skip("no chromium");
  const raw = loadStudy(join(repoRoot, "examples", "tiny-study.yaml"), env)
    .config as unknown as Record<string, unknown>;
  raw.methods = ["sequential"];
  // Three stages, with an evaluation between each: the page sees the chart grow at the stage
  // boundaries even on a loaded machine.
  raw.orders = [["haiku", "asset", "esnli"]];
  raw.budget = { maxTrain: 480, maxTest: 4 };
  raw.tasks = { ...(raw.tasks as object), maxGenToks: 16 };
  raw.train = { ...(raw.train as object), gradAccum: 1, checkpointEvery: 0 };
  raw.eval = { benchmarks: [{ name: "piqa", limit: 8 }], maxLength: 256, bootstrapIters: 10 };
  const config = join(tmp, "study.json");
  writeFileSync(config, JSON.stringify(raw));
  const out = join(tmp, "study");
  mkdirSync(out);
  const { port, token } = await startServe(out, "--host", "0.0.0.0");
  const run = lethe("run", config, "--out", out, "--ignore-plan");
  const ended = new Promise<number | null>((res) => run.on("close", (code) => res(code)));

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`http://127.0.0.1:${port}/?token=${token}`);
    await page.waitForSelector(`tr[data-run="${RUN}"]`, { timeout: 180_000 });

    // While the run goes on, the loss chart's point count grows (each stage adds its steps).
    const seen: number[] = [];
    let shot = false;
    while (run.exitCode === null) {
      const n = Number(await page.getAttribute('figure[data-chart="loss"]', "data-points"));
      if (run.exitCode !== null) break;
      if (seen.at(-1) !== n) seen.push(n);
      if (!shot && n > 0 && (await page.$('figure[data-chart="loss"] svg'))) {
        const state = await page.textContent(`tr[data-run="${RUN}"] td:nth-child(2)`);
        assert.equal(state, "running");
        shot = true;
        await page.waitForTimeout(1200); // the charts drawn
        await screenshot(
          page,
          process.env.LETHE_SCREENSHOT
            ? join(repoRoot, "docs", "serve.png")
            : join(repoRoot, "test", "report", "__output__", "serve.png"),
          900,
        );
      }
      await page.waitForTimeout(200);
    }
    assert.equal(await ended, 0, run.out.join(""));
    const grown = seen.filter((n) => n > 0);
    assert.ok(grown.length >= 2, `the loss chart gained points while the run went on: ${seen}`);
    assert.ok(
      grown.every((n, i) => i === 0 || n > grown[i - 1]),
      `only grows: ${seen}`,
    );
    assert.ok(
      (await page.$$('figure[data-chart="loss"] svg path')).length > 0,
      "the loss chart is drawn",
    );

    // The end: complete, the final FG per category as results.json has it, the report linked.
    const results = JSON.parse(readFileSync(join(out, "runs", RUN, "results.json"), "utf8")) as {
      fg: { perCategory: Record<string, number> };
    };
    const want = Object.entries(results.fg.perCategory)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(", ");
    assert.ok(want.length > 0, "results.json has an FG");
    await page.waitForFunction(
      ([run, want]) =>
        document.querySelector(`tr[data-run="${run}"] td.fg`)?.textContent === want &&
        document.querySelector("#study-report a") !== null,
      [RUN, want] as const,
      { timeout: 30_000 },
    );
    assert.equal(await page.textContent(`tr[data-run="${RUN}"] td:nth-child(2)`), "complete");
    assert.ok(
      (await page.$$('figure[data-chart="benchmarks"] svg path')).length > 0,
      "benchmark curves drawn",
    );
    const href = await page.getAttribute("#study-report a", "href");
    const report = await fetch(`http://127.0.0.1:${port}${href}`);
    assert.equal(report.status, 200);
    assert.match(await report.text(), /<html/);
    assert.deepEqual(errors, []);
    console.log(`# loss points seen: ${seen.join(" → ")}; FG: ${want}`);
  } finally {
    await browser.close();
  }
});
