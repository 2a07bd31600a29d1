/**
 * `make reproduce`: the paper's comparison on one backbone. One pool of offline images; clean
 * classifiers; then CTRL and the baselines, each in its own worker, on a single control
 * (compressibility, 4 classes), on two controls learned from disjoint datasets (compressibility x
 * brightness), and on offline datasets of growing size (sample efficiency). Writes table.json,
 * table.md and report.html (plus sample grids and the sample-efficiency plot) into the output folder.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { trainRewardClassifier } from "../ctrl/classifier.js";
import { type ExperimentConfig, parseConfig } from "../ctrl/config.js";
import { deriveSeed } from "../ctrl/random.js";
import { cachedSamples } from "../ctrl/sampleCache.js";
import { Run } from "../ctrl/runs.js";
import type { ReproduceConfig } from "./config.js";
import { experimentConfig } from "./config.js";
import { type ColumnName, type OfflineData, type Subset, poolSize, writeOfflineData } from "./data.js";
import { jointTargets } from "./evaluate.js";
import { type ControlSpec, type Experiment, type MethodName, ctrlSetting } from "./methods.js";
import { writeOutputs } from "./outputs.js";
import { type Judge, runMethod } from "./runner.js";
import { type SessionSettings, withSession } from "./session.js";
import type { TableRow } from "./table.js";

export interface ReproduceOptions {
  python?: string;
  verbose?: boolean;
  /** Which preset the config came from, for the report. */
  preset?: string;
}

export interface ReproduceResult {
  outDir: string;
  rows: TableRow[];
  seconds: number;
}

export async function runReproduce(config: ReproduceConfig, options: ReproduceOptions = {}): Promise<ReproduceResult> {
  const started = performance.now();
  const outDir = path.resolve(config.outDir);
  prepareFolder(outDir);
  const root = Run.at(outDir);
  root.writeJson("config.json", { preset: options.preset ?? "custom", ...config });
  const experiment = parseConfig(experimentConfig(config));
  const settings: SessionSettings = {
    backbone: config.backbone,
    device: config.device,
    threads: config.threads,
    python: options.python,
    verbose: options.verbose,
    sampler: config.sampler,
    batchSize: config.evaluation.batchSize,
  };

  log(`offline data: ${poolSize(config.data)} samples of the pre-trained model, labelled by JPEG size and brightness`);
  const data = (
    await withSession(settings, "data", async (session) => {
      const request = session.request(session.backbone.handle, poolSize(config.data), deriveSeed(config.seed, "pool"));
      const { images } = await cachedSamples(session.worker, session.backbone, request, { dtype: "float32", autocast: "none" });
      return writeOfflineData(path.join(outDir, "data"), images, config.data);
    })
  ).value;

  log("clean classifiers: one per offline dataset");
  const trained = await trainClassifiers(settings, experiment, data, config, outDir);
  const single = (size: number) => trained.get(`compressibility-${size}`)!;
  const base = { config, experiment, data };
  const rows: TableRow[] = [];
  const run = async (exp: Experiment, methods: MethodName[], judge: Judge) => {
    for (const method of methods) {
      log(`${exp.slug}: ${method}`);
      const methodRows = await runMethod({ ...base, exp }, settings, method, judge, outDir);
      for (const row of methodRows) log(`  ${row.method} ${row.setting}: accuracy ${row.accuracy.toFixed(3)}, macro-F1 ${row.macro_f1.toFixed(3)}, ${row.seconds.toFixed(0)} s`);
      rows.push(...methodRows);
    }
  };

  const n = config.evaluation.numSamples;
  const { methods } = config;
  const singleControl = single(config.data.singleSize);
  const [mainKlWeight] = config.ctrl.klWeights as [number];
  const singleExp = experimentFor("single-control", "single-control", "compressibility (4 classes)", [singleControl.spec], data.single(config.data.singleSize), n, outDir, config.classifierFree.scales, config.ctrl.klWeights);
  await run(singleExp, methods.single, singleControl.judge);

  if (methods.multi.length) {
    const [a, b] = [trained.get("compressibility_2")!, trained.get("brightness_2")!];
    const task = "compressibility (2 classes) x brightness (2 classes)";
    await run(experimentFor("multi-control", "multi-control", task, [a.spec, b.spec], data.joint, n, outDir, config.classifierFree.scales, [mainKlWeight]), methods.multi, a.judge);
  }

  const scale = config.classifierFree.efficiencyScale;
  for (const size of methods.efficiency.length ? config.data.efficiencySizes : []) {
    // On the single-control dataset, CTRL (at the first KL weight) and CFG (at this scale) already ran: their rows count here too.
    const reused = (r: TableRow) => (r.method === "ctrl" && r.setting === ctrlSetting(mainKlWeight, experiment.finetune.klWeightRamp)) || (r.method === "cfg" && r.setting === `w = ${scale}`);
    const done = size === config.data.singleSize ? rows.filter((r) => r.experiment === "single-control" && reused(r)) : [];
    rows.push(...done.map((r) => ({ ...r, experiment: "sample-efficiency" })));
    const missing = methods.efficiency.filter((m) => !done.some((r) => r.method === m));
    if (!missing.length) continue;
    const exp = experimentFor("sample-efficiency", `sample-efficiency-${size}`, "compressibility (4 classes)", [single(size).spec], data.single(size), n, outDir, [scale], [mainKlWeight]);
    await run(exp, missing, singleControl.judge);
  }

  const seconds = (performance.now() - started) / 1000;
  await writeOutputs(outDir, config, rows, {
    seconds,
    preset: options.preset ?? "custom",
    classifiers: [...trained.values()].map((t) => t.summary),
    thresholds: Object.fromEntries(Object.values(data.columns).map((c) => [c.name, c.thresholds])),
  });
  log(`done in ${(seconds / 60).toFixed(1)} min: ${path.join(outDir, "table.md")}`);
  return { outDir, rows, seconds };
}

