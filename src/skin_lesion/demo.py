"""Write a small synthetic dataset in the exact HAM10000 (Kaggle) layout.

The demo and the test suite need data that sits on disk exactly like HAM10000 (one metadata
CSV, JPEGs split over two part folders) but that anyone can make in seconds without a
download. The metadata copies the real file's format, class imbalance and several images
per lesion, which is what the lesion-grouped splits must cope with. The images are cartoons:
every class has its own colour, shape and texture, so a tiny CNN learns them on a CPU in
about a minute and a broken pipeline shows up as chance-level accuracy.

Usage::

    python -m skin_lesion.demo OUT_DIR [--images N] [--seed S] [--size WxH] [--replace]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

logger = logging.getLogger(__name__)

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
METADATA_FILENAME = "HAM10000_metadata.csv"
PART_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
# Marks a folder this generator wrote; only such a dataset is replaced without ``replace``.
DEMO_MARKER = ".skin_lesion_demo"
# Every class needs this many lesions so that a lesion-grouped 70/15/15 split and 5 grouped
# folds still see each class in every split (15 % of 12 lesions is about 2).
MIN_LESIONS_PER_CLASS = 12
MIN_IMAGES = MIN_LESIONS_PER_CLASS * len(CLASSES)
MAX_IMAGES_PER_LESION = 6
FIRST_IMAGE_NUMBER = 24306  # HAM10000's image ids run from ISIC_0024306 upwards
JPEG_QUALITY = 90
DEFAULT_SIZE = (600, 450)  # width, height of every HAM10000 image
MIN_SIDE = 32  # below this the shapes and textures are no longer drawable

# HAM10000's localization counts (of 10,015 images), used as sampling weights.
_LOCALIZATIONS = {
    "back": 2192, "lower extremity": 2077, "trunk": 1404, "upper extremity": 1118,
    "abdomen": 1022, "face": 745, "chest": 407, "foot": 319, "unknown": 234, "neck": 168,
    "scalp": 128, "hand": 90, "ear": 56, "genital": 48, "acral": 7,
}  # fmt: skip
_SEXES = {"male": 0.53, "female": 0.45, "unknown": 0.02}
_MISSING_AGE_RATE = 0.03
_SKIN_LIGHT = np.array([236.0, 200.0, 175.0], dtype=np.float32)
_SKIN_DARK = np.array([170.0, 120.0, 90.0], dtype=np.float32)
_HAIR_COLOUR = np.array([35.0, 25.0, 20.0], dtype=np.float32)
_HAIR_RATE = 0.6
_TEXTURE_AMPLITUDE = 0.3
_CSV_DX_ORDER = ("bkl", "nv", "df", "mel", "vasc", "bcc", "akiec")


@dataclass(frozen=True)
class _ClassStyle:
    """How one diagnosis is counted in HAM10000 and how the demo draws it."""

    ham_images: int
    ham_lesions: int
    colour: tuple[float, float, float]  # RGB
    shape: str
    texture: str
    radius: tuple[float, float]  # range, as a fraction of the image's shorter side
    age_mean: float
    dx_types: dict[str, float]


_STYLES = {
    "akiec": _ClassStyle(327, 228, (205, 70, 75), "dots", "speckles", (0.26, 0.34), 67,
                         {"histo": 1.0}),
    "bcc": _ClassStyle(514, 327, (225, 125, 205), "ring", "smooth", (0.24, 0.32), 66,
                       {"histo": 1.0}),
    "bkl": _ClassStyle(1099, 727, (200, 170, 85), "ellipse", "stripes", (0.24, 0.32), 60,
                       {"histo": 0.5, "consensus": 0.35, "confocal": 0.15}),
    "df": _ClassStyle(115, 73, (215, 115, 30), "blob", "grid", (0.16, 0.22), 52,
                      {"histo": 0.45, "consensus": 0.55}),
    "mel": _ClassStyle(1113, 614, (45, 35, 70), "star", "speckles", (0.26, 0.34), 61,
                       {"histo": 1.0}),
    "nv": _ClassStyle(6705, 5403, (115, 70, 45), "blob", "smooth", (0.20, 0.30), 47,
                      {"follow_up": 0.55, "histo": 0.35, "consensus": 0.09, "confocal": 0.01}),
    "vasc": _ClassStyle(142, 98, (125, 35, 150), "lobes", "grid", (0.20, 0.26), 50,
                        {"histo": 0.45, "consensus": 0.55}),
}  # fmt: skip


@dataclass(frozen=True)
class _Look:
    """What all images of one lesion share; each image varies it slightly."""

    polygons: tuple[tuple[np.ndarray, int], ...]  # (points in lesion units, fill value)
    colour: np.ndarray
    skin: np.ndarray
    texture: str
    offset: tuple[float, float]  # centre offset from the image centre, fraction of w and h
    radius: float
    angle: float
    frequency: float  # texture cycles per lesion radius


def allocate_images(n_images: int) -> dict[str, int]:
    """Split ``n_images`` over the classes in HAM10000's proportions, with a floor.

    Args:
        n_images: Total number of images, at least ``MIN_IMAGES``.

    Returns:
        Images per class, summing to ``n_images``; no class below ``MIN_LESIONS_PER_CLASS``.

    Raises:
        ValueError: If ``n_images`` is below ``MIN_IMAGES``.
    """
    if n_images < MIN_IMAGES:
        raise ValueError(
            f"n_images={n_images} is too small: the demo needs at least {MIN_IMAGES} images "
            f"({MIN_LESIONS_PER_CLASS} lesions for each of the {len(CLASSES)} classes, so every "
            "class reaches every split and fold)"
        )
    counts: dict[str, int] = {}
    free = {dx: style.ham_images for dx, style in _STYLES.items()}
    remaining = n_images
    # Raising a rare class to the floor shrinks everyone else's share, which may push another
    # class under it, so repeat until no proportional share is below the floor.
    while free:
        total = sum(free.values())
        low = [dx for dx, w in free.items() if remaining * w / total < MIN_LESIONS_PER_CLASS]
        if not low:
            break
        for dx in low:
            counts[dx] = MIN_LESIONS_PER_CLASS
            remaining -= MIN_LESIONS_PER_CLASS
            del free[dx]
    if free:  # largest-remainder rounding keeps the total exact
        total = sum(free.values())
        shares = {dx: remaining * w / total for dx, w in free.items()}
        floors = {dx: int(share) for dx, share in shares.items()}
        by_remainder = sorted(free, key=lambda dx: floors[dx] - shares[dx])
        for dx in by_remainder[: remaining - sum(floors.values())]:
            floors[dx] += 1
        counts.update(floors)
    return {dx: counts[dx] for dx in CLASSES}


def _lesion_sizes(rng: np.random.Generator, dx: str, n_images: int) -> list[int]:
    """Images per lesion for one class, with HAM10000's images-per-lesion ratio."""
    style = _STYLES[dx]
    n_lesions = round(n_images * style.ham_lesions / style.ham_images)
    n_lesions = min(n_images, max(MIN_LESIONS_PER_CLASS, n_lesions))
    sizes = np.ones(n_lesions, dtype=int)
    for _ in range(n_images - n_lesions):
        open_lesions = np.flatnonzero(sizes < MAX_IMAGES_PER_LESION)
        sizes[rng.choice(open_lesions)] += 1
    return sizes.tolist()


