/**
 * A report opened in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core),
 * for the browser checks of test/report/browser.test.ts and test/mini/study.test.ts: console
 * errors and outside requests are collected, and each chart's SVG is measured.
 *
 * Also a command that screenshots a report (how docs/report.png is made):
 *   node --import tsx test/helpers/browser.ts REPORT.html OUT.png [HEIGHT]
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Why a browser check cannot run here, printed as a skip; null when Chromium is installed. */
export function browserMissing(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const msg = `${CHROMIUM} not found (Debian's chromium package); browser check skipped`;
  console.log(`# SKIP ${msg}`);
  return msg;
}

export interface ChartStats {
  id: string | null;
  svgs: number;
  marks: number;
  width: number;
}

/** Opens `html` at 1280×900, runs `fn`, closes the browser. `errors` grows as the page runs. */
export async function withReport<T>(
  html: string,
  fn: (page: Page, errors: string[]) => Promise<T>,
): Promise<T> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
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
    return await fn(page, errors);
  } finally {
    await browser.close();
  }
}

/** Every `figure.chart`: its SVG count, mark elements and laid-out width. */
export function chartStats(page: Page): Promise<ChartStats[]> {
  return page.$$eval("figure.chart", (figs) =>
    figs.map((f) => ({
      id: f.getAttribute("data-chart"),
      svgs: f.querySelectorAll("svg").length,
      marks: f.querySelectorAll(
        "svg g.role-mark > path, svg g.role-mark > text, svg g.role-mark > line",
      ).length,
      width: f.querySelector("svg")?.getBoundingClientRect().width ?? 0,
    })),
  );
}

/** A full-page screenshot from the top (the sticky nav in place), or its top `height` pixels. */
export async function screenshot(page: Page, file: string, height?: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  const clip = height === undefined ? undefined : { x: 0, y: 0, width: 1280, height };
  await page.screenshot({ path: file, fullPage: true, clip });
  console.log(`# screenshot: ${file}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [html, out, height] = process.argv.slice(2);
  if (!html || !out) throw new Error("usage: browser.ts REPORT.html OUT.png [HEIGHT]");
  await withReport(resolve(html), (page) =>
    screenshot(page, resolve(out), height === undefined ? undefined : Number(height)),
  );
}
