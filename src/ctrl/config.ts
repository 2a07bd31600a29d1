/**
 * The experiment config: every knob an experimenter would change, validated at start with one
 * clear message per bad field. Defaults reproduce the embedded default on a 2-core CPU.
 */
import { z } from "zod";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const deviceName = z.string().regex(/^(auto|cpu|cuda(:\d+)?)$/, "auto, cpu, cuda or cuda:N");
const positive = z.number().positive();
const probability = z.number().min(0).max(1);
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const DEFAULT_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"];

const datasetSchema = z.discriminatedUnion("kind", [
  z
    .object({
      /** The project's own offline data, labelled by an exact oracle. */
      kind: z.literal("default"),
      /**
       * The offline images: the pre-trained model's own samples, drawn with the sampler that
       * fine-tuning uses (the paper's recipe: every class has mass under the model), or the
       * project's synthetic training images.
       */
      images: z.enum(["samples", "synthetic"]).default("samples"),
      /** Keep the drawn samples in the cache folder (keyed by backbone content, sampler, precision and seed). */
      cache: z.boolean().default(true),
      numImages: positiveInt.min(20).default(2000),
      /** Pre-trained samples whose quartiles set the class thresholds (the paper binned SD's samples). */
      referenceSamples: positiveInt.min(8).default(256),
      /** Which oracle labels the control: JPEG size at quality 95, or mean brightness. */
      oracle: z.enum(["compressibility", "brightness"]).default("compressibility"),
      numClasses: positiveInt.min(2).max(16).default(4),
      /** Class thresholds at the quantiles of separate pre-trained samples, or of the dataset's images (the same thing when they are samples). */
      thresholdsFrom: z.enum(["reference", "dataset"]).default("dataset"),
    })
    .strict(),
  z
    .object({
      /** A folder of images and a labels file (see LoadDataset in the contract). */
      kind: z.literal("folder"),
      path: z.string().min(1),
      labelColumn: z.string().min(1),
      labelsFile: z.string().default(""),
    })
    .strict(),
]);

const truncationSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("random") }).strict(),
  z.object({ kind: z.literal("last"), steps: positiveInt }).strict(),
  z.object({ kind: z.literal("none") }).strict(),
]);

