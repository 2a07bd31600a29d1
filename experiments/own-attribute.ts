/**
 * A control nobody tuned for: a user labels the pre-trained model's own samples with an attribute
 * of their own, colourfulness (Hasler and Süsstrunk 2003; no shipped oracle measures it), and runs
 *
 *   npx ctrl train --data DIR --label-column colourfulness
 *
 * with no config. This script does exactly that, then judges the trained control by the attribute
 * itself (the run's own report can only use its classifier, since ctrl knows no oracle for it).
 *
 *   node --import tsx experiments/own-attribute.ts [--out runs/own-attribute] [--images 2000] [--samples 256]
 *
 * Writes OUT/data/ (the labelled folder), OUT/runs/<id>/ (the CTRL run) and OUT/result.json.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { execa } from "execa";
import { integer } from "../src/cli/options.js";
import { writePngs } from "../src/ctrl/datasets.js";
import { equalSplit } from "../src/ctrl/evaluate.js";
import { parseConfig } from "../src/ctrl/config.js";
import { resolveControlDirectory, readSamplerRecord } from "../src/ctrl/controls.js";
import { accuracy, confusionMatrix, macroF1, mean } from "../src/eval/metrics.js";
import { binLabels, quantileThresholds } from "../src/rewards/oracles.js";
import { ddimTimesteps, samplerTimesteps } from "../src/sampling/schedules.js";
import { type ImageBatch, imageAt } from "../src/worker/tensors.js";
import { Worker } from "../src/worker/worker.js";

/** Hasler-Süsstrunk colourfulness: spread and mean of the opponent channels rg = R - G, yb = (R + G) / 2 - B. */
export function colourfulness(image: Uint8Array): number {
  const n = image.length / 3;
  let [sumRg, sumYb, sumRg2, sumYb2] = [0, 0, 0, 0];
  for (let i = 0; i < image.length; i += 3) {
    const rg = image[i]! - image[i + 1]!;
    const yb = 0.5 * (image[i]! + image[i + 1]!) - image[i + 2]!;
    sumRg += rg;
    sumYb += yb;
    sumRg2 += rg * rg;
    sumYb2 += yb * yb;
  }
  const [meanRg, meanYb] = [sumRg / n, sumYb / n];
  const spread = Math.sqrt(Math.max(sumRg2 / n - meanRg ** 2, 0) + Math.max(sumYb2 / n - meanYb ** 2, 0));
  return spread + 0.3 * Math.hypot(meanRg, meanYb);
}

function values(batch: ImageBatch): number[] {
  return Array.from({ length: batch.count }, (_, i) => colourfulness(imageAt(batch, i)));
}

interface Flags {
  out: string;
  images: number;
  samples: number;
  backbone: string;
}

const program = new Command()
  .name("own-attribute")
  .description("label the pre-trained model's samples by colourfulness, train with `ctrl train --data` and no config, judge by colourfulness")
  .option("--out <dir>", "output folder", "runs/own-attribute")
  .option("--images <n>", "labelled offline images", integer(8, 100_000), 2000)
  .option("--samples <n>", "evaluation samples (split equally over the 4 classes)", integer(4, 4096), 256)
  .option("--backbone <dir>", "the pre-trained model", "models/default")
  .action(async (flags: Flags) => {
    const data = path.join(flags.out, "data");
    const worker = await Worker.start({ device: "auto" });
    let thresholds: number[];
    try {
      // 1. The user's labelling: the pre-trained model's own samples (the sampler `ctrl train` uses by default), cut at quartiles.
      const backbone = await worker.loadBackbone(flags.backbone);
      const { sampler } = parseConfig({});
      const timesteps = samplerTimesteps(sampler, backbone);
      const images = await worker.sample({ model: backbone.handle, numSamples: flags.images, timesteps, eta: sampler.eta, seed: 12345, batchSize: 256 });
      const scores = values(images);
      thresholds = quantileThresholds(scores, 4);
      const labels = binLabels(scores, thresholds, "ascending");
      const names = labels.map((_, i) => `images/${String(i).padStart(6, "0")}.png`);
      mkdirSync(path.join(data, "images"), { recursive: true });
      await writePngs(data, names, images);
      writeFileSync(path.join(data, "labels.csv"), `file,colourfulness\n${names.map((n, i) => `${n},${labels[i]}`).join("\n")}\n`);
      process.stderr.write(`own-attribute: ${flags.images} samples labelled by colourfulness, thresholds ${thresholds.map((t) => t.toFixed(1)).join(" / ")}\n`);
    } finally {
      await worker.close();
    }

    // 2. Exactly the command a user types, no config.
    const runsDir = path.join(flags.out, "runs");
    await execa("npx", ["ctrl", "train", "--data", data, "--label-column", "colourfulness", "--backbone", flags.backbone, "--runs-dir", runsDir], { stdio: "inherit" });

    // 3. Judge the trained control by colourfulness itself, beside the pre-trained model (same seed).
    const judge = await Worker.start({ device: "auto" });
    try {
      const backbone = await judge.loadBackbone(flags.backbone);
      const checkpoint = resolveControlDirectory(path.join(runsDir, "latest"));
      const sampler = readSamplerRecord(checkpoint)!;
      const timesteps = ddimTimesteps({ numTrainTimesteps: backbone.numTrainTimesteps, steps: sampler.steps, offset: sampler.offset });
      const control = await judge.loadControl(backbone.handle, checkpoint);
      const targets = equalSplit(flags.samples, 4);
      const request = { numSamples: targets.length, timesteps, eta: sampler.eta, seed: 42, batchSize: 128 };
      const rows = [];
      for (const [method, model, labels] of [
        ["pretrained", backbone.handle, undefined],
        ["ctrl", control.handle, { colourfulness: targets }],
      ] as const) {
        const scores = values(await judge.sample({ ...request, model, labels }));
        const judged = binLabels(scores, thresholds, "ascending");
        const perClass = [0, 1, 2, 3].map((c) => mean(scores.filter((_, i) => targets[i] === c)));
        rows.push({ method, accuracy: accuracy(targets, judged), macro_f1: macroF1(targets, judged, 4), mean_colourfulness_per_asked_class: perClass, confusion: confusionMatrix(targets, judged, 4) });
        process.stdout.write(`${method.padEnd(10)} accuracy ${accuracy(targets, judged).toFixed(3)}  macro-F1 ${macroF1(targets, judged, 4).toFixed(3)}  colourfulness per asked class ${perClass.map((v) => v.toFixed(1)).join(" / ")}\n`);
      }
      writeFileSync(path.join(flags.out, "result.json"), `${JSON.stringify({ attribute: "colourfulness (Hasler-Süsstrunk)", thresholds, checkpoint, rows }, null, 2)}\n`);
    } finally {
      await judge.close();
    }
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`own-attribute: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
