/**
 * CTRL step 1: learn p(y | x) on the offline data, then calibrate it by temperature scaling on a
 * held-out split. The loop lives here; each batch is one worker step.
 */
import type { ExperimentConfig } from "./config.js";
import { Random, deriveSeed, stratifiedSplit } from "./random.js";
import type { Run } from "./runs.js";
import { accuracy, expectedCalibrationError, softmax } from "../eval/metrics.js";
import { ProgressBar } from "../worker/progress.js";
import type { Worker } from "../worker/worker.js";

export interface ClassifierReport {
  handle: string;
  temperature: number;
  trainRows: number;
  heldOutRows: number;
  heldOut: number[];
  heldOutAccuracy: number;
  eceBefore: number;
  eceAfter: number;
  nllBefore: number;
  nllAfter: number;
}

export interface DatasetColumn {
  dataset: string;
  column: string;
  numClasses: number;
  labels: number[];
  imageShape: number[];
}

export async function trainClassifier(
  worker: Worker,
  data: DatasetColumn,
  config: ExperimentConfig,
  run: Run,
): Promise<ClassifierReport> {
  const settings = config.classifier;
  const { train, heldOut } = stratifiedSplit(data.labels, settings.heldOutFraction, new Random(deriveSeed(config.seed, "split")));
  const classifier = await worker.createClassifier({
    inputShape: data.imageShape,
    numClasses: data.numClasses,
    architecture: settings.architecture,
    width: settings.width,
    seed: deriveSeed(config.seed, "classifier-init"),
    learningRate: settings.learningRate,
    weightDecay: settings.weightDecay,
  });
  const batchesPerEpoch = Math.ceil(train.length / settings.batchSize);
  const bar = new ProgressBar("classifier");
  for (let epoch = 0; epoch < settings.epochs; epoch++) {
    const order = new Random(deriveSeed(config.seed, "classifier-epoch", epoch)).shuffle(train);
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < batchesPerEpoch; b++) {
      const indices = order.slice(b * settings.batchSize, (b + 1) * settings.batchSize);
      const step = await worker.trainClassifierStep({
        classifier: classifier.handle,
        dataset: data.dataset,
        labelColumn: data.column,
        indices,
        augment: settings.augment,
        seed: deriveSeed(config.seed, "classifier-batch", epoch, b),
      });
      lossSum += step.loss * indices.length;
      correct += step.accuracy * indices.length;
      bar.update(epoch * batchesPerEpoch + b + 1, settings.epochs * batchesPerEpoch);
    }
    const heldOutScores = await scoreRows(worker, classifier.handle, data, heldOut);
    run.logMetrics({
      phase: "classifier",
      epoch: epoch + 1,
      train_loss: lossSum / train.length,
      train_accuracy: correct / train.length,
      held_out_accuracy: heldOutScores.accuracy,
    });
  }

  const before = await scoreRows(worker, classifier.handle, data, heldOut);
  const calibration = await worker.calibrateClassifier({ classifier: classifier.handle, dataset: data.dataset, labelColumn: data.column, indices: heldOut });
  const after = await scoreRows(worker, classifier.handle, data, heldOut);
  const report: ClassifierReport = {
    handle: classifier.handle,
    temperature: calibration.temperature,
    trainRows: train.length,
    heldOutRows: heldOut.length,
    heldOut,
    heldOutAccuracy: after.accuracy,
    eceBefore: before.ece,
    eceAfter: after.ece,
    nllBefore: calibration.nllBefore,
    nllAfter: calibration.nllAfter,
  };
  run.logMetrics({ phase: "calibration", ...withoutRows(report) });
  return report;
}

/** Held-out accuracy and expected calibration error at the classifier's current temperature. */
async function scoreRows(worker: Worker, classifier: string, data: DatasetColumn, rows: number[]) {
  const scores = await worker.classifierLogits({ classifier, dataset: data.dataset, labelColumn: data.column, indices: rows });
  const probabilities = scores.logits.map((row) => softmax(Array.from(row), scores.temperature));
  const predictions = probabilities.map(argmax);
  return {
    accuracy: accuracy(scores.labels, predictions),
    ece: expectedCalibrationError(probabilities, scores.labels),
  };
}

export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function withoutRows(report: ClassifierReport): Omit<ClassifierReport, "heldOut" | "handle"> {
  const { heldOut: _rows, handle: _handle, ...rest } = report;
  return rest;
}
