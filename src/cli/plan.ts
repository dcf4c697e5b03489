/**
 * `lethe plan CONFIG.yaml`: the memory each run of a study needs on its device, before anything
 * loads (src/continual/plan.ts), in a table: weights, autocast's 16-bit weight copies, gradients,
 * AdamW state, the method's own tensors, the step's activations without and with gradient
 * checkpointing (the configured one starred), one evaluation batch, the peak, and a verdict
 * against the device's memory naming the changes that would make a run fit. `--memory-gb` plans
 * for another machine's GPU; `--json` prints the plans.
 */
import { loadStudy } from "../continual/config.js";
import { planStudy, verdictText, type RunPlan } from "../continual/plan.js";
import { command } from "./commands.js";
import { numberValue, UsageError } from "./flags.js";
import { nprocOf } from "./launch.js";
import { table } from "./run.js";

/** GiB with one decimal, two below 10 GiB. */
const gib = (n: number) => (n / 2 ** 30).toFixed(n < 10 * 2 ** 30 ? 2 : 1);

/** 6.74B, 134.1M, 4.2M, 950K. */
function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e3).toFixed(0)}K`;
}

/** The plan table of a study's runs, with its header and legend. */
export function formatPlans(file: string, rows: RunPlan[]): string {
  const devices = [...new Map(rows.map((r) => [r.device.device, r.device])).values()];
  const head = [
    `${file}: ${rows.length} run${rows.length === 1 ? "" : "s"}; memory in GiB (2^30 bytes)`,
    ...devices.map(
      (d) =>
        `device ${d.device}: ${d.bytes === null ? "unknown" : `${gib(d.bytes)} GiB`} (${d.source})`,
    ),
  ];
  const cells: string[][] = [
    [
      "run",
      "params",
      "precision",
      "weights",
      "16-bit",
      "grads",
      "AdamW",
      "method",
      "act",
      "act ckpt",
      "eval",
      "peak",
      "verdict",
    ],
  ];
  const legend = new Map<string, string>();
  for (const r of rows) {
    const p = r.plan;
    if (p === null) {
      cells.push([r.run, "", "", "", "", "", "", "", "", "", "", "", `unknown: ${r.note}`]);
      continue;
    }
    const b = p.bytes;
    const ckpt = b.activations === b.activationsCheckpointed;
    cells.push([
      r.run,
      count(p.params) + (p.trainable === p.params ? "" : ` (${count(p.trainable)} trained)`),
      p.precision,
      gib(b.weights),
      gib(b.weightCopies),
      gib(b.gradients),
      gib(b.optimizer),
      gib(b.method),
      gib(b.activationsPlain) + (ckpt ? "" : "*"),
      gib(b.activationsCheckpointed) + (ckpt ? "*" : ""),
      gib(b.evalBatch),
      gib(p.peak),
      r.verdict === null
        ? `unknown: ${r.note}`
        : r.verdict.fits
          ? `fits in ${gib(r.verdict.have)}`
          : `does not fit in ${gib(r.verdict.have)}`,
    ]);
    const model = r.run.split("__")[0];
    legend.set(
      model,
      `${model} (${p.model}): ${p.params.toLocaleString("en-US")} parameters; micro-batch ` +
        `${p.shape.batch} × ${p.shape.len} tokens (methods that mix in rows add some); ` +
        `eval batch ${p.shape.evalRows} × ${p.shape.evalLen}`,
    );
  }
  const right = cells[0].map((_, i) => i >= 3 && i <= 11);
  const unfit = rows.filter((r) => r.verdict && !r.verdict.fits);
  return [
    ...head,
    "",
    table(cells, right),
    "",
    ...unfit.map((r) => `${r.run}: ${verdictText(r.verdict!)}`),
    ...(unfit.length > 0 ? [""] : []),
    ...legend.values(),
    "weights: every parameter in the policy's dtype (mixed: float32 master weights); 16-bit: " +
      "autocast's copies of the matmul weights; AdamW: its state and the step's temporary; " +
      "act: one micro-batch's activations, without and with gradient checkpointing (* = as " +
      "configured); eval: one evaluation batch; peak: the larger of training and evaluation, " +
      "with the process's own runtime.",
    "",
  ].join("\n");
}

export const planCommand = command("plan", async ({ values, positionals: [file] }) => {
  const memoryGiB = numberValue(values["memory-gb"], "memory-gb");
  if (memoryGiB !== undefined && !(memoryGiB > 0))
    throw new UsageError(
      `--memory-gb must be a positive number of GiB, got "${values["memory-gb"]}"`,
    );
  const device = values.device;
  if (device !== undefined && !/^(cpu|cuda(:\d+)?)$/.test(device))
    throw new UsageError(`--device must be cpu, cuda or cuda:N, got "${device}"`);
  const study = loadStudy(file);
  const rows = await planStudy(study, {
    device,
    memoryGiB,
    fetch: values.fetch,
    worldSize: nprocOf(values["nproc-per-node"]),
  });
  if (values.json)
    process.stdout.write(JSON.stringify({ config: file, runs: rows }, null, 1) + "\n");
  else process.stdout.write(formatPlans(file, rows));
  return 0;
});
