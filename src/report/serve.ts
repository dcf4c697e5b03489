/**
 * `lethe serve DIR`: a live dashboard of a study folder (or one run folder), running or finished,
 * local or on a shared file system. It reads only files: each run's event log (events.jsonl,
 * src/continual/events.ts), results.json and lock (studyProgress, isLocked), and report.html.
 *
 * The page (serve.html, no build step) polls `/api/state` every second: a table of the runs
 * (state, stage, step, ETA of the stage, latest loss, FG per category, report link) and two charts,
 * the training loss over global steps and each benchmark's score per stage, one curve per run.
 * The charts are the report's stack (Vega-Lite compiled to Vega, rendered to SVG with
 * charts.ts's renderSvg) on the server, re-rendered only when a run's files changed.
 *
 * Access: bound to 127.0.0.1 by default. Bound to another address (`--host`), every request must
 * carry the random token printed at start (`?token=…`, or the `x-lethe-token` header), compared in
 * constant time; others get 403. Reference: Jupyter's token authentication.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { eventsFile, globalSteps, readEvents, type RunEvent } from "../continual/events.js";
import { runState, studyProgress, type RunStatus } from "../continual/study.js";
import { renderSvg, type Chart } from "./charts.js";

const PAGE = new URL("./serve.html", import.meta.url);
/** Loss points per run drawn (evenly thinned beyond): the chart stays fast on long runs. */
const MAX_POINTS = 2000;

export interface RunView {
  name: string;
  state: "complete" | "running" | "failed" | "stopped" | "not started";
  /** Last stage done (0 the base model's evaluation), null: none; of `stages` tasks. */
  stage: number | null;
  stages: number;
  /** The latest training step event: stage being trained, step/total, loss, ETA of the stage. */
  training: { stage: number; step: number; totalSteps: number; loss: number } | null;
  etaSeconds: number | null;
  fg: Record<string, number> | null;
  error: string | null;
  /** Loss points logged (the chart's data). */
  points: number;
  /** Path of the run's report under this server, once written. */
  report: string | null;
}

export interface StudyState {
  dir: string;
  runs: RunView[];
  /** The study's report, once written. */
  report: string | null;
  charts: { loss: string | null; benchmarks: string | null };
  /** Why DIR shows no runs yet (e.g. no study.yaml: a study not started). */
  note: string | null;
}

type StepEvent = Extract<RunEvent, { type: "step" }>;

function viewOf(p: RunStatus, name: string, events: RunEvent[], studyDir: string): RunView {
  const { state, holder } = runState(p);
  const steps = events.filter((e): e is StepEvent => e.type === "step");
  const last = steps.at(-1) ?? null;
  const lastStage = [...events].reverse().find((e) => e.type === "stage_end");
  const training =
    last && holder && (lastStage?.type !== "stage_end" || lastStage.stage < last.stage)
      ? { stage: last.stage, step: last.step, totalSteps: last.totalSteps, loss: last.loss }
      : null;
  return {
    name,
    state,
    stage: p.stagesDone > 0 ? p.stagesDone - 1 : null,
    stages: p.totalStages - 1,
    training,
    etaSeconds: training ? (last?.etaSeconds ?? null) : null,
    fg: p.fg && Object.keys(p.fg).length > 0 ? p.fg : null,
    error: p.failed,
    points: steps.length,
    report: existsSync(join(p.dir, "report.html"))
      ? p.dir === studyDir
        ? "/report"
        : `/report/${encodeURIComponent(name)}`
      : null,
  };
}

const thin = <T>(xs: T[]): T[] =>
  xs.length <= MAX_POINTS
    ? xs
    : Array.from(
        { length: MAX_POINTS },
        (_, i) => xs[Math.round((i * (xs.length - 1)) / (MAX_POINTS - 1))],
      );

function lossChart(runs: [string, RunEvent[]][]): Chart | null {
  const values = runs.flatMap(([run, events]) =>
    thin(globalSteps(events)).map((g) => ({ run, step: g.global, loss: g.event.loss })),
  );
  if (values.length === 0) return null;
  return {
    id: "loss",
    title: "Training loss",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      width: 560,
      height: 240,
      background: "transparent",
      data: { values },
      mark: { type: "line", strokeWidth: 1.4 },
      encoding: {
        x: { field: "step", type: "quantitative", title: "global step" },
        y: { field: "loss", type: "quantitative", title: "loss", scale: { zero: false } },
        color: { field: "run", type: "nominal", legend: { orient: "bottom", columns: 1 } },
      },
    },
  };
}