def _sample_metadata(rng: np.random.Generator, n_images: int) -> pd.DataFrame:
    """Draw the metadata table: one row per image, the rows of a lesion adjacent."""
    counts = allocate_images(n_images)
    places = list(_LOCALIZATIONS)
    place_weights = np.array(list(_LOCALIZATIONS.values()), dtype=float)
    place_weights /= place_weights.sum()
    lesions, sizes = [], []
    for dx in _CSV_DX_ORDER:  # grouped by diagnosis, like the Kaggle CSV
        style = _STYLES[dx]
        for size in _lesion_sizes(rng, dx, counts[dx]):
            # HAM10000 ages are multiples of 5 from 0 to 85; `+ 0.0` turns -0.0 into 0.0
            # From 5: HAM10000's age 0 rows are placeholders, which data_processing warns of
            # (the demo's own data told the user to edit a file it had written).
            age = float(np.clip(np.round(rng.normal(style.age_mean, 15) / 5) * 5, 5, 85)) + 0.0
            lesions.append(
                {
                    "dx": dx,
                    "dx_type": str(
                        rng.choice(list(style.dx_types), p=list(style.dx_types.values()))
                    ),
                    "age": np.nan if rng.random() < _MISSING_AGE_RATE else age,
                    "sex": str(rng.choice(list(_SEXES), p=list(_SEXES.values()))),
                    "localization": places[rng.choice(len(places), p=place_weights)],
                }
            )
            sizes.append(size)
    # HAM10000's lesion ids are sparse numbers below about 7,700; sample, do not count up.
    numbers = rng.choice(max(10_000, 2 * len(lesions)), size=len(lesions), replace=False)
    table = pd.DataFrame(lesions)
    table.insert(0, "lesion_id", [f"HAM_{n:07d}" for n in numbers])
    table = table.loc[table.index.repeat(sizes)].reset_index(drop=True)
    image_numbers = FIRST_IMAGE_NUMBER + rng.permutation(n_images)
    table.insert(1, "image_id", [f"ISIC_{n:07d}" for n in image_numbers])
    return table[list(COLUMNS)]


