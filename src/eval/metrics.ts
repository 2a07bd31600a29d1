/**
 * Evaluation metrics: how often the oracle agrees with the conditioning label (accuracy, sklearn's
 * precision/recall/F1), classifier calibration (ECE, NLL), summary statistics and the Fréchet
 * distance between feature sets.
 */
import { columnMeans, covariance, matMul, psdSqrt, trace, traceSqrt } from "./linalg.js";

/** Refuses an empty list or one with a NaN or an infinity, naming the caller and the position. */
export function checkFinite(name: string, values: readonly number[]): void {
  if (values.length === 0) throw new RangeError(`${name}: no values`);
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new RangeError(`${name}: value ${bad} is not finite (${values[bad]})`);
}

function checkLabels(name: string, labels: readonly number[], numClasses: number): void {
  labels.forEach((label, i) => {
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new RangeError(`${name}: label ${i} is ${label}, expected an integer in 0..${numClasses - 1}`);
    }
  });
}

/**
 * counts[t][p]: samples conditioned on label t (row) that the oracle puts in class p (column).
 */
export function confusionMatrix(targets: readonly number[], predictions: readonly number[], numClasses: number): number[][] {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new RangeError(`confusionMatrix: numClasses must be a positive integer, got ${numClasses}`);
  if (targets.length !== predictions.length) {
    throw new RangeError(`confusionMatrix: ${targets.length} targets but ${predictions.length} predictions`);
  }
  checkLabels("confusionMatrix (targets)", targets, numClasses);
  checkLabels("confusionMatrix (predictions)", predictions, numClasses);
  const counts = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  targets.forEach((t, i) => counts[t]![predictions[i]!]!++);
  return counts;
}

const total = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** Share of samples whose prediction equals the target. */
export function accuracy(targets: readonly number[], predictions: readonly number[]): number {
  if (targets.length !== predictions.length) throw new RangeError(`accuracy: ${targets.length} targets but ${predictions.length} predictions`);
  if (targets.length === 0) throw new RangeError("accuracy: no samples");
  return targets.filter((t, i) => t === predictions[i]).length / targets.length;
}

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  /** Samples whose target is this class. */
  support: number;
}

/** sklearn's per-class scores for classes 0..K-1, zero_division = 0: a ratio over 0 is 0. */
export function perClassScores(targets: readonly number[], predictions: readonly number[], numClasses: number): ClassScores[] {
  const confusion = confusionMatrix(targets, predictions, numClasses);
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return confusion.map((row, k) => {
    const tp = row[k]!;
    const support = total(row);
    const predicted = total(confusion.map((r) => r[k]!));
    return { precision: ratio(tp, predicted), recall: ratio(tp, support), f1: ratio(2 * tp, support + predicted), support };
  });
}

export interface MacroScores {
  precision: number;
  recall: number;
  f1: number;
}

/** Unweighted means over every class 0..K-1, present or not (sklearn with labels=range(K)). */
export function macroScores(targets: readonly number[], predictions: readonly number[], numClasses: number): MacroScores {
  const scores = perClassScores(targets, predictions, numClasses);
  return {
    precision: mean(scores.map((s) => s.precision)),
    recall: mean(scores.map((s) => s.recall)),
    f1: mean(scores.map((s) => s.f1)),
  };
}

export function macroF1(targets: readonly number[], predictions: readonly number[], numClasses: number): number {
  return macroScores(targets, predictions, numClasses).f1;
}

/** softmax(logits / temperature), computed stably. */
export function softmax(logitsRow: readonly number[], temperature = 1): number[] {
  checkFinite("softmax", logitsRow);
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`softmax: temperature must be positive, got ${temperature}`);
  const top = Math.max(...logitsRow);
  const exps = logitsRow.map((z) => Math.exp((z - top) / temperature));
  const sum = total(exps);
  return exps.map((e) => e / sum);
}

/** log softmax(logits / temperature), computed stably (no log of a rounded-off zero). */
export function logSoftmax(logitsRow: readonly number[], temperature = 1): number[] {
  const probabilities = softmax(logitsRow, temperature); // checks the inputs
  const top = Math.max(...logitsRow);
  const logSum = Math.log(total(logitsRow.map((z) => Math.exp((z - top) / temperature))));
  return probabilities.map((_, k) => (logitsRow[k]! - top) / temperature - logSum);
}

function checkProbabilities(name: string, probabilities: readonly number[][], labels: readonly number[]): void {
  if (probabilities.length === 0) throw new RangeError(`${name}: no samples`);
  if (probabilities.length !== labels.length) throw new RangeError(`${name}: ${probabilities.length} rows but ${labels.length} labels`);
  const width = probabilities[0]!.length;
  probabilities.forEach((row, i) => {
    if (row.length !== width) throw new RangeError(`${name}: row ${i} has ${row.length} classes, expected ${width}`);
    if (!row.every((p) => p >= 0 && p <= 1)) throw new RangeError(`${name}: row ${i} holds a value outside [0, 1]`);
  });
  checkLabels(name, labels, width);
}

