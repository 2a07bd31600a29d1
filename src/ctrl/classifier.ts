/**
 * CTRL step 1: learn p(y | x) on the offline data, then calibrate it by temperature scaling on a
 * held-out split. The loop lives here; each batch is one worker step. The same loop trains the
 * noise-aware classifier p(y | x_t, t) of the classifier-guidance baseline on noised rows.
 * `trainRewardClassifier` adds adversarial training where the data allows it (see there).
 */
import type { ExperimentConfig } from "./config.js";
import { Random, deriveSeed, stratifiedSplit } from "./random.js";
import type { Run } from "./runs.js";
import { learningRateScale } from "./finetune.js";
import { accuracy, expectedCalibrationError, negativeLogLikelihood, softmax } from "../eval/metrics.js";
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
  /** The adversarial training radius (per element, [-1, 1] units); 0 for plain training. */
  adversarialEpsilon: number;
}

/** Adversarial training: each batch replaced by its worst case in an L2 ball (see the worker's classifier.Adversary). */
export interface Adversary {
  /** Per-element radius in the model's [-1, 1] units: the L2 radius over sqrt(C * H * W). */
  epsilon: number;
  steps: number;
}

export interface TrainOptions {
  /**
   * A noise-aware classifier (architecture noise-aware-resnet): each row is noised by the
   * backbone's forward process to a timestep drawn uniformly from `timesteps`. It is not
   * calibrated (its temperature stays 1): its held-out scores are those of clean images (t = 0).
   */
  noise?: { backbone: string; timesteps: readonly number[] };
  /** The metrics.jsonl phase and the progress bar's name; default "classifier". */
  phase?: string;
  adversary?: Adversary;
  /** Start from the classifier saved in this folder (SaveClassifier) instead of a fresh network. */
  initialFrom?: string;
  /** Epochs of this training; default classifier.epochs. */
  epochs?: number;
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
  options: TrainOptions = {},
): Promise<ClassifierReport> {
  const settings = config.classifier;
  const { noise, phase = "classifier", adversary, initialFrom, epochs = settings.epochs } = options;
  if (noise && adversary) throw new Error("adversarial training is for clean classifiers, not noise-aware ones");
  const { train, heldOut } = stratifiedSplit(data.labels, settings.heldOutFraction, new Random(deriveSeed(config.seed, "split")));
  const classifier = initialFrom
    ? await worker.loadClassifier(initialFrom)
    : await worker.createClassifier({
        inputShape: data.imageShape,
        numClasses: data.numClasses,
        architecture: noise ? "noise-aware-resnet" : settings.architecture,
        width: settings.width,
        seed: deriveSeed(config.seed, `${phase}-init`),
        learningRate: settings.learningRate,
        weightDecay: settings.weightDecay,
      });
  const batchesPerEpoch = Math.ceil(train.length / settings.batchSize);
  const bar = new ProgressBar(phase);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = new Random(deriveSeed(config.seed, `${phase}-epoch`, epoch)).shuffle(train);
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < batchesPerEpoch; b++) {
      const indices = order.slice(b * settings.batchSize, (b + 1) * settings.batchSize);
      const batch = {
        classifier: classifier.handle,
        dataset: data.dataset,
        labelColumn: data.column,
        indices,
        augment: settings.augment,
        seed: deriveSeed(config.seed, `${phase}-batch`, epoch, b),
        learningRate: learningRateAt(settings, epoch * batchesPerEpoch + b, epochs * batchesPerEpoch),
      };
      let step;
      if (noise) {
        const random = new Random(deriveSeed(config.seed, `${phase}-timesteps`, epoch, b));
        const timesteps = indices.map(() => noise.timesteps[random.int(noise.timesteps.length)]!);
        step = await worker.trainNoisyClassifierStep({ ...batch, backbone: noise.backbone, timesteps });
      } else {
        step = await worker.trainClassifierStep({ ...batch, adversarialEpsilon: adversary?.epsilon ?? 0, adversarialSteps: adversary?.steps ?? 0 });
      }
      lossSum += step.loss * indices.length;
      correct += step.accuracy * indices.length;
      bar.update(epoch * batchesPerEpoch + b + 1, epochs * batchesPerEpoch);
    }
    const heldOutScores = await scoreRows(worker, classifier.handle, data, heldOut);
    run.logMetrics({
      phase,
      epoch: epoch + 1,
      train_loss: lossSum / train.length,
      train_accuracy: correct / train.length,
      held_out_accuracy: heldOutScores.accuracy,
    });
  }

  const before = await scoreRows(worker, classifier.handle, data, heldOut);
  const calibration = noise
    ? { temperature: 1, nllBefore: before.nll, nllAfter: before.nll }
    : await worker.calibrateClassifier({ classifier: classifier.handle, dataset: data.dataset, labelColumn: data.column, indices: heldOut });
  const after = noise ? before : await scoreRows(worker, classifier.handle, data, heldOut);
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
    adversarialEpsilon: adversary?.epsilon ?? 0,
  };
  const reportPhase = noise ? `${phase}-held-out` : phase === "classifier" ? "calibration" : `${phase}-calibration`;
  run.logMetrics({ phase: reportPhase, ...withoutRows(report) });
  return report;
}

