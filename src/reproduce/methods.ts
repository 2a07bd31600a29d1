/**
 * CTRL and the baselines as the comparison runs them, for one or several controls alike. Each
 * returns drafts (images asked for the experiment's targets, their cost and KL); the algorithms
 * themselves live in src/ctrl and src/baselines.
 */
import { type ClassifierFreeSettings, trainClassifierFree } from "../baselines/classifierFree.js";
import { bestOfN, bestOfNKlBound } from "../baselines/bestOfN.js";
import { type Guidance, sampleGuided } from "../baselines/guidance.js";
import { addControl, createOptimizer } from "../ctrl/augment.js";
import { trainClassifier } from "../ctrl/classifier.js";
import type { ExperimentConfig } from "../ctrl/config.js";
import { meanOrNull } from "../ctrl/evaluate.js";
import { finetune } from "../ctrl/finetune.js";
import { deriveSeed } from "../ctrl/random.js";
import type { Run } from "../ctrl/runs.js";
import { ctrlReward } from "../rewards/expression.js";
import type { ImageBatch } from "../worker/tensors.js";
import type { ReproduceConfig } from "./config.js";
import type { LabelColumn, OfflineData, Subset } from "./data.js";
import type { Session } from "./session.js";

/** One control of an experiment: its label column, its own offline rows and its clean classifier. */
export interface ControlSpec {
  column: LabelColumn;
  subset: Subset;
  classifier: { directory: string; seconds: number };
}

export interface Experiment {
  /** The table's group: "single-control", "multi-control", "sample-efficiency". */
  id: string;
  /** Names its files (metrics folder, grids): the id, with the dataset size for sample efficiency. */
  slug: string;
  task: string;
  controls: ControlSpec[];
  /** Rows labelled with every control: what classifier-free guidance trains on. */
  jointData: Subset;
  /** The guidance scales w of classifier-free guidance in this experiment. */
  cfgScales: number[];
  /** CTRL's KL weights alpha in this experiment: one fine-tuning each. */
  ctrlKlWeights: number[];
  /** Per control, the class each evaluation sample is asked for. */
  targets: Record<string, number[]>;
  run: Run;
}

export type MethodName = "pretrained" | "ctrl" | "cfg" | "reconstruction" | "classifier-guidance" | "best-of-n";

export type KlKind = "trajectory" | "best-of-n bound" | "none";

export interface Draft {
  method: MethodName;
  /** The setting within the method, e.g. "w = 2"; "" when there is one. */
  setting: string;
  images: ImageBatch;
  trainSeconds: number;
  sampleSeconds: number;
  meanKl: number | null;
  klKind: KlKind;
  /** Offline images whose labels this method used. */
  labelledImages: number;
  /** Of those, images labelled with every control at once (multi-control only). */
  jointLabelledImages: number | null;
  /** UNet forward and backward passes per sampled image (training excluded). */
  unetPassesPerImage: number;
}

export interface MethodContext {
  config: ReproduceConfig;
  experiment: ExperimentConfig;
  data: OfflineData;
  session: Session;
  exp: Experiment;
}

const seconds = (since: number) => (performance.now() - since) / 1000;
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const numSamples = (exp: Experiment) => Object.values(exp.targets)[0]!.length;
const classifierRows = (exp: Experiment) => sum(exp.controls.map((c) => c.subset.rows.length));
const classifierSeconds = (exp: Experiment) => sum(exp.controls.map((c) => c.classifier.seconds));

/** Times a sampling call. */
async function timed<T>(body: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await body();
  return { value, seconds: seconds(started) };
}

async function pretrained({ config, session, exp }: MethodContext): Promise<Draft[]> {
  const { value, seconds } = await timed(() => session.worker.sample(session.request(session.backbone.handle, numSamples(exp), config.evaluation.seed)));
  const steps = session.timesteps.length;
  return [{ method: "pretrained", setting: "", images: value, trainSeconds: 0, sampleSeconds: seconds, meanKl: 0, klKind: "none", labelledImages: 0, jointLabelledImages: null, unetPassesPerImage: steps }];
}

