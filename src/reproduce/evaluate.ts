/**
 * Judging samples asked for one or several controls: each control's exact oracle bins every
 * sample into that control's classes; a sample is right when every control agrees with what was
 * asked (the joint class). Quality: the Fréchet distance to held-out offline images in the judge
 * classifier's feature space, as in the CTRL pipeline.
 */
import { ORACLES, oracleClasses } from "../ctrl/oracle.js";
import { accuracy, confusionMatrix, frechetDistance, macroF1, mean } from "../eval/metrics.js";
import { type ImageBatch, uint8Tensor } from "../worker/tensors.js";
import type { Worker } from "../worker/worker.js";
import type { LabelColumn } from "./data.js";

export interface Judgement {
  /** Joint accuracy: every control's oracle agrees with its asked-for class. */
  accuracy: number;
  /** Macro-F1 over the joint classes. */
  macroF1: number;
  /** Accuracy per control. */
  perControl: Record<string, number>;
  /** Per control, the mean oracle value of the samples asked for each of its classes. */
  oracleMeans: Record<string, number[]>;
  confusion: number[][];
  frechetDistance: number;
}

/** The joint class of per-control classes, mixed radix with the first control most significant. */
export function jointClass(classes: readonly number[], columns: readonly Pick<LabelColumn, "numClasses">[]): number {
  return columns.reduce((index, column, i) => index * column.numClasses + classes[i]!, 0);
}

/** n targets per control whose joint classes are split equally (the first ones get one more). */
export function jointTargets(n: number, columns: readonly Pick<LabelColumn, "name" | "numClasses">[]): Record<string, number[]> {
  const joint = columns.reduce((k, c) => k * c.numClasses, 1);
  const targets: Record<string, number[]> = Object.fromEntries(columns.map((c) => [c.name, [] as number[]]));
  for (let i = 0; i < n; i++) {
    let rest = Math.floor((i * joint) / n);
    const digits = columns.map(() => 0);
    for (let c = columns.length - 1; c >= 0; c--) {
      digits[c] = rest % columns[c]!.numClasses;
      rest = Math.floor(rest / columns[c]!.numClasses);
    }
    columns.forEach((column, c) => targets[column.name]!.push(digits[c]!));
  }
  return targets;
}

export interface JudgeContext {
  worker: Worker;
  /** A classifier handle whose penultimate features measure quality. */
  classifier: string;
  realFeatures: Float32Array[];
  columns: LabelColumn[];
}

export async function judge(context: JudgeContext, images: ImageBatch, targets: Record<string, number[]>): Promise<Judgement> {
  const { columns } = context;
  const judged: number[][] = [];
  const perControl: Record<string, number> = {};
  const oracleMeans: Record<string, number[]> = {};
  for (const column of columns) {
    const asked = targets[column.name];
    if (!asked || asked.length !== images.count) throw new RangeError(`judge: ${images.count} samples but ${asked?.length ?? 0} targets for ${column.name}`);
    const { values, classes } = await oracleClasses(ORACLES[column.oracle], images, column.thresholds);
    judged.push(classes);
    perControl[column.name] = accuracy(asked, classes);
    oracleMeans[column.name] = Array.from({ length: column.numClasses }, (_, k) => mean(values.filter((_, i) => asked[i] === k)));
  }
  const sampleClasses = (source: number[][], i: number) => source.map((classes) => classes[i]!);
  const askedRows = columns.map((c) => targets[c.name]!);
  const jointAsked = Array.from({ length: images.count }, (_, i) => jointClass(sampleClasses(askedRows, i), columns));
  const jointJudged = Array.from({ length: images.count }, (_, i) => jointClass(sampleClasses(judged, i), columns));
  const numJoint = columns.reduce((k, c) => k * c.numClasses, 1);
  const scores = await context.worker.classifierLogits({ classifier: context.classifier, images: uint8Tensor(images), returnFeatures: true });
  const rows = (features: Float32Array[]) => features.map((row) => Array.from(row));
  return {
    accuracy: accuracy(jointAsked, jointJudged),
    macroF1: macroF1(jointAsked, jointJudged, numJoint),
    perControl,
    oracleMeans,
    confusion: confusionMatrix(jointAsked, jointJudged, numJoint),
    frechetDistance: frechetDistance(rows(scores.features!), rows(context.realFeatures)),
  };
}
