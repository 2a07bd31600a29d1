import assert from "node:assert/strict";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SampleCache, type SampleCacheKey, defaultCacheDir } from "../../src/ctrl/sampleCache.js";
import type { ImageBatch } from "../../src/worker/tensors.js";
import { tempDir } from "../helpers.js";

const key: SampleCacheKey = {
  backboneHash: "ab".repeat(32),
  dtype: "float32",
  autocast: "none",
  device: "cpu",
  timesteps: [900, 800, 0],
  eta: 1,
  seed: 7,
  numSamples: 3,
};

function images(fill: number): ImageBatch {
  return { count: 3, height: 2, width: 2, channels: 3, data: new Uint8Array(36).map((_, i) => (i * 7 + fill) % 256) };
}

test("the first get draws and caches; the second reads the same bytes without drawing", async () => {
  const cache = new SampleCache(tempDir());
  let draws = 0;
  const draw = async () => {
    draws++;
    return images(1);
  };
  const first = await cache.get(key, draw);
  const second = await cache.get(key, draw);
  assert.equal(draws, 1);
  assert.equal(first.cached, false);
  assert.equal(second.cached, true);
  assert.deepEqual(second.images, images(1));
  assert.deepEqual(readdirSync(cache.entryDir(key)).sort(), ["images.u8", "meta.json"]);
});

test("every part of the key matters: another seed, sampler or backbone is another entry", async () => {
  const cache = new SampleCache(tempDir());
  cache.write(key, images(1));
  for (const other of [{ seed: 8 }, { eta: 0.5 }, { timesteps: [900, 0] }, { backboneHash: "cd".repeat(32) }, { device: "cuda:0" }, { prompts: ["a cat"] }]) {
    assert.equal(cache.read({ ...key, ...other }), undefined, JSON.stringify(other));
  }
  assert.deepEqual(cache.read(key), images(1));
});

test("a damaged entry is ignored, drawn again and replaced", async () => {
  const cache = new SampleCache(tempDir());
  cache.write(key, images(1));
  const file = path.join(cache.entryDir(key), "images.u8");
  const bytes = readFileSync(file);
  bytes[5] = bytes[5]! ^ 0xff;
  writeFileSync(file, bytes);
  assert.equal(cache.read(key), undefined, "a flipped byte fails the checksum");
  writeFileSync(file, bytes.subarray(0, 10));
  assert.equal(cache.read(key), undefined, "a truncated file fails the size check");
  writeFileSync(path.join(cache.entryDir(key), "meta.json"), "{not json");
  const { images: again, cached } = await cache.get(key, async () => images(2));
  assert.equal(cached, false);
  assert.deepEqual(again, images(2));
  assert.deepEqual(cache.read(key), images(2));
});

test("the cache folder follows CTRL_CACHE_DIR, then XDG_CACHE_HOME", () => {
  assert.equal(defaultCacheDir({ CTRL_CACHE_DIR: "/x/ctrl" }), "/x/ctrl");
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: "/y" }), path.join("/y", "ctrl"));
});
