/**
 * The default offline datasets: samples of the pre-trained model (as the paper labelled Stable
 * Diffusion's samples) or images from the project's synthetic generator (the backbone's training
 * distribution), labelled by an exact oracle into classes whose thresholds are the quantiles of
 * the pre-trained model's samples.
 * Written in the user format (a folder of PNGs plus labels.csv) and loaded like any user dataset.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import sharp from "sharp";
import { quantileThresholds } from "../rewards/oracles.js";
import type { Dataset } from "../gen/ctrl/v1/worker.js";
import { type ImageBatch, imageAt } from "../worker/tensors.js";
import type { Worker } from "../worker/worker.js";
import { type Oracle, oracleClasses } from "./oracle.js";

export interface LabelledFolder {
  folder: string;
  column: string;
  labels: number[];
  values: number[];
}

/** Thresholds splitting the reference samples' oracle values into classes of equal count. */
export async function referenceThresholds(oracle: Oracle, reference: ImageBatch, numClasses: number): Promise<number[]> {
  return quantileThresholds(await oracle.measure(reference), numClasses);
}

/** Writes images as PNG files plus labels.csv (file, label column, raw oracle value). */
export async function writeLabelledFolder(
  folder: string,
  images: ImageBatch,
  oracle: Oracle,
  thresholds: number[],
): Promise<LabelledFolder> {
  const { values, classes } = await oracleClasses(oracle, images, thresholds);
  mkdirSync(path.join(folder, "images"), { recursive: true });
  const names = Array.from({ length: images.count }, (_, i) => `images/${String(i).padStart(6, "0")}.png`);
  await writePngs(folder, names, images);
  const rows = names.map((name, i) => `${name},${classes[i]},${values[i]}`);
  writeFileSync(path.join(folder, "labels.csv"), `file,${oracle.name},${oracle.name}_value\n${rows.join("\n")}\n`);
  return { folder, column: oracle.name, labels: classes, values };
}

/** Writes each image as a PNG file at its name (relative to `folder`), a few at a time. */
export async function writePngs(folder: string, names: string[], images: ImageBatch, concurrency = 8): Promise<void> {
  const { width, height, channels } = images;
  let next = 0;
  const workers = Array.from({ length: concurrency }, async () => {
    while (next < names.length) {
      const i = next++;
      const raw = { width, height, channels: channels as 1 | 3 };
      await sharp(Buffer.from(imageAt(images, i)), { raw }).png().toFile(path.join(folder, names[i]!));
    }
  });
  await Promise.all(workers);
}

/**
 * Labels, writes and loads a default dataset for one oracle. Thresholds come from the reference
 * samples when given, else from the dataset's own images.
 */
export async function buildDefaultDataset(
  worker: Worker,
  options: { folder: string; images: ImageBatch; oracle: Oracle; numClasses: number; reference?: ImageBatch },
): Promise<{ dataset: Dataset; labelled: LabelledFolder; thresholds: number[] }> {
  const { images } = options;
  const thresholds = await referenceThresholds(options.oracle, options.reference ?? images, options.numClasses);
  const labelled = await writeLabelledFolder(options.folder, images, options.oracle, thresholds);
  const dataset = await worker.loadDataset(options.folder, { labelColumns: [labelled.column] });
  return { dataset, labelled, thresholds };
}
