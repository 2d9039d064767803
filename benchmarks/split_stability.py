"""How far a small change to the data moves the lesion-grouped split.

A user's copy of HAM10000 is rarely byte for byte ours: a file that does not decode is set
aside, a label gets corrected, Harvard Dataverse's copy and Kaggle's differ by a few rows.
Each trial here makes one such change at random and counts, among the images present both
before and after, those whose split changed (and the test images that moved into train),
and the train+val images whose cross-validation fold changed, for two assignments on the
same metadata and seed:

* ``hashed`` (``skin_lesion.splits.split_by_lesion``, since 2026-12-06): each class's
  lesions in an order fixed by a hash of (seed, lesion_id), laid end to end;
* ``permuted`` (the assignment before 2026-12-06, rebuilt here for the comparison): each
  class's lesions in a seeded random permutation, each to the split furthest below its
  target; folds from scikit-learn's ``StratifiedGroupKFold``.

Changes: ``image removed`` (one image; a single-image lesion goes with it), ``lesion
removed``, ``3 images removed``, ``label corrected`` (one lesion's images given another
diagnosis). Results go to ``benchmarks/results/split-stability.{json,md}``.

    python benchmarks/split_stability.py                 # ../shared/data/ham10000_200x150
    python benchmarks/split_stability.py --data data/01_raw/HAM10000 --trials 50
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from skin_lesion.datasets import RawMetadataDataset
from skin_lesion.splits import SPLITS, SplitConfig, split_by_lesion

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.overwrite import check_not_overwriting, recorded_at_top  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ham10000_200x150"
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
SEED = 42  # conf/base/parameters.yml


def permuted_split(metadata: pd.DataFrame, config: SplitConfig, seed: int) -> pd.DataFrame:
    """The assignment before 2026-12-06 (commit b61c120), for comparison only."""
    rng = np.random.default_rng(seed)
    fractions = np.array([config.train, config.val, config.test])
    lesions = metadata.groupby("lesion_id", sort=True).agg(
        dx=("dx", "first"), images=("image_id", "size")
    )
    assignment: dict[str, str] = {}
    for dx in sorted(lesions["dx"].unique()):
        members = lesions[lesions["dx"] == dx]
        sizes = members["images"].to_numpy()
        targets = fractions * sizes.sum()
        filled = np.zeros(3)
        chosen = [0] * len(sizes)
        for i in rng.permutation(len(sizes)):
            k = int(np.argmax((targets - filled) / targets))
            chosen[i] = k
            filled[k] += sizes[i]
        assignment.update(zip(members.index, (SPLITS[k] for k in chosen)))
    out = metadata.loc[:, ["image_id", "lesion_id", "dx", "label"]].copy()
    out["split"] = out["lesion_id"].map(assignment)
    out["fold"] = -1
    dev = out.index[out["split"] != "test"]
    kfold = StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(
        kfold.split(dev, out.loc[dev, "label"], groups=out.loc[dev, "lesion_id"])
    ):
        out.loc[dev[held_out], "fold"] = fold
    return out.reset_index(drop=True)


ASSIGNMENTS: dict[str, Callable[..., pd.DataFrame]] = {
    "hashed": split_by_lesion,
    "permuted": permuted_split,
}


def read_metadata(folder: Path) -> tuple[pd.DataFrame, str, str]:
    """HAM10000's metadata (Kaggle's ``.csv`` or Dataverse's ``.tab``), its name and SHA-256."""
    found = sorted(folder.glob("HAM10000_metadata*"))
    if not found:
        raise SystemExit(f"split_stability.py: no HAM10000_metadata.csv or .tab in {folder}")
    path = found[0]
    # The project's reader: text cells, Dataverse's tab separator, refusals naming the line.
    frame = RawMetadataDataset(filepath=str(path)).load()
    frame = frame.drop_duplicates("image_id")[["image_id", "lesion_id", "dx"]]
    unknown = sorted(set(frame["dx"]) - set(CLASSES))
    if unknown:
        raise SystemExit(f"split_stability.py: {path} has diagnoses outside {CLASSES}: {unknown}")
    frame["label"] = frame["dx"].map(CLASSES.index)
    return frame.reset_index(drop=True), path.name, hashlib.sha256(path.read_bytes()).hexdigest()


