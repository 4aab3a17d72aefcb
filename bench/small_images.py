"""Build an ImageFolder of small images: 14 classes of 24x24 crops from scikit-image's bundled
photos (one photo per class; each image a random crop of 25-60 % of the photo's shorter side,
resized to 24 px). No download.

    python bench/small_images.py OUT_DIR [--per-class 30] [--size 24] [--seed 0]

Writes ``OUT_DIR/train/<class>/*.png`` and ``OUT_DIR/val/<class>/*.png`` (a fifth of the images).
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

__all__ = ["PHOTOS", "make_small_images"]

PHOTOS = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel",
          "grass", "gravel", "horse", "moon", "page", "rocket")


def _photo(name: str) -> np.ndarray:
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3].astype(np.uint8)


def make_small_images(out: str | Path, per_class: int = 30, size: int = 24, seed: int = 0) -> Path:
    """Write the folder (see the module docstring) and return its root."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(out)
    for name in PHOTOS:
        img = _photo(name)
        h, w = img.shape[:2]
        for i in range(per_class):
            side = int(min(h, w) * rng.uniform(0.25, 0.6))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = Image.fromarray(img[y:y + side, x:x + side]).resize((size, size),
                                                                        Image.BILINEAR)
            split = "val" if i % 5 == 0 else "train"
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / f"{i:03d}.png")
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_small_images(args.out, args.per_class, args.size, args.seed))
