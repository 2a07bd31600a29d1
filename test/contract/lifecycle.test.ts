/** The worker's life: readiness deadline, start failures, crashes, hangs, parent exit, TCP with a token. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { credentials, Metadata } from "@grpc/grpc-js";
import { WorkerClient } from "../../src/gen/ctrl/v1/worker.js";
import { WorkerClosedError, WorkerCrashedError, WorkerHungError, WorkerStartError } from "../../src/worker/errors.js";
import { spawnWorker } from "../../src/worker/spawn.js";
import { Worker } from "../../src/worker/worker.js";
import { ddimTimesteps } from "../../src/sampling/schedules.js";
import { makeTinyBackbone } from "../helpers.js";

test("a worker that never becomes ready fails the start at the deadline, with its stderr", async () => {
  const started = Date.now();
  await assert.rejects(
    spawnWorker({ entry: ["-c", "import sys, time; print('loading...', file=sys.stderr, flush=True); time.sleep(60)"], readyTimeoutMs: 1500 }),
    (error: unknown) => {
      assert.ok(error instanceof WorkerStartError);
      assert.match(error.message, /printed no readiness line within 1.5 s/);
      assert.deepEqual(error.stderrTail, ["loading..."]);
      return true;
    },
  );
  assert.ok(Date.now() - started < 10_000);
});

test("a worker that exits before it is ready reports its exit code and stderr", async () => {
  await assert.rejects(
    spawnWorker({ entry: ["-c", "import sys; sys.stderr.write('ImportError: no torch here\\n'); sys.exit(3)"] }),
    /exited with code 3 before it was ready[\s\S]*ImportError: no torch here/,
  );
});

test("a missing interpreter says how to fix it", async () => {
  await assert.rejects(spawnWorker({ python: "/no/such/python" }), /could not be started[\s\S]*make setup/);
});

test("a crash fails the pending call and every later call at once, with exit signal and stderr", async () => {
  const worker = await Worker.start({ device: "cpu", watchdog: false });
  try {
    const backbone = await worker.loadBackbone(await makeTinyBackbone());
    const timesteps = ddimTimesteps({ numTrainTimesteps: 1000, steps: 1000 });
    const pending = worker.sample({ model: backbone.handle, numSamples: 8, timesteps, eta: 1, seed: 0 });
    setTimeout(() => process.kill(worker.pid, "SIGKILL"), 300);
    await assert.rejects(pending, (error: unknown) => {
      assert.ok(error instanceof WorkerCrashedError, String(error));
      assert.equal(error.signal, "SIGKILL");
      assert.match(error.message, /was killed by SIGKILL/);
      assert.ok(error.stderrTail.some((line) => line.includes("serving on")), "stderr tail holds the worker's log");
      return true;
    });
    const started = Date.now();
    await assert.rejects(worker.info(), WorkerCrashedError);
    assert.ok(Date.now() - started < 100, "later calls fail at once");
    await worker.exited;
    const socketFolder = path.dirname(worker.address.slice("unix:".length));
    assert.ok(path.basename(socketFolder).startsWith("ctrl-worker-"), worker.address);
    assert.equal(existsSync(socketFolder), false, "the killed worker's socket folder is removed");
  } finally {
    await worker.close();
  }
});

test("a worker that exits on its own, even cleanly, counts as crashed for later calls", async () => {
  const worker = await Worker.start({ device: "cpu", watchdog: false, telemetry: false });
  process.kill(worker.pid, "SIGTERM"); // the worker turns SIGTERM into a clean exit(0)
  const exit = await worker.exited;
  assert.equal(exit.exitCode, 0);
  await assert.rejects(worker.info(), (error: unknown) => error instanceof WorkerCrashedError && error.exitCode === 0);
});

test("close() shuts the worker down through stdin; later calls say it was closed", async () => {
  const worker = await Worker.start({ device: "cpu", watchdog: false, telemetry: false });
  const exit = await worker.close();
  assert.equal(exit.exitCode, 0);
  assert.equal(exit.signal, undefined);
  await assert.rejects(worker.info(), WorkerClosedError);
});

test("the worker exits by itself when its parent's end of stdin closes", async () => {
  const spawned = await spawnWorker({ device: "cpu" });
  spawned.process.stdin!.end();
  const exit = await Promise.race([spawned.exited, new Promise((resolve) => setTimeout(() => resolve("timeout"), 10_000))]);
  assert.deepEqual(exit, { exitCode: 0, signal: undefined });
});

test("TCP transport binds loopback and requires the token", async () => {
  const worker = await Worker.start({ device: "cpu", watchdog: false, transport: "tcp", telemetry: false });
  try {
    assert.match(worker.address, /^127\.0\.0\.1:\d+$/);
    assert.equal((await worker.info()).protocol, "ctrl.v1");
    const stranger = new WorkerClient(worker.address, credentials.createInsecure());
    const attempt = (metadata: Metadata) =>
      new Promise<{ code: number; details: string }>((resolve) =>
        stranger.getInfo({}, metadata, (error) => resolve({ code: error?.code ?? 0, details: error?.details ?? "" })),
      );
    const none = await attempt(new Metadata());
    assert.equal(none.code, 16); // UNAUTHENTICATED
    assert.match(none.details, /authorization: missing or wrong worker token/);
    const wrong = new Metadata();
    wrong.set("authorization", "Bearer not-the-token");
    assert.equal((await attempt(wrong)).code, 16);
    stranger.close();
  } finally {
    await worker.close();
  }
});

test("a worker started elsewhere with CTRL_WORKER_TOKEN is attached with that token, and stays up when we detach", async () => {
  const token = "an-owner-chosen-secret-of-at-least-32-characters";
  // Started "elsewhere": its owner holds the process; we only know its address and the token.
  const owner = await Worker.start({ device: "cpu", watchdog: false, transport: "tcp", telemetry: false, env: { CTRL_WORKER_TOKEN: token } });
  try {
    await assert.rejects(Worker.attach(owner.address, { token: "wrong".repeat(8), watchdog: false }), (error: unknown) => {
      assert.ok(error instanceof WorkerStartError);
      assert.match(error.message, /could not attach to the worker at 127\.0\.0\.1:\d+: GetInfo: UNAUTHENTICATED/);
      return true;
    });
    const attached = await Worker.attach(owner.address, { token, watchdog: false });
    assert.equal(attached.pid, owner.pid);
    assert.equal((await attached.info()).distributed?.worldSize, 1);
    await attached.close();
    assert.equal((await owner.info()).protocol, "ctrl.v1", "detaching does not stop the worker");
  } finally {
    await owner.close();
  }
});

test("a worker refuses to listen beyond loopback without a token of its owner's, and short tokens", async () => {
  const listen = (extra: Record<string, string>) =>
    spawnWorker({ entry: ["-m", "ctrl_worker", "--device", "cpu", "--listen", "tcp:0.0.0.0:0"], env: extra }).then(
      async (spawned) => {
        spawned.process.kill("SIGKILL");
        return "started";
      },
      (error: Error) => error.message,
    );
  assert.match(await listen({}), /a host other than loopback \(0\.0\.0\.0\) is reachable from other machines; set CTRL_WORKER_TOKEN/);
  assert.match(await listen({ CTRL_WORKER_TOKEN: "short" }), /CTRL_WORKER_TOKEN: expected at least 32 printable characters/);
});

test("the watchdog kills a worker that stops answering health checks; pending calls fail with WorkerHungError", async () => {
  const watchdog = { intervalMs: 200, timeoutMs: 300, failures: 2 };
  const worker = await Worker.start({ device: "cpu", telemetry: false, watchdog });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000)); // several checks pass: a live worker is left alone
    assert.equal((await worker.info()).protocol, "ctrl.v1");
    process.kill(worker.pid, "SIGSTOP"); // alive, but answers nothing
    const started = Date.now();
    await assert.rejects(worker.info(), (error: unknown) => {
      assert.ok(error instanceof WorkerHungError, String(error));
      assert.equal(error.failedChecks, 2);
      assert.match(error.message, /stopped answering health checks .*killed; start a new worker/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, "declared hung after about two intervals and deadlines");
    assert.equal((await worker.exited).signal, "SIGKILL");
    await assert.rejects(worker.info(), WorkerHungError);
  } finally {
    try {
      process.kill(worker.pid, "SIGCONT");
    } catch {
      // already gone
    }
    await worker.close();
  }
});