def change(metadata: pd.DataFrame, kind: str, rng: np.random.Generator) -> pd.DataFrame:
    """``metadata`` with one random change of ``kind``: images drawn uniformly over images,
    lesions uniformly over lesions (before a fix of 2026-12-06 a lesion was drawn as the lesion of a
    random image, weighted by its image count)."""
    if kind == "image removed":
        return metadata.drop(index=rng.integers(len(metadata)))
    if kind == "3 images removed":
        return metadata.drop(index=rng.choice(len(metadata), 3, replace=False))
    lesion = rng.choice(np.sort(metadata["lesion_id"].unique()))
    rows = metadata["lesion_id"] == lesion
    if kind == "lesion removed":
        return metadata[~rows]
    if kind == "label corrected":
        dx = metadata.loc[rows, "dx"].iloc[0]
        other = rng.choice([c for c in CLASSES if c != dx])
        return metadata.assign(
            dx=metadata["dx"].where(~rows, other),
            label=metadata["label"].where(~rows, CLASSES.index(other)),
        )
    raise ValueError(f"unknown change {kind!r}")


CHANGES = ("image removed", "lesion removed", "3 images removed", "label corrected")


def changes_rng(kind: str) -> np.random.Generator:
    """The random changes of ``kind``: a stream of its own. Before a fix of 2026-12-06 every kind
    started from ``default_rng(0)``, so trial i of "lesion removed" removed the lesion of
    the image trial i of "image removed" removed: the same change for a one-image lesion
    (13 of the 20 committed trials)."""
    return np.random.default_rng([0, CHANGES.index(kind)])


def moved(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, int]:
    """Images present in both whose split (fold) changed; test images now in train."""
    both = before.merge(after, on="image_id", suffixes=("", "_after"))
    dev = (both["split"] != "test") & (both["split_after"] != "test")
    return {
        "split": int((both["split"] != both["split_after"]).sum()),
        "test_to_train": int(((both["split"] == "test") & (both["split_after"] == "train")).sum()),
        "fold": int((dev & (both["fold"] != both["fold_after"])).sum()),
    }


def run(metadata: pd.DataFrame, trials: int, seed: int = SEED) -> dict[str, Any]:
    """Every change ``trials`` times under both assignments (the same changes for each)."""
    config = SplitConfig()
    base = {name: assign(metadata, config, seed) for name, assign in ASSIGNMENTS.items()}
    rows = []
    for kind in CHANGES:
        rng = changes_rng(kind)
        counts: dict[str, list[dict[str, int]]] = {name: [] for name in ASSIGNMENTS}
        for _ in range(trials):
            changed = change(metadata, kind, rng)
            for name, assign in ASSIGNMENTS.items():
                counts[name].append(moved(base[name], assign(changed, config, seed)))
        for name, found in counts.items():
            row: dict[str, Any] = {"change": kind, "assignment": name, "trials": trials}
            for key in ("split", "test_to_train", "fold"):
                values = [c[key] for c in found]
                row[key] = {"median": float(np.median(values)), "max": int(max(values))}
            rows.append(row)
    return {
        "images": len(metadata),
        "lesions": int(metadata["lesion_id"].nunique()),
        "seed": seed,
        "split_images": {
            name: frame["split"].value_counts().reindex(list(SPLITS)).tolist()
            for name, frame in base.items()
        },
        "rows": rows,
    }


def _count(value: float) -> str:
    """A median of counts: whole, or halfway between two (``:,.0f`` showed 712.5 as 712)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Split stability on `{result['data']}` ({result['images']:,} images of "
        f"{result['lesions']:,} lesions; metadata `{result['metadata']}`, SHA-256 "
        f"`{result['metadata_sha256'][:12]}…`), seed {result['seed']}, {result['trials']} "
        "random changes of each kind; images present before and after.",
        "",
        "| change | assignment | images changing split (median / max) | test images into "
        "train (median / max) | train+val images changing fold (median / max) |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        cells = [
            f"{_count(row[key]['median'])} / {row[key]['max']:,}"
            for key in ("split", "test_to_train", "fold")
        ]
        lines.append(f"| {row['change']} | {row['assignment']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a HAM10000 folder")
    parser.add_argument("--trials", type=int, default=20, help="changes of each kind")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "split-stability.json"
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")
    metadata, name, digest = read_metadata(args.data)
    planned = {"data": args.data.name, "metadata_sha256": digest, "trials": args.trials}
    check_not_overwriting(args.out, planned, flag="--out", recorded=recorded_at_top)
    result = run(metadata, args.trials)
    result.update(data=args.data.name, metadata=name, metadata_sha256=digest, trials=args.trials)
    table = markdown(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
