/**
 * The orchestrator's handle on one PyTorch worker: spawn (or attach to one started elsewhere),
 * connect, typed promise-based calls,
 * telemetry, clean shutdown and crash detection. When the worker dies, every pending and later
 * call fails at once with a WorkerCrashedError that carries the exit code and its last stderr.
 * Calls with a natural bound carry a deadline; a watchdog checks health and kills a hung worker.
 */
import {
  type CallOptions,
  credentials,
  InterceptingCall,
  Metadata,
  type Interceptor,
  type ClientReadableStream,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import {
  AddControlRequest,
  type Backbone,
  BackwardRequest,
  type BackwardResponse,
  type Calibration,
  type Classifier,
  ClassifierBatchRequest,
  type ClassifierStepResponse,
  type Control,
  CreateClassifierRequest,
  CreateOptimizerRequest,
  type Dataset,
  DenoisingLossRequest,
  type DenoisingLossResponse,
  type DeepPartial,
  type DType,
  type Logits,
  NoisyClassifierStepRequest,
  type Optimizer,
  type OptimizerStepResponse,
  RolloutRequest,
  type RolloutResult,
  SaveRequest,
  TextCondition as TextConditionMessage,
  type SaveResponse,
  type HandleInfo,
  type ImageChunk,
  type LabelValues,
  type ListHandlesResponse,
  type ReleaseHandleResponse,
  type SampleKl,
  type SampleProgress,
  StartGuidedTrajectoryRequest,
  type StepTrajectoryResponse,
  type Tensor,
  type Trajectory,
  type WorkerInfo,
  WorkerClient,
} from "../gen/ctrl/v1/worker.js";
import { type HealthCheckResponse, HealthCheckResponse_ServingStatus, HealthClient } from "../gen/grpc/health/v1/health.js";
import { WorkerCallError, WorkerClosedError, WorkerCrashedError, WorkerHungError, WorkerStartError } from "./errors.js";
import { type ExitInfo, type SpawnOptions, type SpawnedWorker, spawnWorker } from "./spawn.js";
import type { TelemetrySubscriber } from "./telemetry.js";
import { type ImageBatch, imagesFromChunks, rows } from "./tensors.js";
import { WATCHDOG_DEFAULTS, Watchdog, type WatchdogOptions } from "./watchdog.js";

/** How a Worker reaches its process and, when it spawned it, controls it. */
interface Endpoint {
  address: string;
  token: string | undefined;
  maxMessageBytes: number;
  pid: number;
  exited: Promise<ExitInfo>;
  stderrTail(): string[];
  /** Signals the process; a no-op for an attached worker (not ours to stop). */
  kill(signal: NodeJS.Signals): void;
  /** Asks it to exit (stdin closes); for an attached worker, only ends our side. */
  release(): void;
}

function spawnedEndpoint(spawned: SpawnedWorker): Endpoint {
  return {
    address: spawned.address,
    token: spawned.token,
    maxMessageBytes: spawned.maxMessageBytes,
    pid: spawned.pid,
    exited: spawned.exited,
    stderrTail: spawned.stderrTail,
    kill: (signal) => spawned.process.kill(signal),
    release: () => spawned.process.stdin?.end(),
  };
}

/** A worker started by someone else (torchrun, a scheduler): we connect, and never stop it. */
function attachedEndpoint(address: string, token: string | undefined, maxMessageBytes: number): Endpoint {
  let detach: () => void = () => {};
  const exited = new Promise<ExitInfo>((resolve) => {
    detach = () => resolve({ exitCode: undefined, signal: undefined });
  });
  return { address, token, maxMessageBytes, pid: 0, exited, stderrTail: () => [], kill: () => {}, release: () => detach() };
}

export interface AttachOptions {
  /** The worker's token (its readiness line; or CTRL_WORKER_TOKEN it was started with). */
  token?: string;
  /** Largest gRPC message in MiB this side accepts. Default 64. */
  maxMessageMb?: number;
  watchdog?: WatchdogOptions | false;
}

export interface WorkerOptions extends SpawnOptions {
  /** Bind a telemetry subscriber for this worker (default true). */
  telemetry?: boolean;
  /** Periodic health checks that kill a hung worker (default on, every 10 s); false turns it off. */
  watchdog?: WatchdogOptions | false;
}

// Deadlines of the calls with a natural bound. The control calls (health, GetInfo, ListHandles)
// run on the worker's own threads and answer in milliseconds; the other small calls may wait
// behind long calls for a free thread. Sampling, rollouts, training and file I/O have none.
export const CONTROL_DEADLINE_MS = 10_000;
export const SMALL_CALL_DEADLINE_MS = 60_000;

/** Class labels per label field of a control, one value per sample (-1: the null label). */
export type Labels = Record<string, number[]>;

/** The condition c of a text-to-image backbone (leave out for pixel-space backbones). */
export interface TextCondition {
  /** One prompt for every sample or one per sample; none means the empty prompt. */
  prompts?: string[];
  /** Classifier-free guidance scale w; default 7.5; 1 runs the conditional branch alone. */
  guidanceScale?: number;
}

export interface SampleOptions {
  /** A backbone handle, or a control handle (then give `labels`). */
  model: string;
  numSamples: number;
  /** Strictly decreasing, e.g. from `ddimTimesteps`. */
  timesteps: number[];
  eta: number;
  seed: number;
  batchSize?: number;
  labels?: Labels;
  /** With a control: also return each sample's KL to the pre-trained model. */
  computeKl?: boolean;
  text?: TextCondition;
  /** Data parallel: these samples are rows [offset, offset + numSamples) of a batch of `total` drawn from `seed`. */
  shard?: Shard;
  onProgress?: (progress: SampleProgress) => void;
}

/** Rows [offset, offset + n) of one batch of `total` samples (see SampleRequest.shard_offset). */
export interface Shard {
  offset: number;
  total: number;
}

export interface ClassifierScores {
  logits: Float32Array[];
  labels: number[];
  temperature: number;
  features: Float32Array[] | undefined;
}

/** Images, and with `computeKl` each sample's KL to the pre-trained model along its trajectory. */
export interface Samples extends ImageBatch {
  kl?: number[];
}

export interface StepOptions {
  timestep: number;
  /** -1 for the last step, to the clean sample. */
  prevTimestep: number;
  eta: number;
  batchSize?: number;
}

interface Pending {
  reject: (error: Error) => void;
  cancel: () => void;
}

// Codes a dying worker produces; on these we wait briefly for the exit to report a crash instead.
const CONNECTION_CODES = new Set([status.UNAVAILABLE, status.CANCELLED, status.UNKNOWN, status.INTERNAL]);

export class Worker {
  private readonly pending = new Set<Pending>();
  private failure: Error | undefined;
  private closing = false;
  private watchdog: Watchdog | undefined;

  private constructor(
    private readonly endpoint: Endpoint,
    private readonly client: WorkerClient,
    private readonly healthClient: HealthClient,
    readonly telemetry: TelemetrySubscriber | undefined,
    watchdog: WatchdogOptions | false,
  ) {
    void endpoint.exited.then((exit) => this.onExit(exit));
    if (watchdog !== false) {
      const options = { ...WATCHDOG_DEFAULTS, ...watchdog };
      this.watchdog = new Watchdog((ms) => this.checkServing(ms), (n, last) => this.onHung(n, last), options);
    }
  }

  static async start(options: WorkerOptions = {}): Promise<Worker> {
    // Loaded on demand: a program that turns telemetry off never loads ZeroMQ's native addon.
    const telemetry = options.telemetry === false ? undefined : await (await import("./telemetry.js")).TelemetrySubscriber.bind();
    let spawned: SpawnedWorker;
    try {
      spawned = await spawnWorker({ ...options, telemetryAddress: options.telemetryAddress ?? telemetry?.address });
    } catch (error) {
      telemetry?.close();
      throw error;
    }
    return Worker.connect(spawnedEndpoint(spawned), telemetry, options.watchdog ?? {});
  }

  /**
   * Connects to a worker that is already running (`python -m ctrl_worker --listen tcp:...`, e.g.
   * one rank of a torchrun group on another machine). It has no telemetry here, and close() only
   * disconnects: the worker stays up for its owner to stop.
   */
  static async attach(address: string, options: AttachOptions = {}): Promise<Worker> {
    const endpoint = attachedEndpoint(address, options.token, (options.maxMessageMb ?? 64) * 1024 * 1024);
    const worker = Worker.connect(endpoint, undefined, options.watchdog ?? {});
    try {
      endpoint.pid = (await worker.info()).pid;
    } catch (error) {
      await worker.close();
      throw new WorkerStartError(`could not attach to the worker at ${address}: ${(error as Error).message}`);
    }
    return worker;
  }

  private static connect(endpoint: Endpoint, telemetry: TelemetrySubscriber | undefined, watchdog: WatchdogOptions | false): Worker {
    const channelOptions = {
      "grpc.max_receive_message_length": endpoint.maxMessageBytes,
      // The worker enforces the limit on what it receives and says so (RESOURCE_EXHAUSTED).
      "grpc.max_send_message_length": -1,
      interceptors: endpoint.token ? [bearerToken(endpoint.token)] : [],
    };
    const client = new WorkerClient(endpoint.address, credentials.createInsecure(), channelOptions);
    const healthClient = new HealthClient(endpoint.address, credentials.createInsecure(), channelOptions);
    return new Worker(endpoint, client, healthClient, telemetry, watchdog);
  }

  get pid(): number {
    return this.endpoint.pid;
  }

  get address(): string {
    return this.endpoint.address;
  }

  /** Resolves when the worker process has exited, for whatever reason. */
  get exited(): Promise<ExitInfo> {
    return this.endpoint.exited;
  }

  stderrTail(): string[] {
    return this.endpoint.stderrTail();
  }

  // -- calls -------------------------------------------------------------------------------------

  info(): Promise<WorkerInfo> {
    return this.unary<WorkerInfo>("GetInfo", (done) => this.client.getInfo({}, new Metadata(), within(CONTROL_DEADLINE_MS), done));
  }

  async health(service = "", timeoutMs = CONTROL_DEADLINE_MS): Promise<string> {
    const response = await this.unary<HealthCheckResponse>("Health.Check", (done) =>
      this.healthClient.check({ service }, new Metadata(), within(timeoutMs), done),
    );
    return HealthCheckResponse_ServingStatus[response.status] ?? String(response.status);
  }

  /** `autocast`: mixed precision for the network calls (bf16, or fp16 on a GPU). */
  loadBackbone(source: string, options: { revision?: string; dtype?: DType; autocast?: DType } = {}): Promise<Backbone> {
    const request = { source, revision: options.revision ?? "", dtype: options.dtype ?? 0, autocast: options.autocast ?? 0 };
    return this.unary<Backbone>("LoadBackbone", (done) => this.client.loadBackbone(request, done));
  }

  async listHandles(): Promise<HandleInfo[]> {
    const call = (done: (error: ServiceError | null, response?: ListHandlesResponse) => void) =>
      this.client.listHandles({}, new Metadata(), within(CONTROL_DEADLINE_MS), done);
    return (await this.unary<ListHandlesResponse>("ListHandles", call)).handles;
  }

  async release(handle: string): Promise<string[]> {
    const call = (done: (error: ServiceError | null, response?: ReleaseHandleResponse) => void) =>
      this.client.releaseHandle({ handle }, new Metadata(), within(SMALL_CALL_DEADLINE_MS), done);
    return (await this.unary<ReleaseHandleResponse>("ReleaseHandle", call)).released;
  }

  /** Fused sampling: the worker runs the whole loop and streams progress, then the images. */
  async sample(options: SampleOptions): Promise<Samples> {
    const chunks: ImageChunk[] = [];
    let kl: number[] | undefined;
    const request = {
      model: options.model,
      numSamples: options.numSamples,
      timesteps: options.timesteps,
      eta: options.eta,
      seed: options.seed,
      batchSize: options.batchSize ?? 0,
      labels: labelValues(options.labels),
      computeKl: options.computeKl ?? false,
      text: textCondition(options.text),
      shardOffset: options.shard?.offset ?? 0,
      shardTotal: options.shard?.total ?? 0,
    };
    await this.serverStream("Sample", () => this.client.sample(request), (event) => {
      if (event.event?.$case === "progress") options.onProgress?.(event.event.value);
      else if (event.event?.$case === "images") chunks.push(event.event.value);
      else if (event.event?.$case === "kl") kl = event.event.value.perSample;
    });
    return { ...imagesFromChunks(chunks), kl };
  }

  startTrajectory(
    model: string,
    numSamples: number,
    seed: number,
    options: { initialNoise?: Tensor; labels?: Labels; text?: TextCondition } = {},
  ): Promise<Trajectory> {
    const request = { model, numSamples, seed, initialNoise: options.initialNoise, labels: labelValues(options.labels), text: textCondition(options.text) };
    return this.unary<Trajectory>("StartTrajectory", (done) => this.client.startTrajectory(request, done));
  }

  stepTrajectory(trajectory: string, step: StepOptions): Promise<StepTrajectoryResponse> {
    const request = { trajectory, ...step, batchSize: step.batchSize ?? 0 };
    return this.unary<StepTrajectoryResponse>("StepTrajectory", (done) => this.client.stepTrajectory(request, done));
  }

  async readImages(trajectory: string): Promise<ImageBatch> {
    const chunks: ImageChunk[] = [];
    await this.serverStream("ReadImages", () => this.client.readImages({ trajectory }), (chunk) => chunks.push(chunk));
    return imagesFromChunks(chunks);
  }

  // -- offline data ----------------------------------------------------------------------------

  loadDataset(path: string, options: { labelsFile?: string; labelColumns?: string[] } = {}): Promise<Dataset> {
    const request = { path, labelsFile: options.labelsFile ?? "", labelColumns: options.labelColumns ?? [] };
    return this.unary<Dataset>("LoadDataset", (done) => this.client.loadDataset(request, done));
  }

  /** Images from the project's seeded synthetic generator, the embedded default's training data. */
  async syntheticImages(numImages: number, seed: number): Promise<ImageBatch> {
    const chunks: ImageChunk[] = [];
    await this.serverStream("SyntheticImages", () => this.client.syntheticImages({ numImages, seed }), (c) => chunks.push(c));
    return imagesFromChunks(chunks);
  }

  // -- classifiers -------------------------------------------------------------------------------

  createClassifier(request: DeepPartial<CreateClassifierRequest>): Promise<Classifier> {
    const full = CreateClassifierRequest.fromPartial(request);
    return this.unary<Classifier>("CreateClassifier", (done) => this.client.createClassifier(full, done));
  }

  trainClassifierStep(request: DeepPartial<ClassifierBatchRequest>): Promise<ClassifierStepResponse> {
    const full = ClassifierBatchRequest.fromPartial(request);
    return this.unary<ClassifierStepResponse>("TrainClassifierStep", (done) => this.client.trainClassifierStep(full, done));
  }

  /** Uncalibrated logits (rows of numClasses), with the classifier's temperature and, if asked, features. */
  async classifierLogits(request: DeepPartial<ClassifierBatchRequest>): Promise<ClassifierScores> {
    const full = ClassifierBatchRequest.fromPartial(request);
    const response = await this.unary<Logits>("ClassifierLogits", (done) => this.client.classifierLogits(full, done));
    return {
      logits: rows(response.logits!),
      labels: response.labels,
      temperature: response.temperature,
      features: response.features?.shape.length ? rows(response.features) : undefined,
    };
  }

  calibrateClassifier(request: DeepPartial<ClassifierBatchRequest>): Promise<Calibration> {
    const full = ClassifierBatchRequest.fromPartial(request);
    return this.unary<Calibration>("CalibrateClassifier", (done) => this.client.calibrateClassifier(full, done));
  }

  async saveClassifier(classifier: string, directory: string, overwrite = false): Promise<string[]> {
    const request = SaveRequest.fromPartial({ handle: classifier, directory, overwrite });
    return (await this.unary<SaveResponse>("SaveClassifier", (done) => this.client.saveClassifier(request, done))).files;
  }

  loadClassifier(directory: string): Promise<Classifier> {
    return this.unary<Classifier>("LoadClassifier", (done) => this.client.loadClassifier({ directory }, done));
  }

  // -- controls ----------------------------------------------------------------------------------

  addControl(request: DeepPartial<AddControlRequest>): Promise<Control> {
    const full = AddControlRequest.fromPartial(request);
    return this.unary<Control>("AddControl", (done) => this.client.addControl(full, done));
  }

  createOptimizer(request: DeepPartial<CreateOptimizerRequest>): Promise<Optimizer> {
    const full = CreateOptimizerRequest.fromPartial(request);
    return this.unary<Optimizer>("CreateOptimizer", (done) => this.client.createOptimizer(full, done));
  }

  rollout(request: Omit<DeepPartial<RolloutRequest>, "labels"> & { labels: Labels }): Promise<RolloutResult> {
    const full = RolloutRequest.fromPartial({ ...request, labels: labelValues(request.labels) });
    return this.unary<RolloutResult>("Rollout", (done) => this.client.rollout(full, done));
  }

  backward(request: DeepPartial<BackwardRequest>): Promise<BackwardResponse> {
    const full = BackwardRequest.fromPartial(request);
    return this.unary<BackwardResponse>("Backward", (done) => this.client.backward(full, done));
  }

  /**
   * Clip, step and zero the gradients; `learningRateScale` multiplies every group's rate for this
   * step (a warm-up). `discard` only zeroes them. `skipped` in the answer: no step was taken.
   * `checksum`: also return the parameters' SHA-256 after the step.
   */
  optimizerStep(optimizer: string, learningRateScale = 1, options: { discard?: boolean; checksum?: boolean } = {}): Promise<OptimizerStepResponse> {
    const request = { optimizer, learningRateScale, discard: options.discard ?? false, checksum: options.checksum ?? false };
    return this.unary<OptimizerStepResponse>("OptimizerStep", (done) => this.client.optimizerStep(request, done));
  }

  async saveControl(control: string, directory: string, options: { optimizer?: string; overwrite?: boolean } = {}): Promise<string[]> {
    const request = SaveRequest.fromPartial({ handle: control, directory, optimizer: options.optimizer, overwrite: options.overwrite });
    return (await this.unary<SaveResponse>("SaveControl", (done) => this.client.saveControl(request, done))).files;
  }

  loadControl(backbone: string, directory: string): Promise<Control> {
    return this.unary<Control>("LoadControl", (done) => this.client.loadControl({ backbone, directory }, done));
  }

  loadOptimizerState(optimizer: string, directory: string): Promise<Optimizer> {
    return this.unary<Optimizer>("LoadOptimizerState", (done) => this.client.loadOptimizerState({ optimizer, directory }, done));
  }

  // -- baselines ---------------------------------------------------------------------------------

  /** Classifier-free guidance fine-tuning: the denoising loss of a control on dataset rows, back-propagated. */
  denoisingLoss(request: Omit<DeepPartial<DenoisingLossRequest>, "labels"> & { labels: Labels }): Promise<DenoisingLossResponse> {
    const full = DenoisingLossRequest.fromPartial({ ...request, labels: labelValues(request.labels) });
    return this.unary<DenoisingLossResponse>("DenoisingLoss", (done) => this.client.denoisingLoss(full, done));
  }

  /** One step of a noise-aware classifier on rows noised to the given timesteps. */
  trainNoisyClassifierStep(request: DeepPartial<NoisyClassifierStepRequest>): Promise<ClassifierStepResponse> {
    const full = NoisyClassifierStepRequest.fromPartial(request);
    return this.unary<ClassifierStepResponse>("TrainNoisyClassifierStep", (done) => this.client.trainNoisyClassifierStep(full, done));
  }

  /** A trajectory of the backbone with guidance terms; step it with `stepTrajectory`. */
  startGuidedTrajectory(request: DeepPartial<StartGuidedTrajectoryRequest>): Promise<Trajectory> {
    const full = StartGuidedTrajectoryRequest.fromPartial(request);
    return this.unary<Trajectory>("StartGuidedTrajectory", (done) => this.client.startGuidedTrajectory(full, done));
  }

  /** Each sample's KL to the pre-trained transitions so far (a trajectory started with computeKl). */
  async readTrajectoryKl(trajectory: string): Promise<number[]> {
    const call = (done: (error: ServiceError | null, response?: SampleKl) => void) =>
      this.client.readTrajectoryKl({ trajectory }, new Metadata(), within(SMALL_CALL_DEADLINE_MS), done);
    return (await this.unary<SampleKl>("ReadTrajectoryKl", call)).perSample;
  }

  // -- lifecycle ---------------------------------------------------------------------------------

  /** Asks the worker to exit (stdin closes), then escalates to SIGTERM and SIGKILL if it lingers. */
  async close(timeoutMs = 5000): Promise<ExitInfo> {
    if (!this.closing) {
      this.closing = true;
      this.watchdog?.stop();
      this.failure ??= new WorkerClosedError();
      this.client.close();
      this.healthClient.close();
      this.endpoint.release();
    }
    const exit = await withTimeout(this.endpoint.exited, timeoutMs, () => this.endpoint.kill("SIGTERM"));
    const final = exit ?? (await withTimeout(this.endpoint.exited, 2000, () => this.endpoint.kill("SIGKILL")));
    this.telemetry?.close();
    return final ?? (await this.endpoint.exited);
  }

  private onExit(exit: ExitInfo): void {
    this.watchdog?.stop();
    // A hung worker's failure (set before it was killed) stays the one calls see.
    if (!this.closing) this.failure ??= new WorkerCrashedError(exit.exitCode, exit.signal, this.endpoint.stderrTail());
    this.failPending(this.failure ?? new WorkerClosedError());
    this.client.close();
    this.healthClient.close();
    if (!this.closing) this.telemetry?.close();
  }

  private failPending(error: Error): void {
    for (const call of this.pending) {
      call.reject(error);
      call.cancel();
    }
    this.pending.clear();
  }

  private async checkServing(timeoutMs: number): Promise<void> {
    const serving = await this.health("", timeoutMs);
    if (serving !== "SERVING") throw new Error(`health status ${serving}`);
  }

  /** The watchdog's verdict: fail every call now (the exit may take a moment), then kill. */
  private onHung(failedChecks: number, lastError: string): void {
    if (this.failure) return;
    this.failure = new WorkerHungError(failedChecks, lastError);
    this.failPending(this.failure);
    // SIGKILL: a stopped or deadlocked process would not act on SIGTERM.
    this.endpoint.kill("SIGKILL");
  }

  private async explain(method: string, error: ServiceError): Promise<Error> {
    if (this.failure) return this.failure;
    if (CONNECTION_CODES.has(error.code)) {
      // The process may be dying: give its exit a moment to arrive, so the error says so.
      await withTimeout(this.endpoint.exited, 1000);
      if (this.failure) return this.failure;
    }
    return new WorkerCallError(method, error.code, error.details);
  }

  private unary<T>(method: string, start: (done: (error: ServiceError | null, response?: T) => void) => { cancel(): void }): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = { reject, cancel: () => {} };
      this.pending.add(entry);
      const call = start((error, response) => {
        this.pending.delete(entry);
        if (error) void this.explain(method, error).then(reject);
        else resolve(response as T);
      });
      entry.cancel = () => call.cancel();
    });
  }

  private serverStream<T>(method: string, start: () => ClientReadableStream<T>, onMessage: (message: T) => void): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      const stream = start();
      const entry: Pending = { reject, cancel: () => stream.cancel() };
      this.pending.add(entry);
      let settled = false;
      stream.on("data", onMessage);
      stream.on("error", (error: ServiceError) => {
        if (settled) return;
        settled = true;
        this.pending.delete(entry);
        void this.explain(method, error).then(reject);
      });
      stream.on("end", () => {
        if (settled) return;
        settled = true;
        this.pending.delete(entry);
        resolve();
      });
    });
  }
}

export function labelValues(labels: Labels | undefined): LabelValues[] {
  return Object.entries(labels ?? {}).map(([field, values]) => ({ field, values }));
}

function bearerToken(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** Call options with a deadline `ms` from now. */
function within(ms: number): Partial<CallOptions> {
  return { deadline: Date.now() + ms };
}

function textCondition(text: TextCondition | undefined): TextConditionMessage | undefined {
  return text === undefined ? undefined : TextConditionMessage.fromPartial(text);
}

/** Resolves with the promise's value, or undefined after `ms` (calling `onTimeout` first). */
async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout?: () => void): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      onTimeout?.();
      resolve(undefined);
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
