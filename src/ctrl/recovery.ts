/**
 * Runs that survive a killed worker: when the worker process dies mid-run (SIGKILL, the OOM
 * killer, a crash) or hangs (the watchdog kills it), a new one is started and the run continues from its last saved state, at most
 * `maxRestarts` times. What the dead worker did after that state is redone, and its records are cut
 * from metrics.jsonl first, so the file reads as if the run had never been interrupted (plus one
 * "restart" record per restart).
 */
import { rmSync } from "node:fs";
import type { Run } from "./runs.js";
import { isWorkerLoss } from "../worker/errors.js";

export interface Restart {
  /** 1 for the first restart. */
  count: number;
  /** The crash, in one line. */
  reason: string;
}

/**
 * Calls `attempt` until it settles without losing its worker (see isWorkerLoss); a loss is retried
 * (with what it was) up to `maxRestarts` times, and rethrown after that. Any other error ends it
 * at once.
 */
export async function withRestarts<T>(maxRestarts: number, attempt: (restart: Restart | undefined) => Promise<T>, log: (message: string) => void): Promise<T> {
  let restart: Restart | undefined;
  for (;;) {
    try {
      return await attempt(restart);
    } catch (error) {
      if (!isWorkerLoss(error)) throw error;
      const count = (restart?.count ?? 0) + 1;
      if (count > maxRestarts) {
        error.message += `\n(${maxRestarts} restart${maxRestarts === 1 ? "" : "s"} allowed by recovery.maxRestarts were used up)`;
        throw error;
      }
      restart = { count, reason: error.message.split("\n")[0]! };
      log(`${restart.reason}: restarting it (${count} of at most ${maxRestarts}) and continuing from the last saved state`);
    }
  }
}

/** What a run folder's state.json must say for a rewind. */
export interface SavedProgress {
  completedEpochs: number;
  checkpoint: string | null;
  /** The size of metrics.jsonl when the state was saved; absent in runs from before it was recorded. */
  metricsBytes?: number;
}

/** Restart records are history, not work: a later rewind to an earlier state keeps them. */
const isRestartRecord = (record: Record<string, unknown>) => record.phase === "restart";

/**
 * Takes a run back to its last saved state before it continues: metrics.jsonl is cut to the size
 * it had then (keeping the restart records logged since), and without any saved state the stage
 * outputs of the run's own preparation (dataset/, classifier/) are removed, since preparation
 * starts over. Returns the number of fine-tuning steps that had been logged past the state: the
 * work the continuation redoes.
 */
export function rewindRun(run: Run, saved: SavedProgress | undefined, stepsPerEpoch: number): number {
  const lastLogged = Math.max(0, ...run.readMetrics().flatMap((m) => (m.phase === "finetune" && typeof m.step === "number" ? [m.step] : [])));
  if (!saved) {
    run.truncateMetrics(0, isRestartRecord);
    for (const stage of ["dataset", "classifier"]) rmSync(run.path(stage), { recursive: true, force: true });
    return lastLogged;
  }
  if (saved.metricsBytes !== undefined) run.truncateMetrics(saved.metricsBytes, isRestartRecord);
  return Math.max(0, lastLogged - saved.completedEpochs * stepsPerEpoch);
}
