/** summary.json, image grids per label and report.html for one run. */
import type { ExperimentConfig } from "./config.js";
import type { RewardClassifierReport } from "./classifier.js";
import { type ClassMeasure, type Evaluation, diversityRatios } from "./evaluate.js";
import type { Run } from "./runs.js";
import { imageGrid } from "../eval/grid.js";
import { type Curve, type SummaryRow, writeReport } from "../eval/report.js";
import { type ImageBatch, selectImages } from "../worker/tensors.js";

export interface MethodResult {
  method: string;
  evaluation: Evaluation;
  /** Mean over samples of KL(model || pre-trained) along the trajectory; 0 for the pre-trained model. */
  meanKl: number | null;
  trainSeconds: number;
  sampleSeconds: number;
  /** Grid files (relative to the run folder), one per label. */
  grids: { title: string; file: string }[];
}

const IMAGES_PER_GRID = 16;

/** One PNG per label: the first samples that were asked for that label. */
export async function writeLabelGrids(run: Run, method: string, images: ImageBatch, targets: number[], labelName: string): Promise<MethodResult["grids"]> {
  const classes = [...new Set(targets)].sort((a, b) => a - b);
  const grids: MethodResult["grids"] = [];
  for (const label of classes) {
    const indices = targets.flatMap((t, i) => (t === label ? [i] : [])).slice(0, IMAGES_PER_GRID);
    const file = `grids/${method}-${labelName}-${label}.png`;
    run.writeFile(file, await imageGrid(selectImages(images, indices), { columns: 8, scale: 3 }));
    grids.push({ title: `${method}, asked for ${labelName} = ${label}`, file });
  }
  return grids;
}

export function summaryRows(config: ExperimentConfig, results: MethodResult[], labelName: string): SummaryRow[] {
  return results.map((result) => ({
    task: `${config.task} (${labelName}, ${result.evaluation.confusion.length} classes)`,
    method: result.method,
    accuracy: result.evaluation.accuracy,
    macro_f1: result.evaluation.macroF1,
    n_samples: result.evaluation.targets.length,
    mean_kl: result.meanKl,
    quality: { name: "FD to held-out data (classifier features; lower is better)", value: result.evaluation.frechetDistance },
    seconds: result.trainSeconds + result.sampleSeconds,
    seed: config.seed,
    evaluation_seed: config.evaluation.seed,
    oracle_mean_per_label: result.evaluation.oracleValues ? perLabelMeans(result.evaluation).map(([, m]) => m) : null,
    judged_by: result.evaluation.judgedBy,
    classifier_accuracy: result.evaluation.classifierAccuracy,
    classifier_oracle_agreement: result.evaluation.classifierOracleAgreement,
    diversity_per_label: result.evaluation.diversity.byTarget,
    diversity_per_judged_class: result.evaluation.diversity.byJudged,
    thumbnail_diversity_per_label: result.evaluation.thumbnailDiversity.byTarget,
    thumbnail_diversity_per_judged_class: result.evaluation.thumbnailDiversity.byJudged,
    grain_per_label: result.evaluation.grain.byTarget,
    grain_per_judged_class: result.evaluation.grain.byJudged,
    train_seconds: result.trainSeconds,
    sample_seconds: result.sampleSeconds,
  }));
}

/** [label, mean oracle value of the samples asked for that label] per label. */
export function perLabelMeans(evaluation: Evaluation): [number, number][] {
  const values = evaluation.oracleValues ?? [];
  return [...new Set(evaluation.targets)].sort((a, b) => a - b).map((label) => {
    const own = values.filter((_, i) => evaluation.targets[i] === label);
    return [label, own.reduce((a, b) => a + b, 0) / Math.max(own.length, 1)];
  });
}

/** Accuracy at each checkpoint (evaluation.checkpointSamples), when the run measured it. */
function checkpointCurves(rows: Record<string, unknown>[], series: (rows: Record<string, unknown>[], x: string, y: string) => [number, number][]): Curve[] {
  if (!rows.length) return [];
  return [
    {
      title: `CTRL at each checkpoint: accuracy judged like the final samples (${String(rows[0]!.n_samples)} samples)`,
      xLabel: "optimiser step",
      yLabel: "value",
      series: [
        { name: "accuracy", points: series(rows, "step", "accuracy") },
        { name: "macro-F1", points: series(rows, "step", "macro_f1") },
        { name: "classifier-judged accuracy", points: series(rows, "step", "classifier_accuracy") },
      ],
    },
    ...diversityCurve(rows),
  ];
}