function benchmarkChart(runs: [string, RunEvent[]][]): Chart | null {
  const values = runs.flatMap(([run, events]) =>
    events.flatMap((e) =>
      e.type === "eval"
        ? Object.entries(e.scores).map(([benchmark, score]) => ({
            run,
            stage: e.stage,
            benchmark,
            score,
          }))
        : [],
    ),
  );
  if (values.length === 0) return null;
  return {
    id: "benchmarks",
    title: "Benchmarks per stage",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      background: "transparent",
      data: { values },
      facet: { field: "benchmark", type: "nominal", title: null },
      columns: 3,
      resolve: { scale: { y: "independent" } },
      spec: {
        width: 180,
        height: 120,
        mark: { type: "line", point: true, strokeWidth: 1.4 },
        encoding: {
          x: { field: "stage", type: "ordinal", axis: { labelAngle: 0 } },
          y: { field: "score", type: "quantitative", scale: { zero: false } },
          color: { field: "run", type: "nominal", legend: null },
        },
      },
    },
  };
}

/** What DIR holds now (runs, charts); `cache` keeps the SVGs while no file changed. */
export async function studyState(
  dir: string,
  cache: Map<string, Promise<StudyState["charts"]>> = new Map(),
): Promise<StudyState> {
  let progress: RunStatus[] = [];
  let note: string | null = null;
  try {
    progress = studyProgress(dir);
  } catch (e) {
    note = (e as Error).message;
  }
  const name = (p: RunStatus) => (p.dir === dir ? basename(dir) : basename(p.dir));
  const logs = progress.map((p): [string, RunEvent[]] => [name(p), readEvents(p.dir)]);
  const runs = progress.map((p, i) => viewOf(p, name(p), logs[i][1], dir));
  const stamp = (f: string) => (existsSync(f) ? `${statSync(f).size}:${statSync(f).mtimeMs}` : "");
  const key = progress.map((p) => `${p.dir}=${stamp(eventsFile(p.dir))}`).join("|");
  let charts = cache.get(key);
  if (!charts) {
    cache.clear();
    const svg = async (c: Chart | null) => (c === null ? null : renderSvg(c));
    charts = (async () => ({
      loss: await svg(lossChart(logs)),
      benchmarks: await svg(benchmarkChart(logs)),
    }))();
    cache.set(key, charts);
  }
  const studyReport = progress.length > 1 || progress[0]?.dir !== dir;
  return {
    dir,
    runs,
    report: studyReport && existsSync(join(dir, "report.html")) ? "/report" : null,
    charts: await charts,
    note,
  };
}

export interface ServeOptions {
  dir: string;
  /** @default "127.0.0.1" */
  host?: string;
  /** 0: any free port. @default 8787 */
  port?: number;
}

export interface Serving {
  server: Server;
  url: string;
  /** Required on every request when bound beyond loopback; null on 127.0.0.1 / ::1. */
  token: string | null;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** Starts the dashboard; resolves once it listens. */
export async function serve(o: ServeOptions): Promise<Serving> {
  const host = o.host ?? "127.0.0.1";
  const token = LOOPBACK.has(host) ? null : randomBytes(16).toString("hex");
  const cache = new Map<string, Promise<StudyState["charts"]>>();
  const page = readFileSync(PAGE, "utf8");
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (token !== null && !tokenOk(token, url, req)) {
      res.writeHead(403, { "content-type": "text/plain" }).end("forbidden: token required\n");
      return;
    }
    const send = (status: number, type: string, body: string) =>
      res.writeHead(status, { "content-type": type, "cache-control": "no-store" }).end(body);
    if (url.pathname === "/") return send(200, "text/html; charset=utf-8", page);
    if (url.pathname === "/api/state")
      return send(200, "application/json", JSON.stringify(await studyState(o.dir, cache)));
    const m = /^\/report(?:\/([^/]+))?$/.exec(url.pathname);
    if (m) {
      const run = m[1] === undefined ? null : decodeURIComponent(m[1]);
      const file =
        run === null
          ? join(o.dir, "report.html")
          : /^[\w.+=-]+$/.test(run)
            ? join(o.dir, "runs", run, "report.html")
            : null;
      if (file && existsSync(file))
        return send(200, "text/html; charset=utf-8", readFileSync(file, "utf8"));
    }
    send(404, "text/plain", "not found\n");
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`${e.message}\n`);
    });
  });
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(o.port ?? 8787, host, () => res());
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(":") ? `[${host}]` : host;
  return { server, url: `http://${shown}:${port}/`, token };
}

function tokenOk(token: string, url: URL, req: IncomingMessage): boolean {
  const given = url.searchParams.get("token") ?? req.headers["x-lethe-token"];
  if (typeof given !== "string" || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}
