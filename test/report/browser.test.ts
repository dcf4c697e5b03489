/**
 * Opens a synthetic study's report in headless Chromium (Debian's /usr/bin/chromium via
 * playwright-core) and checks that every chart rendered marks and the console stayed clean.
 * Keeps a screenshot in test/report/__output__/report.png; with LETHE_DOCS_SCREENSHOT=1 also
 * writes the full-page docs/report.png used by the README.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { writeReport } from "../../src/report/index.js";
import { repoRoot } from "../helpers/data.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

const CHROMIUM = "/usr/bin/chromium";

test("the report renders in Chromium: every chart has marks, no console errors", async (t) => {
  if (!existsSync(CHROMIUM)) {
    const msg = `${CHROMIUM} not found (Debian's chromium package); browser check skipped`;
    console.log(`# SKIP ${msg}`);
    t.skip(msg);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), "lethe-browser-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const models = STUDY_MODELS.filter((m) => !["bloomz-1b1", "mt0-base"].includes(m.name));
  const study = join(tmp, "synthetic-study");
  const runs = writeStudy(study, { models, methods: ["full", "replay"], seeds: [0, 1] });
  const { html } = await writeReport([study]);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => {
    if (!r.url().startsWith("file:")) errors.push(`request to ${r.url()}`);
  });
  await page.goto(pathToFileURL(html).href, { waitUntil: "load" });

  const charts = await page.$$eval("figure.chart", (figs) =>
    figs.map((f) => ({
      id: f.getAttribute("data-chart"),
      svgs: f.querySelectorAll("svg").length,
      marks: f.querySelectorAll(
        "svg g.role-mark > path, svg g.role-mark > text, svg g.role-mark > line",
      ).length,
      width: f.querySelector("svg")?.getBoundingClientRect().width ?? 0,
    })),
  );
  console.log(`# charts: ${charts.map((c) => `${c.id}=${c.marks}`).join(" ")}`);
  assert.equal(charts.length, runs.length + 6); // heatmaps, scale, methods, curves ×2, bias ×2
  for (const c of charts) {
    assert.equal(c.svgs, 1, `${c.id}: one svg`);
    assert.ok(c.marks > 0, `${c.id}: has marks`);
    assert.ok(c.width > 50, `${c.id}: laid out (${c.width}px wide)`);
  }

  // The forgotten-items browser fills its table and filters by stage.
  const rows = () => page.locator("#items tbody tr").count();
  const all = await rows();
  assert.ok(all > 0, "forgotten items listed");
  await page.selectOption("#f-stage", "1");
  assert.ok((await rows()) < all, "filtering by stage 1 narrows the list");
  await page.selectOption("#f-stage", "");
  await page.fill("#f-q", "question 7:");
  assert.ok((await rows()) <= 1);
  await page.fill("#f-q", "");

  assert.deepEqual(errors, []);
  await page.evaluate(() => window.scrollTo(0, 0)); // the sticky nav back at the top

  const outDir = join(repoRoot, "test", "report", "__output__");
  mkdirSync(outDir, { recursive: true });
  const shot = join(outDir, "report.png");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`# screenshot: ${shot}`);
  if (process.env.LETHE_DOCS_SCREENSHOT === "1") {
    const docs = join(repoRoot, "docs", "report.png");
    mkdirSync(join(repoRoot, "docs"), { recursive: true });
    await page.screenshot({ path: docs, fullPage: true });
    console.log(`# docs screenshot: ${docs}`);
  }
});
