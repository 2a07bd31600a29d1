/**
 * The whole CTRL pipeline on one backbone and one offline dataset, as an experimenter runs it:
 * 1. learn and calibrate p(y|x); 2. augment the backbone and fine-tune it by RL; 3. sample for
 * any label; then judge the samples against the oracle beside the pre-trained model, and write
 * summary.json and report.html. Resumable from the last checkpoint.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { type Backbone, type Dataset, DType } from "../gen/ctrl/v1/worker.js";
import { ctrlReward, describeReward } from "../rewards/expression.js";
import { samplerTimesteps } from "../sampling/schedules.js";
import { showProgress } from "../worker/progress.js";
import type { ImageBatch } from "../worker/tensors.js";
import { WorkerGroup, autoWorkerCount } from "../worker/group.js";
import type { SampleOptions, Worker } from "../worker/worker.js";
import { addControl, createOptimizer } from "./augment.js";
import { type RewardClassifierReport, trainRewardClassifier } from "./classifier.js";
import { DataParallel } from "./dataParallel.js";
import { ConfigError, type ConfigInput, type ExperimentConfig, parseConfig } from "./config.js";
import { writeSamplerRecord } from "./controls.js";
import { buildDefaultDataset } from "./datasets.js";
import { cachedSamples } from "./sampleCache.js";
import { type Evaluation, type Judge, diversityRatios, equalSplit, judgeSamples, meanOrNull } from "./evaluate.js";
import { NonFiniteTrainingError, adaptsKlWeight, finetune } from "./finetune.js";
import { ORACLES } from "./oracle.js";
import { type Restart, rewindRun, withRestarts } from "./recovery.js";
import { deriveSeed } from "./random.js";
import { type MethodResult, writeLabelGrids, writeRunReport } from "./reporting.js";
import { Run } from "./runs.js";
import { evaluationText } from "./text.js";

export interface RunOptions {
  /** Continue runs/<id> from its last checkpoint. */
  resume?: string;
  /** Print the worker's log. */
  verbose?: boolean;
  /** Where the worker's Python lives, if not python-worker/.venv. */
  python?: string;
  /** Overrides the config's device (also on resume). */
  device?: string;
  /** Called with each worker once it is up (every rank, and again after a restart); rank 0 first. */
  onWorkerStarted?: (worker: Worker, rank: number) => void;
  /**
   * Use workers started elsewhere (e.g. torchrun ranks on other machines, each listening on TCP)
   * instead of spawning them; they must form one process group. Such workers are not restarted.
   */
  attach?: { addresses: string[]; token?: string };
}

/** The run's sampler settings applied to one model, sample count and seed. */
type SampleRequestFor = (model: string, numSamples: number, seed: number) => SampleOptions;

/** What a resume needs, written as each stage completes. */
interface RunState {
  datasetFolder: string;
  labelColumn: string;
  numClasses: number;
  thresholds: number[] | null;
  classifier: Omit<RewardClassifierReport, "handle">;
  /** The pre-trained model's evaluation, once done. */
  reference: MethodResult | null;
  completedEpochs: number;
  checkpoint: string | null;
  finetuneSeconds: number;
  /** metrics.jsonl's size when this was saved: a resume cuts it back to this (see recovery.ts). */
  metricsBytes?: number;
}

function saveState(run: Run, state: RunState): void {
  run.writeJson("state.json", { ...state, metricsBytes: run.metricsBytes() });
}

