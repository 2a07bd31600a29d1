/**
 * The comparison's settings (`make reproduce`): one backbone, one pool of offline images, CTRL
 * and the baselines with the same sampler and evaluation. Two presets: QUICK (16.5 minutes on a
 * 2-core Intel Xeon VM from an empty sample cache, 39 on a 2-core AMD EPYC VM with CPU steal;
 * CTRL trains as `make run` does) and FULL.
 * Every field is validated with a message that names it.
 */
import { z } from "zod";
import { ConfigError, type ConfigInput, parseConfig, parseWithSchema } from "../ctrl/config.js";

const positiveInt = z.number().int().positive();
const nonNegative = z.number().min(0);
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const scales = z.array(nonNegative).min(1);
const method = z.enum(["pretrained", "ctrl", "cfg", "reconstruction", "classifier-guidance", "best-of-n"]);
const methods = <T extends z.ZodType>(item: T) => z.array(item).refine((names) => new Set(names).size === names.length, "each method once");

const optimizer = {
  loraLearningRate: z.number().positive(),
  embeddingLearningRate: z.number().positive(),
  weightDecay: nonNegative,
  maxGradNorm: nonNegative,
};

/** CTRL exactly as `make run` trains it (src/ctrl/config.ts defaults), so that it is compared at its best. */
const CTRL_DEFAULTS = parseConfig({});

export const reproduceSchema = z
  .object({
    seed: seed.default(0),
    backbone: z.string().min(1).default("models/default"),
    device: z.string().regex(/^(auto|cpu|cuda(:\d+)?)$/, "auto, cpu, cuda or cuda:N").default("auto"),
    /** torch CPU threads per worker; 0 leaves torch's default (one per core). */
    threads: z.number().int().min(0).max(256).default(0),
    outDir: z.string().min(1).default("runs/reproduce"),
    /** Which methods each experiment runs (an empty list skips the experiment). */
    methods: z
      .object({
        single: methods(method),
        multi: methods(method),
        efficiency: methods(z.enum(["ctrl", "cfg"])),
      })
      .strict(),
    data: z
      .object({
        /** Labelled rows of the single-control comparison (compressibility, 4 classes). */
        singleSize: positiveInt.min(20),
        /** Rows of each of the two disjoint multi-control datasets (compressibility, brightness; 2 classes each). */
        multiSize: positiveInt.min(20),
        /** Offline dataset sizes of the sample-efficiency curve (nested prefixes of the pool). */
        efficiencySizes: z.array(positiveInt.min(20)).min(1),
      })
      .strict(),
    sampler: z.object({ steps: positiveInt.max(1000), eta: z.number().min(0).max(1), spacing: z.enum(["trailing", "leading"]) }).strict(),
    evaluation: z
      .object({
        /** Samples per method and setting, split equally over the classes (the joint classes for multi-control). */
        numSamples: positiveInt.max(4096),
        seed,
        batchSize: z.number().int().min(0),
      })
      .strict(),
    /** The clean classifiers (CTRL's reward, reconstruction guidance, best-of-N) and the noise-aware one. */
    classifier: z.object({ width: positiveInt.max(256), epochs: positiveInt, batchSize: positiveInt, learningRate: z.number().positive() }).strict(),
    ctrl: z
      .object({
        epochs: positiveInt,
        stepsPerEpoch: positiveInt,
        batchSize: positiveInt,
        gradAccumulation: positiveInt,
        /**
         * KL weights per dimension (finetune.klWeight of the CTRL config): the single-control
         * comparison fine-tunes once per value; the multi-control and sample-efficiency ones use the first.
         */
        klWeights: z.array(nonNegative).min(1),
        /** finetune.confidenceCap of the CTRL config: log p(y | x0) is capped at its log (1: no cap). */
        confidenceCap: z.number().gt(0).max(1).default(CTRL_DEFAULTS.finetune.confidenceCap),
        truncation: z.discriminatedUnion("kind", [
          z.object({ kind: z.literal("random") }).strict(),
          z.object({ kind: z.literal("last"), steps: positiveInt }).strict(),
          z.object({ kind: z.literal("none") }).strict(),
        ]),
        warmupSteps: z.number().int().min(0),
        ...optimizer,
      })
      .strict(),
    classifierFree: z
      .object({
        steps: positiveInt,
        batchSize: positiveInt,
        labelDropout: z.number().min(0).lt(1),
        /** Guidance scales w of the single- and multi-control tables. */
        scales,
        /** The scale of the sample-efficiency curve. */
        efficiencyScale: nonNegative,
        unconditional: z.enum(["pretrained", "null-label"]),
        ...optimizer,
      })
      .strict(),
    reconstruction: z.object({ scales }).strict(),
    classifierGuidance: z.object({ epochs: positiveInt, scales }).strict(),
    bestOfN: z.object({ n: z.array(positiveInt.max(256)).min(1) }).strict(),
  })
  .strict();

export type ReproduceConfig = z.infer<typeof reproduceSchema>;
export type ReproduceInput = z.input<typeof reproduceSchema>;