def _circle(centre: tuple[float, float], radius: float, n_points: int = 32) -> np.ndarray:
    theta = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(theta), centre[1] + radius * np.sin(theta)], 1)


def _sample_polygons(rng: np.random.Generator, shape: str) -> tuple[tuple[np.ndarray, int], ...]:
    """Outline of one lesion in lesion units (radius about 1), as polygons to fill in order."""
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    phases = rng.uniform(0, 2 * np.pi, 3)
    if shape in ("blob", "ring"):
        radius = 1 + 0.05 * np.cos(2 * theta + phases[0]) + 0.04 * np.cos(3 * theta + phases[1])
    elif shape == "star":  # deep spikes plus a lopsided harmonic: irregular border
        spikes = rng.integers(5, 9)
        radius = 1 + 0.3 * np.cos(spikes * theta + phases[0]) + 0.12 * np.cos(2 * theta + phases[1])
    elif shape == "ellipse":
        radius = np.ones_like(theta)
    elif shape == "lobes":
        n_lobes = rng.integers(3, 6)
        angles = phases[0] + 2 * np.pi * np.arange(n_lobes) / n_lobes
        angles = angles + rng.normal(0, 0.2, n_lobes)
        spread = rng.uniform(0.45, 0.6, n_lobes)
        sizes = rng.uniform(0.4, 0.55, n_lobes)
        return tuple(
            (_circle((s * np.cos(a), s * np.sin(a)), r), 255)
            for a, s, r in zip(angles, spread, sizes, strict=True)
        )
    elif shape == "dots":
        n_dots = rng.integers(25, 41)
        where = np.sqrt(rng.uniform(0, 0.9, n_dots))  # sqrt: uniform over the disc's area
        angles = rng.uniform(0, 2 * np.pi, n_dots)
        sizes = rng.uniform(0.1, 0.16, n_dots)
        return tuple(
            (_circle((w * np.cos(a), w * np.sin(a)), r, 12), 255)
            for w, a, r in zip(where, angles, sizes, strict=True)
        )
    else:
        raise ValueError(f"unknown lesion shape {shape!r}")
    aspect = rng.uniform(0.4, 0.55) if shape == "ellipse" else rng.uniform(0.85, 1.0)
    outline = np.stack([radius * np.cos(theta), aspect * radius * np.sin(theta)], 1)
    if shape == "ellipse":
        outline[:, 0] *= 1.3  # a longer major axis keeps it about as big as the others
    polygons = [(outline, 255)]
    if shape == "ring":
        polygons.append((outline * rng.uniform(0.5, 0.62), 0))
    return tuple(polygons)


