import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { imageGrid } from "../../src/eval/grid.js";

test("a grid places each image in its cell, with white padding, and scales", async () => {
  const data = new Uint8Array(3 * 4 * 4 * 3);
  data.fill(0, 0, 48); // image 0 black
  data.fill(100, 48, 96); // image 1 grey
  data.fill(200, 96); // image 2 light
  const png = await imageGrid({ count: 3, height: 4, width: 4, channels: 3, data }, { columns: 2, padding: 1, scale: 2 });
  const { data: pixels, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [(2 * 4 + 3) * 2, (2 * 4 + 3) * 2]);
  const at = (x: number, y: number) => pixels[(y * info.width + x) * info.channels];
  assert.equal(at(0, 0), 255); // padding
  assert.equal(at(2 * 2, 2 * 2), 0); // inside image 0
  assert.equal(at(2 * 7, 2 * 2), 100); // inside image 1
  assert.equal(at(2 * 2, 2 * 7), 200); // inside image 2
  assert.equal(at(2 * 7, 2 * 7), 255); // the empty fourth cell
});

test("bad grids are refused", async () => {
  const empty = { count: 0, height: 4, width: 4, channels: 3, data: new Uint8Array(0) };
  await assert.rejects(imageGrid(empty), /holds no image/);
  const one = { count: 1, height: 1, width: 1, channels: 3, data: new Uint8Array(3) };
  await assert.rejects(imageGrid(one, { columns: 0 }), /columns must be a positive integer/);
});
