/**
 * Opens a synthetic study's report in headless Chromium (Debian's /usr/bin/chromium via
 * playwright-core) and checks that every chart rendered marks and the console stayed clean.
 * Keeps a screenshot in test/report/__output__/report.png. (test/mini/study.test.ts checks the
 * report of a real miniature study the same way.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeReport } from "../../src/report/index.js";
import { browserMissing, chartStats, screenshot, withReport } from "../helpers/browser.js";
import { repoRoot } from "../helpers/data.js";
import { STUDY_MODELS, writeStudy } from "./synthetic.js";

test("the report renders in Chromium: every chart has marks, no console errors", async (t) => {
  const missing = browserMissing();
  if (missing) return t.skip(missing);
  const tmp = mkdtempSync(join(tmpdir(), "lethe-browser-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const models = STUDY_MODELS.filter((m) => !["bloomz-1b1", "mt0-base"].includes(m.name));
  const study = join(tmp, "synthetic-study");
  const runs = writeStudy(study, { models, methods: ["full", "replay"], seeds: [0, 1] });
  const { html } = await writeReport([study]);

  await withReport(html, async (page, errors) => {
    const charts = await chartStats(page);
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
    await screenshot(page, join(repoRoot, "test", "report", "__output__", "report.png"));
  });
});
