/**
 * One worker per method: a fresh process, so that its peak resident memory (reported by the
 * worker's telemetry after every RPC) is that method's alone. The session loads the backbone and
 * caches the classifiers and datasets the method asks for.
 */
import type { Backbone, Dataset } from "../gen/ctrl/v1/worker.js";
import { type TimestepSpacing, samplerTimesteps } from "../sampling/schedules.js";
import type { StepLoop } from "../sampling/stepwise.js";
import type { RpcEvent } from "../worker/telemetry.js";
import { type SampleOptions, Worker } from "../worker/worker.js";
import type { Subset } from "./data.js";

export interface SessionSettings {
  backbone: string;
  device: string;
  threads: number;
  python?: string;
  verbose?: boolean;
  sampler: { steps: number; eta: number; spacing: TimestepSpacing };
  /** Samples per network call when sampling. */
  batchSize: number;
}

export class Session {
  private readonly classifiers = new Map<string, string>();
  private readonly datasets = new Map<string, Dataset>();

  private constructor(
    readonly worker: Worker,
    readonly backbone: Backbone,
    private readonly settings: SessionSettings,
    private readonly peak: { bytes: number | null },
  ) {}

  static async open(settings: SessionSettings, name: string): Promise<Session> {
    const worker = await Worker.start({
      device: settings.device,
      threads: settings.threads || undefined,
      python: settings.python,
      workerId: name,
      onLog: settings.verbose ? (line) => process.stderr.write(`[${name}] ${line}\n`) : undefined,
    });
    const peak = { bytes: null as number | null };
    worker.telemetry?.on("rpc", (event: RpcEvent) => {
      if (typeof event.max_rss_bytes === "number") peak.bytes = Math.max(peak.bytes ?? 0, event.max_rss_bytes, event.cuda_peak_bytes ?? 0);
    });
    try {
      return new Session(worker, await worker.loadBackbone(settings.backbone), settings, peak);
    } catch (error) {
      await worker.close();
      throw error;
    }
  }

  get timesteps(): number[] {
    return samplerTimesteps(this.settings.sampler, this.backbone);
  }

  /** The sampler settings applied to a model (a backbone or a control). */
  request(model: string, numSamples: number, seed: number): SampleOptions {
    return { model, numSamples, timesteps: this.timesteps, eta: this.settings.sampler.eta, seed, batchSize: this.settings.batchSize };
  }

  /** The same settings as a TypeScript-driven loop (guided sampling). */
  loop(): StepLoop {
    return { timesteps: this.timesteps, eta: this.settings.sampler.eta, batchSize: this.settings.batchSize };
  }

  async classifier(directory: string): Promise<string> {
    const known = this.classifiers.get(directory);
    if (known) return known;
    const handle = (await this.worker.loadClassifier(directory)).handle;
    this.classifiers.set(directory, handle);
    return handle;
  }

  async dataset(folder: string, subset: Subset): Promise<Dataset> {
    const known = this.datasets.get(subset.labelsFile);
    if (known) return known;
    const dataset = await this.worker.loadDataset(folder, { labelsFile: subset.labelsFile, labelColumns: subset.columns });
    this.datasets.set(subset.labelsFile, dataset);
    return dataset;
  }

  /** Closes the worker; returns its peak resident memory in bytes (null if no report arrived). */
  async close(): Promise<number | null> {
    try {
      // The worker reports memory after each RPC; one last call makes sure a late report is seen.
      const seen = new Promise<void>((resolve) => this.worker.telemetry?.on("rpc", () => resolve()));
      await this.worker.info();
      await Promise.race([seen, new Promise((resolve) => setTimeout(resolve, 1000))]);
    } finally {
      await this.worker.close();
    }
    return this.peak.bytes;
  }
}

/** Runs `body` in a fresh session; its value and the worker's peak memory. */
export async function withSession<T>(settings: SessionSettings, name: string, body: (session: Session) => Promise<T>): Promise<{ value: T; peakRssBytes: number | null }> {
  const session = await Session.open(settings, name);
  let value: T;
  try {
    value = await body(session);
  } catch (error) {
    await session.close().catch(() => undefined);
    throw error;
  }
  return { value, peakRssBytes: await session.close() };
}
