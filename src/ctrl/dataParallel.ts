/**
 * Data-parallel CTRL over a WorkerGroup. Every batch (a training rollout, an evaluation sample) is
 * cut into contiguous shards, one per rank; each rank draws the whole batch's noise from the same
 * seed and keeps its rows, so the shards together are the batch one worker would have drawn.
 * Each rank's loss is scaled by its share of the batch, and OptimizerStep sums the gradients over
 * the ranks (torch.distributed all-reduce) before every rank takes the same step: the update is
 * the one-worker update on the combined batch, up to float rounding. After each step the ranks'
 * parameter checksums must agree bit for bit.
 *
 * Handles: callers use rank 0's handles; each object replicated on the other ranks (backbone,
 * classifier, control, optimizer, rollout) is looked up by rank 0's handle.
 */
import type { BackwardRequest, BackwardResponse, DeepPartial, OptimizerStepResponse, RewardTerm, RolloutResult } from "../gen/ctrl/v1/worker.js";
import type { WorkerGroup } from "../worker/group.js";
import type { ImageBatch } from "../worker/tensors.js";
import type { Labels, SampleOptions, Samples, TextCondition, Worker } from "../worker/worker.js";
import type { FinetuneWorker } from "./finetune.js";

/** Rows [offset, offset + count) of a batch. */
export interface Slice {
  offset: number;
  count: number;
}

/** `total` rows cut into `parts` contiguous slices whose sizes differ by at most one (the first ones larger). */
export function shardSlices(total: number, parts: number): Slice[] {
  const base = Math.floor(total / parts);
  const larger = total % parts;
  const slices: Slice[] = [];
  let offset = 0;
  for (let i = 0; i < parts; i++) {
    const count = base + (i < larger ? 1 : 0);
    slices.push({ offset, count });
    offset += count;
  }
  return slices;
}

/** The ranks disagree on the trainable parameters after a step: they no longer train one model. */
export class ReplicaDivergenceError extends Error {
  override name = "ReplicaDivergenceError";
  constructor(readonly checksums: string[]) {
    super(
      `data parallel: after an optimiser step the ranks' parameters differ (checksums ${checksums.map((c, rank) => `rank ${rank} ${c.slice(0, 12)}`).join(", ")}); ` +
        "they must run the same worker version, torch and device type",
    );
  }
}

type RolloutCall = Parameters<FinetuneWorker["rollout"]>[0];

export class DataParallel implements FinetuneWorker {
  /** Rank 0's handle -> every rank's handle for the same object. */
  private readonly replicas = new Map<string, string[]>();
  /** A live rollout's shards, as shares of its batch. */
  private readonly shares = new Map<string, number[]>();

  constructor(readonly group: WorkerGroup) {}

  get primary(): Worker {
    return this.group.primary;
  }

  get size(): number {
    return this.group.size;
  }

  /** Makes rank 0's object `handle` on every other rank too: `make` returns that rank's handle. */
  async replicate(handle: string, make: (worker: Worker, rank: number) => Promise<string>): Promise<void> {
    if (this.size === 1) return;
    this.replicas.set(handle, await this.group.all((worker, rank) => (rank === 0 ? Promise.resolve(handle) : make(worker, rank))));
  }

  /** Rank `rank`'s handle for rank 0's object `handle`. */
  on(rank: number, handle: string): string {
    if (rank === 0) return handle;
    const replica = this.replicas.get(handle)?.[rank];
    if (!replica) throw new Error(`data parallel: ${handle || "(no handle)"} was not replicated on rank ${rank}`);
    return replica;
  }

  info(): ReturnType<Worker["info"]> {
    return this.primary.info();
  }

  /** Sharded sampling: the same images (up to float rounding) as one worker's `sample(options)`. */
  async sample(options: SampleOptions): Promise<Samples> {
    if (this.size === 1) return this.primary.sample(options);
    const slices = shardSlices(options.numSamples, this.size);
    const parts = await this.group.all((worker, rank) => {
      const slice = slices[rank]!;
      if (slice.count === 0) return Promise.resolve(undefined);
      return worker.sample({
        ...options,
        model: this.on(rank, options.model),
        numSamples: slice.count,
        labels: sliceLabels(options.labels, slice),
        text: sliceText(options.text, slice, options.numSamples),
        shard: { offset: slice.offset, total: options.numSamples },
        onProgress: rank === 0 ? options.onProgress : undefined,
      });
    });
    const filled = parts.filter((part): part is Samples => part !== undefined);
    const kl = filled.every((part) => part.kl) ? filled.flatMap((part) => part.kl!) : undefined;
    return { ...concatImages(filled), kl };
  }