export async function runCtrl(input: ConfigInput = {}, options: RunOptions = {}): Promise<{ run: Run; results: MethodResult[] }> {
  const resumed = options.resume ? Run.open(path.resolve(options.resume)) : undefined;
  const parsed = parseConfig(resumed ? resumed.readJson("config.json") : input);
  const config = options.attach ? absolutePaths(parsed) : parsed;
  if (config.dataset.kind === "folder" && !existsSync(config.dataset.path)) {
    throw new Error(`dataset.path: no folder ${config.dataset.path}`);
  }
  const current: { run?: Run } = { run: resumed }; // the run, once made: what a restart continues
  // Attached workers are someone else's to restart.
  return withRestarts(
    options.attach ? 0 : config.recovery.maxRestarts,
    async (restart) => {
      const device = options.device && options.device !== "auto" ? options.device : config.device;
      const group = options.attach
        ? await WorkerGroup.attach(options.attach.addresses, { token: options.attach.token })
        : await WorkerGroup.spawn(config.workers === "auto" ? autoWorkerCount(device, config.devices, config.finetune.batchSize) : config.workers, {
            device,
            devices: config.devices,
            python: options.python,
            threads: config.threads,
            onLog: options.verbose ? (line) => process.stderr.write(`[worker] ${line}\n`) : undefined,
          });
      group.workers.forEach((worker, rank) => options.onWorkerStarted?.(worker, rank));
      if (group.size > 1) log(`data parallel over ${group.size} workers`);
      const telemetry = group.primary.telemetry;
      const stopProgress = telemetry ? showProgress(telemetry, { tasks: ["sample"] }) : () => undefined;
      try {
        return await pipeline(new DataParallel(group), config, current, restart);
      } finally {
        stopProgress();
        await group.close();
      }
    },
    log,
  );
}