def _sample_look(rng: np.random.Generator, dx: str) -> _Look:
    """Draw what every image of one lesion shares: outline, colours, placement."""
    style = _STYLES[dx]
    tone = rng.uniform(0.0, 0.5)
    return _Look(
        polygons=_sample_polygons(rng, style.shape),
        colour=np.array(style.colour, dtype=np.float32)
        * rng.uniform(0.9, 1.1, 3).astype(np.float32),
        skin=(1 - tone) * _SKIN_LIGHT + tone * _SKIN_DARK,
        texture=style.texture,
        offset=(rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)),
        radius=rng.uniform(*style.radius),
        angle=rng.uniform(0, 2 * np.pi),
        frequency=rng.uniform(2.5, 3.5),
    )


def _texture(
    rng: np.random.Generator, look: _Look, x: np.ndarray, y: np.ndarray, radius: float,
    angle: float,
) -> np.ndarray | None:  # fmt: skip
    """Brightness pattern in [-1, 1] that turns and scales with the lesion, or None.

    ``x`` (a row) and ``y`` (a column) are pixel offsets from the lesion centre.
    """
    if look.texture == "smooth":
        return None
    if look.texture == "speckles":  # blocky random field, a few blocks per lesion radius
        cell = max(1.0, radius / 5)
        coarse = rng.uniform(-1, 1, (int(y.size / cell) + 1, int(x.size / cell) + 1))
        return cv2.resize(
            coarse.astype(np.float32), (x.size, y.size), interpolation=cv2.INTER_NEAREST
        )
    cos, sin = np.float32(np.cos(angle) / radius), np.float32(np.sin(angle) / radius)
    step = np.float32(2 * np.pi * look.frequency)
    wave_u = np.sin(step * (x * cos + y * sin))
    if look.texture == "stripes":
        return wave_u
    return wave_u * np.sin(step * (y * cos - x * sin))  # "grid": a lattice of dots


