/**
 * The report's charts: Vega-Lite specs (vega-lite 6, https://vega.github.io/vega-lite/docs/)
 * compiled to Vega and rendered to static SVG at build time with a headless `vega.View`
 * (renderer "none", `toSVG()`), so the page needs no script or network to show them.
 *
 * Charts: the accuracy matrix R[stage][task] of one run (a heatmap), the primary score of each
 * general benchmark over stages, the bias benchmarks (CrowS-Pairs `pct_stereotype`) over stages,
 * the method comparison of general FG with 95% CIs, and general FG against model size.
 */
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { BIAS_CATEGORY, generalFg } from "./findings.js";
import { groupRuns, type Run } from "./runs.js";
import { seedCell } from "./tables.js";

export interface Chart {
  /** Stable id, used as the figure's data-chart attribute. */
  id: string;
  title: string;
  spec: TopLevelSpec;
}

const CONFIG = {
  background: "transparent",
  font: "Inter, system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif",
  view: { stroke: "#e3e6ea" },
  axis: {
    labelColor: "#3b4350",
    titleColor: "#3b4350",
    gridColor: "#eef0f3",
    domainColor: "#aab1bb",
    tickColor: "#aab1bb",
    labelFontSize: 11,
    titleFontSize: 11,
    titleFontWeight: 600,
  },
  legend: {
    symbolOpacity: 1,
    labelFontSize: 11,
    titleFontSize: 11,
    titleFontWeight: 600,
    labelLimit: 220,
  },
  header: { labelFontSize: 12, labelFontWeight: 600, labelColor: "#1f2630", title: null },
  range: { category: { scheme: "tableau10" } },
} as const;

/** Score format: two decimals on a 0–1 scale, one on a 0–100 scale. */
const fmtFor = (values: readonly number[]) =>
  Math.max(...values.map(Math.abs)) <= 1 ? ".2f" : ".1f";

/** Accuracy-matrix heatmap of one run: rows are stages, columns the continual tasks. */
export function heatmapChart(run: Run, index: number): Chart {
  const { matrix, run: info } = run.results;
  const values = matrix.flatMap((row, stage) =>
    row.map((score, j) => ({
      stage: stage === 0 ? "0 (base)" : `${stage} ${info.order[stage - 1] ?? ""}`,
      task: info.order[j] ?? `task ${j}`,
      score,
    })),
  );
  const stageSort = matrix.map((_, s) =>
    s === 0 ? "0 (base)" : `${s} ${info.order[s - 1] ?? ""}`,
  );
  const fmt = fmtFor(values.map((v) => v.score));
  return {
    id: `matrix-${index}`,
    title: info.name,
    spec: {
      config: CONFIG,
      data: { values },
      width: { step: 40 },
      height: { step: 20 },
      encoding: {
        x: {
          field: "task",
          type: "ordinal",
          sort: info.order,
          title: null,
          axis: { labelAngle: -35, orient: "top" },
        },
        y: { field: "stage", type: "ordinal", sort: stageSort, title: null },
      },
      layer: [
        {
          mark: "rect",
          encoding: {
            color: {
              field: "score",
              type: "quantitative",
              scale: { scheme: "yellowgreenblue" },
              legend: null,
            },
          },
        },
        {
          mark: { type: "text", fontSize: 10 },
          encoding: {
            text: { field: "score", type: "quantitative", format: fmt },
            color: {
              condition: {
                test: `datum.score > ${(Math.min(...values.map((v) => v.score)) + Math.max(...values.map((v) => v.score))) / 2}`,
                value: "white",
              },
              value: "#1f2630",
            },
          },
        },
      ],
    },
  };
}

/**
 * Mean primary score over seeds per benchmark, stage and model × method, with the seed range
 * as a band; one panel per benchmark.
 */
function curveChart(
  runs: readonly Run[],
  benchmarks: string[],
  id: string,
  title: string,
  yTitle: string,
): Chart {
  const groups = groupRuns(runs);
  const values = groups.flatMap((g) =>
    benchmarks.flatMap((b) => {
      const curves = g.runs.map((r) => r.results.curves[b]).filter((c) => c !== undefined);
      if (!curves.length) return [];
      return curves[0].map((_, stage) => {
        const ys = curves.map((c) => c[stage]);
        return {
          benchmark: b,
          stage,
          model: g.model.name,
          score: ys.reduce((a, x) => a + x, 0) / ys.length,
          min: Math.min(...ys),
          max: Math.max(...ys),
        };
      });
    }),
  );
  const modelOrder = [...new Set(groups.map((g) => g.model.name))];
  const color = { field: "model", type: "nominal", sort: modelOrder, title: "model" } as const;
  return {
    id,
    title,
    spec: {
      config: CONFIG,
      data: { values },
      facet: { field: "benchmark", type: "nominal", sort: benchmarks, title: null },
      columns: 4,
      resolve: { scale: { y: "independent" } },
      spec: {
        width: 190,
        height: 130,
        encoding: {
          x: { field: "stage", type: "ordinal", title: "stage", axis: { labelAngle: 0 } },
          color,
        },
        layer: [
          {
            mark: { type: "area", opacity: 0.12 },
            encoding: {
              y: { field: "min", type: "quantitative" },
              y2: { field: "max" },
            },
          },
          {
            mark: { type: "line", point: { size: 18 }, strokeWidth: 1.6 },
            encoding: {
              y: { field: "score", type: "quantitative", title: yTitle, scale: { zero: false } },
            },
          },
        ],
      },
    },
  };
}

