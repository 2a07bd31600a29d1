/**
 * What a reproduction leaves behind: table.json (every row, the config, the machine), table.md,
 * report.html (tables, the sample-efficiency curve, confusion matrices, grids) and the
 * sample-efficiency plot as SVG and PNG.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { lineChart } from "../eval/charts.js";
import { type Curve, type SummaryRow, writeReport } from "../eval/report.js";
import type { ReproduceConfig } from "./config.js";
import type { ClassifierSummary } from "./reproduce.js";
import { markdownReport, type TableRow } from "./table.js";

export interface RunFacts {
  seconds: number;
  preset: string;
  classifiers: ClassifierSummary[];
  /** Each label column's class thresholds (quantiles of the pool's oracle values). */
  thresholds: Record<string, number[]>;
}

export const EFFICIENCY_PLOT = "sample-efficiency.png";

/** Accuracy against the number of labelled offline images: CTRL, CFG, and the pre-trained level. */
export function efficiencyCurve(rows: TableRow[]): Curve {
  const points = (method: string) =>
    rows
      .filter((r) => r.experiment === "sample-efficiency" && r.method === method)
      .map((r) => [r.labelled_images, r.accuracy] as [number, number])
      .sort((a, b) => a[0] - b[0]);
  const ctrl = points("ctrl");
  const cfg = points("cfg");
  const cfgSetting = rows.find((r) => r.experiment === "sample-efficiency" && r.method === "cfg")?.setting ?? "";
  const sizes = [...ctrl, ...cfg].map((p) => p[0]);
  const pretrained = rows.find((r) => r.experiment === "single-control" && r.method === "pretrained");
  const series = [
    { name: "CTRL", points: ctrl },
    { name: `classifier-free guidance (${cfgSetting})`, points: cfg },
  ];
  if (pretrained && sizes.length) {
    series.push({ name: "pre-trained (no labels)", points: [[Math.min(...sizes), pretrained.accuracy], [Math.max(...sizes), pretrained.accuracy]] });
  }
  return {
    title: "Sample efficiency: 4-class compressibility accuracy against offline labelled images",
    xLabel: "labelled offline images (log scale)",
    logX: true,
    yLabel: "accuracy (JPEG-size oracle)",
    series,
  };
}

function summaryRows(rows: TableRow[]): SummaryRow[] {
  return rows.map((r) => ({
    task: `${r.experiment}: ${r.task}`,
    method: r.setting ? `${r.method} (${r.setting})` : r.method,
    accuracy: r.accuracy,
    macro_f1: r.macro_f1,
    n_samples: r.n_samples,
    mean_kl: r.mean_kl,
    quality: r.quality,
    seconds: r.seconds,
    seed: r.seed,
    ...Object.fromEntries(Object.entries(r.accuracy_per_control).map(([control, value]) => [`accuracy_${control}`, value])),
    kl_kind: r.kl_kind,
    train_seconds: r.train_seconds,
    sample_seconds: r.sample_seconds,
    peak_rss_mb: r.peak_rss_mb,
    labelled_images: r.labelled_images,
    joint_labelled_images: r.joint_labelled_images,
    unet_passes_per_image: r.unet_passes_per_image,
  }));
}

function notes(config: ReproduceConfig, facts: RunFacts): string[] {
  const classifiers = facts.classifiers.map((c) => `${c.name} (${c.rows} images, held-out accuracy ${c.heldOutAccuracy.toFixed(3)}, ${c.seconds.toFixed(0)} s)`).join("; ");
  return [
    `Preset ${facts.preset}; whole run ${(facts.seconds / 60).toFixed(1)} min on ${os.cpus().length} CPU cores (${os.cpus()[0]?.model ?? "unknown CPU"}), worker threads ${config.threads || "torch's default"}.`,
    `Sampler: DDIM ${config.sampler.steps} steps (${config.sampler.spacing} spacing), eta ${config.sampler.eta}. ${config.evaluation.numSamples} evaluation samples per row, seed ${config.evaluation.seed}, labels split equally over the (joint) classes; every method starts from the same seeded noise. Run seed ${config.seed}.`,
    "Accuracy and macro-F1: the exact oracles (JPEG size at quality 95, mean luma) against the asked-for class; with two controls, a sample counts when both are right (macro-F1 over the 4 joint classes).",
    "Mean KL: the KL between the method's sampling transitions and the pre-trained ones, summed over pixels and steps (CTRL's regulariser). Best-of-N has no trajectory KL: its row shows the bound log N - (N-1)/N on the KL between its final samples and the pre-trained ones.",
    `Train time includes the classifiers a method needs (${classifiers}); peak RSS is the method's own worker process.`,
    "Classifier-free guidance: eps = eps_pre + w (eps_control(y) - eps_pre) with the label-dropout-trained control (w = 1: the fine-tuned conditional model). Reconstruction guidance: eps - s sqrt(1 - a_t) grad log p(y | x0_hat(x_t)) through the UNet. Classifier guidance: the same with a noise-aware classifier on x_t.",
  ];
}

export async function writeOutputs(outDir: string, config: ReproduceConfig, rows: TableRow[], facts: RunFacts): Promise<void> {
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown", platform: `${os.platform()} ${os.release()}`, node: process.version };
  writeFileSync(path.join(outDir, "table.json"), `${JSON.stringify({ preset: facts.preset, seconds: facts.seconds, machine, config, classifiers: facts.classifiers, thresholds: facts.thresholds, rows }, null, 2)}\n`);
  const intro = [`# ctrl: CTRL against the baselines (preset ${facts.preset})`, "", ...notes(config, facts).map((n) => `${n}\n`)];
  writeFileSync(path.join(outDir, "table.md"), `${markdownReport(rows, intro)}\n`);
  const curve = efficiencyCurve(rows);
  const svg = lineChart({ ...curve, width: 640, height: 380 });
  writeFileSync(path.join(outDir, "sample-efficiency.svg"), svg);
  await sharp(Buffer.from(svg)).png().toFile(path.join(outDir, EFFICIENCY_PLOT));
  await writeReport(outDir, {
    title: "ctrl: CTRL against the baselines",
    runId: path.basename(outDir),
    createdAt: new Date().toISOString(),
    config,
    summary: summaryRows(rows),
    curves: [curve],
    confusions: rows
      .filter((r) => r.experiment !== "sample-efficiency")
      .map((r) => ({ title: `${r.experiment}, ${r.method}${r.setting ? ` (${r.setting})` : ""}`, labels: r.confusion.map((_, i) => String(i)), matrix: r.confusion })),
    grids: rows.filter((r) => r.experiment !== "sample-efficiency").map((r) => ({ title: `${r.experiment}: ${r.method}${r.setting ? ` (${r.setting})` : ""}, one asked-for class per row`, file: r.grid })),
    notes: notes(config, facts),
  });
}
