/**
 * The pre-trained model's own samples, kept on disk between runs. Drawing the paper's offline
 * images (a few thousand samples of the pre-trained model) takes minutes on a CPU; a second run
 * with the same backbone (by content hash), sampler, precision, device and seed reads them back.
 *
 * One folder per key under `<cache>/samples/<sha256 of the key>/`: meta.json (the key, the image
 * shape and the sha256 of the pixels) and images.u8 (raw uint8 NHWC). Written to a temporary
 * folder and renamed into place, so a killed run never leaves half an entry; an entry that does
 * not match its meta.json is ignored and drawn again.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import type { Backbone } from "../gen/ctrl/v1/worker.js";
import type { ImageBatch } from "../worker/tensors.js";
import type { SampleOptions, Worker } from "../worker/worker.js";

const FORMAT = "ctrl-samples/1";

/** Everything the images depend on (up to float rounding across thread counts and batch sizes). */
export interface SampleCacheKey {
  backboneHash: string;
  dtype: string;
  autocast: string;
  device: string;
  timesteps: number[];
  eta: number;
  seed: number;
  numSamples: number;
  prompts?: string[];
  guidanceScale?: number;
}

interface Meta {
  format: string;
  key: SampleCacheKey;
  count: number;
  height: number;
  width: number;
  channels: number;
  sha256: string;
}

/** `$CTRL_CACHE_DIR`, else `$XDG_CACHE_HOME/ctrl`, else `~/.cache/ctrl` (where setup keeps the venv too). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CTRL_CACHE_DIR) return env.CTRL_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), ".cache"), "ctrl");
}

export class SampleCache {
  constructor(readonly dir: string = path.join(defaultCacheDir(), "samples")) {}

  entryDir(key: SampleCacheKey): string {
    return path.join(this.dir, createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 32));
  }

  /** The cached images for `key`, or undefined when there are none (or they fail their checks). */
  read(key: SampleCacheKey): ImageBatch | undefined {
    const dir = this.entryDir(key);
    if (!existsSync(path.join(dir, "meta.json"))) return undefined;
    try {
      const meta = JSON.parse(readFileSync(path.join(dir, "meta.json"), "utf8")) as Meta;
      if (meta.format !== FORMAT || JSON.stringify(meta.key) !== JSON.stringify(key)) return undefined;
      const data = new Uint8Array(readFileSync(path.join(dir, "images.u8")));
      if (data.byteLength !== meta.count * meta.height * meta.width * meta.channels || sha256(data) !== meta.sha256) return undefined;
      return { count: meta.count, height: meta.height, width: meta.width, channels: meta.channels, data };
    } catch {
      return undefined; // unreadable: drawn again and replaced
    }
  }

  write(key: SampleCacheKey, images: ImageBatch): void {
    const dir = this.entryDir(key);
    const staging = `${dir}.tmp-${process.pid}`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    const { count, height, width, channels, data } = images;
    const meta: Meta = { format: FORMAT, key, count, height, width, channels, sha256: sha256(data) };
    writeFileSync(path.join(staging, "images.u8"), data);
    writeFileSync(path.join(staging, "meta.json"), `${JSON.stringify(meta, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
  }

  /** The cached images, or `draw()`'s, which are then cached. */
  async get(key: SampleCacheKey, draw: () => Promise<ImageBatch>): Promise<{ images: ImageBatch; cached: boolean }> {
    const cached = this.read(key);
    if (cached) return { images: cached, cached: true };
    const images = await draw();
    this.write(key, images);
    return { images, cached: false };
  }
}

/**
 * The samples `request` asks of `backbone` (whose handle it names), read from the cache when an
 * earlier run drew them with the same backbone content, sampler, precision, device and seed.
 */
export async function cachedSamples(
  worker: Pick<Worker, "info" | "sample">,
  backbone: Backbone,
  request: SampleOptions,
  precision: { dtype: string; autocast: string },
  cache = new SampleCache(),
): Promise<{ images: ImageBatch; cached: boolean; entry: string }> {
  const key: SampleCacheKey = {
    backboneHash: backbone.contentHash,
    dtype: precision.dtype,
    autocast: precision.autocast,
    device: (await worker.info()).device,
    timesteps: request.timesteps,
    eta: request.eta,
    seed: request.seed,
    numSamples: request.numSamples,
    ...(request.text ? { prompts: request.text.prompts, guidanceScale: request.text.guidanceScale } : {}),
  };
  const { images, cached } = await cache.get(key, () => worker.sample(request));
  return { images, cached, entry: cache.entryDir(key) };
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