/** Per-benchmark curves of the general suite (every benchmark but the bias ones), one method. */
export function curvesChart(runs: readonly Run[], method: string): Chart | null {
  const rs = runs.filter((r) => r.results.run.method === method);
  const benchmarks = benchmarksOf(rs, (cat) => cat !== BIAS_CATEGORY);
  if (!benchmarks.length) return null;
  return curveChart(rs, benchmarks, `curves-${method}`, `Method ${method}`, "score");
}

/** The bias benchmarks (category "bias") over stages, one method; lower pct_stereotype is less bias. */
export function biasChart(runs: readonly Run[], method: string): Chart | null {
  const rs = runs.filter((r) => r.results.run.method === method);
  const benchmarks = benchmarksOf(rs, (cat) => cat === BIAS_CATEGORY);
  if (!benchmarks.length) return null;
  return curveChart(rs, benchmarks, `bias-${method}`, `Method ${method}`, "pct_stereotype");
}

function benchmarksOf(runs: readonly Run[], keep: (category: string) => boolean): string[] {
  const seen = new Set<string>();
  for (const r of runs)
    for (const b of Object.keys(r.results.curves))
      if (keep(r.results.categories[b] ?? "")) seen.add(b);
  return [...seen];
}

/** General FG per model and method: mean over seeds with its 95% CI. */
function generalFgRows(runs: readonly Run[]) {
  return groupRuns(runs).flatMap((g) => {
    const fg = g.runs.map((r) => generalFg(r.results.fg.perCategory)).filter((x) => x !== null);
    const c = seedCell(fg);
    if (!c) return [];
    return [
      {
        model: g.model.name,
        params: g.model.params,
        architecture: g.model.architecture ?? "unknown",
        family: g.model.family ?? g.model.name,
        method: g.method,
        fg: c.mean,
        lo: c.lo ?? c.mean,
        hi: c.hi ?? c.mean,
        seeds: c.seeds,
      },
    ];
  });
}

/** Bars of general FG per method, one panel per model, with CI whiskers. */
export function methodChart(runs: readonly Run[]): Chart | null {
  const values = generalFgRows(runs);
  if (!values.length) return null;
  const models = [...new Set(values.map((v) => v.model))];
  return {
    id: "methods",
    title: "Method comparison: general FG (mean over seeds, 95% CI)",
    spec: {
      config: CONFIG,
      data: { values },
      facet: { field: "model", type: "nominal", sort: models, title: null },
      columns: 8,
      spec: {
        width: { step: 26 },
        height: 150,
        encoding: {
          x: { field: "method", type: "nominal", title: null, axis: { labelAngle: -35 } },
        },
        layer: [
          {
            mark: { type: "bar", cornerRadiusEnd: 2 },
            encoding: {
              y: { field: "fg", type: "quantitative", title: "general FG (%)" },
              color: { field: "method", type: "nominal", title: "method" },
            },
          },
          {
            mark: { type: "rule", strokeWidth: 1.4, color: "#1f2630" },
            encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } },
          },
        ],
      },
    },
  };
}

/** General FG against parameter count (log axis), by architecture, for one method. */
export function scaleChart(runs: readonly Run[], method: string): Chart | null {
  const values = generalFgRows(runs).filter((v) => v.method === method && v.params !== null);
  if (values.length < 2) return null;
  return {
    id: "scale",
    title: `General FG against model size (method ${method})`,
    spec: {
      config: CONFIG,
      data: { values },
      width: 420,
      height: 220,
      encoding: {
        x: {
          field: "params",
          type: "quantitative",
          scale: { type: "log" },
          title: "parameters",
          axis: { format: "~s" },
        },
        color: { field: "architecture", type: "nominal", title: "architecture" },
      },
      layer: [
        {
          mark: { type: "rule", strokeWidth: 1.4 },
          encoding: { y: { field: "lo", type: "quantitative" }, y2: { field: "hi" } },
        },
        {
          mark: { type: "line", strokeWidth: 1, strokeDash: [4, 3] },
          encoding: { y: { field: "fg", type: "quantitative" }, detail: { field: "family" } },
        },
        {
          mark: { type: "point", filled: true, size: 60 },
          encoding: {
            y: { field: "fg", type: "quantitative", title: "general FG (%)" },
            tooltip: [{ field: "model" }, { field: "fg", format: ".2f" }],
          },
        },
        {
          mark: { type: "text", dy: -10, fontSize: 10 },
          encoding: { y: { field: "fg", type: "quantitative" }, text: { field: "model" } },
        },
      ],
    },
  };
}

/** Renders a chart to an SVG string for inline use (no xmlns attributes: HTML's parser adds them). */
export async function renderSvg(chart: Chart): Promise<string> {
  const view = new View(parse(compile(chart.spec).spec), { renderer: "none" });
  try {
    const svg = await view.toSVG();
    return svg.replace(/ xmlns(:xlink)?="[^"]*"/g, "");
  } finally {
    view.finalize();
  }
}
