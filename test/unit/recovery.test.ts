import assert from "node:assert/strict";
import { test } from "node:test";
import { rewindRun, withRestarts } from "../../src/ctrl/recovery.js";
import { Run } from "../../src/ctrl/runs.js";
import { tempDir } from "../helpers.js";
import { WorkerCallError, WorkerCrashedError, WorkerHungError } from "../../src/worker/errors.js";

const quiet = () => undefined;

test("withRestarts retries crashed and hung workers, passing what happened", async () => {
  const seen: (number | undefined)[] = [];
  const losses = [new WorkerCrashedError(undefined, "SIGKILL", []), new WorkerHungError(3, "deadline exceeded")];
  const result = await withRestarts(
    3,
    async (restart) => {
      seen.push(restart?.count);
      const loss = losses.shift();
      if (loss) throw loss;
      return "done";
    },
    quiet,
  );
  assert.equal(result, "done");
  assert.deepEqual(seen, [undefined, 1, 2]);
});

test("withRestarts gives up after maxRestarts and rethrows the last loss", async () => {
  let attempts = 0;
  await assert.rejects(
    withRestarts(
      2,
      async () => {
        attempts++;
        throw new WorkerHungError(3, "deadline exceeded");
      },
      quiet,
    ),
    (error: Error) => error instanceof WorkerHungError && /2 restarts allowed/.test(error.message),
  );
  assert.equal(attempts, 3);
});

test("withRestarts does not retry other errors", async () => {
  let attempts = 0;
  await assert.rejects(
    withRestarts(
      3,
      async () => {
        attempts++;
        throw new WorkerCallError("Sample", 3, "bad request");
      },
      quiet,
    ),
    WorkerCallError,
  );
  assert.equal(attempts, 1);
});

test("rewindRun cuts the work logged past the saved state but keeps every restart record", () => {
  const run = Run.create(tempDir("ctrl-runs-"), "test", 0);
  run.logMetrics({ phase: "restart", restart: 1 });
  run.logMetrics({ phase: "finetune", step: 1 });
  run.logMetrics({ phase: "finetune", step: 2 });
  const checkpointBytes = run.metricsBytes();
  run.logMetrics({ phase: "finetune", step: 3 });
  run.logMetrics({ phase: "restart", restart: 2 }); // logged after the checkpoint: the next rewind must keep it
  run.logMetrics({ phase: "finetune", step: 3 });
  run.logMetrics({ phase: "finetune", step: 4 });

  const redone = rewindRun(run, { completedEpochs: 1, checkpoint: "checkpoints/epoch-0001", metricsBytes: checkpointBytes }, 2);
  assert.equal(redone, 2);
  assert.deepEqual(
    run.readMetrics().map((m) => `${String(m.phase)} ${String(m.step ?? m.restart)}`),
    ["restart 1", "finetune 1", "finetune 2", "restart 2"],
  );

  rewindRun(run, undefined, 2); // nothing saved: preparation starts over, the restarts stay on record
  assert.deepEqual(run.readMetrics().map((m) => m.restart), [1, 2]);
});
