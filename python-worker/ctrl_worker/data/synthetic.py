"""A seeded generator of small RGB images: the training set of the embedded default backbone.

The default CTRL reproduction adds controls whose oracles are computed outside the model (JPEG
size at quality 95, brightness, colour), so the pre-training images must spread widely along
those axes: flat colours and smooth gradients compress to a few hundred bytes, hard edges, fine
stripes, noise and photographic texture to several kilobytes, and colour and brightness are drawn
over their whole range. Photographic crops come from the sample images bundled with
scikit-image (`skimage.data` ships them inside the package: nothing is downloaded).

`generate_images(n, seed)` is deterministic: image i depends only on (seed, i), so the first k
images of a set of n are the set of k.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

SIZE = 32

# Coordinates in [0, 1], shared by the procedural families.
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)

# Colour photographs and greyscale textures bundled with scikit-image.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")
TEXTURES = ("brick", "grass", "gravel", "camera", "moon", "coins", "text", "cell", "clock")

Rng = np.random.Generator
Float = np.ndarray  # float64 images, [32, 32, 3] in [0, 1]


# --- colours -------------------------------------------------------------------------------------


def random_colour(rng: Rng) -> np.ndarray:
    """An RGB colour in [0, 1] with hue, saturation and brightness spread over their whole range."""
    hue, saturation, value = rng.random(), rng.random() ** 0.7, rng.uniform(0.0, 1.0) ** 0.6
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value))


def _blend(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> Float:
    """Per-pixel mix of a and b (colours [3] or images [32, 32, 3]) by t in [0, 1] ([32, 32])."""
    return a * (1 - t[..., None]) + b * t[..., None]


def _rotated(angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates rotated by angle around the centre: stripes and grids at any orientation."""
    x, y = _X - 0.5, _Y - 0.5
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


# --- image families ------------------------------------------------------------------------------


def flat(rng: Rng) -> Float:
    """One colour: the smallest JPEGs, and pure colour/brightness classes."""
    return np.broadcast_to(random_colour(rng), (SIZE, SIZE, 3)).copy()


def gradient(rng: Rng) -> Float:
    """Linear or radial gradients between two or three colours: smooth, still small JPEGs."""
    if rng.random() < 0.6:
        u, _ = _rotated(rng.uniform(0, 2 * np.pi))
        t = np.clip(u / 1.42 + 0.5, 0, 1)
    else:
        cx, cy = rng.uniform(0, 1, 2)
        t = np.sqrt((_X - cx) ** 2 + (_Y - cy) ** 2) / rng.uniform(0.5, 1.4)
        t = np.clip(t, 0, 1)
    image = _blend(random_colour(rng), random_colour(rng), t)
    if rng.random() < 0.3:  # a third colour along a second axis
        v, _ = _rotated(rng.uniform(0, 2 * np.pi))
        image = _blend(image, random_colour(rng), 0.7 * np.clip(v + 0.5, 0, 1))
    return image


def _shape_mask(rng: Rng) -> np.ndarray:
    """A random rectangle, ellipse, triangle or ring as a boolean mask: hard edges."""
    kind = rng.integers(4)
    cx, cy = rng.uniform(0.1, 0.9, 2)
    rx, ry = rng.uniform(0.08, 0.4, 2)
    u, v = _rotated(rng.uniform(0, np.pi) if rng.random() < 0.5 else 0.0)
    u, v = u + 0.5 - cx, v + 0.5 - cy
    if kind == 0:
        return (np.abs(u) < rx) & (np.abs(v) < ry)
    if kind == 1:
        return (u / rx) ** 2 + (v / ry) ** 2 < 1
    if kind == 2:
        r = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        return (r < 1) & (r > rng.uniform(0.4, 0.8))
    # A triangle: the intersection of three half-planes through its corners.
    corners = np.array([cx, cy]) + rng.uniform(-0.4, 0.4, (3, 2))
    signs = []
    for i in range(3):
        (x0, y0), (x1, y1) = corners[i], corners[(i + 1) % 3]
        signs.append((x1 - x0) * (_Y - y0) - (y1 - y0) * (_X - x0) > 0)
    return (signs[0] == signs[1]) & (signs[1] == signs[2])


def shapes(rng: Rng) -> Float:
    """A few solid shapes over a flat or gradient background."""
    image = flat(rng) if rng.random() < 0.6 else gradient(rng)
    for _ in range(rng.integers(1, 7)):
        image[_shape_mask(rng)] = random_colour(rng)
    return image


def stripes(rng: Rng) -> Float:
    """Sine or square-wave stripes, 1 to 12 cycles per image: frequency drives JPEG size."""
    u, _ = _rotated(rng.uniform(0, np.pi))
    cycles = np.exp(rng.uniform(np.log(1), np.log(12)))
    wave = np.sin(2 * np.pi * cycles * u + rng.uniform(0, 2 * np.pi))
    t = (wave > 0).astype(np.float64) if rng.random() < 0.5 else (wave + 1) / 2
    return _blend(random_colour(rng), random_colour(rng), t)