export interface RewardClassifierReport extends ClassifierReport {
  /** Held-out accuracy of the plain and the adversarially trained candidate (null: not trained). */
  plainAccuracy: number;
  robustAccuracy: number | null;
}

/**
 * The CTRL reward classifier: a plain one, and, with `classifier.robust.epsilon` > 0, an
 * adversarially trained one that replaces it when its held-out accuracy is at most
 * `maxAccuracyDrop` below the plain one's. The other is released. The adversarial candidate is
 * the plain one fine-tuned for `robust.epochs` (saved in the run as classifier-plain/ to start
 * from): adversarial steps cost (1 + robust.steps) times a plain one, so training it from scratch
 * cost more than twice the plain classifier's time.
 *
 * Why both: the reward back-propagates the classifier's input gradient into the diffusion model,
 * and a plain classifier's gradient leads the model to images that fool it (brightness: 0.95
 * classifier-judged, 0.75 by the oracle); a robust classifier's gradient follows the attribute.
 * But an attribute carried by fine detail (JPEG size) changes within the same radius, and there
 * adversarial training costs accuracy (0.92 to 0.56 held-out) that the reward cannot afford. The
 * held-out accuracy tells the two cases apart without knowing the attribute.
 */
export async function trainRewardClassifier(
  worker: Worker,
  data: DatasetColumn,
  config: ExperimentConfig,
  run: Run,
): Promise<RewardClassifierReport> {
  const { epsilon, steps, maxAccuracyDrop } = config.classifier.robust;
  const plain = await trainClassifier(worker, data, config, run);
  if (epsilon === 0) return { ...plain, plainAccuracy: plain.heldOutAccuracy, robustAccuracy: null };
  const plainFolder = run.path("classifier-plain");
  await worker.saveClassifier(plain.handle, plainFolder, true);
  const robust = await trainClassifier(worker, data, config, run, {
    phase: "classifier-robust",
    adversary: { epsilon, steps },
    initialFrom: plainFolder,
    epochs: config.classifier.robust.epochs,
  });
  const keepRobust = robust.heldOutAccuracy >= plain.heldOutAccuracy - maxAccuracyDrop;
  const [chosen, dropped] = keepRobust ? [robust, plain] : [plain, robust];
  await worker.release(dropped.handle);
  run.logMetrics({
    phase: "classifier-choice",
    chosen: keepRobust ? "robust" : "plain",
    adversarial_epsilon: epsilon,
    plain_accuracy: plain.heldOutAccuracy,
    robust_accuracy: robust.heldOutAccuracy,
    max_accuracy_drop: maxAccuracyDrop,
  });
  return { ...chosen, plainAccuracy: plain.heldOutAccuracy, robustAccuracy: robust.heldOutAccuracy };
}

/** The learning rate of batch `step` of `total`: constant, or a cosine from the peak down to 0. */
export function learningRateAt(settings: Pick<ExperimentConfig["classifier"], "learningRate" | "schedule">, step: number, total: number): number {
  return settings.learningRate * learningRateScale(step, total, 0, settings.schedule);
}

/** Held-out accuracy, expected calibration error and NLL at the classifier's current temperature. */
async function scoreRows(worker: Worker, classifier: string, data: DatasetColumn, rows: number[]) {
  const scores = await worker.classifierLogits({ classifier, dataset: data.dataset, labelColumn: data.column, indices: rows });
  const probabilities = scores.logits.map((row) => softmax(Array.from(row), scores.temperature));
  const predictions = probabilities.map(argmax);
  return {
    accuracy: accuracy(scores.labels, predictions),
    ece: expectedCalibrationError(probabilities, scores.labels),
    nll: negativeLogLikelihood(probabilities, scores.labels),
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