function experimentFor(
  id: string,
  slug: string,
  task: string,
  controls: ControlSpec[],
  jointData: Subset,
  n: number,
  outDir: string,
  cfgScales: number[],
  ctrlKlWeights: number[],
): Experiment {
  const targets = jointTargets(n, controls.map((c) => c.column));
  return { id, slug, task, controls, jointData, cfgScales, ctrlKlWeights, targets, run: Run.at(path.join(outDir, slug)) };
}

export interface ClassifierSummary {
  name: string;
  labelsFile: string;
  column: ColumnName;
  rows: number;
  heldOutAccuracy: number;
  temperature: number;
  seconds: number;
}

interface TrainedClassifier {
  spec: ControlSpec;
  judge: Judge;
  summary: ClassifierSummary;
}

/** Every clean classifier the experiments use, trained in one worker and saved; with held-out features for judging. */
async function trainClassifiers(settings: SessionSettings, experiment: ExperimentConfig, data: OfflineData, config: ReproduceConfig, outDir: string) {
  const sizes = new Set([config.data.singleSize, ...(config.methods.efficiency.length ? config.data.efficiencySizes : [])]);
  const wanted: [string, Subset, ColumnName][] = [
    ...[...sizes].map((size): [string, Subset, ColumnName] => [`compressibility-${size}`, data.single(size), "compressibility"]),
    ...(config.methods.multi.length
      ? ([
          ["compressibility_2", data.multiA, "compressibility_2"],
          ["brightness_2", data.multiB, "brightness_2"],
        ] as [string, Subset, ColumnName][])
      : []),
  ];
  const { value } = await withSession(settings, "classifiers", async (session) => {
    const trained = new Map<string, TrainedClassifier>();
    for (const [name, subset, column] of wanted) {
      const started = performance.now();
      const dataset = await session.dataset(data.folder, subset);
      const labels = dataset.columns.find((c) => c.name === column)!;
      const run = Run.at(path.join(outDir, "classifiers", name));
      log(`  ${name}: ${dataset.size} images (counts ${labels.counts.join("/")})`);
      const report = await trainRewardClassifier(
        session.worker,
        { dataset: dataset.handle, column, numClasses: labels.numClasses, labels: labels.labels, imageShape: dataset.imageShape },
        experiment,
        run,
      );
      const directory = run.path("classifier");
      await session.worker.saveClassifier(report.handle, directory);
      const seconds = (performance.now() - started) / 1000;
      const features = await session.worker.classifierLogits({ classifier: report.handle, dataset: dataset.handle, labelColumn: column, indices: report.heldOut, returnFeatures: true });
      trained.set(name, {
        spec: { column: data.columns[column], subset, classifier: { directory, seconds } },
        judge: { classifierDir: directory, realFeatures: features.features! },
        summary: { name, labelsFile: subset.labelsFile, column, rows: dataset.size, heldOutAccuracy: report.heldOutAccuracy, temperature: report.temperature, seconds },
      });
    }
    return trained;
  });
  return value;
}

/** An output folder is made fresh: a folder from an earlier reproduction (it has config.json) is replaced, anything else refused. */
function prepareFolder(outDir: string): void {
  if (!existsSync(outDir) || readdirSync(outDir).length === 0) return;
  if (!existsSync(path.join(outDir, "config.json"))) {
    throw new Error(`outDir: ${outDir} is not empty and holds no earlier reproduction (config.json); choose another folder`);
  }
  rmSync(outDir, { recursive: true, force: true });
}

function log(message: string): void {
  process.stderr.write(`reproduce ${new Date().toISOString().slice(11, 19)}: ${message}\n`);
}
