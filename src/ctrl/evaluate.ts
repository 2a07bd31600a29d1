/**
 * Evaluation: samples asked for each label are judged by the ground-truth oracle (computed here,
 * outside the model), or, for datasets without one, by the calibrated classifier (and then say so).
 * Quality: the Fréchet distance between the samples and held-out offline images in the feature
 * space of the offline classifier (FID's recipe with a feature network trained on this domain;
 * Inception weights are not available offline and do not fit 32x32 synthetic images).
 */
import { accuracy, confusionMatrix, frechetDistance, macroF1, mean, meanPairwiseDistance } from "../eval/metrics.js";
import { type ImageBatch, uint8Tensor } from "../worker/tensors.js";
import type { Worker } from "../worker/worker.js";
import { argmax } from "./classifier.js";
import { type Oracle, oracleClasses } from "./oracle.js";

export interface Judge {
  classifier: string;
  /** With an oracle, labels come from it and these thresholds; otherwise from the classifier. */
  oracle?: { oracle: Oracle; thresholds: number[] };
  numClasses: number;
  /** Features of held-out offline images, the quality measure's reference. */
  realFeatures: Float32Array[];
}

export interface Evaluation {
  targets: number[];
  judged: number[];
  judgedBy: string;
  oracleValues: number[] | null;
  confusion: number[][];
  accuracy: number;
  macroF1: number;
  /** How often the reward classifier's argmax is the asked-for label: what the optimiser sees. */
  classifierAccuracy: number;
  /** How often the classifier's argmax is the oracle's class (null without an oracle): a low value beside a high classifierAccuracy means the samples fool the classifier. */
  classifierOracleAgreement: number | null;
  frechetDistance: number;
  /**
   * Diversity per class: mean pairwise distance of the samples' classifier features, grouping
   * them by the asked-for label (`byTarget`) and by the judged class (`byJudged`). CTRL's
   * byTarget beside the pre-trained model's byJudged tells whether a control collapses.
   */
  diversity: { byTarget: number[]; byJudged: number[] };
}

/** n targets, classes 0..K-1 in equal shares (the first n mod K classes get one more). */
export function equalSplit(n: number, numClasses: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor((i * numClasses) / n));
}

export async function judgeSamples(worker: Worker, images: ImageBatch, targets: number[], judge: Judge): Promise<Evaluation> {
  const scores = await worker.classifierLogits({ classifier: judge.classifier, images: uint8Tensor(images), returnFeatures: true });
  const classifierLabels = scores.logits.map(argmax);
  let judged = classifierLabels;
  let oracleValues: number[] | null = null;
  let judgedBy = "calibrated classifier (no oracle for this dataset)";
  if (judge.oracle) {
    const result = await oracleClasses(judge.oracle.oracle, images, judge.oracle.thresholds);
    judged = result.classes;
    oracleValues = result.values;
    judgedBy = `oracle: ${judge.oracle.oracle.name} (${judge.oracle.oracle.unit})`;
  }
  const features = toRows(scores.features!);
  return {
    targets,
    judged,
    judgedBy,
    oracleValues,
    confusion: confusionMatrix(targets, judged, judge.numClasses),
    accuracy: accuracy(targets, judged),
    macroF1: macroF1(targets, judged, judge.numClasses),
    classifierAccuracy: accuracy(targets, classifierLabels),
    classifierOracleAgreement: judge.oracle ? accuracy(judged, classifierLabels) : null,
    frechetDistance: frechetDistance(features, toRows(judge.realFeatures)),
    diversity: { byTarget: diversityPerClass(features, targets, judge.numClasses), byJudged: diversityPerClass(features, judged, judge.numClasses) },
  };
}

/** Mean pairwise feature distance of the samples in each class of `groups` (NaN for a class with fewer than two). */
export function diversityPerClass(features: number[][], groups: readonly number[], numClasses: number): number[] {
  return Array.from({ length: numClasses }, (_, c) => meanPairwiseDistance(features.filter((_, i) => groups[i] === c)));
}

function toRows(features: Float32Array[]): number[][] {
  return features.map((row) => Array.from(row));
}

export function meanOrNull(values: number[] | undefined): number | null {
  return values && values.length ? mean(values) : null;
}