def _draw_hair(rng: np.random.Generator, image: np.ndarray) -> None:
    """Darken the image along a few thin curved strokes, like hairs in dermoscopy."""
    height, width = image.shape[:2]
    side = min(width, height)
    mask = np.zeros((height, width), dtype=np.uint8)
    t = np.linspace(0, 1, 24)[:, None]
    for _ in range(rng.integers(1, 6)):
        start = rng.uniform((0, 0), (width, height))
        direction = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(0.3, 0.9) * side * np.array([np.cos(direction), np.sin(direction)])
        bend = rng.normal(0, 0.15) * np.array([-step[1], step[0]])
        points = start + t * step + 4 * t * (1 - t) * bend  # quadratic Bezier curve
        thickness = max(1, round(side / rng.uniform(250, 400)))
        cv2.polylines(mask, [np.round(points).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)
    # Hairs cover a few percent of the image: blend only those pixels.
    flat, where = image.reshape(-1, 3), np.flatnonzero(mask)
    alpha = mask.ravel()[where, None].astype(np.float32) * np.float32(rng.uniform(0.6, 0.9) / 255)
    flat[where] += alpha * (_HAIR_COLOUR - flat[where])


def _render_image(
    rng: np.random.Generator, look: _Look, size: tuple[int, int], noise: np.ndarray
) -> np.ndarray:
    """One RGB uint8 image of ``look``, moved, turned and rescaled a little, with fresh noise.

    ``noise`` is a standard normal field a little larger than the image; a random crop of it
    is far cheaper than drawing new Gaussian noise for every pixel (13 ms at 600x450).
    """
    width, height = size
    side = min(width, height)
    centre_x = (0.5 + look.offset[0] + rng.normal(0, 0.02)) * width
    centre_y = (0.5 + look.offset[1] + rng.normal(0, 0.02)) * height
    radius = look.radius * side * rng.uniform(0.92, 1.08)
    angle = look.angle + rng.normal(0, 0.15)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mask = np.zeros((height, width), dtype=np.uint8)
    for points, value in look.polygons:
        pixels = (points @ rotation.T) * radius + (centre_x, centre_y)
        # shift=4 draws with 1/16 px precision, so small lesions keep their outline
        fixed = np.round(pixels * 16).astype(np.int32)
        cv2.fillPoly(mask, [fixed], value, lineType=cv2.LINE_AA, shift=4)
    # Skin with a soft vignette, as dermatoscope images are darker towards the corners.
    ramp_x = ((np.arange(width, dtype=np.float32) - width / 2) / width) ** 2
    ramp_y = ((np.arange(height, dtype=np.float32) - height / 2) / height) ** 2
    shade = 1 - np.float32(rng.uniform(0.3, 0.8)) * (ramp_y[:, None] + ramp_x[None, :])
    image = shade[..., None] * (look.skin * rng.uniform(0.96, 1.04, 3).astype(np.float32))
    # Paint the lesion only inside its bounding box, widened by the blur's reach.
    blur = max(0.6, 0.05 * radius)
    left, top, box_w, box_h = cv2.boundingRect(mask)
    pad = int(np.ceil(3 * blur)) + 1
    x0, y0 = max(0, left - pad), max(0, top - pad)
    x1, y1 = min(width, left + box_w + pad), min(height, top + box_h + pad)
    if x1 > x0 and y1 > y0:
        alpha = cv2.GaussianBlur(mask[y0:y1, x0:x1].astype(np.float32) / 255, (0, 0), blur)
        x = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(centre_x)
        y = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(centre_y)
        lesion = look.colour * np.float32(rng.uniform(0.95, 1.05))
        texture = _texture(rng, look, x, y, radius, angle)
        if texture is not None:
            lesion = lesion * (1 + _TEXTURE_AMPLITUDE * texture[..., None])
        box = image[y0:y1, x0:x1]
        box += alpha[..., None] * (lesion - box)
    if rng.random() < _HAIR_RATE:
        _draw_hair(rng, image)
    dy = rng.integers(0, noise.shape[0] - height + 1)
    dx = rng.integers(0, noise.shape[1] - width + 1)
    image += np.float32(rng.uniform(2, 6)) * noise[dy : dy + height, dx : dx + width]
    np.clip(image, 0, 255, out=image)
    return np.rint(image, out=image).astype(np.uint8)


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name} as JPEG")
    path.write_bytes(encoded.tobytes())


def _clear_dataset(out_dir: Path, replace: bool) -> None:
    """Remove a previous demo dataset, and nothing else that may share the folder.

    Raises:
        ValueError: If ``out_dir`` holds a HAM10000 layout that this generator did not write
            (no ``DEMO_MARKER``): it may be a real download. ``replace`` overrides.
    """
    found = [name for name in (METADATA_FILENAME, *PART_DIRS) if (out_dir / name).exists()]
    if found and not replace and not (out_dir / DEMO_MARKER).exists():
        raise ValueError(
            f"{out_dir} already holds {', '.join(found)}, not written by this generator (no "
            f"{DEMO_MARKER}): it may be a real HAM10000 download, so it is left alone. Choose "
            "another folder, or replace it on purpose (replace=True, --replace)"
        )
    for part in PART_DIRS:
        if (out_dir / part).is_dir():
            shutil.rmtree(out_dir / part)
    (out_dir / METADATA_FILENAME).unlink(missing_ok=True)