  async rollout(request: RolloutCall): Promise<RolloutResult> {
    if (this.size === 1) return this.primary.rollout(request);
    const total = request.numSamples ?? 0;
    const slices = shardSlices(total, this.size);
    if (slices.some((slice) => slice.count === 0)) {
      throw new RangeError(`data parallel: a rollout of ${total} samples cannot feed ${this.size} workers; use a batch of at least one sample per worker`);
    }
    const parts = await this.group.all((worker, rank) => {
      const slice = slices[rank]!;
      return worker.rollout({
        ...request,
        control: this.on(rank, request.control ?? ""),
        numSamples: slice.count,
        labels: sliceLabels(request.labels, slice)!,
        text: sliceText(request.text as TextCondition | undefined, slice, total),
        shardOffset: slice.offset,
        shardTotal: total,
      } satisfies RolloutCall);
    });
    const shares = slices.map((slice) => slice.count / total);
    const handle = parts[0]!.handle;
    this.replicas.set(handle, parts.map((part) => part.handle));
    this.shares.set(handle, shares);
    return {
      handle,
      klPerStep: parts[0]!.klPerStep.map((_, step) => weighted(shares, (rank) => parts[rank]!.klPerStep[step]!)),
      klPerSample: parts.flatMap((part) => part.klPerSample),
      gradStepsKept: parts[0]!.gradStepsKept,
      seconds: Math.max(...parts.map((part) => part.seconds)),
      unetCalls: parts.reduce((sum, part) => sum + part.unetCalls, 0),
    };
  }

  /** Each rank back-propagates its shard's loss times its share: the sum is the batch's loss. */
  async backward(request: DeepPartial<BackwardRequest>): Promise<BackwardResponse> {
    if (this.size === 1) return this.primary.backward(request);
    const rollout = request.rollout ?? "";
    const shares = this.shares.get(rollout);
    if (!shares) throw new Error(`data parallel: no live rollout ${rollout}`);
    try {
      const parts = await this.group.all((worker, rank) =>
        worker.backward({
          rollout: this.on(rank, rollout),
          terms: (request.terms ?? []).map((term) => this.termOn(rank, term as RewardTerm, shares)),
          lossScale: (request.lossScale ?? 1) * shares[rank]!,
        }),
      );
      return {
        loss: weighted(shares, (rank) => parts[rank]!.loss),
        terms: parts[0]!.terms.map((_, i) => ({
          mean: weighted(shares, (rank) => parts[rank]!.terms[i]!.mean),
          perSample: parts.flatMap((part) => part.terms[i]!.perSample),
        })),
        seconds: Math.max(...parts.map((part) => part.seconds)),
        nonFinite: parts.some((part) => part.nonFinite),
      };
    } finally {
      // Backward releases the rollout on every rank, whatever it answered.
      this.replicas.delete(rollout);
      this.shares.delete(rollout);
    }
  }

  async optimizerStep(optimizer: string, learningRateScale = 1, options: { discard?: boolean } = {}): Promise<OptimizerStepResponse> {
    if (this.size === 1) return this.primary.optimizerStep(optimizer, learningRateScale, options);
    const parts = await this.group.all((worker, rank) => worker.optimizerStep(this.on(rank, optimizer), learningRateScale, { ...options, checksum: true }));
    const checksums = parts.map((part) => part.parameterChecksum);
    if (new Set(checksums).size !== 1) throw new ReplicaDivergenceError(checksums);
    return parts[0]!;
  }

  /** A reward term as rank `rank` reads it: its classifier's handle there, its shard of per-sample constants. */
  private termOn(rank: number, term: RewardTerm, shares: number[]): RewardTerm {
    const source = term.source;
    if (source?.$case === "classifierLogProb") {
      return { ...term, source: { ...source, value: { ...source.value, classifier: this.on(rank, source.value.classifier) } } };
    }
    if (source?.$case === "constant" && source.value.values.length > 1) {
      const total = source.value.values.length;
      const slice = shardSlices(total, shares.length)[rank]!;
      return { ...term, source: { ...source, value: { values: source.value.values.slice(slice.offset, slice.offset + slice.count) } } };
    }
    return term;
  }
}

function weighted(shares: number[], value: (rank: number) => number): number {
  return shares.reduce((sum, share, rank) => sum + share * value(rank), 0);
}

function sliceLabels(labels: Labels | undefined, slice: Slice): Labels | undefined {
  if (!labels) return undefined;
  return Object.fromEntries(Object.entries(labels).map(([field, values]) => [field, values.slice(slice.offset, slice.offset + slice.count)]));
}

/** One prompt for every sample stays; one per sample is cut like the batch. */
function sliceText(text: TextCondition | undefined, slice: Slice, total: number): TextCondition | undefined {
  if (!text?.prompts || text.prompts.length !== total || total <= 1) return text;
  return { ...text, prompts: text.prompts.slice(slice.offset, slice.offset + slice.count) };
}

function concatImages(parts: ImageBatch[]): ImageBatch {
  const first = parts[0]!;
  const data = new Uint8Array(parts.reduce((sum, part) => sum + part.data.length, 0));
  let at = 0;
  for (const part of parts) {
    data.set(part.data, at);
    at += part.data.length;
  }
  return { count: parts.reduce((sum, part) => sum + part.count, 0), height: first.height, width: first.width, channels: first.channels, data };
}