/** Per asked class, 8x8-thumbnail diversity over the pre-trained samples' at each checkpoint (0.5: the bar). */
function diversityCurve(rows: Record<string, unknown>[]): Curve[] {
  const withRatios = rows.filter((m) => Array.isArray(m.thumbnail_diversity_vs_pretrained));
  if (!withRatios.length) return [];
  const classes = (withRatios[0]!.thumbnail_diversity_vs_pretrained as number[]).length;
  return [
    {
      title: "CTRL at each checkpoint: diversity per asked class (8x8 thumbnails) over the pre-trained samples'",
      xLabel: "optimiser step",
      yLabel: "diversity ratio",
      series: Array.from({ length: classes }, (_, c) => ({
        name: `class ${c}`,
        points: withRatios
          .map((m) => [Number(m.step), (m.thumbnail_diversity_vs_pretrained as number[])[c]!] as [number, number])
          .filter(([, ratio]) => Number.isFinite(ratio)), // fewer than two samples of a class: no spread
      })),
    },
  ];
}

/**
 * Does the control win by collapsing? For each class: the spread (mean pairwise distance) of
 * CTRL's samples asked for it, beside that of the pre-trained model's samples that the judge put
 * in it, in the classifier's feature space and in image space (8x8 thumbnails).
 */
export function diversityComparison(results: MethodResult[], labelName: string) {
  const reference = results.find((r) => r.method === "pretrained");
  const ctrl = results.find((r) => r.method === "ctrl");
  if (!reference || !ctrl) return undefined;
  const categories = ctrl.evaluation.diversity.byTarget.map((_, i) => `${labelName} = ${i}`);
  const compare = (space: ClassMeasure, title: string, yLabel: string) => {
    const before = reference.evaluation[space].byJudged;
    const after = ctrl.evaluation[space].byTarget;
    return {
      ratios: diversityRatios(ctrl.evaluation, reference.evaluation, space),
      chart: {
        title,
        yLabel,
        categories,
        series: [
          { name: "pre-trained samples judged in the class", values: before },
          { name: "CTRL samples asked for the class", values: after },
        ],
      },
    };
  };
  const diversity = (space: ClassMeasure, what: string) =>
    compare(space, `Diversity per class: mean pairwise distance of ${what} (a collapsed control scores near 0)`, `mean pairwise ${what} distance`);
  const features = diversity("diversity", "classifier features");
  const thumbs = diversity("thumbnailDiversity", "8x8 thumbnails");
  const grain = compare(
    "grain",
    "Fine grain per class: mean absolute difference of neighbouring pixels (far above the pre-trained samples' is noise left in the images)",
    "mean |neighbouring pixel difference| (0-255)",
  );
  const listed = (ratios: number[]) => ratios.map((r, i) => `${i}: ${Number.isFinite(r) ? r.toFixed(2) : "n/a"}`).join(", ");
  return {
    ratios: features.ratios,
    thumbnailRatios: thumbs.ratios,
    grainRatios: grain.ratios,
    charts: [features.chart, thumbs.chart, grain.chart],
    note:
      `Diversity per class (CTRL's samples asked for the class over the pre-trained samples judged in it), classifier features: ${listed(features.ratios)}; ` +
      `8x8 thumbnails: ${listed(thumbs.ratios)}; 1 keeps the pre-trained model's spread, 0 is a collapse. ` +
      `Fine grain, the same ratio: ${listed(grain.ratios)}; far above 1 means the class is reached by leaving noise in the images.`,
  };
}

export interface RunFacts {
  reward: string;
  oracleUnit?: string;
  labelName: string;
  thresholds: number[] | null;
  totalSeconds: number;
}

