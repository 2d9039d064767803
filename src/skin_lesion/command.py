"""``skin-lesion predict IMAGE_OR_FOLDER... [--checkpoint PATH]``: classify images from a shell.

(Not named ``cli.py``: Kedro loads a project's ``<package>.cli`` as its own CLI plugin.)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from skin_lesion.checkpoints import load_checkpoint
from skin_lesion.engine import resolve_device
from skin_lesion.inference import InferenceConfig, file_loaders, predict_images


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skin-lesion", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify images with a trained classifier")
    predict.add_argument("paths", nargs="+", help="image files and/or folders (.jpg/.jpeg/.png)")
    predict.add_argument(
        "--checkpoint",
        default="data/06_models/classifier.pt",
        help="classifier checkpoint (default: %(default)s)",
    )
    predict.add_argument(
        "--metrics",
        default="data/08_reporting/test_metrics.json",
        help="reporting output with the validated operating point (default: %(default)s)",
    )
    predict.add_argument(
        "--metadata",
        help="for a classifier trained with metadata fusion: a CSV of image_id (file name "
        "without extension), age, sex and localization, as HAM10000_metadata.csv",
    )
    predict.add_argument("--csv", help="also write the predictions to this CSV file")
    predict.add_argument("--rejects", help="write unreadable files and reasons to this CSV")
    predict.add_argument(
        "--tta",
        choices=["none", "flips", "dihedral"],
        default=None,
        help="test-time augmentation (default: the one the melanoma threshold was fitted with)",
    )
    predict.add_argument("--device", default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    # The table goes to stdout; log lines (warnings only) go to stderr.
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    package_logger = logging.getLogger("skin_lesion")
    level = package_logger.level
    package_logger.setLevel(logging.WARNING)
    try:
        return _predict(args)
    finally:
        package_logger.setLevel(level)


def _read_metrics(path: str) -> dict:
    """The reporting pipeline's test_metrics.json, or an error saying how to make one."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"no metrics file at '{file}': it holds the validated operating point; run "
            "`kedro run --pipelines reporting` first, or pass --metrics PATH"
        )
    try:
        metrics = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"'{file}' is not valid JSON ({error})") from error
    if not isinstance(metrics, dict):
        raise ValueError(
            f"'{file}' holds a JSON {type(metrics).__name__}, not the reporting pipeline's "
            "test_metrics.json (an object with 'operating_point')"
        )
    return metrics


def _read_metadata(path: str | None) -> pd.DataFrame | None:
    """The metadata CSV as text (its checks name bad values), or None when not given."""
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no metadata CSV at '{file}'")
    try:
        return pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"'{file}' is not a readable CSV ({error})") from error


def _predict(args: argparse.Namespace) -> int:
    try:
        if not Path(args.checkpoint).is_file():
            raise FileNotFoundError(
                f"no checkpoint at '{args.checkpoint}': train one with `kedro run` (or "
                "`kedro run --pipelines classifier_training`), or pass --checkpoint PATH"
            )
        checkpoint = load_checkpoint(args.checkpoint)
        metrics = _read_metrics(args.metrics)
        predictions, rejects, _ = predict_images(
            checkpoint,
            metrics.get("operating_point", {}),
            file_loaders(args.paths),
            device=resolve_device(args.device),
            config=InferenceConfig(tta=args.tta, progress=False),
            metadata=_read_metadata(args.metadata),
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"skin-lesion predict: {error}", file=sys.stderr)
        return 2
    shown = predictions[["image", "predicted", "p_mel", "melanoma_flag"]].copy()
    shown["confidence"] = predictions.filter(like="p_").max(axis=1).round(3)
    shown["p_mel"] = shown["p_mel"].round(3)
    print(shown.to_string(index=False))
    for row in rejects.itertuples():
        print(f"rejected {row.image}: {row.reason}", file=sys.stderr)
    if args.csv:
        predictions.to_csv(args.csv, index=False)
    if args.rejects:
        rejects.to_csv(args.rejects, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