const shared = {
  sampler: { steps: CTRL_DEFAULTS.sampler.steps, eta: CTRL_DEFAULTS.sampler.eta, spacing: CTRL_DEFAULTS.sampler.spacing },
  classifier: {
    width: CTRL_DEFAULTS.classifier.width,
    batchSize: CTRL_DEFAULTS.classifier.batchSize,
    learningRate: CTRL_DEFAULTS.classifier.learningRate,
    epochs: CTRL_DEFAULTS.classifier.epochs,
  },
  ctrl: (({ epochs, stepsPerEpoch, batchSize, gradAccumulation, confidenceCap, truncation, warmupSteps, loraLearningRate, embeddingLearningRate, weightDecay, maxGradNorm }) => ({
    epochs, stepsPerEpoch, batchSize, gradAccumulation, confidenceCap, truncation, warmupSteps, loraLearningRate, embeddingLearningRate, weightDecay, maxGradNorm,
  }))(CTRL_DEFAULTS.finetune),
  cfgOptimizer: { loraLearningRate: 1e-3, embeddingLearningRate: 1e-2, weightDecay: 0.0, maxGradNorm: 1, labelDropout: 0.1, unconditional: "pretrained" as const },
};

const EVERY_METHOD = ["pretrained", "ctrl", "cfg", "reconstruction", "classifier-guidance", "best-of-n"] as const;

/**
 * `make reproduce QUICK=1`: every experiment, with less data, fewer baseline settings and 128
 * samples per row; CTRL trains exactly as in `make run`. Each baseline's list holds the scale
 * chosen on held-out noise (evaluation seed 7, experiments/reproduce/tune-scales-quick.json:
 * CFG w = 5, reconstruction guidance s = 0.03, classifier guidance s = 300) beside the earlier ones.
 */
export const QUICK: ReproduceInput = {
  methods: { single: [...EVERY_METHOD], multi: ["pretrained", "ctrl", "cfg"], efficiency: ["ctrl", "cfg"] },
  data: { singleSize: 1000, multiSize: 1000, efficiencySizes: [100, 1000] },
  sampler: shared.sampler,
  evaluation: { numSamples: 128, seed: 42, batchSize: 128 },
  classifier: shared.classifier,
  ctrl: { ...shared.ctrl, klWeights: [CTRL_DEFAULTS.finetune.klWeight] },
  classifierFree: { steps: 120, batchSize: 32, scales: [1, 3, 5], efficiencyScale: 3, ...shared.cfgOptimizer },
  reconstruction: { scales: [0.03, 3] },
  classifierGuidance: { epochs: 6, scales: [100, 300] },
  bestOfN: { n: [4] },
};

/** `make reproduce`: the same experiments with more data, training, settings and samples. */
export const FULL: ReproduceInput = {
  methods: { single: [...EVERY_METHOD], multi: [...EVERY_METHOD], efficiency: ["ctrl", "cfg"] },
  data: { singleSize: 2000, multiSize: 2000, efficiencySizes: [100, 300, 1000, 2000] },
  sampler: shared.sampler,
  evaluation: { numSamples: 256, seed: 42, batchSize: 128 },
  classifier: shared.classifier,
  ctrl: { ...shared.ctrl, klWeights: [CTRL_DEFAULTS.finetune.klWeight, 1, 10] },
  classifierFree: { steps: 400, batchSize: 32, scales: [1, 3, 5], efficiencyScale: 3, ...shared.cfgOptimizer },
  reconstruction: { scales: [0.03, 0.3, 3] },
  classifierGuidance: { epochs: 10, scales: [10, 100, 300] },
  bestOfN: { n: [4, 16] },
};

/** Validates a config; throws ConfigError listing every bad field by its path. */
export function parseReproduceConfig(input: unknown): ReproduceConfig {
  const config = parseWithSchema(reproduceSchema, input);
  const problems: string[] = [];
  const { truncation } = config.ctrl;
  if (truncation.kind === "last" && truncation.steps > config.sampler.steps) {
    problems.push(`ctrl.truncation.steps: must be at most sampler.steps (${config.sampler.steps}), got ${truncation.steps}`);
  }
  const sizes = config.data.efficiencySizes;
  if (new Set(sizes).size !== sizes.length) problems.push(`data.efficiencySizes: sizes must differ, got ${sizes.join(", ")}`);
  if (problems.length) throw new ConfigError(problems);
  return config;
}

/**
 * The CTRL experiment config (src/ctrl/config.ts) these settings imply, for the shared loops
 * (classifier training, CTRL fine-tuning).
 */
export function experimentConfig(config: ReproduceConfig, classifierEpochs = config.classifier.epochs): ConfigInput {
  const { klWeights, truncation, warmupSteps, loraLearningRate, embeddingLearningRate, weightDecay, maxGradNorm, ...loop } = config.ctrl;
  return {
    seed: config.seed,
    backbone: config.backbone,
    device: config.device,
    threads: config.threads,
    sampler: config.sampler,
    classifier: { ...config.classifier, epochs: classifierEpochs },
    finetune: { ...loop, klWeight: klWeights[0]!, truncation, warmupSteps, loraLearningRate, embeddingLearningRate, weightDecay, maxGradNorm, checkpointEvery: loop.epochs },
    evaluation: config.evaluation,
  };
}
