/** Timestep schedules, computed in TypeScript so that experiments own them. */

export interface DdimScheduleOptions {
  /** Training timesteps of the backbone, usually 1000. */
  numTrainTimesteps: number;
  /** Sampling steps, e.g. 50. */
  steps: number;
  /**
   * Added to every timestep. Stable Diffusion's scheduler uses 1 (giving 981, 961, ..., 1 for 50
   * steps, as in the CTRL paper); pixel DDPMs use 0.
   */
  offset?: number;
}

/** diffusers' DDIMScheduler "leading" spacing: floor(i * T / steps) + offset, largest first. */
export function ddimTimesteps({ numTrainTimesteps, steps, offset = 0 }: DdimScheduleOptions): number[] {
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 1) {
    throw new RangeError(`numTrainTimesteps must be a positive integer, got ${numTrainTimesteps}`);
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > numTrainTimesteps) {
    throw new RangeError(`steps must be an integer in [1, ${numTrainTimesteps}], got ${steps}`);
  }
  const ratio = Math.floor(numTrainTimesteps / steps);
  const timesteps = Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + offset);
  if (!Number.isInteger(offset) || timesteps[0]! >= numTrainTimesteps || offset < 0) {
    throw new RangeError(`offset ${offset} puts timesteps outside [0, ${numTrainTimesteps})`);
  }
  return timesteps;
}

/** Every training timestep, T-1 down to 0: with eta = 1 this is DDPM's ancestral sampler. */
export function ddpmTimesteps(numTrainTimesteps: number): number[] {
  return ddimTimesteps({ numTrainTimesteps, steps: numTrainTimesteps });
}

/** The timestep after `timesteps[i]`, or -1 after the last one (the clean sample). */
export function nextTimestep(timesteps: readonly number[], i: number): number {
  return i + 1 < timesteps.length ? timesteps[i + 1]! : -1;
}
