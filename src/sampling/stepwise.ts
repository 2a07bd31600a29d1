/**
 * The reverse process driven from TypeScript, one RPC per step: the hook for samplers and
 * guidance written in TypeScript. With the same seed, timesteps and eta it gives exactly the
 * images of the worker's fused `Sample` (equal up to float rounding across batch sizes).
 */
import type { ImageBatch } from "../worker/tensors.js";
import type { SampleOptions, Worker } from "../worker/worker.js";
import { nextTimestep } from "./schedules.js";

export interface StepwiseOptions extends Omit<SampleOptions, "onProgress"> {
  onStep?: (step: number, total: number, timestep: number) => void;
}

/** The loop's settings: which timesteps, with what eta, and a callback per step. */
export type StepLoop = Pick<StepwiseOptions, "timesteps" | "eta" | "batchSize" | "onStep">;

export async function sampleStepwise(worker: Worker, options: StepwiseOptions): Promise<ImageBatch> {
  const trajectory = await worker.startTrajectory(options.model, options.numSamples, options.seed, { labels: options.labels, text: options.text });
  return finishTrajectory(worker, trajectory.handle, options, () => worker.readImages(trajectory.handle));
}

/**
 * Steps a started trajectory through every timestep, then reads what `read` returns from it and
 * releases it (also on failure).
 */
export async function finishTrajectory<T>(worker: Worker, trajectory: string, loop: StepLoop, read: () => Promise<T>): Promise<T> {
  try {
    const { timesteps } = loop;
    for (let i = 0; i < timesteps.length; i++) {
      await worker.stepTrajectory(trajectory, {
        timestep: timesteps[i]!,
        prevTimestep: nextTimestep(timesteps, i),
        eta: loop.eta,
        batchSize: loop.batchSize,
      });
      loop.onStep?.(i + 1, timesteps.length, timesteps[i]!);
    }
    return await read();
  } finally {
    await worker.release(trajectory).catch(() => undefined);
  }
}