async function pipeline(workers: DataParallel, config: ExperimentConfig, current: { run?: Run }, restart: Restart | undefined) {
  const worker = workers.primary; // everything that is not sharded runs on rank 0
  const resumed = current.run;
  const started = performance.now();
  const loadBackbone = (w: Worker) => w.loadBackbone(config.backbone, precisionOptions(config.precision));
  const backbone = await loadBackbone(worker);
  await workers.replicate(backbone.handle, async (w) => (await loadBackbone(w)).handle);
  if (config.text && !backbone.textToImage) {
    throw new ConfigError([`text: ${config.backbone} is an unconditional ${backbone.modelClass}; prompts need a text-to-image backbone`]);
  }
  if (config.dataset.kind === "default" && config.dataset.images === "synthetic" && backbone.imageShape.join("x") !== SYNTHETIC_SHAPE) {
    throw new ConfigError([
      `dataset.images: the synthetic images are 32x32 RGB but ${config.backbone} makes [${backbone.imageShape.join(", ")}] images; use "samples" or a folder dataset`,
    ]);
  }
  const timesteps = samplerTimesteps(config.sampler, backbone);
  const offset = timesteps.at(-1)!; // the leading-spacing offset that gives the same timesteps: what sampler.json records
  const sampleRequest: SampleRequestFor = (model, numSamples, seed) => ({
    model,
    numSamples,
    timesteps,
    eta: config.sampler.eta,
    seed,
    batchSize: config.evaluation.batchSize,
    text: evaluationText(config, numSamples),
  });

  // A user's dataset is checked before anything is written; the default one is made in the run.
  let userDataset: Dataset | undefined;
  if (config.dataset.kind === "folder") {
    userDataset = await worker.loadDataset(config.dataset.path, { labelsFile: config.dataset.labelsFile, labelColumns: [config.dataset.labelColumn] });
  }
  if (userDataset && userDataset.imageShape.join("x") !== backbone.imageShape.join("x")) {
    throw new Error(
      `dataset.path: images are [${userDataset.imageShape.join(", ")}] (channels, height, width) but the backbone makes [${backbone.imageShape.join(", ")}]`,
    );
  }
  const run = resumed ?? Run.create(config.runsDir, config.task, config.seed);
  if (!resumed) run.writeJson("config.json", config);
  current.run = run;
  log(`${resumed ? "resuming" : "run"} ${run.dir}`);
  const saved = resumed && run.has("state.json") ? run.readJson<RunState>("state.json") : undefined;
  if (resumed) {
    const redone = rewindRun(run, saved, config.finetune.stepsPerEpoch);
    if (restart) {
      const from = saved?.checkpoint ?? (saved ? "the trained classifier" : "the start");
      run.logMetrics({ phase: "restart", restart: restart.count, reason: restart.reason, resumed_from: from, redone_steps: redone });
    }
  }

  let state: RunState;
  let dataset: Dataset;
  let classifierHandle: string;
  if (saved) {
    state = saved;
    dataset = userDataset ?? (await worker.loadDataset(state.datasetFolder, { labelColumns: [state.labelColumn] }));
    classifierHandle = (await worker.loadClassifier(run.path("classifier"))).handle;
  } else {
    ({ state, dataset, classifierHandle } = await prepare(workers, config, run, backbone, userDataset, sampleRequest));
    saveState(run, state);
  }
  await workers.replicate(classifierHandle, async (w) => (await w.loadClassifier(run.path("classifier"))).handle);

  const oracle = config.dataset.kind === "default" ? ORACLES[config.dataset.oracle] : undefined;
  const realFeatures = (
    await worker.classifierLogits({
      classifier: classifierHandle,
      dataset: dataset.handle,
      labelColumn: state.labelColumn,
      indices: state.classifier.heldOut,
      returnFeatures: true,
    })
  ).features!;
  const judge: Judge = {
    classifier: classifierHandle,
    oracle: oracle && state.thresholds ? { oracle, thresholds: state.thresholds } : undefined,
    numClasses: state.numClasses,
    realFeatures,
  };
  if (!state.reference) {
    state.reference = await evaluateReference(workers, run, config, judge, backbone.handle, state.labelColumn, sampleRequest);
    saveState(run, state);
  }

  // Step 2: the augmented model, fine-tuned by RL.
  const fields = [{ name: state.labelColumn, numClasses: state.numClasses }];
  // Every rank starts from the same parameters: the same seed, or the same checkpoint.
  const checkpoint = state.checkpoint;
  const setUpControl = (w: Worker, backboneHandle: string) =>
    checkpoint ? w.loadControl(backboneHandle, run.path(checkpoint)) : addControl(w, backboneHandle, fields, config.control, deriveSeed(config.seed, "lora-init"));
  const setUpOptimizer = async (w: Worker, controlHandle: string) => {
    const made = await createOptimizer(w, controlHandle, config.finetune);
    if (checkpoint) await w.loadOptimizerState(made.handle, run.path(checkpoint));
    return made;
  };
  const control = await setUpControl(worker, backbone.handle);
  await workers.replicate(control.handle, async (w, rank) => (await setUpControl(w, workers.on(rank, backbone.handle))).handle);
  const optimizer = await setUpOptimizer(worker, control.handle);
  await workers.replicate(optimizer.handle, async (w, rank) => (await setUpOptimizer(w, workers.on(rank, control.handle))).handle);
  const dimensions = backbone.sampleShape.reduce((a, b) => a * b, 1);
  const reward = ctrlReward([{ classifier: classifierHandle, field: state.labelColumn }], config.finetune.klWeight, dimensions, config.finetune.confidenceCap);
  const { klWeight, klWeightRamp, adaptiveKl } = config.finetune;
  const klWeightSchedule = adaptsKlWeight(reward, config.finetune)
    ? `; the KL weight adapts from ${klWeight} up to ${adaptiveKl.max} (finetune.adaptiveKl)`
    : klWeightRamp !== 1 && klWeight > 0
      ? `; the KL weight rises from ${klWeight} to ${klWeight * klWeightRamp} (finetune.klWeightRamp)`
      : "";
  log(`fine-tuning: reward = ${describeReward(reward)}${klWeightSchedule}; ${control.numLoraParameters} LoRA + ${control.numEmbeddingParameters} embedding parameters`);
  const finetuneStarted = performance.now();
  const secondsBefore = state.finetuneSeconds;
  await finetune(
    workers,
    {
      control: control.handle,
      optimizer: optimizer.handle,
      fields: [{ name: state.labelColumn, weights: config.finetune.labelWeights ?? Array.from({ length: state.numClasses }, () => 1) }],
      timesteps,
      reward,
    },
    config,
    run,
    state.completedEpochs,
    async (epoch) => {
      if (epoch % config.finetune.checkpointEvery !== 0 && epoch !== config.finetune.epochs) return;
      const checkpoint = path.join("checkpoints", `epoch-${String(epoch).padStart(4, "0")}`);
      // A resumed run redoes epochs after its last recorded checkpoint: replace what they left.
      await worker.saveControl(control.handle, run.path(checkpoint), { optimizer: optimizer.handle, overwrite: true });
      writeSamplerRecord(run.path(checkpoint), { steps: config.sampler.steps, eta: config.sampler.eta, offset, ...(config.text ? { guidanceScale: config.text.guidanceScale } : {}) });
      if (config.evaluation.checkpointSamples > 0) {
        const targets = equalSplit(config.evaluation.checkpointSamples, state.numClasses);
        const request = { ...sampleRequest(control.handle, targets.length, config.evaluation.seed), labels: { [state.labelColumn]: targets }, computeKl: true };
        await evaluateCheckpoint(workers, run, judge, { step: epoch * config.finetune.stepsPerEpoch, epoch }, targets, request, state.reference!.evaluation);
      }
      state = { ...state, completedEpochs: epoch, checkpoint, finetuneSeconds: secondsBefore + (performance.now() - finetuneStarted) / 1000 };
      saveState(run, state);
    },
  ).catch((error: unknown) => {
    if (error instanceof NonFiniteTrainingError) {
      error.message += `; the last good checkpoint: ${state.checkpoint ? run.path(state.checkpoint) : "none (no checkpoint was saved yet)"}`;
    }
    throw error;
  });

  // Step 3: conditional sampling for every label, judged like the reference.
  const evalStarted = performance.now();
  const targets = equalSplit(config.evaluation.numSamples, state.numClasses);
  const samples = await workers.sample({
    ...sampleRequest(control.handle, targets.length, config.evaluation.seed),
    labels: { [state.labelColumn]: targets },
    computeKl: true,
  });
  const sampleSeconds = (performance.now() - evalStarted) / 1000;
  const ctrl: MethodResult = {
    method: "ctrl",
    evaluation: await judgeSamples(worker, samples, targets, judge),
    meanKl: meanOrNull(samples.kl),
    trainSeconds: state.finetuneSeconds,
    sampleSeconds,
    grids: await writeLabelGrids(run, "ctrl", samples, targets, state.labelColumn),
  };
  const results = [state.reference!, ctrl];
  await writeRunReport(run, config, state.classifier, results, {
    reward: describeReward(reward),
    labelName: state.labelColumn,
    oracleUnit: oracle?.unit,
    thresholds: state.thresholds,
    totalSeconds: (performance.now() - started) / 1000,
  });
  log(`done: ${run.path("summary.json")}`);
  return { run, results };
}