export const configSchema = z
  .object({
    task: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "lowercase letters, digits and dashes").default("compressibility"),
    seed: seed.default(0),
    /** A diffusers folder or a Hugging Face id: a pixel UNet2DModel or a Stable Diffusion 1.x/2.x pipeline. */
    backbone: z.string().min(1).default("models/default"),
    /** Weights' dtype and mixed precision of the network calls (a GPU: bfloat16 + autocast bfloat16). */
    precision: z
      .object({
        dtype: z.enum(["float32", "bfloat16", "float16"]).default("float32"),
        autocast: z.enum(["none", "bfloat16", "float16"]).default("none"),
      })
      .strict()
      .prefault({}),
    /**
     * The condition c of a text-to-image backbone: each training sample draws one of `prompts`;
     * evaluation cycles through `evaluationPrompts` (default: `prompts`). Leave out for pixel backbones.
     */
    text: z
      .object({
        prompts: z.array(z.string().max(2000)).min(1),
        evaluationPrompts: z.array(z.string().max(2000)).min(1).optional(),
        /** Classifier-free guidance scale, in training rollouts and evaluation (the official code: 7.5). */
        guidanceScale: z.number().min(0).max(100).default(7.5),
      })
      .strict()
      .optional(),
    device: deviceName.default("auto"),
    /** torch CPU threads in each worker; 0 leaves torch's default (one per core; with several CPU workers, cores / workers). */
    threads: nonNegativeInt.max(256).default(0),
    /**
     * Data parallel: this many workers in one torch.distributed group (gloo on CPUs, NCCL on GPUs),
     * each rolling out a shard of every batch (src/ctrl/dataParallel.ts). With device "cuda",
     * rank i uses cuda:i unless `devices` lists one device per worker. "auto" (autoWorkerCount):
     * on the CPU of a machine with 2 or more cores, 2 workers that split the cores (on 2-core VMs
     * 1.8x the fine-tuning throughput of one worker with both: BENCHMARKS.md, the `dp` row);
     * otherwise 1, or one per listed device.
     */
    workers: z.union([positiveInt.max(64), z.literal("auto")]).default("auto"),
    devices: z.array(deviceName).min(1).max(64).optional(),
    runsDir: z.string().min(1).default("runs"),
    /** A worker that dies mid-run is restarted and the run continues from its last saved state, at most this often. */
    recovery: z.object({ maxRestarts: nonNegativeInt.max(100).default(3) }).strict().prefault({}),
    dataset: datasetSchema.prefault({ kind: "default" }),
    sampler: z
      .object({
        steps: positiveInt.max(1000).default(10),
        /**
         * 0.5: with 10 coarse steps, eta 1 (ancestral) re-noises each step's prediction so much that
         * the samples come out as flat colour fields; eta 0.5 keeps their textures (JPEG sizes p10-p90
         * of 830-1450 bytes against 790-930 at eta 1 on the embedded model) and stays stochastic,
         * so each step still has a KL. The paper's eta 1 is at 50 steps.
         */
        eta: probability.default(0.5),
        /**
         * "trailing" (999, 899, ..., 99 for 10 steps): with "leading" spacing the last stochastic
         * step lands on t = 0, where sigma is about 0.005, so the KL there weighs an imperceptible
         * change of the image 20 000 times per unit of squared mean shift: it dwarfed every other
         * step (over 95% of the KL), blocked the label embedding from moving the coarse image, and
         * compressibility reached 0.81 after 48 optimiser steps against 0.97 with "trailing"
         * (README). "leading" with the backbone's steps_offset is the official sampler.
         */
        spacing: z.enum(["trailing", "leading"]).default("trailing"),
        /** With "leading" spacing: added to every DDIM timestep; default the backbone scheduler's steps_offset (Stable Diffusion: 1). */
        offset: nonNegativeInt.optional(),
      })
      .strict()
      .prefault({}),
    classifier: z
      .object({
        /**
         * "detail-convnet": the official residual CNN behind a stem that also feeds it each image's
         * fine detail (image minus its 3x3 blur), each band standardised: fine-grained attributes
         * such as JPEG size are learnt in a few epochs (the plain "convnet" stays at chance on the
         * embedded model's samples). "stats-convnet" (the default): the same, pooled into each
         * channel's mean and standard deviation, for attributes that are a spread (colourfulness:
         * 0.86 held-out against 0.82 at 20 epochs; worker classifiers/classifier.py). "convnet":
         * the official network as it is.
         */
        architecture: z.enum(["stats-convnet", "detail-convnet", "convnet"]).default("stats-convnet"),
        width: positiveInt.max(256).default(16),
        /**
         * 20: on the embedded model's 2000 samples the held-out accuracy still rises from 10 to 20
         * epochs (colourfulness 0.83 to 0.86 with "stats-convnet"; JPEG size 0.90 to 0.91).
         */
        epochs: positiveInt.max(10_000).default(20),
        batchSize: positiveInt.max(4096).default(64),
        /** AdamW's peak learning rate; "cosine" decays it to 0 over the epochs (a settled network at the end). */
        learningRate: positive.default(5e-3),
        schedule: z.enum(["cosine", "constant"]).default("cosine"),
        weightDecay: z.number().min(0).default(1e-4),
        heldOutFraction: z.number().gt(0).lt(1).default(0.2),
        augment: z.boolean().default(true),
        /**
         * Adversarial training of the CTRL reward classifier (trainRewardClassifier): trained
         * beside the plain one and used when its held-out accuracy is at most `maxAccuracyDrop`
         * below. `epsilon` is the L2 radius per element in [-1, 1] units (0: off); 0.036 is an
         * L2 radius of 2 on 32x32 RGB images. Measured (Python harness, brightness, defaults
         * otherwise): oracle accuracy 0.59 with the plain classifier, 0.79 at epsilon 0.009 and
         * 0.98 at 0.036; on JPEG size the robust classifier's held-out accuracy falls from 0.92 to
         * 0.56, so compressibility keeps the plain one. `maxAccuracyDrop` sits between the drops
         * measured with `make run`'s data: brightness 0.045 / 0.040 / 0.010 (seeds 0 / 1 / 2,
         * fine-tuned from the plain classifier; 0.013 / 0.018 / 0.070 trained from scratch), JPEG
         * size 0.37 (seed 0; 0.35 from scratch); at 0.03, seed 2's brightness reward once fell
         * back to the plain classifier that the model learns to fool.
         */
        robust: z
          .object({
            epsilon: z.number().min(0).max(1).default(0.036),
            steps: positiveInt.max(20).default(3),
            /**
             * Epochs of adversarial fine-tuning: the candidate starts from the plain classifier's
             * weights. 5 (a quarter of the cost of 20 from scratch) gave the same CTRL results
             * (brightness seeds 0-2: 0.910 / 0.879 / 0.895 against 0.914 / 0.898 / 0.855).
             */
            epochs: positiveInt.max(10_000).default(5),
            maxAccuracyDrop: z.number().min(0).max(1).default(0.1),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    control: z
      .object({
        loraRank: positiveInt.max(256).default(4),
        loraAlpha: positive.default(4),
        /**
         * Module names or suffixes that get LoRA. The official code: all attention projections of
         * Stable Diffusion's UNet (16 attention blocks); the small pixel UNet has two, so the
         * default adds the ResNet convolutions.
         */
        loraTargets: z.array(z.string().min(1)).min(1).default(DEFAULT_LORA_TARGETS),
        /**
         * Label embeddings per label, spread over the timesteps (1: one for every timestep, as in
         * the paper). With one, what the late steps' gradients teach a label's embedding also acts
         * at the early steps; with 5, each part of the sampler learns and pays for its own change.
         * Measured on the embedded default (seed 0): more accuracy for far less KL (JPEG size 0.953
         * at KL 61 against 0.910 at 147, klWeight 10; brightness 0.980 at 515 against 0.945 at
         * 1011, klWeight 1) (README: "Why the samples collapsed").
         */
        timestepBands: positiveInt.max(64).default(5),
        /**
         * One LoRA block of loraRank per label (not in the paper): a sample uses only its labels'
         * blocks, so the label acts through weights that see the image's content, where the
         * embedding moves every sample of a label alike (README: "Which parameters carry the
         * change"). Its LoRA is saved as label_lora_weights.safetensors, not diffusers' format.
         * On by default with the embeddings slowed to 1e-2: every class of JPEG size keeps more
         * than half the pre-trained samples' variety where the shared LoRA with fast embeddings
         * lost it (README: "Per-label LoRA on more seeds").
         */
        loraPerLabel: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    finetune: z
      .object({
        /** 10 x 8 = 80 optimiser steps: the KL-weight sweep is at 0.92-1.0 from step 32 on, and `make run` stays under 10 minutes on 2 CPU cores. */
        epochs: positiveInt.default(10),
        /** Optimiser steps per epoch. */
        stepsPerEpoch: positiveInt.default(8),
        /** Samples per rollout (one worker call). */
        batchSize: positiveInt.max(4096).default(16),
        /** Rollouts whose gradients add up before each optimiser step. */
        gradAccumulation: positiveInt.default(1),
        /**
         * alpha, the KL weight, per dimension: reward = log p(y | x0) - klWeight * KL / D, with KL
         * summed over the sampler's steps and the sample's D dimensions; the target is
         * p_pre(x) p(y | x)^(D / klWeight). The official code weighs its per-dimension KL by 0.1
         * relative to log p (README: "the KL and its weight"). At 1 the target itself is a handful
         * of images per middle JPEG class (`python -m ctrl_worker.tools.target_tilt`) and the
         * samples collapse. With 5 timestep bands (seed 0, 80 steps): 3 gives JPEG size 0.984 and
         * brightness 0.973; 10 gives 0.953 and 0.922 (brightness seed 2: 0.887); 30 and 100 keep
         * JPEG size at 0.969 and more varied, but brightness falls to 0.867 and 0.781
         * (experiments/sweeps/kl-weight-bands*.json).
         */
        klWeight: z.number().min(0).max(1e6).default(3),
        /**
         * The reward's log p(y | x0) is capped at log(confidenceCap) (1: no cap). Uncapped, the
         * target p_pre(x) p(y | x)^(D / klWeight) keeps only the handful of samples the classifier
         * is most sure of (JPEG size, klWeight 3: an effective 7-13 of ~500 per middle class);
         * capped at 0.9, it is the pre-trained model restricted to the samples the classifier puts
         * in class y with at least that probability (250-290 of them), at the same accuracy
         * (`target_tilt --confidence-cap`). Fine-tuned (klWeight 3, 3 seeds), JPEG size stays at
         * 1.000 and keeps somewhat more of its classes' variety; brightness is unchanged (its
         * samples rarely reach the cap). README: "The confidence cap". 0.97 with the ramp below:
         * once the rising KL weight pulls the samples back to the cap's edge, a calibrated
         * classifier at p = 0.9 is wrong one time in ten, so the cap sets the accuracy
         * (README: "The defaults from 2026-12-02, night, to 2026-12-03").
         */
        confidenceCap: z.number().gt(0).max(1).default(0.97),
        /**
         * How many times klWeight the KL weight of the last optimiser step is: from klWeight at
         * the first step it rises geometrically (src/ctrl/klWeight.ts, rampedKlWeight); 1 keeps it
         * fixed. 10 (3 to 30) by default: the small weight reaches the classes, the larger one
         * then pulls the early sampler steps back towards the pre-trained model, where the
         * classes' variety is. With the cap at 0.97 and 3 seeds: JPEG size 0.984 (fixed: 0.993),
         * brightness 0.926 (0.966), and more of every control's variety on every seed (README:
         * "The defaults from 2026-12-02, night, to 2026-12-03"). Excludes finetune.adaptiveKl: set it to 1 there.
         */
        klWeightRamp: z.number().min(1).max(1e4).default(10),
        /**
         * Adapt the KL weight during fine-tuning (src/ctrl/klWeight.ts): from klWeight, after each
         * optimiser step it is multiplied by `factor` when at least `target` of the batch sat at
         * the confidence cap and divided by it when not, never below klWeight nor above `max`.
         * Needs a cap below 1. `smoothing` follows a moving average of the share instead of each
         * batch's; `tolerance` moves the weight in proportion to the share's distance from the
         * target; `confidence` counts samples at that probability instead of at the cap. Off by
         * default: no setting measured keeps both shipped controls above 0.9 and their classes'
         * variety on every seed (README: "What holds the variety back", "A smoothed controller").
         */
        adaptiveKl: z
          .object({
            enabled: z.boolean().default(false),
            target: z.number().gt(0).max(1).default(0.9),
            factor: z.number().gt(1).max(10).default(1.15),
            max: positive.default(1000),
            smoothing: z.number().min(0).lt(1).default(0),
            tolerance: z.number().min(0).max(1).default(0),
            confidence: z.number().gt(0).max(1).optional(),
          })
          .strict()
          .prefault({}),
        /** 1e-2 for the per-label LoRA: 3e-2 moved JPEG size's samples to one look again, 1e-2 did not. */
        loraLearningRate: positive.default(1e-2),
        /**
         * The label embeddings are a per-channel scale and shift of every ResNet block, alike for
         * every sample of a label: at 0.1 or 3e-2 they take the whole change and the classes
         * lose their variety; at 1e-2 the per-label LoRA carries it (README: "Which parameters
         * carry the change").
         */
        embeddingLearningRate: positive.default(1e-2),
        weightDecay: z.number().min(0).default(0.1),
        maxGradNorm: z.number().min(0).default(5),
        /**
         * AdamW's epsilon. Adam moves a parameter by about its learning rate whatever the size
         * of its gradient while that gradient is far above epsilon, so on gradient entries near
         * zero float rounding decides the direction; a larger epsilon damps those entries.
         */
        adamEpsilon: z.number().gt(0).max(1).default(1e-8),
        /**
         * AdamW's second-moment decay: how many steps of squared gradients (about 1 / (1 - beta2))
         * set the size of each step.
         */
        adamBeta2: z.number().gt(0).lt(1).default(0.999),
        /**
         * Optimiser steps over which the learning rates ramp linearly up to their values. Adam's
         * first steps move every parameter by about its learning rate whatever the gradient says;
         * the ramp keeps those steps small.
         */
        warmupSteps: nonNegativeInt.default(5),
        /**
         * After the warm-up: "cosine" decays the learning rates towards 0 at the last step. At a
         * constant rate, with fresh noise at every step, the last iterate wandered: the KL-weight
         * sweep's run at klWeight 1 judged 1.0 at step 80 and 0.69 at step 96.
         */
        schedule: z.enum(["cosine", "constant"]).default("cosine"),
        truncation: truncationSchema.default({ kind: "none" }),
        /** Recompute activations in the backward pass: saves memory on a GPU, costs time on a CPU. */
        checkpointing: z.boolean().default(false),
        /** Samples per UNet call in a rollout (all their branches in one call); 0 = the whole batch. */
        unetBatchSize: nonNegativeInt.default(0),
        /** Training label distribution over classes; default uniform. */
        labelWeights: z.array(z.number().min(0)).optional(),
        checkpointEvery: positiveInt.default(4),
        /**
         * Optimiser steps in a row whose loss or gradient was NaN or infinite (each skipped, the
         * parameters and optimiser state untouched) before the run stops.
         */
        maxSkippedSteps: positiveInt.max(1000).default(3),
      })
      .strict()
      .prefault({}),
    evaluation: z
      .object({
        numSamples: positiveInt.max(4096).default(256),
        seed: seed.default(42),
        batchSize: nonNegativeInt.default(128),
        /** Also judge this many samples at every checkpoint (accuracy and per-class diversity against optimiser steps); 0: only at the end. */
        checkpointSamples: nonNegativeInt.max(4096).default(0),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type ExperimentConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid experiment config:\n  ${problems.join("\n  ")}`);
  }
}

/** Parses `input` with a schema; throws ConfigError listing every bad field by its path. */
export function parseWithSchema<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".") || "(config)"}: ${issue.message}`));
  }
  return result.data;
}

/** Parses and validates a config; throws ConfigError listing every bad field by its path. */
export function parseConfig(input: unknown): ExperimentConfig {
  const config = parseWithSchema(configSchema, input);
  const problems: string[] = [];
  const truncation = config.finetune.truncation;
  if (config.sampler.spacing === "trailing" && config.sampler.offset !== undefined) {
    problems.push('sampler.offset: only with sampler.spacing "leading" ("trailing" takes no offset)');
  }
  if (truncation.kind === "last" && truncation.steps > config.sampler.steps) {
    problems.push(`finetune.truncation.steps: must be at most sampler.steps (${config.sampler.steps}), got ${truncation.steps}`);
  }
  if (config.dataset.kind === "default" && config.finetune.labelWeights && config.finetune.labelWeights.length !== config.dataset.numClasses) {
    problems.push(`finetune.labelWeights: expected ${config.dataset.numClasses} weights (one per class), got ${config.finetune.labelWeights.length}`);
  }
  if (config.finetune.labelWeights && !config.finetune.labelWeights.some((w) => w > 0)) {
    problems.push("finetune.labelWeights: at least one weight must be positive");
  }
  const adaptive = config.finetune.adaptiveKl;
  if (config.finetune.klWeightRamp !== 1 && adaptive.enabled) {
    problems.push("finetune.klWeightRamp: a scheduled weight and finetune.adaptiveKl.enabled exclude each other; set the ramp to 1 or disable the adaptive weight");
  }
  if (adaptive.enabled) {
    if (config.finetune.confidenceCap >= 1) problems.push("finetune.adaptiveKl.enabled: needs finetune.confidenceCap below 1 (the share at the cap drives the weight)");
    if (adaptive.confidence !== undefined && adaptive.confidence > config.finetune.confidenceCap) {
      problems.push(`finetune.adaptiveKl.confidence: the reward is clamped at finetune.confidenceCap = ${config.finetune.confidenceCap}, so a sample cannot be seen above it; expected at most that, got ${adaptive.confidence}`);
    }
    if (!(config.finetune.klWeight > 0 && config.finetune.klWeight <= adaptive.max)) {
      problems.push(`finetune.klWeight: the adaptive weight starts here, so it must be in (0, adaptiveKl.max = ${adaptive.max}], got ${config.finetune.klWeight}`);
    }
  }
  if (config.devices && config.workers !== "auto" && config.devices.length !== config.workers) {
    problems.push(`devices: expected one device per worker (workers: ${config.workers}), got ${config.devices.length}`);
  }
  if (config.workers !== "auto" && config.finetune.batchSize < config.workers) {
    problems.push(`finetune.batchSize: each of the ${config.workers} workers needs at least one sample of every rollout, got ${config.finetune.batchSize}`);
  }
  if (problems.length) throw new ConfigError(problems);
  return config;
}
