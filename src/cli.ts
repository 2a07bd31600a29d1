/** The `ctrl` command line. Every command has --help. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Command, Option } from "commander";
import { imageGrid } from "./eval/grid.js";
import { DType } from "./gen/ctrl/v1/worker.js";
import { ddimTimesteps, ddpmTimesteps } from "./sampling/schedules.js";
import { sampleStepwise } from "./sampling/stepwise.js";
import { integer, number } from "./cli/options.js";
import { showProgress } from "./worker/progress.js";
import { Worker } from "./worker/worker.js";

const program = new Command()
  .name("ctrl")
  .description("Add conditional controls to pre-trained diffusion models with reinforcement learning (CTRL).")
  .showHelpAfterError();

function workerOptions(command: Command) {
  return command
    .addOption(new Option("--device <device>", "worker device: auto, cpu, cuda or cuda:N").default("auto"))
    .addOption(new Option("--python <path>", "Python interpreter for the worker (default: python-worker/.venv)"))
    .addOption(new Option("--verbose", "print the worker's log"));
}

interface WorkerFlags {
  device: string;
  python?: string;
  verbose?: boolean;
}

async function withWorker<T>(flags: WorkerFlags, body: (worker: Worker) => Promise<T>): Promise<T> {
  const worker = await Worker.start({
    device: flags.device,
    python: flags.python,
    onLog: flags.verbose ? (line) => process.stderr.write(`[worker] ${line}\n`) : undefined,
  });
  try {
    return await body(worker);
  } finally {
    await worker.close();
  }
}

workerOptions(program.command("info").description("print the worker's versions, device and limits as JSON")).action(
  async (flags: WorkerFlags) => {
    await withWorker(flags, async (worker) => {
      const info = await worker.info();
      const readable = { ...info, supportedDtypes: info.supportedDtypes.map((d) => DType[d]) };
      process.stdout.write(`${JSON.stringify(readable, null, 2)}\n`);
    });
  },
);

interface SampleFlags extends WorkerFlags {
  model: string;
  n: number;
  out: string;
  steps: number;
  eta: number;
  seed: number;
  batchSize: number;
  sampler: "ddim" | "ddpm";
  stepwise?: boolean;
  columns?: number;
  scale: number;
}

workerOptions(
  program
    .command("sample")
    .description("sample images from a backbone and write them as a PNG grid")
    .requiredOption("--model <dir-or-id>", "diffusers model directory or Hugging Face id")
    .option("--n <count>", "number of images", integer(1, 4096), 8)
    .requiredOption("--out <file.png>", "where to write the grid")
    .option("--steps <count>", "DDIM steps (ignored with --sampler ddpm)", integer(1, 10_000), 50)
    .option("--eta <eta>", "0 = deterministic DDIM, 1 = ancestral", number(0, 1), 1)
    .option("--seed <seed>", "random seed", integer(0), 0)
    .option("--batch-size <count>", "images per network call (0 = all)", integer(0, 4096), 0)
    .addOption(new Option("--sampler <name>", "ddim (strided) or ddpm (every training step, eta 1)").choices(["ddim", "ddpm"]).default("ddim"))
    .option("--stepwise", "drive the loop from TypeScript, one RPC per step")
    .option("--columns <count>", "images per grid row", integer(1, 1024))
    .option("--scale <factor>", "nearest-neighbour upscaling of the grid", integer(1, 32), 1),
).action(async (flags: SampleFlags) => {
  if (path.extname(flags.out).toLowerCase() !== ".png") throw new Error(`--out: expected a .png file, got ${flags.out}`);
  await withWorker(flags, async (worker) => {
    const stopProgress = worker.telemetry ? showProgress(worker.telemetry) : () => undefined;
    try {
      const backbone = await worker.loadBackbone(flags.model);
      const timesteps =
        flags.sampler === "ddpm"
          ? ddpmTimesteps(backbone.numTrainTimesteps)
          : ddimTimesteps({ numTrainTimesteps: backbone.numTrainTimesteps, steps: flags.steps });
      const eta = flags.sampler === "ddpm" ? 1 : flags.eta;
      const request = { model: backbone.handle, numSamples: flags.n, timesteps, eta, seed: flags.seed, batchSize: flags.batchSize };
      const images = flags.stepwise ? await sampleStepwise(worker, request) : await worker.sample(request);
      await writeFile(flags.out, await imageGrid(images, { columns: flags.columns, scale: flags.scale }));
      process.stderr.write(`wrote ${images.count} images (${images.width}x${images.height}) to ${flags.out}\n`);
    } finally {
      stopProgress();
    }
  });
});

program
  .command("run")
  .description("run the default CTRL reproduction (lands with the CTRL end-to-end work)")
  .action(() => {
    process.stderr.write(
      "ctrl run: the CTRL pipeline is not built yet; today ctrl offers `info` and `sample` (see --help).\n",
    );
    process.exitCode = 2;
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`ctrl: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