export async function writeRunReport(
  run: Run,
  config: ExperimentConfig,
  classifier: Omit<RewardClassifierReport, "handle">,
  results: MethodResult[],
  facts: RunFacts,
): Promise<SummaryRow[]> {
  const summary = summaryRows(config, results, facts.labelName);
  const diversity = diversityComparison(results, facts.labelName);
  const ctrlRow = summary.find((row) => row.method === "ctrl");
  if (diversity && ctrlRow) {
    ctrlRow.diversity_vs_pretrained = diversity.ratios;
    ctrlRow.thumbnail_diversity_vs_pretrained = diversity.thumbnailRatios;
    ctrlRow.grain_vs_pretrained = diversity.grainRatios;
  }
  run.writeJson("summary.json", summary);
  const metrics = run.readMetrics();
  const finetune = metrics.filter((m) => m.phase === "finetune");
  const classifierEpochs = metrics.filter((m) => m.phase === "classifier");
  const robustEpochs = metrics.filter((m) => m.phase === "classifier-robust");
  const series = (rows: Record<string, unknown>[], x: string, y: string) =>
    rows.map((m) => [Number(m[x]), Number(m[y])] as [number, number]);
  const curves: Curve[] = [
    {
      title: "CTRL fine-tuning: classifier log-probability of the asked-for label",
      xLabel: "optimiser step",
      yLabel: "mean log p(y | x0)",
      series: [{ name: "log p(y | x0)", points: series(finetune, "step", "log_prob") }],
    },
    {
      title: "CTRL fine-tuning: KL to the pre-trained model",
      xLabel: "optimiser step",
      yLabel: "mean KL (summed over pixels and steps)",
      series: [{ name: "KL", points: series(finetune, "step", "kl") }],
    },
    { title: "CTRL fine-tuning: loss", xLabel: "optimiser step", yLabel: "loss", series: [{ name: "loss", points: series(finetune, "step", "loss") }] },
    ...checkpointCurves(metrics.filter((m) => m.phase === "checkpoint-eval"), series),
    {
      title: "Classifier training",
      xLabel: "epoch",
      yLabel: "value",
      series: [
        { name: "train loss", points: series(classifierEpochs, "epoch", "train_loss") },
        { name: "held-out accuracy", points: series(classifierEpochs, "epoch", "held_out_accuracy") },
        ...(robustEpochs.length
          ? [
              { name: "train loss (adversarial)", points: series(robustEpochs, "epoch", "train_loss") },
              { name: "held-out accuracy (adversarially trained)", points: series(robustEpochs, "epoch", "held_out_accuracy") },
            ]
          : []),
      ],
    },
  ];
  if (results.every((r) => r.evaluation.oracleValues)) {
    curves.push({
      title: `Oracle value per asked-for ${facts.labelName} label (mean over samples)`,
      xLabel: `asked-for ${facts.labelName} label`,
      yLabel: facts.oracleUnit ?? "oracle value",
      series: results.map((r) => ({ name: r.method, points: perLabelMeans(r.evaluation) })),
    });
  }
  const labels = results[0]!.evaluation.confusion.map((_, i) => String(i));
  await writeReport(run.dir, {
    title: `ctrl: ${config.task}`,
    runId: run.id,
    createdAt: new Date().toISOString(),
    config,
    summary,
    curves,
    confusions: results.map((r) => ({ title: `${r.method}: asked-for label (rows) vs ${r.evaluation.judgedBy} (columns)`, labels, matrix: r.evaluation.confusion })),
    grids: results.flatMap((r) => r.grids),
    bars: diversity ? diversity.charts : [],
    notes: [
      ...(diversity ? [diversity.note] : []),
      `Reward: ${facts.reward}, KL summed over all pixel dimensions and sampler steps.`,
      `Labels judged by ${results[0]!.evaluation.judgedBy}${facts.thresholds ? `, class thresholds ${facts.thresholds.map((t) => t.toFixed(1)).join(", ")} (quantiles of the pre-trained model's samples)` : ""}.`,
      `Classifier: held-out accuracy ${classifier.heldOutAccuracy.toFixed(3)} on ${classifier.heldOutRows} rows; temperature ${classifier.temperature.toFixed(3)}; expected calibration error ${classifier.eceBefore.toFixed(4)} before and ${classifier.eceAfter.toFixed(4)} after calibration.`,
      robustnessNote(classifier),
      `Evaluation: ${results[0]!.evaluation.targets.length} samples per method with the same seed (${config.evaluation.seed}), labels split equally across classes; the pre-trained model cannot see labels, so its accuracy is the chance reference.`,
      `Whole run: ${facts.totalSeconds.toFixed(0)} s.`,
      ...interruptionNotes(metrics),
    ],
  });
  return summary;
}

/** Which reward classifier the run used, and why (trainRewardClassifier's choice). */
function robustnessNote(classifier: Omit<RewardClassifierReport, "handle">): string {
  const robust = classifier.robustAccuracy ?? null; // absent in runs from before the choice existed
  if (robust === null) return "Reward classifier: plain training (no adversarially trained candidate).";
  const plain = classifier.plainAccuracy.toFixed(3);
  return classifier.adversarialEpsilon > 0
    ? `Reward classifier: adversarially trained (epsilon ${classifier.adversarialEpsilon} per element), held-out accuracy ${robust.toFixed(3)} against ${plain} plain.`
    : `Reward classifier: plain; the adversarially trained one reached ${robust.toFixed(3)} held-out against ${plain}, too large a loss.`;
}

/** Worker restarts and skipped optimiser steps, from metrics.jsonl: what a reader of the curves must know. */
function interruptionNotes(metrics: Record<string, unknown>[]): string[] {
  const restarts = metrics.filter((m) => m.phase === "restart");
  const skipped = metrics.filter((m) => m.phase === "finetune-skipped");
  return [
    ...(restarts.length
      ? [
          `The worker died ${restarts.length} time${restarts.length === 1 ? "" : "s"} and was restarted: ${restarts
            .map((m) => `from ${String(m.resumed_from)}, ${Number(m.redone_steps)} fine-tuning steps redone (${String(m.reason)})`)
            .join("; ")}.`,
        ]
      : []),
    ...(skipped.length
      ? [`${skipped.length} optimiser step${skipped.length === 1 ? " was" : "s were"} skipped for a NaN or infinite loss or gradient: ${skipped.map((m) => `step ${Number(m.step)} (${String(m.reason)})`).join(", ")}.`]
      : []),
  ];
}