/** Data, classifier and thresholds: everything before the reference evaluation. */
async function prepare(
  workers: DataParallel,
  config: ExperimentConfig,
  run: Run,
  backbone: Backbone,
  userDataset: Dataset | undefined,
  sampleRequest: SampleRequestFor,
) {
  const worker = workers.primary;
  let dataset: Dataset;
  let thresholds: number[] | null = null;
  let labelColumn: string;
  let datasetFolder: string;
  if (config.dataset.kind === "default") {
    const oracle = ORACLES[config.dataset.oracle];
    let reference;
    if (config.dataset.thresholdsFrom === "reference") {
      log(`sampling ${config.dataset.referenceSamples} pre-trained images to set the ${oracle.name} thresholds`);
      reference = await workers.sample(sampleRequest(backbone.handle, config.dataset.referenceSamples, deriveSeed(config.seed, "reference")));
    }
    const seed = deriveSeed(config.seed, "dataset");
    log(`making ${config.dataset.numImages} offline images (${config.dataset.images}), labelled by ${oracle.name}`);
    const images =
      config.dataset.images === "samples"
        ? await offlineSamples(workers, config, backbone, sampleRequest(backbone.handle, config.dataset.numImages, seed))
        : await worker.syntheticImages(config.dataset.numImages, seed);
    datasetFolder = run.path("dataset");
    const built = await buildDefaultDataset(worker, { folder: datasetFolder, images, oracle, numClasses: config.dataset.numClasses, reference });
    thresholds = built.thresholds;
    dataset = built.dataset;
    labelColumn = built.labelled.column;
  } else {
    dataset = userDataset!;
    labelColumn = config.dataset.labelColumn;
    datasetFolder = path.resolve(config.dataset.path);
  }
  const column = dataset.columns.find((c) => c.name === labelColumn);
  if (!column) throw new Error(`dataset: the worker returned no column ${labelColumn}`);
  const labels = column.labels;
  log(`classifier on ${dataset.size} images, ${column.numClasses} classes of ${labelColumn} (counts ${column.counts.join("/")})`);
  const classifier = await trainRewardClassifier(
    worker,
    { dataset: dataset.handle, column: labelColumn, numClasses: column.numClasses, labels, imageShape: dataset.imageShape },
    config,
    run,
  );
  await worker.saveClassifier(classifier.handle, run.path("classifier"));
  const { handle, ...classifierReport } = classifier;
  const state: RunState = {
    datasetFolder,
    labelColumn,
    numClasses: column.numClasses,
    thresholds,
    classifier: classifierReport,
    reference: null,
    completedEpochs: 0,
    checkpoint: null,
    finetuneSeconds: 0,
  };
  return { state, dataset, classifierHandle: handle };
}

