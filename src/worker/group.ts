/**
 * N workers that form one torch.distributed process group (data parallel): spawned here (gloo on
 * CPUs, NCCL on GPUs; rendezvous on loopback), or attached to workers started elsewhere (torchrun
 * on other machines). Rank 0 is the primary: it does everything that is not sharded.
 */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createServer } from "node:net";
import { isWorkerLoss } from "./errors.js";
import { type AttachOptions, Worker, type WorkerOptions } from "./worker.js";

export interface GroupOptions extends WorkerOptions {
  /** One device per rank (e.g. cuda:0, cuda:1); default: `device` for every rank, or cuda:i when it is "cuda". */
  devices?: string[];
}

export class WorkerGroup {
  private constructor(readonly workers: Worker[]) {}

  /** Starts `size` workers; with more than one they join a process group before they are ready. */
  static async spawn(size: number, options: GroupOptions = {}): Promise<WorkerGroup> {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`workers: expected a whole number of at least 1, got ${size}`);
    if (options.devices && options.devices.length !== size) {
      throw new RangeError(`devices: expected one device per worker (${size}), got ${options.devices.length}`);
    }
    if (size === 1) return new WorkerGroup([await Worker.start({ ...options, device: options.devices?.[0] ?? options.device })]);
    const masterPort = await freePort();
    // CPU workers share the cores: torch's default (one thread per core each) would oversubscribe them.
    const threads = options.threads || Math.max(1, Math.floor(availableParallelism() / size));
    const started = await Promise.allSettled(
      Array.from({ length: size }, (_, rank) =>
        Worker.start({
          ...options,
          threads,
          device: rankDevice(options, rank),
          workerId: `${options.workerId ?? "worker"}-rank${rank}`,
          // Only rank 0 reports progress; the others would repeat it.
          telemetry: rank === 0 ? options.telemetry : false,
          distributed: { rank, worldSize: size, masterAddr: "127.0.0.1", masterPort, localRank: rank },
        }),
      ),
    );
    return WorkerGroup.fromSettled(started);
  }

  /**
   * Connects to workers already running in one process group (each started with `--distributed`,
   * e.g. by torchrun), in any order: they are ordered by rank, and the group must be complete.
   */
  static async attach(addresses: string[], options: AttachOptions = {}): Promise<WorkerGroup> {
    if (addresses.length === 0) throw new RangeError("attach: expected at least one worker address");
    const group = WorkerGroup.fromSettled(await Promise.allSettled(addresses.map((address) => Worker.attach(address, options))));
    const infos = await Promise.all(group.workers.map((worker) => worker.info()));
    const ranks = infos.map((info) => info.distributed?.rank ?? 0);
    const sizes = infos.map((info) => info.distributed?.worldSize || 1);
    const problem = sizes.some((n) => n !== addresses.length)
      ? `the workers belong to groups of ${[...new Set(sizes)].join(", ")} ranks, but ${addresses.length} addresses were given`
      : new Set(ranks).size !== ranks.length
        ? `two addresses reach the same rank (ranks ${ranks.join(", ")})`
        : undefined;
    if (problem) {
      await group.close();
      throw new Error(`attach: ${problem}`);
    }
    const byRank = group.workers.map((worker, i) => ({ worker, rank: ranks[i]! })).sort((a, b) => a.rank - b.rank);
    return new WorkerGroup(byRank.map((entry) => entry.worker));
  }

  private static fromSettled(started: PromiseSettledResult<Worker>[]): WorkerGroup {
    const failed = started.find((result): result is PromiseRejectedResult => result.status === "rejected");
    const workers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    if (failed) {
      void Promise.all(workers.map((worker) => worker.close()));
      throw failed.reason;
    }
    return new WorkerGroup(workers);
  }

  get primary(): Worker {
    return this.workers[0]!;
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Runs `call` on every rank at once and waits for all. When a worker is lost (crashed, or hung
   * and killed), its error wins: the survivors then fail in their collectives, which says less.
   */
  async all<T>(call: (worker: Worker, rank: number) => Promise<T>): Promise<T[]> {
    const settled = await Promise.allSettled(this.workers.map((worker, rank) => call(worker, rank)));
    const errors = settled.flatMap((result) => (result.status === "rejected" ? [result.reason as unknown] : []));
    if (errors.length) throw errors.find(isWorkerLoss) ?? errors[0];
    return settled.map((result) => (result as PromiseFulfilledResult<T>).value);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.close()));
  }
}

/**
 * The workers that `workers: "auto"` means: one per listed device; on the CPU (device "cpu", or
 * "auto" on a machine without an NVIDIA device node, where torch cannot see CUDA) with 2 or more
 * cores, 2 workers that split the cores, at most one per sample of a rollout; otherwise 1. Why 2
 * on a CPU: one process's torch threads wait for each other at every operation, so on a small
 * VM a second thread adds little, while a second process of one thread does its own half of the
 * batch (1.8x the fine-tuning throughput on 2-core VMs: BENCHMARKS.md, the `dp` row).
 */
export function autoWorkerCount(device: string, devices: readonly string[] | undefined, rolloutSamples: number, probe = machineProbe): number {
  if (devices) return devices.length;
  const onCpu = device === "cpu" || (device === "auto" && !probe.hasNvidiaDevice());
  return onCpu ? Math.max(1, Math.min(2, probe.cores(), rolloutSamples)) : 1;
}

export interface MachineProbe {
  cores(): number;
  hasNvidiaDevice(): boolean;
}

const machineProbe: MachineProbe = {
  cores: () => availableParallelism(),
  hasNvidiaDevice: () => existsSync("/dev/nvidiactl"),
};

function rankDevice(options: GroupOptions, rank: number): string | undefined {
  if (options.devices) return options.devices[rank];
  return options.device === "cuda" ? `cuda:${rank}` : options.device;
}

/** A TCP port nobody listens on now, for rank 0's rendezvous store. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
