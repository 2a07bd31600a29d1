/**
 * Data parallel end to end: one short run with 2 CPU workers (gloo) against the same run with 1.
 * The 2-worker run's rank 1 is SIGKILLed mid fine-tuning, so all ranks are restarted and the run
 * continues from its last checkpoint. It must write the same files and records as the 1-worker
 * run, and its trained parameters must equal the 1-worker ones up to float rounding.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { before, test } from "node:test";
import type { ConfigInput } from "../../src/ctrl/config.js";
import { runCtrl } from "../../src/ctrl/pipeline.js";
import { killer, lastFinetuneStep, listFiles, makeTinyBackbone, readSafetensors, tempDir } from "../helpers.js";

let backbone: string;

before(async () => {
  backbone = await makeTinyBackbone(undefined, 32);
  process.env.CTRL_CACHE_DIR = tempDir("ctrl-cache-");
});

const STEPS_PER_EPOCH = 2;
const EPOCHS = 3;
const KILL_AFTER_STEP = 3;

function config(runsDir: string, workers: number): ConfigInput {
  return {
    backbone,
    runsDir,
    device: "cpu",
    threads: 1,
    workers,
    dataset: { kind: "default", numImages: 96, thresholdsFrom: "dataset" },
    sampler: { steps: 3 },
    classifier: { epochs: 1, width: 8, batchSize: 32, robust: { epochs: 1 } },
    // At the default embedding learning rate (0.1) this 4-sample, 3-step run is chaotic: float
    // rounding of 1e-7 grew to parameter differences of 0.02-0.1 within 6 steps (measured with
    // klWeight 3, with and without timestep bands). At 0.01 the two runs stayed within 1.2e-5 on
    // a 2-core AMD EPYC, but not on an Intel Xeon: there Adam, which moves every parameter by
    // about its learning rate while its gradient is far above epsilon, let the rounding of
    // near-zero gradient entries decide their direction (grad norm 0.114 vs 0.117 at step 6,
    // parameters 5.7e-3 apart). An epsilon of 1e-3 damps those entries (2.1e-7 apart; 1e-4:
    // 5.0e-5, too near the tolerance). The per-label LoRA (the default since 2026-12-03) at
    // 1e-2 gives each label's block one sample of this batch: 3.8e-4 apart on an Intel Xeon, so
    // the test keeps the shared LoRA at 3e-3 it was measured with.
    // The reward classifier's adversarial fine-tuning is kept at 1 epoch: after the default 5 its
    // sharper input gradient made step 4's gradient norm differ by 1.3% between 1 and 2 workers
    // (Intel Xeon), over the 1e-3 tolerance; the test is about the sharding, not the reward.
    control: { loraPerLabel: false },
    finetune: { epochs: EPOCHS, stepsPerEpoch: STEPS_PER_EPOCH, batchSize: 4, gradAccumulation: 2, checkpointEvery: 1, loraLearningRate: 3e-3, embeddingLearningRate: 0.01, adamEpsilon: 1e-3 },
    evaluation: { numSamples: 16, batchSize: 0, checkpointSamples: 8 },
  };
}

// Parameters after 6 AdamW steps on 2 shards vs the combined batch. Not bit-exact: the UNet runs
// 2 rows instead of 4 per call and the per-sample gradients are summed in another order (float
// rounding, ~1e-7 relative per step), and Adam divides each update by sqrt(v), which turns that
// rounding on near-zero gradient entries into visible differences (5.3e-6 seen on a 2-core AMD
// EPYC). Another batch moves them by about the learning rate per step (LoRA 3e-3, embedding 0.01).
// Adam does not see a gradient's scale (a shard counted twice): the gradient norms, compared
// below, do.
const PARAMETER_TOLERANCE = 1e-4;

type Metric = Record<string, unknown>;

const identity = (m: Metric) => `${String(m.phase)}:${String(m.epoch ?? "")}:${String(m.step ?? "")}`;

test("2 data-parallel workers train what 1 worker trains on the combined batch, and survive a killed rank", async (t) => {
  const single = await runCtrl(config(tempDir("ctrl-runs-"), 1));

  const runsDir = tempDir("ctrl-runs-");
  const { onWorkerStarted, kills } = killer(runsDir, [(metrics) => lastFinetuneStep(metrics) >= KILL_AFTER_STEP], 1);
  const parallel = await runCtrl(config(runsDir, 2), { onWorkerStarted });
  const killedAtStep = kills[0]?.step;

  assert.ok(killedAtStep !== undefined, "rank 1 was killed");
  const metrics = parallel.run.readMetrics();
  const restarts = metrics.filter((m) => m.phase === "restart");
  assert.equal(restarts.length, 1, JSON.stringify(restarts));
  assert.ok(Number(restarts[0]!.redone_steps) <= STEPS_PER_EPOCH, `at most one checkpoint interval redone: ${JSON.stringify(restarts[0])}`);
  t.diagnostic(`rank 1 killed after step ${killedAtStep}; steps redone: ${String(restarts[0]!.redone_steps)}`);

  assert.deepEqual(listFiles(parallel.run.dir), listFiles(single.run.dir), "the same files");
  const singleMetrics = single.run.readMetrics();
  assert.deepEqual(metrics.filter((m) => m.phase !== "restart").map(identity), singleMetrics.map(identity), "the same records");
  for (const key of ["loss", "grad_norm", "kl"]) {
    const values = (rows: Metric[]) => rows.filter((m) => m.phase === "finetune").map((m) => Number(m[key]));
    values(metrics).forEach((value, i) => {
      const expected = values(singleMetrics)[i]!;
      assert.ok(Math.abs(value - expected) <= 1e-3 * Math.max(1, Math.abs(expected)), `step ${i + 1}: ${key} ${value} vs ${expected}`);
    });
  }

  const checkpointEvals = metrics.filter((m) => m.phase === "checkpoint-eval");
  assert.equal(checkpointEvals.length, EPOCHS);
  for (const m of checkpointEvals) {
    const ratios = m.thumbnail_diversity_vs_pretrained as number[];
    assert.ok(ratios.length === 4 && ratios.some((r) => Number.isFinite(r) && r > 0), `diversity per class at each checkpoint: ${JSON.stringify(m)}`);
  }

  const last = path.join("checkpoints", `epoch-${String(EPOCHS).padStart(4, "0")}`);
  let largest = 0;
  let moved = 0;
  for (const file of ["pytorch_lora_weights.safetensors", "label_embeddings.safetensors"]) {
    const ours = readSafetensors(parallel.run.path(path.join(last, file)));
    const theirs = readSafetensors(single.run.path(path.join(last, file)));
    assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
    for (const [name, values] of ours) {
      const reference = theirs.get(name)!;
      values.forEach((value, i) => {
        largest = Math.max(largest, Math.abs(value - reference[i]!));
        moved = Math.max(moved, Math.abs(reference[i]!));
      });
    }
  }
  t.diagnostic(`largest parameter difference, 2 workers vs 1: ${largest.toExponential(2)} (tolerance ${PARAMETER_TOLERANCE})`);
  assert.ok(moved > 1e-3, "training moved the parameters (the comparison can fail)");
  assert.ok(largest <= PARAMETER_TOLERANCE, `parameters differ by ${largest}`);
});