def checkerboard(rng: Rng) -> Float:
    """Checkerboards with cells of 1 to 16 pixels, axis-aligned or rotated."""
    cell = rng.choice([1, 2, 3, 4, 6, 8, 16]) / SIZE
    u, v = _rotated(rng.uniform(0, np.pi / 2) if rng.random() < 0.3 else 0.0)
    t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float64)
    return _blend(random_colour(rng), random_colour(rng), t)


def noise(rng: Rng) -> Float:
    """Gaussian noise smoothed at one of several scales, grey or coloured, over a base colour."""
    sigma = rng.choice([0.0, 0.7, 1.5, 3.0, 6.0])
    channels = 1 if rng.random() < 0.4 else 3
    field = rng.standard_normal((SIZE, SIZE, channels))
    if sigma > 0:
        field = gaussian_filter(field, sigma=(sigma, sigma, 0), mode="wrap")
    field /= field.std() + 1e-8
    return random_colour(rng) + rng.uniform(0.05, 0.5) * field


def _crop(source: np.ndarray, rng: Rng, min_side: int = 24) -> np.ndarray:
    """A random square crop, 24 pixels to the whole image wide, resized to 32x32."""
    height, width = source.shape[:2]
    side = int(np.exp(rng.uniform(np.log(min_side), np.log(min(height, width)))))
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    crop = Image.fromarray(source[top : top + side, left : left + side])
    out = np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float64) / 255
    return out[:, ::-1] if rng.random() < 0.5 else out


def photo(rng: Rng) -> Float:
    """A crop of a bundled colour photograph, sometimes with its channels permuted for colour variety."""
    image = _crop(_sample_image(PHOTOS[rng.integers(len(PHOTOS))]), rng)
    return image[..., rng.permutation(3)] if rng.random() < 0.3 else image


def texture(rng: Rng) -> Float:
    """A crop of a bundled greyscale image, mapped through two random colours (a duotone)."""
    grey = _crop(_sample_image(TEXTURES[rng.integers(len(TEXTURES))]), rng)
    return _blend(random_colour(rng), random_colour(rng), grey)


@lru_cache(maxsize=None)
def _sample_image(name: str) -> np.ndarray:
    """A scikit-image sample as uint8, 2-D for greyscale or [H, W, 3] for colour (cached)."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = image[..., :3]
    return np.ascontiguousarray(image.astype(np.uint8))


# Relative frequencies: simple families are common enough that small JPEGs are well represented.
FAMILIES: tuple[tuple[Callable[[Rng], Float], float], ...] = (
    (flat, 0.10),
    (gradient, 0.16),
    (shapes, 0.17),
    (stripes, 0.11),
    (checkerboard, 0.07),
    (noise, 0.12),
    (texture, 0.11),
    (photo, 0.16),
)


# --- post-processing -----------------------------------------------------------------------------


def _postprocess(image: Float, rng: Rng) -> Float:
    """Blur, grain and a tone change on top of any family: more spread in JPEG size and brightness."""
    if rng.random() < 0.3:  # blur levels: from a softened edge to a smear
        image = gaussian_filter(image, sigma=(rng.choice([0.5, 1.0, 1.5, 2.5]),) * 2 + (0,))
    if rng.random() < 0.25:  # fine grain: the largest JPEGs
        image = image + rng.uniform(0.01, 0.12) * rng.standard_normal(image.shape)
    if rng.random() < 0.4:  # brightness and contrast: a gamma curve and a gain
        image = np.clip(image, 0, 1) ** np.exp(rng.uniform(-1.0, 1.0)) * rng.uniform(0.6, 1.3)
    return image


def _to_uint8(image: Float) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def generate_image(rng: Rng) -> np.ndarray:
    """One [32, 32, 3] uint8 image from a family chosen by FAMILIES' weights."""
    weights = np.array([w for _, w in FAMILIES])
    family = FAMILIES[rng.choice(len(FAMILIES), p=weights / weights.sum())][0]
    return _to_uint8(_postprocess(family(rng), rng))


def generate_images(n: int, seed: int) -> np.ndarray:
    """n images, [n, 32, 32, 3] uint8; image i depends only on (seed, i)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    streams = np.random.SeedSequence(seed).spawn(n)  # one independent stream per image
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i, stream in enumerate(streams):
        out[i] = generate_image(np.random.default_rng(stream))
    return out


def jpeg_size(image: np.ndarray, quality: int = 95) -> int:
    """Bytes of the image saved as JPEG by PIL at this quality: the paper's compressibility oracle."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.tell()


def _summary(n: int = 2000, seed: int = 0) -> None:
    """Print JPEG-size and brightness statistics of n images (`python -m ctrl_worker.data.synthetic`)."""
    images = generate_images(n, seed)
    sizes = np.array([jpeg_size(image) for image in images])
    brightness = images.mean(axis=(1, 2, 3))
    for name, values in (("jpeg bytes", sizes), ("mean brightness", brightness)):
        q = np.percentile(values, [0, 10, 25, 50, 75, 90, 100])
        print(f"{name:>16}: min {q[0]:.0f}  p10 {q[1]:.0f}  q1 {q[2]:.0f}  median {q[3]:.0f}  q3 {q[4]:.0f}  p90 {q[5]:.0f}  max {q[6]:.0f}")


if __name__ == "__main__":
    _summary()