async function ctrl({ config, experiment, session, exp }: MethodContext): Promise<Draft[]> {
  const { worker } = session;
  const fields = exp.controls.map((c) => ({ name: c.column.name, numClasses: c.column.numClasses }));
  const classifiers = await Promise.all(exp.controls.map(async (c) => ({ classifier: await session.classifier(c.classifier.directory), field: c.column.name })));
  const drafts: Draft[] = [];
  const dimensions = session.backbone.sampleShape.reduce((a, b) => a * b, 1);
  for (const klWeight of exp.ctrlKlWeights) {
    // One fine-tuning per KL weight, each from the pre-trained model (one control at a time).
    const control = await addControl(worker, session.backbone.handle, fields, experiment.control, deriveSeed(config.seed, "lora-init"));
    const optimizer = await createOptimizer(worker, control.handle, experiment.finetune);
    const started = performance.now();
    const target = {
      control: control.handle,
      optimizer: optimizer.handle,
      fields: fields.map((f) => ({ name: f.name, weights: Array.from({ length: f.numClasses }, () => 1) })),
      timesteps: session.timesteps,
      reward: ctrlReward(classifiers, klWeight, dimensions, experiment.finetune.confidenceCap),
    };
    exp.run.logMetrics({ phase: "ctrl-kl-weight", kl_weight: klWeight });
    await finetune(worker, target, { ...experiment, finetune: { ...experiment.finetune, klWeight } }, exp.run, 0, async () => undefined);
    const trainSeconds = classifierSeconds(exp) + seconds(started);
    const { value, seconds: sampleSeconds } = await timed(() =>
      worker.sample({ ...session.request(control.handle, numSamples(exp), config.evaluation.seed), labels: exp.targets, computeKl: true }),
    );
    await worker.release(control.handle);
    drafts.push({
      method: "ctrl",
      setting: ctrlSetting(klWeight, experiment.finetune.klWeightRamp),
      images: value,
      trainSeconds,
      sampleSeconds,
      meanKl: meanOrNull(value.kl),
      klKind: "trajectory",
      labelledImages: classifierRows(exp),
      jointLabelledImages: exp.controls.length > 1 ? 0 : null,
      unetPassesPerImage: session.timesteps.length,
    });
  }
  return drafts;
}

/** The row setting of CTRL at a KL weight (rising to klWeight * ramp over fine-tuning when ramp > 1). */
export function ctrlSetting(klWeight: number, ramp: number): string {
  return ramp === 1 ? `KL weight ${klWeight}` : `KL weight ${klWeight} to ${klWeight * ramp}`;
}

/** Samples with guidance at each setting; `extra` describes the cost and the data of all of them. */
async function guided(
  { config, session, exp }: MethodContext,
  method: MethodName,
  settings: { setting: string; guidance: Guidance[] }[],
  extra: Pick<Draft, "trainSeconds" | "labelledImages" | "jointLabelledImages" | "unetPassesPerImage">,
): Promise<Draft[]> {
  const drafts: Draft[] = [];
  for (const { setting, guidance } of settings) {
    const { value, seconds } = await timed(() =>
      sampleGuided(session.worker, { ...session.loop(), backbone: session.backbone.handle, numSamples: numSamples(exp), seed: config.evaluation.seed, guidance, computeKl: true }),
    );
    drafts.push({ method, setting, images: value, sampleSeconds: seconds, meanKl: meanOrNull(value.kl), klKind: "trajectory", ...extra });
  }
  return drafts;
}

async function cfg(context: MethodContext): Promise<Draft[]> {
  const { config, experiment, data, session, exp } = context;
  const { worker } = session;
  const settings: ClassifierFreeSettings = config.classifierFree;
  const dataset = await session.dataset(data.folder, exp.jointData);
  const labels = Object.fromEntries(exp.controls.map((c) => [c.column.name, dataset.columns.find((d) => d.name === c.column.name)!.labels]));
  const fields = exp.controls.map((c) => ({ name: c.column.name, numClasses: c.column.numClasses }));
  // CFG as the literature trains it: one LoRA shared by every label (and by the dropped label).
  const cfgControl = { ...experiment.control, loraPerLabel: false };
  const control = await addControl(worker, session.backbone.handle, fields, cfgControl, deriveSeed(config.seed, "cfg-lora-init"));
  const optimizer = await createOptimizer(worker, control.handle, settings);
  const target = { control: control.handle, optimizer: optimizer.handle, numTrainTimesteps: session.backbone.numTrainTimesteps };
  const report = await trainClassifierFree(worker, target, { dataset: dataset.handle, labels }, settings, deriveSeed(config.seed, "cfg"), exp.run);
  exp.run.logMetrics({ phase: "cfg-summary", ...report });
  const unconditional = config.classifierFree.unconditional;
  return guided(
    context,
    "cfg",
    exp.cfgScales.map((w) => ({ setting: `w = ${w}`, guidance: [{ kind: "classifier-free", scale: w, control: control.handle, labels: exp.targets, unconditional }] })),
    {
      trainSeconds: report.seconds,
      labelledImages: exp.jointData.rows.length,
      jointLabelledImages: exp.controls.length > 1 ? exp.jointData.rows.length : null,
      unetPassesPerImage: 2 * session.timesteps.length,
    },
  );
}

