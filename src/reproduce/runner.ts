/**
 * Runs one method of one experiment in its own worker, judges its drafts against the oracles in
 * that worker, writes a sample grid per draft and returns the table rows with the worker's peak
 * memory and the timings.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { imageGrid } from "../eval/grid.js";
import { type ImageBatch, selectImages } from "../worker/tensors.js";
import { judge } from "./evaluate.js";
import { type Experiment, type MethodContext, METHODS, type MethodName } from "./methods.js";
import { type SessionSettings, withSession } from "./session.js";
import { QUALITY_NAME, type TableRow } from "./table.js";

export interface Judge {
  /** The classifier whose features measure quality, and the held-out offline features. */
  classifierDir: string;
  realFeatures: Float32Array[];
}

const GRID_PER_CLASS = 8;

export async function runMethod(
  base: Omit<MethodContext, "session">,
  settings: SessionSettings,
  name: MethodName,
  judgeWith: Judge,
  outDir: string,
): Promise<TableRow[]> {
  const { exp, config } = base;
  const { value, peakRssBytes } = await withSession(settings, `${exp.slug}-${name}`, async (session) => {
    const drafts = await METHODS[name]({ ...base, session });
    const context = {
      worker: session.worker,
      classifier: await session.classifier(judgeWith.classifierDir),
      realFeatures: judgeWith.realFeatures,
      columns: exp.controls.map((c) => c.column),
    };
    const rows: Omit<TableRow, "peak_rss_mb">[] = [];
    for (const draft of drafts) {
      const judgement = await judge(context, draft.images, exp.targets);
      const grid = await writeGrid(outDir, exp, `${name}${draft.setting ? `-${draft.setting.replace(/[^a-z0-9.]+/gi, "")}` : ""}`, draft.images);
      rows.push({
        experiment: exp.id,
        task: exp.task,
        method: name,
        setting: draft.setting,
        accuracy: judgement.accuracy,
        macro_f1: judgement.macroF1,
        accuracy_per_control: judgement.perControl,
        n_samples: draft.images.count,
        mean_kl: draft.meanKl,
        kl_kind: draft.klKind,
        quality: { name: QUALITY_NAME, value: judgement.frechetDistance },
        train_seconds: draft.trainSeconds,
        sample_seconds: draft.sampleSeconds,
        seconds: draft.trainSeconds + draft.sampleSeconds,
        labelled_images: draft.labelledImages,
        joint_labelled_images: draft.jointLabelledImages,
        unet_passes_per_image: draft.unetPassesPerImage,
        seed: config.seed,
        evaluation_seed: config.evaluation.seed,
        oracle_means: judgement.oracleMeans,
        confusion: judgement.confusion,
        grid,
      });
    }
    return rows;
  });
  const peak = peakRssBytes === null ? null : peakRssBytes / 2 ** 20;
  return value.map((row) => ({ ...row, peak_rss_mb: peak }));
}

/** The first samples asked for each joint class, one class per grid row. */
async function writeGrid(outDir: string, exp: Experiment, name: string, images: ImageBatch): Promise<string> {
  const columns = exp.controls.map((c) => exp.targets[c.column.name]!);
  const key = (i: number) => columns.map((targets) => targets[i]).join(",");
  const keys = [...new Set(Array.from({ length: images.count }, (_, i) => key(i)))];
  const indices = keys.flatMap((k) => Array.from({ length: images.count }, (_, i) => i).filter((i) => key(i) === k).slice(0, GRID_PER_CLASS));
  const file = path.join("grids", `${exp.slug}-${name}.png`);
  mkdirSync(path.join(outDir, "grids"), { recursive: true });
  writeFileSync(path.join(outDir, file), await imageGrid(selectImages(images, indices), { columns: GRID_PER_CLASS, scale: 2 }));
  return file;
}