/** Index of the largest entry; the first on ties, like numpy.argmax. */
function argmax(row: readonly number[]): number {
  return row.reduce((best, p, k) => (p > row[best]! ? k : best), 0);
}

/**
 * Expected calibration error (Guo et al. 2017): samples binned by confidence (the largest
 * probability) into equal-width bins (lo, hi]; the mean over bins of |accuracy - confidence|,
 * weighted by the share of samples in the bin.
 */
export function expectedCalibrationError(probabilities: number[][], labels: number[], bins = 15): number {
  checkProbabilities("expectedCalibrationError", probabilities, labels);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`expectedCalibrationError: bins must be a positive integer, got ${bins}`);
  const confidence = new Array<number>(bins).fill(0);
  const correct = new Array<number>(bins).fill(0);
  const count = new Array<number>(bins).fill(0);
  probabilities.forEach((row, i) => {
    const predicted = argmax(row);
    const p = row[predicted]!;
    // The upper edges are k/bins, as torch.linspace(0, 1, bins + 1) gives them.
    let bin = 0;
    while (bin < bins - 1 && p > (bin + 1) / bins) bin++;
    confidence[bin]! += p;
    correct[bin]! += predicted === labels[i] ? 1 : 0;
    count[bin]!++;
  });
  return total(count.map((n, b) => Math.abs(correct[b]! - confidence[b]!))) / probabilities.length;
}

/** Mean of -log p(label), with p clipped to [eps, 1] like sklearn's log_loss, so it stays finite. */
export function negativeLogLikelihood(probabilities: number[][], labels: number[]): number {
  checkProbabilities("negativeLogLikelihood", probabilities, labels);
  return mean(probabilities.map((row, i) => -Math.log(Math.max(row[labels[i]!]!, Number.EPSILON))));
}

export function mean(values: readonly number[]): number {
  checkFinite("mean", values);
  return total(values) / values.length;
}

/** Standard deviation; ddof 0 (numpy's default) or 1 (the sample estimate). */
export function std(values: readonly number[], ddof: 0 | 1 = 0): number {
  const mu = mean(values);
  if (values.length <= ddof) throw new RangeError(`std: needs more than ${ddof} values`);
  return Math.sqrt(total(values.map((v) => (v - mu) ** 2)) / (values.length - ddof));
}

/** Quantiles with linear interpolation between order statistics (numpy's default method). */
export function quantiles(values: readonly number[], qs: readonly number[]): number[] {
  checkFinite("quantiles", values);
  const sorted = [...values].sort((a, b) => a - b);
  return qs.map((q) => {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantiles: q must be in [0, 1], got ${q}`);
    const position = q * (sorted.length - 1);
    const below = Math.floor(position);
    const above = Math.min(below + 1, sorted.length - 1);
    return sorted[below]! + (position - below) * (sorted[above]! - sorted[below]!);
  });
}

export function median(values: readonly number[]): number {
  checkFinite("median", values);
  return quantiles(values, [0.5])[0]!;
}

/**
 * Fréchet distance between Gaussians fitted to two feature sets (rows are samples), as in FID:
 * ||mu_a - mu_b||² + Tr(Ca + Cb - 2 (Ca^½ Cb Ca^½)^½), with sample covariances. The symmetric form
 * keeps every matrix symmetric PSD, so eigendecompositions replace a general matrix square root.
 */
export function frechetDistance(featuresA: number[][], featuresB: number[][]): number {
  const [muA, muB] = [columnMeans(featuresA), columnMeans(featuresB)];
  if (muA.length !== muB.length) throw new RangeError(`frechetDistance: features of ${muA.length} and ${muB.length} dimensions`);
  const [covA, covB] = [covariance(featuresA), covariance(featuresB)];
  const rootA = psdSqrt(covA);
  const meanTerm = total(muA.map((m, i) => (m - muB[i]!) ** 2));
  const distance = meanTerm + trace(covA) + trace(covB) - 2 * traceSqrt(matMul(matMul(rootA, covB), rootA));
  return Math.max(0, distance); // identical sets give 0 up to rounding, never below it
}

/**
 * Mean Euclidean distance over all pairs of rows: the spread of a set of samples in a feature
 * space (a collapsed set of near-identical samples scores near 0). NaN for fewer than two rows.
 */
export function meanPairwiseDistance(rows: readonly (readonly number[] | Float32Array)[]): number {
  if (rows.length < 2) return Number.NaN;
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    const a = rows[i]!;
    for (let j = i + 1; j < rows.length; j++) {
      const b = rows[j]!;
      let squared = 0;
      for (let k = 0; k < a.length; k++) squared += (a[k]! - b[k]!) ** 2;
      total += Math.sqrt(squared);
    }
  }
  return total / ((rows.length * (rows.length - 1)) / 2);
}
