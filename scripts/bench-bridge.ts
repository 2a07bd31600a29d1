/**
 * Bridge benchmark (not a test): median round-trip time of a trivial RPC over the Unix socket, and
 * the throughput of streaming a batch of uint8 images back from the worker.
 * Usage: node --import tsx scripts/bench-bridge.ts [--calls 1000] [--images 1024] [--size 64] [--repeats 10]
 */
import os from "node:os";
import { parseArgs } from "node:util";
import { Worker } from "../src/worker/worker.js";
import { makeTinyBackbone } from "../test/helpers.js";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "1000" },
    images: { type: "string", default: "1024" },
    size: { type: "string", default: "64" },
    repeats: { type: "string", default: "10" },
  },
});
const calls = positive("calls");
const imageCount = positive("images");
const size = positive("size");
const repeats = positive("repeats");

function positive(name: keyof typeof values): number {
  const parsed = Number(values[name]);
  if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`--${name}: expected a positive integer, got ${values[name]}`);
  return parsed;
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const modelDir = await makeTinyBackbone(undefined, size);
const worker = await Worker.start({ device: "cpu", telemetry: false, maxSamples: imageCount });
try {
  const info = await worker.info();
  // Trivial RPC: the standard health check (no tensors, no Python work beyond the handler).
  for (let i = 0; i < 50; i++) await worker.health();
  const roundTrips: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await worker.health();
    roundTrips.push(Number(process.hrtime.bigint() - started) / 1e3);
  }

  const backbone = await worker.loadBackbone(modelDir);
  const trajectory = await worker.startTrajectory(backbone.handle, imageCount, 0);
  await worker.readImages(trajectory.handle); // warm-up
  const seconds: number[] = [];
  let bytes = 0;
  for (let i = 0; i < repeats; i++) {
    const started = process.hrtime.bigint();
    const images = await worker.readImages(trajectory.handle);
    seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
    bytes = images.data.byteLength;
  }
  const streamSeconds = median(seconds);
  const result = {
    benchmark: "bridge",
    transport: worker.address.startsWith("unix:") ? "unix socket" : "tcp",
    machine: `${os.cpus()[0]?.model ?? "unknown CPU"}, ${os.cpus().length} cores`,
    worker_device: info.device,
    rpc: "grpc.health.v1.Health/Check",
    rpc_calls: calls,
    rpc_round_trip_us_median: Number(median(roundTrips).toFixed(1)),
    rpc_round_trip_us_p90: Number(percentile(roundTrips, 0.9).toFixed(1)),
    stream: `ReadImages, ${imageCount} images of ${size}x${size}x3 uint8`,
    stream_repeats: repeats,
    stream_megabytes: Number((bytes / 1e6).toFixed(2)),
    stream_seconds_median: Number(streamSeconds.toFixed(4)),
    stream_megabytes_per_second: Number((bytes / 1e6 / streamSeconds).toFixed(1)),
    stream_images_per_second: Math.round(imageCount / streamSeconds),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await worker.close();
}
