/**
 * Contract tests over the proto API, against a real spawned worker: every RPC's happy path and
 * its bad inputs, each answered with a status naming the field while the worker keeps serving.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readdirSync, writeFileSync, cpSync, rmSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { DType } from "../../src/gen/ctrl/v1/worker.js";
import { ddimTimesteps, ddpmTimesteps } from "../../src/sampling/schedules.js";
import { sampleStepwise } from "../../src/sampling/stepwise.js";
import { float32Tensor } from "../../src/worker/tensors.js";
import { Worker } from "../../src/worker/worker.js";
import type { ProgressEvent, RpcEvent } from "../../src/worker/telemetry.js";
import { makeTinyBackbone, rejectsWith, tempDir } from "../helpers.js";

let worker: Worker;
let modelDir: string;
let backbone: string;
const progressEvents: ProgressEvent[] = [];
const rpcEvents: RpcEvent[] = [];
const timesteps = ddimTimesteps({ numTrainTimesteps: 1000, steps: 8 });

before(async () => {
  modelDir = await makeTinyBackbone();
  worker = await Worker.start({ device: "cpu", watchdog: false, maxSamples: 64, maxMessageMb: 1, env: { HF_HUB_OFFLINE: "1" } });
  worker.telemetry!.on("progress", (event) => progressEvents.push(event));
  worker.telemetry!.on("rpc", (event) => rpcEvents.push(event));
  backbone = (await worker.loadBackbone(modelDir)).handle;
});

after(async () => {
  await worker?.close();
});

describe("GetInfo and Health", () => {
  test("reports versions, device and limits", async () => {
    const info = await worker.info();
    assert.equal(info.protocol, "ctrl.v1");
    assert.equal(info.device, "cpu");
    assert.equal(info.pid, worker.pid);
    assert.match(info.packages.torch!, /^\d+\.\d+/);
    assert.match(info.packages.diffusers!, /^\d+\.\d+/);
    assert.deepEqual(info.supportedDtypes, [DType.DTYPE_FLOAT32, DType.DTYPE_BFLOAT16]);
    assert.equal(info.maxSamples, 64);
    assert.equal(info.maxMessageBytes, 1024 * 1024);
  });

  test("serves grpc.health.v1 for the server and for ctrl.v1.Worker", async () => {
    assert.equal(await worker.health(), "SERVING");
    assert.equal(await worker.health("ctrl.v1.Worker"), "SERVING");
    await assert.rejects(worker.health("no.such.Service"), /NOT_FOUND/);
  });
});

describe("LoadBackbone", () => {
  test("loads a diffusers pipeline folder through from_pretrained", async () => {
    const loaded = await worker.loadBackbone(modelDir);
    assert.equal(loaded.modelClass, "UNet2DModel");
    assert.deepEqual(loaded.sampleShape, [3, 16, 16]);
    assert.equal(loaded.numTrainTimesteps, 1000);
    assert.equal(loaded.predictionType, "epsilon");
    assert.ok(loaded.numParameters > 10_000);
    assert.equal(loaded.dtype, DType.DTYPE_FLOAT32);
    await worker.release(loaded.handle);
  });

  test("loads a bare UNet folder with its scheduler config beside it, in bfloat16", async () => {
    const bare = path.join(tempDir(), "bare");
    cpSync(path.join(modelDir, "unet"), bare, { recursive: true });
    copyFileSync(path.join(modelDir, "scheduler", "scheduler_config.json"), path.join(bare, "scheduler_config.json"));
    const loaded = await worker.loadBackbone(bare, { dtype: DType.DTYPE_BFLOAT16 });
    assert.equal(loaded.dtype, DType.DTYPE_BFLOAT16);
    await worker.release(loaded.handle);
  });

  test("a missing directory is NOT_FOUND naming source", async () => {
    await rejectsWith(worker.loadBackbone("/no/such/model"), "NOT_FOUND", /^source: no directory/);
  });

  test("an empty source is INVALID_ARGUMENT", async () => {
    await rejectsWith(worker.loadBackbone(""), "INVALID_ARGUMENT", /^source: .*required/);
  });

  test("a Hugging Face id missing from the cache while offline is NOT_FOUND and says so", async () => {
    await rejectsWith(worker.loadBackbone("google/ddpm-cifar10-32"), "NOT_FOUND", /HF_HUB_OFFLINE.*not in the local Hugging Face cache/);
  });

  test("a corrupt safetensors file is INVALID_ARGUMENT", async () => {
    const broken = path.join(tempDir(), "broken");
    cpSync(modelDir, broken, { recursive: true });
    writeFileSync(path.join(broken, "unet", "diffusion_pytorch_model.safetensors"), Buffer.from("not a safetensors file"));
    await rejectsWith(worker.loadBackbone(broken), "INVALID_ARGUMENT", /^source: could not load the UNet weights/);
  });

  test("pickled .bin weights are refused", async () => {
    const pickled = path.join(tempDir(), "pickled");
    cpSync(modelDir, pickled, { recursive: true });
    const weights = path.join(pickled, "unet", "diffusion_pytorch_model.safetensors");
    copyFileSync(weights, path.join(pickled, "unet", "diffusion_pytorch_model.bin"));
    rmSync(weights);
    await rejectsWith(worker.loadBackbone(pickled), "FAILED_PRECONDITION", /pickled \.bin checkpoints are refused/);
  });

  test("a folder without a scheduler is INVALID_ARGUMENT", async () => {
    const noScheduler = path.join(tempDir(), "no-scheduler");
    cpSync(path.join(modelDir, "unet"), noScheduler, { recursive: true });
    await rejectsWith(worker.loadBackbone(noScheduler), "INVALID_ARGUMENT", /no noise scheduler/);
  });

  test("float16 on the CPU is INVALID_ARGUMENT naming dtype", async () => {
    await rejectsWith(worker.loadBackbone(modelDir, { dtype: DType.DTYPE_FLOAT16 }), "INVALID_ARGUMENT", /^dtype: /);
  });

  test("an unknown dtype value is INVALID_ARGUMENT naming dtype", async () => {
    await rejectsWith(worker.loadBackbone(modelDir, { dtype: 99 as DType }), "INVALID_ARGUMENT", /^dtype: unsupported dtype 99/);
  });
});

describe("ListHandles and ReleaseHandle", () => {
  test("a released backbone takes its trajectories along", async () => {
    const loaded = await worker.loadBackbone(modelDir);
    const trajectory = await worker.startTrajectory(loaded.handle, 2, 0);
    const names = (await worker.listHandles()).map((h) => h.handle);
    assert.ok(names.includes(loaded.handle) && names.includes(trajectory.handle));
    const kinds = Object.fromEntries((await worker.listHandles()).map((h) => [h.handle, h.kind]));
    assert.equal(kinds[trajectory.handle], "trajectory");
    assert.deepEqual((await worker.release(loaded.handle)).sort(), [loaded.handle, trajectory.handle].sort());
    const after = (await worker.listHandles()).map((h) => h.handle);
    assert.ok(!after.includes(loaded.handle) && !after.includes(trajectory.handle));
  });

  test("releasing an unknown or already released handle is NOT_FOUND", async () => {
    await rejectsWith(worker.release("backbone/999"), "NOT_FOUND", /^handle: no live handle 'backbone\/999'/);
    await rejectsWith(worker.release(""), "INVALID_ARGUMENT", /^handle: /);
  });
});

describe("Sample (fused)", () => {
  test("streams progress for every step, then uint8 images", async () => {
    const steps: number[] = [];
    const images = await worker.sample({
      model: backbone,
      numSamples: 3,
      timesteps,
      eta: 1,
      seed: 5,
      onProgress: (p) => steps.push(p.step),
    });
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual([images.count, images.height, images.width, images.channels], [3, 16, 16, 3]);
    assert.equal(images.data.length, 3 * 16 * 16 * 3);
    assert.ok(new Set(images.data).size > 10, "images should not be constant");
  });

  test("the same seed gives the same images; another seed other images", async () => {
    const request = { model: backbone, numSamples: 2, timesteps, eta: 1, seed: 11 };
    const a = await worker.sample(request);
    const b = await worker.sample(request);
    const c = await worker.sample({ ...request, seed: 12 });
    assert.deepEqual(a.data, b.data);
    assert.notDeepEqual(a.data, c.data);
  });

  test("DDPM's every-step schedule runs", async () => {
    const images = await worker.sample({ model: backbone, numSamples: 1, timesteps: ddpmTimesteps(1000).slice(-20), eta: 1, seed: 0 });
    assert.equal(images.count, 1);
  });

  test("bad requests name their field", async () => {
    const good = { model: backbone, numSamples: 2, timesteps, eta: 1, seed: 0 };
    await rejectsWith(worker.sample({ ...good, model: "backbone/424242" }), "NOT_FOUND", /^model: no live handle/);
    await rejectsWith(worker.sample({ ...good, numSamples: 0 }), "INVALID_ARGUMENT", /^num_samples: must be at least 1/);
    await rejectsWith(worker.sample({ ...good, numSamples: 65 }), "RESOURCE_EXHAUSTED", /^num_samples: at most 64/);
    await rejectsWith(worker.sample({ ...good, timesteps: [] }), "INVALID_ARGUMENT", /^timesteps: at least one/);
    await rejectsWith(worker.sample({ ...good, timesteps: [500, -3] }), "INVALID_ARGUMENT", /^timesteps\[1\]: must be in \[0, 1000\)/);
    await rejectsWith(worker.sample({ ...good, timesteps: [1000] }), "INVALID_ARGUMENT", /^timesteps\[0\]: must be in/);
    await rejectsWith(worker.sample({ ...good, timesteps: [10, 20] }), "INVALID_ARGUMENT", /^timesteps\[1\]: timesteps must strictly decrease/);
    await rejectsWith(worker.sample({ ...good, eta: -0.5 }), "INVALID_ARGUMENT", /^eta: must be in \[0, 1\]/);
    await rejectsWith(worker.sample({ ...good, eta: Number.NaN }), "INVALID_ARGUMENT", /^eta: /);
    await rejectsWith(worker.sample({ ...good, seed: 2 ** 53 }), "INVALID_ARGUMENT", /^seed: must be at most 2\^53 - 1/);
  });

  test("a trajectory handle where a backbone is expected is INVALID_ARGUMENT", async () => {
    const trajectory = await worker.startTrajectory(backbone, 1, 0);
    await rejectsWith(
      worker.sample({ model: trajectory.handle, numSamples: 1, timesteps, eta: 0, seed: 0 }),
      "INVALID_ARGUMENT",
      /^model: handle 'trajectory\/\d+' is a trajectory, expected a backbone/,
    );
    await worker.release(trajectory.handle);
  });
});

describe("stepwise sampling: StartTrajectory, StepTrajectory, ReadImages", () => {
  test("gives exactly the images of fused Sample for the same seed, timesteps and eta", async () => {
    for (const eta of [0, 1]) {
      const request = { model: backbone, numSamples: 4, timesteps, eta, seed: 123, batchSize: 2 };
      const fused = await worker.sample(request);
      const stepwise = await sampleStepwise(worker, request);
      assert.deepEqual(stepwise.data, fused.data, `eta ${eta}`);
    }
  });

  test("given initial noise replaces the seeded draw", async () => {
    const shape = [2, 3, 16, 16];
    const zeros = float32Tensor(new Float32Array(2 * 3 * 16 * 16), shape);
    const trajectory = await worker.startTrajectory(backbone, 2, 0, { initialNoise: zeros });
    assert.deepEqual(trajectory.shape, shape);
    const images = await worker.readImages(trajectory.handle);
    // x_T = 0 maps to mid-grey (127.5 rounds to 128).
    assert.ok(images.data.every((v) => v === 128));
    await worker.release(trajectory.handle);
  });

  test("StartTrajectory refuses bad noise, counts and seeds by field", async () => {
    const wrongShape = float32Tensor(new Float32Array(3 * 16 * 16), [1, 3, 16, 16]);
    await rejectsWith(worker.startTrajectory(backbone, 2, 0, { initialNoise: wrongShape }), "INVALID_ARGUMENT", /^initial_noise\.shape: expected \[2, 3, 16, 16\]/);
    const shortData = { shape: [2, 3, 16, 16], dtype: DType.DTYPE_FLOAT32, data: Buffer.alloc(12) };
    await rejectsWith(worker.startTrajectory(backbone, 2, 0, { initialNoise: shortData }), "INVALID_ARGUMENT", /^initial_noise\.data: holds 12 bytes/);
    const wrongDtype = { shape: [2, 3, 16, 16], dtype: DType.DTYPE_INT64, data: Buffer.alloc(2 * 3 * 16 * 16 * 8) };
    await rejectsWith(worker.startTrajectory(backbone, 2, 0, { initialNoise: wrongDtype }), "INVALID_ARGUMENT", /^initial_noise\.dtype: must be DTYPE_FLOAT32/);
    const negative = { shape: [-2, 3, 16, 16], dtype: DType.DTYPE_FLOAT32, data: Buffer.alloc(0) };
    await rejectsWith(worker.startTrajectory(backbone, 2, 0, { initialNoise: negative }), "INVALID_ARGUMENT", /^initial_noise\.shape: dimensions must be non-negative/);
    await rejectsWith(worker.startTrajectory(backbone, 0, 0), "INVALID_ARGUMENT", /^num_samples/);
    await rejectsWith(worker.startTrajectory("", 1, 0), "INVALID_ARGUMENT", /^model: a backbone or control handle is required/);
  });

  test("StepTrajectory refuses out-of-range and out-of-order steps, and steps past the end", async () => {
    const trajectory = await worker.startTrajectory(backbone, 1, 0);
    const handle = trajectory.handle;
    await rejectsWith(worker.stepTrajectory(handle, { timestep: 1000, prevTimestep: 10, eta: 0 }), "INVALID_ARGUMENT", /^timestep: must be in \[0, 1000\)/);
    await rejectsWith(worker.stepTrajectory(handle, { timestep: -1, prevTimestep: -1, eta: 0 }), "INVALID_ARGUMENT", /^timestep: /);
    await rejectsWith(worker.stepTrajectory(handle, { timestep: 500, prevTimestep: 600, eta: 0 }), "INVALID_ARGUMENT", /^prev_timestep: must be in \[-1, timestep=500\)/);
    await rejectsWith(worker.stepTrajectory(handle, { timestep: 500, prevTimestep: 400, eta: 2 }), "INVALID_ARGUMENT", /^eta: /);
    const first = await worker.stepTrajectory(handle, { timestep: 500, prevTimestep: -1, eta: 0 });
    assert.equal(first.stepsTaken, 1);
    await rejectsWith(worker.stepTrajectory(handle, { timestep: 400, prevTimestep: -1, eta: 0 }), "FAILED_PRECONDITION", /already reached the clean sample/);
    await worker.release(handle);
    await rejectsWith(worker.stepTrajectory(handle, { timestep: 400, prevTimestep: -1, eta: 0 }), "NOT_FOUND", /^trajectory: no live handle/);
    await rejectsWith(worker.readImages(handle), "NOT_FOUND", /^trajectory: no live handle/);
  });
});

describe("limits and telemetry", () => {
  test("a request larger than the message limit is RESOURCE_EXHAUSTED and the worker keeps serving", async () => {
    const n = 64;
    const big = float32Tensor(new Float32Array(n * 3 * 16 * 16 * 8), [n * 8, 3, 16, 16]);
    await rejectsWith(worker.startTrajectory(backbone, n, 0, { initialNoise: big }), "RESOURCE_EXHAUSTED", /larger than max/i);
    assert.equal((await worker.info()).protocol, "ctrl.v1");
  });

  test("progress and per-RPC timing with memory arrive over ZeroMQ", async () => {
    const deadline = Date.now() + 5000;
    while ((progressEvents.length === 0 || rpcEvents.length === 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const sample = progressEvents.find((e) => e.task === "sample");
    assert.ok(sample, "a progress event from Sample");
    assert.equal(sample.total, 8);
    const rpc = rpcEvents.find((e) => e.method === "LoadBackbone");
    assert.ok(rpc, "an rpc event for LoadBackbone");
    assert.ok(rpc.seconds > 0 && rpc.max_rss_bytes > 10_000_000);
  });
});
