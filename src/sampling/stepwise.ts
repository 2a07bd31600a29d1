/**
 * The reverse process driven from TypeScript, one RPC per step: the hook for samplers and
 * guidance written in TypeScript. With the same seed, timesteps, eta and batch size it gives
 * exactly the images of the worker's fused `Sample`.
 */
import type { ImageBatch } from "../worker/tensors.js";
import type { SampleOptions, Worker } from "../worker/worker.js";
import { nextTimestep } from "./schedules.js";

export interface StepwiseOptions extends Omit<SampleOptions, "onProgress"> {
  onStep?: (step: number, total: number, timestep: number) => void;
}

export async function sampleStepwise(worker: Worker, options: StepwiseOptions): Promise<ImageBatch> {
  const trajectory = await worker.startTrajectory(options.model, options.numSamples, options.seed, { labels: options.labels, text: options.text });
  try {
    const { timesteps } = options;
    for (let i = 0; i < timesteps.length; i++) {
      await worker.stepTrajectory(trajectory.handle, {
        timestep: timesteps[i]!,
        prevTimestep: nextTimestep(timesteps, i),
        eta: options.eta,
        batchSize: options.batchSize,
      });
      options.onStep?.(i + 1, timesteps.length, timesteps[i]!);
    }
    return await worker.readImages(trajectory.handle);
  } finally {
    await worker.release(trajectory.handle).catch(() => undefined);
  }
}