/**
 * Classifier-gradient guidance at each scale: one term per control, with that control's
 * classifier (clean for reconstruction guidance, noise-aware for classifier guidance).
 */
function gradientGuidance(
  context: MethodContext,
  method: "reconstruction" | "classifier-guidance",
  classifiers: string[],
  scales: number[],
  extra: Pick<Draft, "trainSeconds" | "unetPassesPerImage">,
): Promise<Draft[]> {
  const { exp } = context;
  const kind = method === "reconstruction" ? "reconstruction" : "classifier";
  return guided(
    context,
    method,
    scales.map((s) => ({
      setting: `s = ${s}`,
      guidance: exp.controls.map((c, i): Guidance => ({ kind, scale: s, classifier: classifiers[i]!, targets: exp.targets[c.column.name]! })),
    })),
    { ...extra, labelledImages: classifierRows(exp), jointLabelledImages: exp.controls.length > 1 ? 0 : null },
  );
}

async function reconstruction(context: MethodContext): Promise<Draft[]> {
  const { config, session, exp } = context;
  const classifiers = await Promise.all(exp.controls.map((c) => session.classifier(c.classifier.directory)));
  return gradientGuidance(context, "reconstruction", classifiers, config.reconstruction.scales, {
    trainSeconds: classifierSeconds(exp),
    unetPassesPerImage: 2 * session.timesteps.length, // forward, and backward for the gradient through x0_hat
  });
}

async function classifierGuidance(context: MethodContext): Promise<Draft[]> {
  const { config, experiment, data, session, exp } = context;
  const started = performance.now();
  const classifiers: string[] = [];
  for (const c of exp.controls) {
    const dataset = await session.dataset(data.folder, c.subset);
    const column = dataset.columns.find((d) => d.name === c.column.name)!;
    const report = await trainClassifier(
      session.worker,
      { dataset: dataset.handle, column: column.name, numClasses: column.numClasses, labels: column.labels, imageShape: dataset.imageShape },
      { ...experiment, classifier: { ...experiment.classifier, epochs: config.classifierGuidance.epochs } },
      exp.run,
      { noise: { backbone: session.backbone.handle, timesteps: session.timesteps }, phase: `noisy-classifier-${c.column.name}` },
    );
    classifiers.push(report.handle);
  }
  return gradientGuidance(context, "classifier-guidance", classifiers, config.classifierGuidance.scales, {
    trainSeconds: seconds(started),
    unetPassesPerImage: session.timesteps.length,
  });
}

async function bestOfNMethod({ config, session, exp }: MethodContext): Promise<Draft[]> {
  const scorers = await Promise.all(exp.controls.map(async (c) => ({ classifier: await session.classifier(c.classifier.directory), targets: exp.targets[c.column.name]! })));
  const drafts: Draft[] = [];
  for (const n of config.bestOfN.n) {
    const { value, seconds } = await timed(() =>
      bestOfN(session.worker, {
        n,
        scorers,
        seed: config.evaluation.seed,
        sample: (seed) => session.worker.sample(session.request(session.backbone.handle, numSamples(exp), seed)),
      }),
    );
    drafts.push({
      method: "best-of-n",
      setting: `N = ${n}`,
      images: value.images,
      trainSeconds: classifierSeconds(exp),
      sampleSeconds: seconds,
      meanKl: bestOfNKlBound(n),
      klKind: "best-of-n bound",
      labelledImages: classifierRows(exp),
      jointLabelledImages: exp.controls.length > 1 ? 0 : null,
      unetPassesPerImage: n * session.timesteps.length,
    });
  }
  return drafts;
}

export const METHODS: Record<MethodName, (context: MethodContext) => Promise<Draft[]>> = {
  pretrained,
  ctrl,
  cfg,
  reconstruction,
  "classifier-guidance": classifierGuidance,
  "best-of-n": bestOfNMethod,
};
