/** Image grids: a batch of uint8 images tiled into one PNG. */
import sharp from "sharp";
import { type ImageBatch, imageAt } from "../worker/tensors.js";

export interface GridOptions {
  /** Images per row; default: the smallest square that fits. */
  columns?: number;
  /** Pixels of white space between images. Default 2. */
  padding?: number;
  /** Nearest-neighbour upscaling factor, to make small images visible. Default 1. */
  scale?: number;
}

export async function imageGrid(batch: ImageBatch, options: GridOptions = {}): Promise<Buffer> {
  const { count, height, width, channels } = batch;
  if (count < 1) throw new RangeError("imageGrid: the batch holds no image");
  if (channels !== 1 && channels !== 3) throw new RangeError(`imageGrid: expected 1 or 3 channels, got ${channels}`);
  const columns = options.columns ?? Math.ceil(Math.sqrt(count));
  if (!Number.isInteger(columns) || columns < 1) throw new RangeError(`imageGrid: columns must be a positive integer, got ${columns}`);
  const padding = options.padding ?? 2;
  const scale = options.scale ?? 1;
  const rows = Math.ceil(count / columns);
  const gridWidth = columns * width + (columns + 1) * padding;
  const gridHeight = rows * height + (rows + 1) * padding;
  const pixels = Buffer.alloc(gridWidth * gridHeight * channels, 255);
  for (let i = 0; i < count; i++) {
    const image = imageAt(batch, i);
    const left = padding + (i % columns) * (width + padding);
    const top = padding + Math.floor(i / columns) * (height + padding);
    for (let y = 0; y < height; y++) {
      const source = image.subarray(y * width * channels, (y + 1) * width * channels);
      pixels.set(source, ((top + y) * gridWidth + left) * channels);
    }
  }
  let picture = sharp(pixels, { raw: { width: gridWidth, height: gridHeight, channels } });
  if (scale !== 1) picture = picture.resize(gridWidth * scale, gridHeight * scale, { kernel: "nearest" });
  return picture.png().toBuffer();
}
