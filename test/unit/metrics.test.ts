import assert from "node:assert/strict";
import { test } from "node:test";
import {
  accuracy,
  confusionMatrix,
  expectedCalibrationError,
  frechetDistance,
  macroF1,
  macroScores,
  mean,
  median,
  negativeLogLikelihood,
  perClassScores,
  quantiles,
  softmax,
  meanPairwiseDistance,
  std,
} from "../../src/eval/metrics.js";
import { diversityPerClass, meanPerClass, pixelGrain, thumbnails } from "../../src/ctrl/evaluate.js";

function assertClose(actual: number, expected: number, tolerance = 1e-9): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} != ${expected} (±${tolerance})`);
}

test("the confusion matrix has targets as rows and oracle labels as columns", () => {
  assert.deepEqual(confusionMatrix([0, 0, 1, 2], [0, 1, 1, 0], 3), [
    [1, 1, 0],
    [0, 1, 0],
    [1, 0, 0],
  ]);
  assert.throws(() => confusionMatrix([0, 1], [0], 2), /2 targets but 1 predictions/);
  assert.throws(() => confusionMatrix([0, 3], [0, 1], 3), /\(targets\): label 1 is 3, expected an integer in 0..2/);
  assert.throws(() => confusionMatrix([0], [0.5], 3), /\(predictions\): label 0 is 0.5/);
  assert.throws(() => confusionMatrix([], [], 0), /numClasses must be a positive integer/);
});

test("macro F1 by hand, 3 classes with an empty class (sklearn, zero_division=0)", () => {
  // class 2 is neither a target nor a prediction: its F1 is 0 and still counts in the mean
  const [targets, predictions] = [[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 0]];
  assertClose(accuracy(targets, predictions), 4 / 6);
  const [zero, one, two] = perClassScores(targets, predictions, 3);
  assertClose(zero!.precision, 2 / 3);
  assertClose(zero!.recall, 2 / 3);
  assertClose(one!.f1, 2 / 3);
  assert.deepEqual(two, { precision: 0, recall: 0, f1: 0, support: 0 });
  // sklearn.metrics.f1_score(t, p, labels=[0, 1, 2], average="macro") == 4/9
  assertClose(macroF1(targets, predictions, 3), 4 / 9);
});

test("macro precision, recall and F1 when a class is predicted but never a target", () => {
  // class 0: P 1, R 1/2, F1 2/3; class 1: 1, 1, 1; class 2: P 0/1, R 0/0 -> 0, F1 0
  const macro = macroScores([0, 0, 1, 1], [0, 2, 1, 1], 3);
  assertClose(macro.precision, 2 / 3);
  assertClose(macro.recall, 1 / 2);
  assertClose(macro.f1, 5 / 9);
  assert.equal(accuracy([1, 0], [1, 0]), 1);
  assert.throws(() => accuracy([], []), /no samples/);
  assert.throws(() => accuracy([0], [0, 1]), /1 targets but 2 predictions/);
  assert.throws(() => macroF1([0], [3], 3), /label 0 is 3/);
});

test("softmax is stable and tempered", () => {
  const p = softmax([1000, 1000 + Math.log(3)]);
  assertClose(p[0]!, 0.25);
  assertClose(p[1]!, 0.75);
  const flat = softmax([0, Math.log(4)], 2); // exp(log 4 / 2) = 2
  assertClose(flat[1]!, 2 / 3);
  assert.throws(() => softmax([1, 2], 0), /temperature must be positive/);
  assert.throws(() => softmax([]), /no values/);
});

test("ECE is 0 for calibrated bins", () => {
  // confidence 0.8, right 8 times in 10; confidence 0.6, right 3 times in 5
  const probabilities = [...Array<number[]>(10).fill([0.8, 0.2]), ...Array<number[]>(5).fill([0.4, 0.6])];
  const labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0];
  assertClose(expectedCalibrationError(probabilities, labels), 0, 1e-12);
});

test("ECE of an over-confident classifier, by hand", () => {
  // 4 at 0.9 with 2 right: |2 - 3.6|; 6 at 0.6 with 3 right: |3 - 3.6|; (1.6 + 0.6) / 10
  const probabilities = [...Array<number[]>(4).fill([0.9, 0.1]), ...Array<number[]>(6).fill([0.6, 0.4])];
  const labels = [0, 0, 1, 1, 0, 0, 0, 1, 1, 1];
  assertClose(expectedCalibrationError(probabilities, labels), 0.22);
  // one bin: |accuracy - mean confidence| = |5/10 - 7.2/10|
  assertClose(expectedCalibrationError(probabilities, labels, 1), 0.22);
  // bins are (lo, hi]: with 2 bins, confidence 0.5 is in (0, 0.5] (|0 - 0.5|), 0.9 in (0.5, 1] (|1 - 0.9|);
  // in one bin together they would give |1 - 1.4| / 2 = 0.2. A tie predicts the first class.
  assertClose(expectedCalibrationError([[0.5, 0.5], [0.9, 0.1]], [1, 0], 2), (0.5 + 0.1) / 2);
  assert.throws(() => expectedCalibrationError([[0.5, 0.5]], [0, 1]), /1 rows but 2 labels/);
  assert.throws(() => expectedCalibrationError([[1.5, 0]], [0]), /outside \[0, 1\]/);
  assert.throws(() => expectedCalibrationError([[0.5, 0.5]], [2]), /expected an integer in 0..1/);
});

test("negative log-likelihood, clipped so it stays finite", () => {
  assertClose(negativeLogLikelihood([[0.5, 0.5], [0.25, 0.75]], [0, 1]), (Math.log(2) + Math.log(4 / 3)) / 2);
  assertClose(negativeLogLikelihood([[1, 0]], [1]), -Math.log(Number.EPSILON));
});

test("mean, std and median, numpy style", () => {
  assert.equal(mean([1, 2, 3, 6]), 3);
  assertClose(std([2, 4, 4, 4, 5, 5, 7, 9]), 2); // numpy.std
  assertClose(std([1, 2, 3, 4], 1), Math.sqrt(5 / 3)); // numpy.std(ddof=1)
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.throws(() => mean([]), /no values/);
  assert.throws(() => median([1, Infinity]), /value 1 is not finite/);
  assert.throws(() => std([1], 1), /more than 1 values/);
});

test("quantiles interpolate linearly between order statistics, like numpy", () => {
  // numpy.quantile([1, 2, 3, 4, 10], [0, 0.1, 0.5, 0.9, 1]) == [1, 1.4, 3, 7.6, 10]
  const q = quantiles([10, 3, 1, 4, 2], [0, 0.1, 0.5, 0.9, 1]);
  [1, 1.4, 3, 7.6, 10].forEach((expected, i) => assertClose(q[i]!, expected, 1e-12));
  assert.throws(() => quantiles([1], [1.5]), /q must be in \[0, 1\], got 1.5/);
});

test("the Fréchet distance of a set to itself is 0", () => {
  const features = [[1, 2, 0], [0, 1, 3], [2, 2, 2], [5, -1, 0], [1, 1, 1]];
  assertClose(frechetDistance(features, features), 0, 1e-9);
  assertClose(frechetDistance(features, [...features].reverse()), 0, 1e-9);
});

test("1-D Fréchet distance is (m1 - m2)² + (s1 - s2)²", () => {
  // [1, 2, 3]: mean 2, sample std 1; [0, 4, 8]: mean 4, sample std 4
  assertClose(frechetDistance([[1], [2], [3]], [[0], [4], [8]]), 4 + 9);
});

test("a 2-D Fréchet distance with covariances that do not commute, by hand", () => {
  // A: mean 0, Ca = [[4, 2], [2, 2]] / 3. B: mean (3, 4), Cb = [[2, 0], [0, 8]] / 3.
  // For 2x2 PSD matrices Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)), with M = Ca^½ Cb Ca^½:
  // Tr M = Tr(Ca Cb) = 8/3, det M = det Ca det Cb = 4/9 * 16/9, so Tr sqrt(M) = sqrt(40) / 3.
  const a = [[1, 1], [-1, -1], [1, 0], [-1, 0]];
  const b = [[1, 0], [-1, 0], [0, 2], [0, -2]].map(([x, y]) => [x! + 3, y! + 4]);
  assertClose(frechetDistance(a, b), 25 + 16 / 3 - (2 * Math.sqrt(40)) / 3, 1e-9);
  assert.throws(() => frechetDistance(a, [[1], [2]]), /features of 2 and 1 dimensions/);
  assert.throws(() => frechetDistance([[1, 2]], a), /at least 2 rows/);
});

test("mean pairwise distance: the spread of a set, 0 for identical rows, NaN below two rows", () => {
  assert.equal(meanPairwiseDistance([[0, 0], [3, 4]]), 5);
  assert.equal(meanPairwiseDistance([[0, 0], [3, 4], [0, 0]]), (5 + 0 + 5) / 3);
  assert.equal(meanPairwiseDistance([[1, 2], [1, 2], [1, 2]]), 0);
  assert.ok(Number.isNaN(meanPairwiseDistance([[1, 2]])));
});

test("diversity per class groups the rows by their class", () => {
  const features = [[0, 0], [0, 2], [5, 5], [5, 5]];
  const [a, b, c] = diversityPerClass(features, [0, 0, 1, 1], 3);
  assert.equal(a, 2);
  assert.equal(b, 0);
  assert.ok(Number.isNaN(c!));
});

test("thumbnails area-average each image into size x size cells in [0, 1]", () => {
  // One 17x17 RGB image: left 8 columns white, the rest black; cells of 2x2 pixels, the 17th row and column unused.
  const data = new Uint8Array(17 * 17 * 3);
  for (let y = 0; y < 17; y++) for (let x = 0; x < 8; x++) data.fill(255, (y * 17 + x) * 3, (y * 17 + x) * 3 + 3);
  const [row] = thumbnails({ count: 1, height: 17, width: 17, channels: 3, data }, 8);
  assert.equal(row!.length, 8 * 8 * 3);
  for (let cy = 0; cy < 8; cy++) {
    for (let cx = 0; cx < 8; cx++) assert.equal(row![(cy * 8 + cx) * 3], cx < 4 ? 1 : 0, `cell ${cy},${cx}`);
  }
  assert.throws(() => thumbnails({ count: 1, height: 4, width: 4, channels: 3, data: new Uint8Array(48) }, 8), /smaller than 8x8/);
});

test("pixelGrain: the mean absolute difference of neighbouring pixels; meanPerClass averages it per class", () => {
  // Image 0 flat grey; image 1 a 2x2 one-channel checkerboard 0/200: every one of its 4 neighbour pairs differs by 200.
  const flat = [100, 100, 100, 100];
  const checker = [0, 200, 200, 0];
  const grains = pixelGrain({ count: 2, height: 2, width: 2, channels: 1, data: new Uint8Array([...flat, ...checker]) });
  assert.deepEqual(grains, [0, 200]);
  // Vertical stripes in RGB: horizontal pairs differ by 90 in every channel, vertical pairs by 0, so the mean is 45.
  const stripes = new Uint8Array(3 * 3 * 3);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) stripes.fill(x === 1 ? 90 : 0, (y * 3 + x) * 3, (y * 3 + x) * 3 + 3);
  assert.deepEqual(pixelGrain({ count: 1, height: 3, width: 3, channels: 3, data: stripes }), [45]);
  const [a, b, c] = meanPerClass([1, 3, 10], [0, 0, 2], 3);
  assert.deepEqual([a, c], [2, 10]);
  assert.ok(Number.isNaN(b!));
});
