import assert from "node:assert/strict";
import { test } from "node:test";
import { DType } from "../../src/gen/ctrl/v1/worker.js";
import { float32Tensor, imageAt, imagesFromChunks, toFloat32 } from "../../src/worker/tensors.js";

test("float32 tensors round-trip, also from an unaligned buffer", () => {
  const values = new Float32Array([1.5, -2, 3.25, 0]);
  const tensor = float32Tensor(values, [2, 2]);
  assert.deepEqual(Array.from(toFloat32(tensor)), [1.5, -2, 3.25, 0]);
  const unaligned = Buffer.concat([Buffer.from([7]), tensor.data]).subarray(1);
  assert.deepEqual(Array.from(toFloat32({ ...tensor, data: unaligned })), [1.5, -2, 3.25, 0]);
  assert.throws(() => float32Tensor(values, [3]), /do not fill shape \[3\]/);
  assert.throws(() => toFloat32({ ...tensor, dtype: DType.DTYPE_UINT8 }), /expected a float32 tensor/);
});

test("image chunks join in order into one NHWC batch", () => {
  const chunk = (first: number, n: number, fill: number) => ({
    firstIndex: first,
    images: { shape: [n, 2, 2, 3], dtype: DType.DTYPE_UINT8, data: Buffer.alloc(n * 12, fill) },
  });
  const batch = imagesFromChunks([chunk(2, 1, 9), chunk(0, 2, 4)]);
  assert.deepEqual([batch.count, batch.height, batch.width, batch.channels], [3, 2, 2, 3]);
  assert.ok(imageAt(batch, 1).every((v) => v === 4));
  assert.ok(imageAt(batch, 2).every((v) => v === 9));
  assert.throws(() => imagesFromChunks([chunk(1, 1, 0)]), /starts at 1, expected 0/);
  assert.throws(() => imagesFromChunks([]), /no images/);
});
