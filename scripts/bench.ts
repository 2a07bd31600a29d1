/**
 * `make bench`: CTRL training throughput and peak memory, three variants doing the same work.
 *   (a) ts:       the TypeScript-driven path: Rollout / Backward / OptimizerStep RPCs to the worker
 *                 (one fused UNet call per step, reference = adapters off, bf16 on a GPU);
 *   (b) pytorch:  the same worker code driven by a Python loop, no RPC (python -m ctrl_worker.tools.bench);
 *   (c) official: the official code's setup: fp32 weights + fp16 autocast with loss scaling, four
 *                 separate UNet calls per step, a deep-copied frozen UNet as the reference.
 * GPU mode: the Stable Diffusion 1.5 architecture with random weights (timings need no trained
 * weights), DDIM 50 steps, eta 1, CFG 7.5, random truncation, LoRA rank 4, batch 4 at 512x512.
 *   (d) dp:       (a) over a data-parallel group of --workers workers (torch.distributed; each rolls out
 *                 a shard of the batch; gradients all-reduced): samples/s and the scaling efficiency
 *                 dp / (workers x ts), every worker with --threads threads. On a GPU, rank i uses
 *                 cuda:i, so give it only with several GPUs (--variants ts,dp).
 * CPU mode (no GPU): the same variants on the embedded default backbone, and it says so.
 * Prints one JSON line (and writes it to --out). Not a test: timings belong here.
 *
 * Usage: node --import tsx scripts/bench.ts [--model auto|sd15|tiny-sd|default|DIR] [--batch 4]
 *        [--steps 50] [--iterations 3] [--warmup 1] [--unet-batch 0] [--variants ts,pytorch,official(,dp)]
 *        [--workers 2] [--threads 0]
 */
import { mkdirSync, mkdtempSync, existsSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { Random } from "../src/ctrl/random.js";
import { gradientMask } from "../src/ctrl/truncation.js";
import { median } from "../src/eval/metrics.js";
import { DType } from "../src/gen/ctrl/v1/worker.js";
import { ddimTimesteps } from "../src/sampling/schedules.js";
import { PROJECT_ROOT, WORKER_DIR, defaultPython } from "../src/worker/spawn.js";
import { DataParallel } from "../src/ctrl/dataParallel.js";
import { WorkerGroup } from "../src/worker/group.js";
import { Worker } from "../src/worker/worker.js";

const VARIANTS = ["ts", "pytorch", "official", "dp"] as const;
type Variant = (typeof VARIANTS)[number];
const NUM_CLASSES = 4;
const ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"];

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "auto" },
    batch: { type: "string", default: "4" },
    steps: { type: "string", default: "50" },
    iterations: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" },
    "unet-batch": { type: "string", default: "0" },
    variants: { type: "string" },
    workers: { type: "string", default: "2" },
    threads: { type: "string", default: "0" },
    out: { type: "string" },
  },
});

function integer(name: keyof typeof values, min: number): number {
  const parsed = Number(values[name]);
  if (!Number.isInteger(parsed) || parsed < min) throw new Error(`--${name}: expected an integer >= ${min}, got ${values[name]}`);
  return parsed;
}

const batch = integer("batch", 1);
const steps = integer("steps", 1);
const measured = integer("iterations", 1);
const warmup = integer("warmup", 0);
const unetBatch = integer("unet-batch", 0);
const threads = integer("threads", 0);
const workers = integer("workers", 2);


interface Plan {
  model: string;
  dtype: "float32" | "bfloat16";
  autocast: "bfloat16" | null;
  batch: number;
  num_classes: number;
  classifier_width: number;
  lora_rank: number;
  lora_targets: string[];
  alpha: number;
  timesteps: number[];
  eta: number;
  checkpointing: boolean;
  unet_batch: number;
  text: { prompts: string[]; guidance_scale: number } | null;
  warmup: number;
  iterations: { seed: number; labels: number[]; grad_steps: boolean[] }[];
}

interface VariantResult {
  variant: Variant;
  samples_per_second: number;
  median_seconds_per_iteration: number;
  seconds_per_iteration: number[];
  peak_memory_bytes: number;
  [key: string]: unknown;
}

const env: Record<string, string> = threads > 0 ? { OMP_NUM_THREADS: String(threads) } : {};
const workerOptions = { telemetry: false, env, threads: threads || undefined, readyTimeoutMs: 600_000 };
const probe = await Worker.start(workerOptions);
const info = await probe.info();
await probe.close();
const gpu = info.device.startsWith("cuda");
// Several workers on one GPU cannot form an NCCL group: the data-parallel row is asked for there.
const variants = (values.variants ?? (gpu ? "ts,pytorch,official" : VARIANTS.join(","))).split(",").map((v) => {
  if (!(VARIANTS as readonly string[]).includes(v)) throw new Error(`--variants: expected a list of ${VARIANTS.join(", ")}, got ${v}`);
  return v as Variant;
});
const modelName = values.model === "auto" ? (gpu ? "sd15" : "default") : values.model!;
const modelDir = await prepareModel(modelName);
const textToImage = modelName === "sd15" || modelName === "tiny-sd" || existsSync(path.join(modelDir, "vae"));