/**
 * Accuracy and diversity against optimiser steps: a checkpoint's samples judged like the final
 * ones, into metrics.jsonl. Diversity is per asked class over that of the pre-trained samples
 * judged in the class (as in summary.json), so a collapse shows when it starts.
 */
async function evaluateCheckpoint(
  workers: DataParallel,
  run: Run,
  judge: Judge,
  at: { step: number; epoch: number },
  targets: number[],
  request: SampleOptions,
  reference: Evaluation,
): Promise<void> {
  const samples = await workers.sample(request);
  const evaluation = await judgeSamples(workers.primary, samples, targets, judge);
  run.logMetrics({
    phase: "checkpoint-eval",
    ...at,
    n_samples: targets.length,
    accuracy: evaluation.accuracy,
    macro_f1: evaluation.macroF1,
    classifier_accuracy: evaluation.classifierAccuracy,
    mean_kl: meanOrNull(samples.kl),
    diversity_vs_pretrained: diversityRatios(evaluation, reference, "diversity"),
    thumbnail_diversity_vs_pretrained: diversityRatios(evaluation, reference, "thumbnailDiversity"),
  });
}

/** The pre-trained model's samples for the offline dataset, from the sample cache when allowed. */
async function offlineSamples(workers: DataParallel, config: ExperimentConfig, backbone: Backbone, request: SampleOptions): Promise<ImageBatch> {
  if (config.dataset.kind !== "default" || !config.dataset.cache) return workers.sample(request);
  const { images, cached, entry } = await cachedSamples(workers, backbone, request, config.precision);
  log(cached ? `offline samples read from the cache (${entry})` : `offline samples cached in ${entry}`);
  return images;
}

/** The pre-trained model, sampled and judged exactly like CTRL: the reference row. */
async function evaluateReference(
  workers: DataParallel,
  run: Run,
  config: ExperimentConfig,
  judge: Judge,
  backbone: string,
  labelName: string,
  sampleRequest: SampleRequestFor,
): Promise<MethodResult> {
  const started = performance.now();
  const targets = equalSplit(config.evaluation.numSamples, judge.numClasses);
  const images = await workers.sample(sampleRequest(backbone, targets.length, config.evaluation.seed));
  const sampleSeconds = (performance.now() - started) / 1000;
  return {
    method: "pretrained",
    evaluation: await judgeSamples(workers.primary, images, targets, judge),
    meanKl: 0,
    trainSeconds: 0,
    sampleSeconds,
    grids: await writeLabelGrids(run, "pretrained", images, targets, labelName),
  };
}

/**
 * Attached workers resolve paths in their own folder, maybe on another machine: give them
 * absolute ones (which must reach the same files there, e.g. on a shared filesystem).
 */
function absolutePaths(config: ExperimentConfig): ExperimentConfig {
  const local = (file: string) => (existsSync(file) ? path.resolve(file) : file); // else a Hugging Face id
  const dataset = config.dataset.kind === "folder" ? { ...config.dataset, path: path.resolve(config.dataset.path) } : config.dataset;
  return { ...config, runsDir: path.resolve(config.runsDir), backbone: local(config.backbone), dataset };
}

// The project's synthetic offline images (ctrl_worker/data/synthetic.py), [channels, height, width].
const SYNTHETIC_SHAPE = "3x32x32";
const DTYPES = { float32: DType.DTYPE_FLOAT32, bfloat16: DType.DTYPE_BFLOAT16, float16: DType.DTYPE_FLOAT16 } as const;

function precisionOptions(precision: ExperimentConfig["precision"]): { dtype: DType; autocast?: DType } {
  return { dtype: DTYPES[precision.dtype], autocast: precision.autocast === "none" ? undefined : DTYPES[precision.autocast] };
}

function log(message: string): void {
  process.stderr.write(`ctrl: ${message}\n`);
}
