/**
 * Crash recovery end to end: the worker is SIGKILLed at random points of one short run (during
 * the classifier's training and at two random fine-tuning steps); the run restarts it each time
 * and must end as the same run uninterrupted would: the same fine-tuning steps, each once, the
 * same records, the same judged samples, at most one checkpoint interval redone per kill.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { before, test } from "node:test";
import type { ConfigInput } from "../../src/ctrl/config.js";
import { runCtrl } from "../../src/ctrl/pipeline.js";
import { Random } from "../../src/ctrl/random.js";
import { killer, lastFinetuneStep, makeTinyBackbone, tempDir } from "../helpers.js";

let backbone: string;

before(async () => {
  backbone = await makeTinyBackbone(undefined, 32);
  process.env.CTRL_CACHE_DIR = tempDir("ctrl-cache-");
});

const STEPS_PER_EPOCH = 2;
const CHECKPOINT_EVERY = 1;
const EPOCHS = 4;

function config(runsDir: string): ConfigInput {
  return {
    backbone,
    runsDir,
    device: "cpu",
    threads: 1,
    workers: 1, // one worker, whatever "auto" would pick on this machine (test/e2e/dataParallel.test.ts runs two)
    dataset: { kind: "default", numImages: 96, thresholdsFrom: "dataset" },
    sampler: { steps: 3 },
    classifier: { epochs: 1, width: 8, batchSize: 32 },
    finetune: { epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH, batchSize: 4, gradAccumulation: 1, checkpointEvery: CHECKPOINT_EVERY },
    evaluation: { numSamples: 16, batchSize: 0 },
    recovery: { maxRestarts: 3 },
  };
}

type Metric = Record<string, unknown>;
const lastStep = lastFinetuneStep;

/** A record's identity: what must match between the two runs (times and float noise aside). */
const identity = (m: Metric) => `${String(m.phase)}:${String(m.epoch ?? "")}:${String(m.step ?? "")}`;

test("a run whose worker is killed three times completes exactly as an uninterrupted run", async (t) => {
  const plain = await runCtrl(config(tempDir("ctrl-runs-")));

  const random = new Random(20261202);
  const firstKill = 1 + random.int(4); // fine-tuning steps 1-4
  const secondKill = firstKill + 1 + random.int(EPOCHS * STEPS_PER_EPOCH - firstKill - 1);
  const runsDir = tempDir("ctrl-runs-");
  const { onWorkerStarted, kills } = killer(runsDir, [
    (metrics) => metrics.some((m) => m.phase === "classifier"), // mid-preparation: no state saved yet
    (metrics) => lastStep(metrics) >= firstKill,
    (metrics) => lastStep(metrics) >= secondKill,
  ]);
  const killed = await runCtrl(config(runsDir), { onWorkerStarted });

  const killList = kills.map((k) => `worker ${k.worker} at step ${k.step}`).join(", ");
  assert.equal(kills.length, 3, `three kills (${killList})`);
  const metrics = killed.run.readMetrics();
  const restarts = metrics.filter((m) => m.phase === "restart");
  assert.equal(restarts.length, 3, JSON.stringify(restarts));
  t.diagnostic(`kills: ${killList}; redone fine-tuning steps per restart: ${restarts.map((r) => r.redone_steps).join(", ")}`);
  for (const restart of restarts) {
    assert.ok(Number(restart.redone_steps) <= CHECKPOINT_EVERY * STEPS_PER_EPOCH, `at most one checkpoint interval redone: ${JSON.stringify(restart)}`);
  }
  assert.equal(restarts[0]!.resumed_from, "the start");
  const steps = metrics.filter((m) => m.phase === "finetune").map((m) => m.step);
  assert.deepEqual(steps, Array.from({ length: EPOCHS * STEPS_PER_EPOCH }, (_, i) => i + 1), "every step once, in order");
  const plainMetrics = plain.run.readMetrics();
  assert.deepEqual(metrics.filter((m) => m.phase !== "restart").map(identity), plainMetrics.map(identity));
  const losses = (rows: Metric[]) => rows.filter((m) => m.phase === "finetune").map((m) => Number(m.loss));
  for (const [a, b] of losses(metrics).map((loss, i) => [loss, losses(plainMetrics)[i]!])) {
    // The same computation on the same CPU, re-run from a checkpoint: equal up to float noise.
    assert.ok(Math.abs(a! - b!) <= 1e-3 * Math.max(1, Math.abs(b!)), `loss ${a} vs ${b}`);
  }
  assert.deepEqual(killed.results[1]!.evaluation.judged, plain.results[1]!.evaluation.judged);
  assert.deepEqual(readdirSync(killed.run.path("checkpoints")), readdirSync(plain.run.path("checkpoints")));
  assert.match(readFileSync(killed.run.path("report.html"), "utf8"), /The worker died 3 times and was restarted/);
});

test("a worker that keeps dying ends the run after recovery.maxRestarts restarts", async () => {
  const runsDir = tempDir("ctrl-runs-");
  const always = () => true;
  const { onWorkerStarted } = killer(runsDir, [always, always]);
  await assert.rejects(runCtrl({ ...config(runsDir), recovery: { maxRestarts: 1 } }, { onWorkerStarted }), /killed by SIGKILL[\s\S]*1 restart allowed by recovery.maxRestarts were used up/);
});
