/** Tensors and images as they cross the bridge: `{shape, dtype, data}`, little-endian. */
import { DType, type ImageChunk, type Tensor } from "../gen/ctrl/v1/worker.js";

/** uint8 images, NHWC, contiguous. */
export interface ImageBatch {
  count: number;
  height: number;
  width: number;
  channels: number;
  data: Uint8Array;
}

export function float32Tensor(values: Float32Array, shape: number[]): Tensor {
  const expected = shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new RangeError(`float32Tensor: ${values.length} values do not fill shape [${shape.join(", ")}] (${expected})`);
  }
  return { shape, dtype: DType.DTYPE_FLOAT32, data: Buffer.from(values.buffer, values.byteOffset, values.byteLength) };
}

/** A batch of uint8 images as a Tensor [n, height, width, channels]. */
export function uint8Tensor(batch: ImageBatch): Tensor {
  return {
    shape: [batch.count, batch.height, batch.width, batch.channels],
    dtype: DType.DTYPE_UINT8,
    data: Buffer.from(batch.data.buffer, batch.data.byteOffset, batch.data.byteLength),
  };
}

/** The images at `indices`, copied into a new batch. */
export function selectImages(batch: ImageBatch, indices: readonly number[]): ImageBatch {
  const size = batch.height * batch.width * batch.channels;
  const data = new Uint8Array(indices.length * size);
  indices.forEach((index, i) => data.set(imageAt(batch, index), i * size));
  return { ...batch, count: indices.length, data };
}

/** Reads a float32 tensor. The bytes are copied first: a Buffer slice need not be 4-byte aligned. */
export function toFloat32(tensor: Tensor): Float32Array {
  if (tensor.dtype !== DType.DTYPE_FLOAT32) throw new TypeError(`expected a float32 tensor, got ${DType[tensor.dtype]}`);
  const copy = new Uint8Array(tensor.data);
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}

/** A float32 matrix [n, d] as n row views. */
export function rows(tensor: Tensor): Float32Array[] {
  if (tensor.shape.length !== 2) throw new RangeError(`expected a matrix, got shape [${tensor.shape.join(", ")}]`);
  const [n, d] = tensor.shape as [number, number];
  const values = toFloat32(tensor);
  return Array.from({ length: n }, (_, i) => values.subarray(i * d, (i + 1) * d));
}

/** Joins the image chunks of a stream, in order, into one batch. */
export function imagesFromChunks(chunks: ImageChunk[]): ImageBatch {
  if (chunks.length === 0) throw new Error("the worker sent no images");
  const sorted = [...chunks].sort((a, b) => a.firstIndex - b.firstIndex);
  const first = sorted[0]!.images!;
  const [, height, width, channels] = first.shape as [number, number, number, number];
  let count = 0;
  for (const chunk of sorted) {
    const tensor = chunk.images!;
    if (tensor.dtype !== DType.DTYPE_UINT8) throw new TypeError(`expected uint8 images, got ${DType[tensor.dtype]}`);
    if (chunk.firstIndex !== count) throw new Error(`image chunk starts at ${chunk.firstIndex}, expected ${count}`);
    count += tensor.shape[0]!;
  }
  const data = new Uint8Array(count * height * width * channels);
  let offset = 0;
  for (const chunk of sorted) {
    data.set(chunk.images!.data, offset);
    offset += chunk.images!.data.byteLength;
  }
  return { count, height, width, channels, data };
}

/** The pixels of image `index` of a batch (a view, not a copy). */
export function imageAt(batch: ImageBatch, index: number): Uint8Array {
  const size = batch.height * batch.width * batch.channels;
  return batch.data.subarray(index * size, (index + 1) * size);
}
