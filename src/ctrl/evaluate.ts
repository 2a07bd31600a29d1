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
  diversity: ClassSpread;
  /**
   * The same in image space: distances between 8x8 thumbnails (colours and layout, without the
   * sampler's grain). The classifier's features mostly measure the attribute itself, so they
   * also shrink when a control concentrates on the middle of a class's band; thumbnails shrink
   * only when the images themselves become alike.
   */
  thumbnailDiversity: ClassSpread;
  /**
   * Fine grain per class: each image's mean absolute difference between neighbouring pixels
   * (0-255), averaged over the class. Not a diversity: a control that reaches a class by
   * leaving noise in its samples keeps their spread but multiplies this (brightness's middle
   * classes: 40-57 against the pre-trained samples' 6-9, 2026-12-03).
   */
  grain: ClassSpread;
}

/** The per-class measures that compare CTRL's samples asked for a class with the pre-trained samples judged in it. */
export type ClassMeasure = "diversity" | "thumbnailDiversity" | "grain";

export interface ClassSpread {
  byTarget: number[];
  byJudged: number[];
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
  const thumbs = thumbnails(images, THUMBNAIL_SIZE);
  const spread = (rows: number[][]): ClassSpread => ({
    byTarget: diversityPerClass(rows, targets, judge.numClasses),
    byJudged: diversityPerClass(rows, judged, judge.numClasses),
  });
  const grains = pixelGrain(images);
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
    diversity: spread(features),
    thumbnailDiversity: spread(thumbs),
    grain: { byTarget: meanPerClass(grains, targets, judge.numClasses), byJudged: meanPerClass(grains, judged, judge.numClasses) },
  };
}

/** Per image: the mean absolute difference between horizontally and vertically neighbouring pixel values (0-255, all channels). */
export function pixelGrain(images: ImageBatch): number[] {
  const { count, height, width, channels, data } = images;
  const at = (n: number, y: number, x: number, c: number) => data[((n * height + y) * width + x) * channels + c]!;
  const pairs = ((width - 1) * height + (height - 1) * width) * channels;
  return Array.from({ length: count }, (_, n) => {
    let sum = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        for (let c = 0; c < channels; c++) {
          const value = at(n, y, x, c);
          if (x + 1 < width) sum += Math.abs(at(n, y, x + 1, c) - value);
          if (y + 1 < height) sum += Math.abs(at(n, y + 1, x, c) - value);
        }
      }
    }
    return pairs > 0 ? sum / pairs : 0;
  });
}

/** The mean of `values` in each class of `groups` (NaN for an empty class). */
export function meanPerClass(values: readonly number[], groups: readonly number[], numClasses: number): number[] {
  return Array.from({ length: numClasses }, (_, c) => {
    const own = values.filter((_, i) => groups[i] === c);
    return own.length ? mean(own) : Number.NaN;
  });
}

const THUMBNAIL_SIZE = 8;

/** Each image area-averaged to size x size (x channels) cells, values in [0, 1]; cells take
 * floor(height / size) x floor(width / size) pixels, so any image of at least size x size works. */
export function thumbnails(images: ImageBatch, size: number): number[][] {
  const { count, height, width, channels, data } = images;
  if (height < size || width < size) throw new RangeError(`thumbnails: images of ${height}x${width} are smaller than ${size}x${size}`);
  const cellH = Math.floor(height / size);
  const cellW = Math.floor(width / size);
  const rows: number[][] = [];
  for (let n = 0; n < count; n++) {
    const row = new Array<number>(size * size * channels).fill(0);
    for (let cy = 0; cy < size; cy++) {
      for (let cx = 0; cx < size; cx++) {
        for (let y = cy * cellH; y < (cy + 1) * cellH; y++) {
          for (let x = cx * cellW; x < (cx + 1) * cellW; x++) {
            const offset = ((n * height + y) * width + x) * channels;
            for (let c = 0; c < channels; c++) row[(cy * size + cx) * channels + c]! += data[offset + c]!;
          }
        }
      }
    }
    rows.push(row.map((v) => v / (255 * cellH * cellW)));
  }
  return rows;
}

/**
 * Per class: the spread of `model`'s samples asked for it over that of `reference`'s samples
 * judged in it (a collapsed control scores near 0), in classifier features or 8x8 thumbnails;
 * for "grain", the same ratio of mean fine grain (far above 1: noise left in the images).
 */
export function diversityRatios(model: Evaluation, reference: Evaluation, space: ClassMeasure): number[] {
  return model[space].byTarget.map((value, i) => value / reference[space].byJudged[i]!);
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