const plan = makePlan();
const planFile = path.join(mkdtempSync(path.join(os.tmpdir(), "ctrl-bench-")), "plan.json");
writeFileSync(planFile, JSON.stringify(plan));

const results: Partial<Record<Variant, VariantResult>> = {};
for (const variant of variants) {
  process.stderr.write(`bench: variant ${variant} ...\n`);
  results[variant] =
    variant === "ts" ? await runTypeScriptDriven(plan, 1) : variant === "dp" ? await runTypeScriptDriven(plan, workers) : await runPython(variant);
}

const report = {
  bench: "ctrl training throughput",
  mode: gpu ? "gpu" : "cpu",
  note: gpu ? undefined : `no GPU: CPU mode on ${modelName === "default" ? "the embedded default backbone" : modelName}; the GPU targets are not measured here`,
  device: info.deviceName,
  model: modelName,
  config: {
    batch,
    sampler: `DDIM ${steps} steps, eta 1`,
    truncation: "random (official)",
    checkpointing: plan.checkpointing,
    lora_rank: plan.lora_rank,
    guidance_scale: plan.text?.guidance_scale ?? null,
    image_shape: textToImage ? "decoded by the VAE" : "pixel space",
    unet_batch: unetBatch,
    threads_per_worker: threads || "torch default",
    dp_workers: variants.includes("dp") ? workers : undefined,
    warmup,
    measured_iterations: measured,
  },
  variants: results,
  ratios: ratios(results),
};
const line = JSON.stringify(report);
if (values.out) writeFileSync(values.out, `${line}\n`);
process.stdout.write(`${line}\n`);

// -- pieces ----------------------------------------------------------------------------------------

async function prepareModel(name: string): Promise<string> {
  if (name === "default") return path.join(PROJECT_ROOT, "models", "default");
  if (name !== "sd15" && name !== "tiny-sd") return path.resolve(name);
  // Random weights are generated once and cached (sd15: about 4 GB in float32).
  const folder = path.join(os.homedir(), ".cache", "ctrl", "bench", `${name}-random-v1`);
  if (!existsSync(path.join(folder, "model_index.json"))) {
    mkdirSync(path.dirname(folder), { recursive: true });
    process.stderr.write(`bench: writing the ${name} architecture with random weights to ${folder}\n`);
    const command = name === "sd15" ? "sd15-random" : "tiny-text-to-image";
    const half = name === "sd15" ? ["--float16"] : []; // half the disk and load time; the weights are random anyway
    await execa(defaultPython(), ["-m", "ctrl_worker.tools.testing", command, folder, ...half], { cwd: WORKER_DIR, stdio: "inherit" });
  }
  return folder;
}

function makePlan(): Plan {
  const random = new Random(1234);
  const timesteps = ddimTimesteps({ numTrainTimesteps: 1000, steps, offset: textToImage ? 1 : 0 });
  return {
    model: modelDir,
    dtype: gpu ? "bfloat16" : "float32",
    autocast: gpu ? "bfloat16" : null,
    batch,
    num_classes: NUM_CLASSES,
    classifier_width: 32,
    lora_rank: 4,
    lora_targets: ATTENTION,
    alpha: 0.01,
    timesteps,
    eta: 1,
    checkpointing: true,
    unet_batch: unetBatch,
    text: textToImage ? { prompts: ["a photo of a cat"], guidance_scale: 7.5 } : null,
    warmup,
    iterations: Array.from({ length: warmup + measured }, (_, i) => ({
      seed: 1000 + i,
      labels: Array.from({ length: batch }, (_, j) => (i * batch + j) % NUM_CLASSES),
      grad_steps: gradientMask({ kind: "random" }, timesteps.length, random),
    })),
  };
}

