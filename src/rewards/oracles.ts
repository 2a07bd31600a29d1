/**
 * Ground-truth oracles computed outside the model (JPEG size, brightness) and the quantile bins
 * that turn their values into class labels, for dataset labels and evaluation alike.
 */
import { availableParallelism } from "node:os";
import sharp from "sharp";
import { checkFinite, quantiles } from "../eval/metrics.js";
import { type ImageBatch, imageAt } from "../worker/tensors.js";

/**
 * Every encoder option is set, so that the size depends on the pixels and the quality only:
 * baseline (not progressive), standard IJG tables, standard Huffman tables, 4:2:0 chroma, no
 * mozjpeg tricks. This is what PIL's `save(format="JPEG", quality=q)` does, as in the paper: the
 * files are byte for byte PIL's, less the 18-byte JFIF header that libvips does not write.
 */
const JPEG_OPTIONS = {
  progressive: false,
  chromaSubsampling: "4:2:0",
  optimiseCoding: false,
  mozjpeg: false,
  trellisQuantisation: false,
  overshootDeringing: false,
  optimiseScans: false,
  quantisationTable: 0,
  force: true,
} as const;

function checkImage(name: string, image: Uint8Array, width: number, height: number, channels: number): asserts channels is 1 | 3 {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`${name}: width and height must be positive integers, got ${width}x${height}`);
  }
  if (channels !== 1 && channels !== 3) throw new RangeError(`${name}: expected 1 or 3 channels, got ${channels}`);
  const expected = width * height * channels;
  if (image.length !== expected) {
    throw new RangeError(`${name}: ${image.length} bytes do not make a ${width}x${height}x${channels} image (${expected})`);
  }
}

/** Bytes of the image as a baseline JPEG (4:2:0, no metadata): the compressibility oracle. */
export async function jpegSize(image: Uint8Array, width: number, height: number, channels: number, quality = 95): Promise<number> {
  checkImage("jpegSize", image, width, height, channels);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`jpegSize: quality must be an integer in 1..100, got ${quality}`);
  }
  // sharp strips all metadata unless asked to keep it, so nothing but the pixels is encoded.
  let picture = sharp(image, { raw: { width, height, channels } });
  // sharp would widen grey to sRGB; one component, like PIL's mode "L", stays one.
  if (channels === 1) picture = picture.toColourspace("b-w");
  const encoded = await picture.jpeg({ ...JPEG_OPTIONS, quality }).toBuffer();
  return encoded.byteLength;
}

/** Runs `task` over 0..count-1 with at most `limit` in flight; results keep their order. */
async function mapBounded<T>(count: number, limit: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, lane));
  return results;
}

/** JPEG sizes of every image of a batch; sharp's thread pool does the work, a few at a time. */
export function jpegSizes(batch: ImageBatch, quality = 95): Promise<number[]> {
  const { width, height, channels } = batch;
  return mapBounded(batch.count, availableParallelism(), (i) => jpegSize(imageAt(batch, i), width, height, channels, quality));
}

/** Mean Rec.601 luma (0.299 R + 0.587 G + 0.114 B) in [0, 255]; a grey image is its own luma. */
export function brightness(image: Uint8Array, width: number, height: number, channels: number): number {
  checkImage("brightness", image, width, height, channels);
  let sum = 0;
  if (channels === 1) {
    for (const v of image) sum += v;
  } else {
    for (let i = 0; i < image.length; i += 3) sum += 0.299 * image[i]! + 0.587 * image[i + 1]! + 0.114 * image[i + 2]!;
  }
  return sum / (width * height);
}

export function brightnessValues(batch: ImageBatch): number[] {
  const { width, height, channels } = batch;
  return Array.from({ length: batch.count }, (_, i) => brightness(imageAt(batch, i), width, height, channels));
}

/** The bins-1 cut points at the k/bins quantiles (numpy's linear method), ascending: bins of equal count. */
export function quantileThresholds(values: readonly number[], bins: number): number[] {
  checkFinite("quantileThresholds", values);
  if (!Number.isInteger(bins) || bins < 2) throw new RangeError(`quantileThresholds: bins must be an integer >= 2, got ${bins}`);
  return quantiles(values, Array.from({ length: bins - 1 }, (_, k) => (k + 1) / bins));
}

export type BinOrder = "ascending" | "descending";

/**
 * Class labels 0..thresholds.length from cut points. A value equal to a cut point goes to the
 * lower-value bin. "ascending": the smallest values get class 0; "descending": they get the
 * highest class (compressibility: class 3 = smallest JPEG, size <= 60 kB in the paper).
 */
export function binLabels(values: readonly number[], thresholds: readonly number[], order: BinOrder): number[] {
  checkFinite("binLabels", values);
  if (thresholds.length === 0) throw new RangeError("binLabels: no thresholds (one cut point makes two classes)");
  thresholds.forEach((t, i) => {
    if (!Number.isFinite(t)) throw new RangeError(`binLabels: threshold ${i} is not finite (${t})`);
    if (i > 0 && t < thresholds[i - 1]!) throw new RangeError(`binLabels: thresholds must be ascending, got [${thresholds.join(", ")}]`);
  });
  if (order !== "ascending" && order !== "descending") throw new RangeError(`binLabels: unknown order "${String(order)}"`);
  const top = thresholds.length;
  return values.map((value) => {
    const above = thresholds.reduce((n, t) => n + (value > t ? 1 : 0), 0);
    return order === "ascending" ? above : top - above;
  });
}