def generate_demo_dataset(
    out_dir: str | Path,
    *,
    n_images: int = 400,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
    replace: bool = False,
) -> pd.DataFrame:
    """Write a synthetic HAM10000: the metadata CSV plus JPEGs in the two part folders.

    Args:
        out_dir: Folder to write into; a demo dataset already there is replaced, any other
            HAM10000 layout only with ``replace``. Other files in it are kept.
        n_images: Exact number of images to write, at least ``MIN_IMAGES``.
        seed: Seed for ``numpy.random.default_rng``; the same seed gives the same files.
        size: (width, height) of every image; HAM10000's is (600, 450).
        replace: Also replace a dataset this generator did not write.

    Returns:
        The metadata as written to ``HAM10000_metadata.csv``.

    Raises:
        ValueError: If ``n_images`` is below ``MIN_IMAGES`` or a side below ``MIN_SIDE``, or
            ``out_dir`` holds another dataset and ``replace`` is off.
    """
    width, height = size
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"size={width}x{height} is too small: both sides must be >= {MIN_SIDE}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    metadata = _sample_metadata(rng, n_images)  # validates n_images before any deletion
    _clear_dataset(out_dir, replace)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DEMO_MARKER).write_text("written by skin_lesion.demo; safe to replace\n")
    for part in PART_DIRS:
        (out_dir / part).mkdir(parents=True)
    # Kaggle's part 1 holds the lower image ids (5000 of 10015); keep that split.
    last_in_part_1 = FIRST_IMAGE_NUMBER + n_images // 2 - 1
    logger.info("Writing %d synthetic %dx%d images to %s", n_images, width, height, out_dir)
    # Margin of the noise field: random crops from it give each image its own noise.
    noise = rng.standard_normal((height + 64, width + 64, 3), dtype=np.float32)
    look, previous_lesion = None, None
    for image_id, lesion_id, dx in tqdm(
        metadata[["image_id", "lesion_id", "dx"]].itertuples(index=False),
        total=n_images, desc="demo images", disable=None,
    ):  # fmt: skip
        if lesion_id != previous_lesion:
            look, previous_lesion = _sample_look(rng, dx), lesion_id
        part = PART_DIRS[0] if int(image_id[5:]) <= last_in_part_1 else PART_DIRS[1]
        _write_jpeg(out_dir / part / f"{image_id}.jpg", _render_image(rng, look, size, noise))
    # Written last and atomically, so a CSV on disk always describes a complete image set.
    temporary = out_dir / f".{METADATA_FILENAME}.tmp"
    metadata.to_csv(temporary, index=False, lineterminator="\n")
    os.replace(temporary, out_dir / METADATA_FILENAME)
    logger.info(
        "Wrote %d images of %d lesions; images per class: %s",
        n_images, metadata["lesion_id"].nunique(), metadata["dx"].value_counts().to_dict(),
    )  # fmt: skip
    return metadata


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)[xX](\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 600x450, got {text!r}")
    return int(match[1]), int(match[2])


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m skin_lesion.demo OUT_DIR [--images N] [--seed S] [--size WxH]``.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success. Bad arguments exit through argparse with status 2 and a message.
    """
    parser = argparse.ArgumentParser(
        prog="python -m skin_lesion.demo",
        description="Write a synthetic dataset in the HAM10000 (Kaggle) layout.",
    )
    parser.add_argument("out_dir", type=Path, help="folder for the CSV and the part folders")
    parser.add_argument("--images", type=int, default=400, help="number of images (400)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--size", type=_parse_size, default=DEFAULT_SIZE, help="WIDTHxHEIGHT (600x450)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="also replace a dataset in OUT_DIR that this command did not write",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        metadata = generate_demo_dataset(
            args.out_dir, n_images=args.images, seed=args.seed, size=args.size, replace=args.replace
        )
    except ValueError as error:
        parser.error(str(error))
    print(
        f"Wrote {len(metadata)} images of {metadata['lesion_id'].nunique()} lesions "
        f"to {args.out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
