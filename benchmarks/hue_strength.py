"""How far the augmentation's hue shift moves real pixels, against torchvision's HSV hue shift.

``skin_lesion.augment`` shifts hue by rotating the YIQ chroma plane (one 3x3 matrix per
sample), torchvision's ``ColorJitter`` by shifting the HSV hue; the same number is a different
strength in the two. This measures, on HAM10000 images, the mean absolute change of a pixel
value (RGB in [0, 1]) that each makes at several strengths, so that a configuration can be
carried over from torchvision: ``conf/base`` uses 0.03 and 0.012 where the torchvision-style
values were 0.05 and 0.02.

    python benchmarks/hue_strength.py [--data ../shared/data/ham10000_200x150] [--images 256]

The HSV shift is kornia's ``adjust_hue`` (torchvision's formula; kornia is a test dependency:
``pip install -e ".[test]"``). Both are applied at +strength and -strength and averaged.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skin_lesion.augment import apply_colour, colour_matrices

ROOT = Path(__file__).resolve().parents[1]
STRENGTHS = (0.01, 0.012, 0.02, 0.03, 0.05, 0.1)


def load_images(data: Path, count: int) -> torch.Tensor:
    """The first ``count`` JPEGs (sorted by path) under ``data``, as float (N, 3, H, W)."""
    files = sorted(data.rglob("*.jpg"))[:count]
    if not files:
        raise SystemExit(f"hue_strength.py: no .jpg files under {data}")
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((200, 150))) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def yiq_shift(images: torch.Tensor, turns: float) -> torch.Tensor:
    """Ours: rotate the YIQ chroma plane by ``turns``, nothing else changed."""
    n = len(images)
    one = torch.ones(n)
    matrix, offset = colour_matrices(images, one, one, one, torch.full((n,), turns))
    return apply_colour(images, matrix, offset).clamp(0.0, 1.0)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ham10000_200x150")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args(argv)
    try:
        from kornia.enhance import adjust_hue
    except ImportError as exc:
        raise SystemExit('hue_strength.py needs kornia: pip install -e ".[test]"') from exc
    images = load_images(args.data, args.images)
    rows = []
    for strength in STRENGTHS:
        hsv = [
            (adjust_hue(images, sign * strength * 2 * math.pi) - images).abs().mean().item()
            for sign in (1, -1)
        ]
        yiq = [
            (yiq_shift(images, sign * strength) - images).abs().mean().item() for sign in (1, -1)
        ]
        rows.append({"strength": strength, "hsv": np.mean(hsv), "yiq": np.mean(yiq)})
    print(f"{len(images)} images from {args.data}; mean |change| of an RGB value in [0, 1]:\n")
    print("| strength | torchvision (HSV shift) | ours (YIQ rotation) | ours / torchvision |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['strength']} | {r['hsv']:.4f} | {r['yiq']:.4f} | {r['yiq'] / r['hsv']:.2f} |")
    return rows


if __name__ == "__main__":
    main()
