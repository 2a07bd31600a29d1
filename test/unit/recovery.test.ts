import assert from "node:assert/strict";
import { test } from "node:test";
import { withRestarts } from "../../src/ctrl/recovery.js";
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
