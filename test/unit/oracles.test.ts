import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { binLabels, brightness, brightnessValues, jpegSize, jpegSizes, quantileThresholds } from "../../src/rewards/oracles.js";

/** Deterministic pseudo-random bytes (a linear congruential generator). */
function noise(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

const SIDE = 32;
const flat = new Uint8Array(SIDE * SIDE * 3).fill(128);
const noisy = noise(SIDE * SIDE * 3);

test("a flat image is more compressible than noise, and the size is deterministic", async () => {
  const flatSize = await jpegSize(flat, SIDE, SIDE, 3);
  const noiseSize = await jpegSize(noisy, SIDE, SIDE, 3);
  assert.ok(flatSize < noiseSize, `${flatSize} < ${noiseSize}`);
  assert.equal(await jpegSize(noisy, SIDE, SIDE, 3), noiseSize);
  assert.ok((await jpegSize(noisy, SIDE, SIDE, 3, 50)) < noiseSize, "a lower quality gives a smaller file");
});

test("the JPEG is baseline, 4:2:0 and carries no metadata", async () => {
  const size = await jpegSize(noisy, SIDE, SIDE, 3);
  const encoded = await sharp(noisy, { raw: { width: SIDE, height: SIDE, channels: 3 } })
    .jpeg({ quality: 95, progressive: false, chromaSubsampling: "4:2:0", optimiseCoding: false })
    .toBuffer();
  assert.equal(size, encoded.byteLength);
  const info = await sharp(encoded).metadata();
  assert.equal(info.isProgressive, false);
  assert.equal(info.chromaSubsampling, "4:2:0");
  assert.equal(info.exif, undefined);
  assert.equal(info.icc, undefined);
});

test("grey images are one-component JPEGs, smaller than the same pixels as RGB", async () => {
  const grey = noise(SIDE * SIDE, 7);
  const rgb = new Uint8Array(grey.length * 3).map((_, i) => grey[Math.floor(i / 3)]!);
  assert.ok((await jpegSize(grey, SIDE, SIDE, 1)) < (await jpegSize(rgb, SIDE, SIDE, 3)));
});

test("the oracle is pinned: PIL's size for the same pixels, less its 18-byte JFIF header", async () => {
  // A horizontal ramp with small noise. PIL 12.3, Image.fromarray(a).save(f, "JPEG", quality=q):
  // 4032 bytes at q=95, 1469 at q=50. A change here means the encoder changed: relabel datasets.
  const pixels = noise(64 * 64 * 3, 1).map((v, i) => Math.min(255, ((i % (64 * 3)) * 2 + (v >> 4) * 4) & 255));
  assert.equal(await jpegSize(pixels, 64, 64, 3, 95), 4032 - 18);
  assert.equal(await jpegSize(pixels, 64, 64, 3, 50), 1469 - 18);
});

test("batch sizes match the single sizes, in order", async () => {
  const data = new Uint8Array([...flat, ...noisy, ...flat]);
  const sizes = await jpegSizes({ count: 3, height: SIDE, width: SIDE, channels: 3, data });
  const [flatSize, noiseSize] = [await jpegSize(flat, SIDE, SIDE, 3), await jpegSize(noisy, SIDE, SIDE, 3)];
  assert.deepEqual(sizes, [flatSize, noiseSize, flatSize]);
  assert.deepEqual(await jpegSizes({ count: 0, height: SIDE, width: SIDE, channels: 3, data: new Uint8Array(0) }), []);
});

test("bad images are refused", async () => {
  await assert.rejects(jpegSize(flat, SIDE, SIDE + 1, 3), /do not make a 32x33x3 image/);
  await assert.rejects(jpegSize(flat, SIDE, SIDE, 3, 0), /quality must be an integer in 1..100/);
  await assert.rejects(jpegSize(new Uint8Array(16), 2, 2, 4), /expected 1 or 3 channels/);
  assert.throws(() => brightness(flat, 0, SIDE, 3), /positive integers/);
});

test("brightness is the mean Rec.601 luma", () => {
  const pixels = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]); // R, G, B, white
  assert.ok(Math.abs(brightness(pixels, 2, 2, 3) - (0.299 + 0.587 + 0.114 + 1) * 255 / 4) < 1e-9);
  assert.equal(brightness(new Uint8Array([0, 100, 200, 100]), 2, 2, 1), 100);
  const data = new Uint8Array(2 * 3).fill(0);
  data.fill(255, 3);
  assert.deepEqual(brightnessValues({ count: 2, height: 1, width: 1, channels: 3, data }).map(Math.round), [0, 255]);
});

test("quantile thresholds interpolate linearly, like numpy", () => {
  // numpy.quantile([1, 2, 3, 4, 10], [0.25, 0.5, 0.75]) == [2, 3, 4]
  assert.deepEqual(quantileThresholds([10, 3, 1, 4, 2], 4), [2, 3, 4]);
  // numpy.quantile([0, 1, 2, 3], [1/3, 2/3]) == [1, 2]; numpy.quantile([0, 10], 0.5) == 5
  const thirds = quantileThresholds([3, 0, 2, 1], 3);
  assert.ok(Math.abs(thirds[0]! - 1) < 1e-12 && Math.abs(thirds[1]! - 2) < 1e-12);
  assert.deepEqual(quantileThresholds([0, 10], 2), [5]);
  assert.deepEqual(quantileThresholds([7], 3), [7, 7]);
  assert.throws(() => quantileThresholds([], 2), /no values/);
  assert.throws(() => quantileThresholds([1, NaN], 2), /value 1 is not finite/);
  assert.throws(() => quantileThresholds([1, 2], 1), /bins must be an integer >= 2/);
});

test("bins on the paper's compressibility thresholds: small JPEGs get the high classes", () => {
  const kB = [10, 60, 60.001, 85, 100, 110, 110.5, 300];
  assert.deepEqual(binLabels(kB, [60, 85, 110], "descending"), [3, 3, 2, 2, 1, 1, 0, 0]);
  assert.deepEqual(binLabels(kB, [60, 85, 110], "ascending"), [0, 0, 1, 1, 2, 2, 3, 3]);
  // the binary multi-task label: class 1 when size <= 70 kB
  assert.deepEqual(binLabels([69, 70, 71], [70], "descending"), [1, 1, 0]);
});

test("quantile bins split a sample into classes of equal size", () => {
  const values = Array.from({ length: 100 }, (_, i) => (i * 37) % 100);
  const labels = binLabels(values, quantileThresholds(values, 4), "ascending");
  const counts = [0, 1, 2, 3].map((k) => labels.filter((l) => l === k).length);
  assert.deepEqual(counts, [25, 25, 25, 25]);
});

test("bad bins are refused", () => {
  assert.throws(() => binLabels([1], [2, 1], "ascending"), /thresholds must be ascending/);
  assert.throws(() => binLabels([1], [], "ascending"), /no thresholds/);
  assert.throws(() => binLabels([1], [Infinity], "ascending"), /threshold 0 is not finite/);
  assert.throws(() => binLabels([], [1], "ascending"), /no values/);
  assert.throws(() => binLabels([1], [1], "up" as never), /unknown order "up"/);
});