/** (a) with one worker, (d) with several: the same loop through DataParallel (a pass-through for one). */
async function runTypeScriptDriven(p: Plan, size: number): Promise<VariantResult> {
  const variant: Variant = size === 1 ? "ts" : "dp";
  const group = await WorkerGroup.spawn(size, { ...workerOptions, device: gpu ? "cuda" : "cpu", threads: threads || undefined });
  const worker = new DataParallel(group);
  try {
    const started = performance.now();
    const dtype = p.dtype === "bfloat16" ? DType.DTYPE_BFLOAT16 : DType.DTYPE_FLOAT32;
    // Every rank makes the same objects (same seeds); the primary's handles name them.
    const setUp = async (w: Worker) => {
      const backbone = await w.loadBackbone(p.model, { dtype, autocast: p.autocast ? DType.DTYPE_BFLOAT16 : undefined });
      const control = await w.addControl({
        backbone: backbone.handle,
        fields: [{ name: "label", numClasses: p.num_classes }],
        loraRank: p.lora_rank,
        loraAlpha: p.lora_rank,
        loraTargetModules: p.lora_targets,
        seed: 0,
      });
      const optimizer = await w.createOptimizer({
        control: control.handle,
        groups: [
          { name: "lora", learningRate: 1e-3, weightDecay: 0.1 },
          { name: "embedding", learningRate: 1e-2, weightDecay: 0.1 },
        ],
        maxGradNorm: 5,
      });
      const classifier = await w.createClassifier({
        inputShape: backbone.imageShape,
        numClasses: p.num_classes,
        architecture: "convnet",
        width: p.classifier_width,
        seed: 0,
        learningRate: 1e-3,
      });
      return { control: control.handle, optimizer: optimizer.handle, classifier: classifier.handle };
    };
    const ranks = await group.all(setUp);
    const { control, optimizer, classifier } = ranks[0]!;
    for (const key of ["control", "optimizer", "classifier"] as const) await worker.replicate(ranks[0]![key], async (_, rank) => ranks[rank]![key]);
    const setupSeconds = (performance.now() - started) / 1000;
    const times: number[] = [];
    let unetCalls = 0;
    for (const [i, iteration] of p.iterations.entries()) {
      const began = performance.now();
      const rollout = await worker.rollout({
        control,
        numSamples: p.batch,
        labels: { label: iteration.labels },
        timesteps: p.timesteps,
        eta: p.eta,
        seed: iteration.seed,
        gradSteps: iteration.grad_steps,
        checkpointing: p.checkpointing,
        batchSize: p.unet_batch,
        text: p.text ? { prompts: p.text.prompts, guidanceScale: p.text.guidance_scale } : undefined,
      });
      unetCalls = rollout.unetCalls;
      await worker.backward({
        rollout: rollout.handle,
        terms: [
          { weight: 1, source: { $case: "classifierLogProb", value: { classifier, labelField: "label" } } },
          { weight: -p.alpha, source: { $case: "kl", value: {} } },
        ],
        lossScale: 1,
      });
      await worker.optimizerStep(optimizer);
      const seconds = (performance.now() - began) / 1000;
      if (i >= p.warmup) times.push(seconds);
      process.stderr.write(`[${variant}] iteration ${i + 1}/${p.iterations.length}: ${seconds.toFixed(2)} s\n`);
    }
    const after = await group.primary.info();
    const med = median(times);
    return {
      variant,
      workers: size,
      samples_per_second: p.batch / med,
      seconds_per_iteration: times,
      median_seconds_per_iteration: med,
      peak_memory_bytes: gpu ? after.acceleratorPeakBytes : after.maxRssBytes,
      memory_measure: gpu ? "cuda max_memory_allocated" : "max RSS",
      setup_seconds: setupSeconds,
      unet_calls_per_iteration: unetCalls,
      weights_dtype: p.dtype,
      autocast: p.autocast,
    };
  } finally {
    await group.close();
  }
}

async function runPython(variant: "pytorch" | "official"): Promise<VariantResult> {
  const args = ["-m", "ctrl_worker.tools.bench", planFile, "--variant", variant, "--threads", String(threads)];
  const child = await execa(defaultPython(), args, {
    cwd: WORKER_DIR,
    env: { ...env, PYTHONPATH: [WORKER_DIR, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
    stderr: "inherit",
  });
  const last = child.stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(last) as VariantResult;
}

function ratios(r: Partial<Record<Variant, VariantResult>>) {
  const { ts, pytorch, official, dp } = r;
  return {
    dp_over_ts_speed: ts && dp ? dp.samples_per_second / ts.samples_per_second : null,
    // Of the ideal: N workers N times as fast as one with the same threads each.
    dp_scaling_efficiency: ts && dp ? dp.samples_per_second / (workers * ts.samples_per_second) : null,
    ts_over_pytorch_speed: ts && pytorch ? ts.samples_per_second / pytorch.samples_per_second : null,
    ts_over_official_speed: ts && official ? ts.samples_per_second / official.samples_per_second : null,
    ts_over_official_memory: ts && official ? ts.peak_memory_bytes / official.peak_memory_bytes : null,
    targets: gpu
      ? {
          "ts/pytorch >= 0.98": ts && pytorch ? ts.samples_per_second / pytorch.samples_per_second >= 0.98 : null,
          "ts >= 1.5x official": ts && official ? ts.samples_per_second >= 1.5 * official.samples_per_second : null,
          "ts memory < official": ts && official ? ts.peak_memory_bytes < official.peak_memory_bytes : null,
        }
      : "GPU targets: not measured in CPU mode",
  };
}
