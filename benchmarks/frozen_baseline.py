"""Frozen-feature baseline: class-balanced logistic regression on ImageNet encoder features.

Usage (after `kedro run --env cpu_quick --pipelines data_processing`):
    python benchmarks/frozen_baseline.py [--data-dir data/cpu_quick] [--crop 128]
    python benchmarks/frozen_baseline.py --encoder-checkpoint \
        data/cpu_quick/06_models/pretrained_encoder.pt --out results/probe.json

Embeds the train and val images of an existing image cache with the frozen encoder (the
same eval transform the classifier uses), fits scikit-learn's LogisticRegression with
``class_weight='balanced'`` on standardised train features, and reports validation balanced
accuracy and macro-F1 (and the same on the training images, so that the gap shows how much
better the features separate the images they were fitted on): the bar a fine-tuned
classifier has to clear. Beside the probe, the same features scored by the
contrastive_pretraining kNN monitor's rule (``knn``: k 200, temperature 0.07, votes divided
by the train class frequencies; and, for comparison, plain votes), so that the monitor's
numbers in a SupCon history have a reference for the encoder's initial weights. With
``--encoder-checkpoint`` the encoder is a ``contrastive_pretraining`` output instead (the
linear probe of SupCon's features, the way the SupCon paper evaluates them); one trained on
other splits or another cache is refused, since val images may then have been among its
training images. Writes JSON to benchmarks/results/frozen_baseline.json (``--out``); a
result made with another encoder, weights, crop, cache, split (its image ids) or device
there is not overwritten: pass another ``--out`` to keep both.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skin_lesion import lineage
from skin_lesion import pretraining as supcon
from skin_lesion.augment import build_eval_transform
from skin_lesion.checkpoints import load_checkpoint
from skin_lesion.datasets import ImageCacheDataset
from skin_lesion.engine import forward_batch_size, resolve_device
from skin_lesion.models import create_encoder, resolve_preprocessing
from skin_lesion.provenance import code_version
from skin_lesion.splits import align_to_cache

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` is not on the path
    sys.path.insert(0, str(ROOT))

from benchmarks.overwrite import check_not_overwriting as _check_not_overwriting  # noqa: E402
from benchmarks.overwrite import recorded_at_top  # noqa: E402

# --weights none draws the encoder at random: from this seed, so that two runs of the same
# settings give the same baseline (the file a rerun replaces holds the same figures).
INIT_SEED = 0


@torch.no_grad()
def _features(encoder, images, indices, transform, device, batch_size=None) -> np.ndarray:
    batch_size = forward_batch_size(batch_size, device)  # 16 on a CPU, 256 on a GPU
    out = []
    for start in range(0, len(indices), batch_size):
        rows = indices[start : start + batch_size]
        batch = torch.from_numpy(np.ascontiguousarray(images[rows])).to(device)
        out.append(encoder(transform(batch)).float().cpu())
    return torch.cat(out).numpy()


def split_sha256(train_ids, val_ids) -> str:
    """SHA-256 of the sorted train and validation image ids: which images, not only how many."""
    text = "train:" + ",".join(sorted(train_ids)) + "\nval:" + ",".join(sorted(val_ids))
    return hashlib.sha256(text.encode()).hexdigest()


def check_not_overwriting(path: Path, planned: dict[str, Any]) -> None:
    """Refuse to replace a result made with other settings (encoder, crop, cache, split, device).

    Raises:
        SystemExit: Naming the file, each setting that differs, and ``--out``.
    """
    _check_not_overwriting(path, planned, flag="--out", recorded=recorded_at_top, what="a baseline")


def probe_scores(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> dict[str, Any]:
    """Scores of frozen features: a linear probe (standardised, class-balanced logistic
    regression) fitted on train and scored on val, its train scores for comparison, and the
    SupCon kNN monitor's rule on the same features (prior-corrected, and plain)."""
    monitor = supcon.KnnMonitorConfig()
    knn: dict[str, Any] = {"k": monitor.k, "temperature": monitor.temperature}
    for prefix, corrected in (("val_", True), ("plain_val_", False)):
        scores = supcon.knn_scores(
            torch.from_numpy(x_train),
            torch.from_numpy(y_train),
            torch.from_numpy(x_val),
            torch.from_numpy(y_val),
            k=monitor.k,
            temperature=monitor.temperature,
            prior_corrected=corrected,
        )
        knn |= {prefix + k.removeprefix("val_knn_"): round(v, 4) for k, v in scores.items()}
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=3000, C=0.1)
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_val)
    fitted = model.predict(x_train)
    return {
        "val_balanced_accuracy": round(float(balanced_accuracy_score(y_val, predicted)), 4),
        "val_macro_f1": round(float(f1_score(y_val, predicted, average="macro")), 4),
        "train_balanced_accuracy": round(float(balanced_accuracy_score(y_train, fitted)), 4),
        "train_macro_f1": round(float(f1_score(y_train, fitted, average="macro")), 4),
        "knn": knn,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data/cpu_quick")
    parser.add_argument("--encoder", default="tf_efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet-offline")
    parser.add_argument(
        "--crop",
        type=int,
        help="eval crop (default: the --encoder-checkpoint's training crop, else 128, cpu_quick's)",
    )
    parser.add_argument(
        "--encoder-checkpoint",
        type=Path,
        help="probe this pretrained_encoder.pt (contrastive_pretraining's output) instead of "
        "--encoder/--weights",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/frozen_baseline.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the baseline, write and print its validation scores; return the record."""
    args = parse_args(argv)
    planned: dict[str, Any] = {
        "encoder": args.encoder,
        "weights": args.weights,
        "crop": args.crop or 128,
    }
    checkpoint = None
    if args.encoder_checkpoint is not None:
        if not args.encoder_checkpoint.is_file():
            raise SystemExit(f"--encoder-checkpoint {args.encoder_checkpoint}: no such file")
        checkpoint = load_checkpoint(args.encoder_checkpoint)
        if checkpoint.get("kind") != supcon.CHECKPOINT_KIND:
            raise SystemExit(
                f"--encoder-checkpoint {args.encoder_checkpoint}: a {checkpoint.get('kind')!r} "
                f"checkpoint, not a {supcon.CHECKPOINT_KIND!r} one (contrastive_pretraining's "
                "pretrained_encoder)"
            )
        planned |= {
            "crop": args.crop or checkpoint["preprocessing"]["crop_size"],
            "encoder": checkpoint["architecture"]["encoder"],
            "weights": "checkpoint",
            "encoder_checkpoint": {
                "file": args.encoder_checkpoint.name,
                "sha256": hashlib.sha256(args.encoder_checkpoint.read_bytes()).hexdigest(),
                "initial_weights": checkpoint.get("initial_weights"),
                "supcon_epochs": len(checkpoint.get("history") or []),
            },
        }
    check_not_overwriting(args.out, planned)  # before any work
    cache_dir = args.data_dir / "02_intermediate/image_cache"
    splits_path = args.data_dir / "05_model_input/splits.parquet"
    for needed in (cache_dir, splits_path):
        if not needed.exists():
            raise SystemExit(
                f"{needed} not found: run `kedro run --env <env> --pipelines data_processing` "
                "first and pass that environment's data folder as --data-dir"
            )
    cache = ImageCacheDataset(path=str(cache_dir)).load()
    splits = pd.read_parquet(splits_path)
    rows = align_to_cache(cache.image_ids, splits)
    split = rows["split"].to_numpy()
    train, val = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if not len(train) or not len(val):
        raise SystemExit(f"{splits_path}: needs train and val images, has {len(train)}/{len(val)}")
    ids = rows["image_id"].astype(str).to_numpy()
    device = resolve_device("auto")
    planned |= {
        "cache": json.loads(json.dumps(cache.preprocessing)),
        "train_images": len(train),
        "val_images": len(val),
        "split_sha256": split_sha256(ids[train], ids[val]),
        "device": str(device),
    }
    check_not_overwriting(args.out, planned)
    if checkpoint is not None:
        # Trained on labels: the val images must not have been among its training images.
        try:
            lineage.check_checkpoint_inputs(
                checkpoint,
                "--encoder-checkpoint",
                "contrastive_pretraining",
                splits=splits,
                cache_preprocessing=cache.preprocessing,
            )
        except lineage.StaleInputError as error:
            raise SystemExit(str(error)) from None
        encoder = supcon.model_from_checkpoint(checkpoint).encoder.eval().to(device)
        prep = checkpoint["preprocessing"]
    else:
        torch.manual_seed(INIT_SEED)
        encoder = create_encoder(args.encoder, weights=args.weights).eval().to(device)
        prep = resolve_preprocessing(encoder)
    transform = build_eval_transform(planned["crop"], prep["mean"], prep["std"]).to(device)
    start = time.perf_counter()
    x_train = _features(encoder, cache.images, train, transform, device)
    x_val = _features(encoder, cache.images, val, transform, device)
    labels = rows["label"].to_numpy()
    result = {
        **planned,
        **probe_scores(x_train, labels[train], x_val, labels[val]),
        "seconds": round(time.perf_counter() - start, 1),
        "code": code_version(ROOT),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
