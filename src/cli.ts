/** The `ctrl` command line. Every command has --help. */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Command, Option } from "commander";
import { imageGrid } from "./eval/grid.js";
import { DType } from "./gen/ctrl/v1/worker.js";
import { ddimTimesteps, ddpmTimesteps } from "./sampling/schedules.js";
import { sampleStepwise } from "./sampling/stepwise.js";
import { autoOr, collect, integer, number, readJsonObject } from "./cli/options.js";
import type { ConfigInput } from "./ctrl/config.js";
import { runCtrl } from "./ctrl/pipeline.js";
import { labelsFromFlags, readSamplerRecord, resolveControlDirectory } from "./ctrl/controls.js";
import { showProgress } from "./worker/progress.js";
import { type Labels, Worker } from "./worker/worker.js";

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
  control?: string;
  label: string[];
  prompt: string[];
  guidanceScale?: number;
  n: number;
  out: string;
  steps?: number;
  eta?: number;
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
    .description("sample images from a backbone, or from a trained control on it, and write them as a PNG grid")
    .requiredOption("--model <dir-or-id>", "diffusers model directory or Hugging Face id")
    .option("--control <dir>", "a trained control: runs/<id> (its latest checkpoint) or a checkpoint folder")
    .option("--label <K|field=K>", "the class to ask for (repeat for several fields; -1 = null label)", collect, [])
    .option("--prompt <text>", "prompt for a text-to-image backbone (repeat: one per image, cycled)", collect, [])
    .option("--guidance-scale <w>", "classifier-free guidance scale for prompts (default: the control's, else 7.5)", number(0, 100))
    .option("--n <count>", "number of images", integer(1, 4096), 8)
    .requiredOption("--out <file.png>", "where to write the grid")
    .option("--steps <count>", "DDIM steps (ignored with --sampler ddpm; default: the control's, else 50)", integer(1, 10_000))
    .option("--eta <eta>", "0 = deterministic DDIM, 1 = ancestral (default: the control's, else 1)", number(0, 1))
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
      if (!backbone.textToImage && (flags.prompt.length || flags.guidanceScale !== undefined)) {
        throw new Error(`--prompt: ${flags.model} is an unconditional ${backbone.modelClass}; it takes no prompts`);
      }
      if (flags.label.length && !flags.control) throw new Error("--label: give --control too (labels are a control's)");
      const checkpoint = flags.control ? resolveControlDirectory(flags.control) : undefined;
      // A control is sampled as it was trained unless a flag says otherwise.
      const trained = checkpoint ? readSamplerRecord(checkpoint) : undefined;
      const steps = flags.steps ?? trained?.steps ?? 50;
      const timesteps =
        flags.sampler === "ddpm"
          ? ddpmTimesteps(backbone.numTrainTimesteps)
          : ddimTimesteps({ numTrainTimesteps: backbone.numTrainTimesteps, steps, offset: trained?.offset ?? backbone.stepsOffset });
      const eta = flags.sampler === "ddpm" ? 1 : (flags.eta ?? trained?.eta ?? 1);
      if (trained) process.stderr.write(`sampler: ${timesteps.length} steps, eta ${eta} (the control was trained with ${trained.steps} steps, eta ${trained.eta})\n`);
      let model = backbone.handle;
      let labels: Labels | undefined;
      if (checkpoint) {
        const control = await worker.loadControl(backbone.handle, checkpoint);
        model = control.handle;
        labels = labelsFromFlags(flags.label, control.fields, flags.n);
      }
      const prompts = flags.prompt.length ? Array.from({ length: flags.n }, (_, i) => flags.prompt[i % flags.prompt.length]!) : [];
      const text = backbone.textToImage ? { prompts, guidanceScale: flags.guidanceScale ?? trained?.guidanceScale } : undefined;
      const request = { model, numSamples: flags.n, timesteps, eta, seed: flags.seed, batchSize: flags.batchSize, labels, text };
      const images = flags.stepwise ? await sampleStepwise(worker, request) : await worker.sample(request);
      await writeFile(flags.out, await imageGrid(images, { columns: flags.columns, scale: flags.scale }));
      process.stderr.write(`wrote ${images.count} images (${images.width}x${images.height}) to ${flags.out}\n`);
    } finally {
      stopProgress();
    }
  });
});

interface TrainFlags extends WorkerFlags {
  config?: string;
  data?: string;
  labelColumn?: string;
  labelsFile?: string;
  backbone?: string;
  seed?: number;
  epochs?: number;
  klWeight?: number;
  oracle?: "compressibility" | "brightness";
  steps?: number;
  runsDir?: string;
  resume?: string;
  maxRestarts?: number;
  workers?: number | "auto";
  devices?: string;
  attach?: string;
}

function trainCommand(name: string, description: string) {
  return workerOptions(
    program
      .command(name)
      .description(description)
      .option("--config <file.json>", "experiment config (JSON); flags below override it")
      .option("--data <dir>", "a folder of images with labels.csv or labels.jsonl (default: the pre-trained model's own samples, labelled by --oracle)")
      .option("--label-column <name>", "the label column to add as a control (with --data)")
      .addOption(new Option("--oracle <name>", "without --data: the exact oracle that labels the model's own samples").choices(["compressibility", "brightness"]))
      .option("--labels-file <name>", "labels file inside --data (default: labels.csv, else labels.jsonl)")
      .option("--backbone <dir-or-id>", "diffusers model folder or Hugging Face id (default: models/default)")
      .option("--seed <seed>", "random seed", integer(0))
      .option("--epochs <count>", "fine-tuning epochs", integer(1, 100_000))
      .option("--kl-weight <weight>", "alpha per dimension: the KL's weight, the KL averaged over a sample's dimensions (official: 0.1)", number(0, 1e6))
      .option("--steps <count>", "sampler steps", integer(1, 1000))
      .option("--runs-dir <dir>", "where runs/<id>/ folders go (default: runs)")
      .option("--resume <run-dir>", "continue runs/<id> from its last checkpoint (other flags are ignored)")
      .option("--max-restarts <count>", "restart a worker that dies mid-run at most this often, continuing from the last checkpoint (default 3)", integer(0, 100))
      .option(
        "--workers <count>",
        "data parallel: this many workers in one torch.distributed group, each rolling out a shard of every batch (default auto: 2 on a CPU with 2 or more cores, else 1)",
        autoOr(integer(1, 64)),
      )
      .option("--devices <list>", "one device per worker, comma-separated, e.g. cuda:0,cuda:1 (sets --workers)")
      .option(
        "--attach <addresses>",
        "use running workers (host:port,...; e.g. torchrun ranks started with --distributed --listen tcp:...) instead of spawning; token from $CTRL_WORKER_TOKEN",
      ),
  ).action(async (flags: TrainFlags) => {
    const { run, results } = await runCtrl(await configFromFlags(flags), {
      resume: flags.resume,
      verbose: flags.verbose,
      python: flags.python,
      device: flags.device,
      attach: flags.attach ? { addresses: commaList("--attach", flags.attach), token: process.env.CTRL_WORKER_TOKEN } : undefined,
    });
    for (const r of results) {
      process.stdout.write(`${r.method.padEnd(12)} accuracy ${r.evaluation.accuracy.toFixed(3)}  macro-F1 ${r.evaluation.macroF1.toFixed(3)}  mean KL ${r.meanKl?.toFixed(2) ?? "-"}\n`);
    }
    process.stdout.write(`report: ${run.path("report.html")}\n`);
  });
}

/** The config file (if any) with the flags laid over it; validated later, field by field. */
async function configFromFlags(flags: TrainFlags): Promise<ConfigInput> {
  if (flags.resume) return {};
  const config = flags.config ? await readJsonObject("--config", flags.config) : {};
  if (flags.data || flags.labelColumn) {
    if (!flags.data || !flags.labelColumn) throw new Error("--data and --label-column go together");
    config.dataset = { kind: "folder", path: flags.data, labelColumn: flags.labelColumn, labelsFile: flags.labelsFile ?? "" };
    config.task ??= flags.labelColumn.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+/, "") || "control";
  }
  if (flags.oracle) {
    if (flags.data) throw new Error("--oracle: labels come from --data's labels file; give one or the other");
    config.dataset = { kind: "default", ...(config.dataset as Record<string, unknown> | undefined), oracle: flags.oracle };
    config.task ??= flags.oracle;
  }
  if (flags.backbone) config.backbone = flags.backbone;
  if (flags.seed !== undefined) config.seed = flags.seed;
  if (flags.runsDir) config.runsDir = flags.runsDir;
  // Flags win over the file, one field at a time; the whole result is validated later.
  const section = (name: string, patch: Record<string, unknown>) => {
    config[name] = { ...(config[name] as Record<string, unknown> | undefined), ...patch };
  };
  if (flags.epochs !== undefined) section("finetune", { epochs: flags.epochs });
  if (flags.klWeight !== undefined) section("finetune", { klWeight: flags.klWeight });
  if (flags.steps !== undefined) section("sampler", { steps: flags.steps });
  if (flags.maxRestarts !== undefined) section("recovery", { maxRestarts: flags.maxRestarts });
  if (flags.devices !== undefined) {
    config.devices = commaList("--devices", flags.devices);
    config.workers = (config.devices as string[]).length;
  }
  if (flags.workers !== undefined) {
    if (flags.devices !== undefined && flags.workers !== config.workers) throw new Error("--workers: --devices already gives one worker per device; give one or the other");
    config.workers = flags.workers;
  }
  if (flags.device !== "auto") config.device = flags.device;
  return config;
}

/** "a,b,c" -> ["a", "b", "c"]; empty entries are an error naming the flag. */
function commaList(flag: string, value: string): string[] {
  const items = value.split(",").map((item) => item.trim());
  if (items.some((item) => item === "")) throw new Error(`${flag}: expected a comma-separated list without empty entries, got ${JSON.stringify(value)}`);
  return items;
}

trainCommand("run", "the default CTRL reproduction: 4-class compressibility on the embedded model (same flags as train)");
trainCommand("train", "add a control to a backbone with CTRL from an offline labelled dataset");

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`ctrl: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
