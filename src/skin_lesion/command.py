"""``skin-lesion predict IMAGE_OR_FOLDER... [--checkpoint PATH]``: classify images from a shell.

(Not named ``cli.py``: Kedro loads a project's ``<package>.cli`` as its own CLI plugin.)
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from pathlib import Path

import pandas as pd

from skin_lesion.checkpoints import load_checkpoint, require_kind
from skin_lesion.classifier import CHECKPOINT_KIND
from skin_lesion.engine import resolve_device
from skin_lesion.files import UnreadableFolderError, atomic_write
from skin_lesion.inference import (
    InferenceConfig,
    OperatingPointMismatch,
    file_loaders,
    predict_images,
)
from skin_lesion.metadata import IDENTICAL_COPY
from skin_lesion.tabular import read_text_csv


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skin-lesion", description="Classify skin-lesion images with a trained classifier."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify images with a trained classifier")
    predict.add_argument("paths", nargs="+", help="image files and/or folders (.jpg/.jpeg/.png)")
    predict.add_argument(
        "--env",
        default=os.environ.get("KEDRO_ENV"),
        help="the Kedro environment whose outputs to use, as in `kedro run --env`: the "
        "defaults of --checkpoint and --metrics lie under its data_dir (conf/ENV/globals.yml), "
        "e.g. data/cpu_quick/ for cpu_quick (default: $KEDRO_ENV, else data/)",
    )
    predict.add_argument(
        "--checkpoint",
        help="classifier checkpoint (default: DATA_DIR/06_models/classifier.pt)",
    )
    predict.add_argument(
        "--metrics",
        help="reporting output with the validated operating point (default: the "
        "08_reporting/test_metrics.json beside a --checkpoint's 06_models folder, if there is "
        "one, else DATA_DIR/08_reporting/test_metrics.json)",
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
    predict.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per forward pass (default: 64 on a GPU, 16 on a CPU, faster there)",
    )
    predict.add_argument(
        "--chunk-size",
        type=int,
        default=InferenceConfig.chunk_size,
        help="images decoded and classified at a time, so memory stays flat however many "
        f"are given (default: {InferenceConfig.chunk_size}; 0 decodes all at once)",
    )
    predict.add_argument(
        "--device",
        default="auto",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)",
    )
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
        from skin_lesion.host_memory import keep_freed_memory

        keep_freed_memory()  # as in a kedro run: batches reuse memory already faulted in
        return _predict(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback through torch
        print("skin-lesion predict: interrupted; no file written", file=sys.stderr)
        return 130
    finally:
        package_logger.setLevel(level)


def data_dir(env: str | None, conf: Path | None = None) -> Path:
    """Where a Kedro environment keeps its outputs: ``data_dir`` of its ``globals.yml``.

    As ``kedro run`` reads them: ``base`` overlaid with ``env`` (with no env, Kedro's default
    ``local``, which may not exist). ``conf`` defaults to the ``conf/`` of the Kedro project
    holding the working folder (this one or a parent, as ``kedro`` finds it), and a relative
    ``data_dir`` is then taken from that project's root. Outside a project, ``data``.

    Raises:
        FileNotFoundError: Naming the environments there are, for one that does not exist.
    """
    import yaml
    from kedro.utils import find_kedro_project

    root = None
    if conf is None:
        root = find_kedro_project(Path.cwd())
        conf = root / "conf" if root is not None else Path("conf")
    if not conf.is_dir():
        if env:
            raise FileNotFoundError(
                f"--env {env}: no Kedro project here or above (no conf/ folder); run in the "
                "project, or pass --checkpoint and --metrics"
            )
        return Path("data")
    if env and not (conf / env).is_dir():
        have = sorted(p.name for p in conf.iterdir() if p.is_dir())
        close = difflib.get_close_matches(env, have, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise FileNotFoundError(
            f"no environment '{env}' in {conf}/ ({hint}there are: {', '.join(have)})"
        )
    found = "data"
    for name in ("base", env or "local"):
        file = conf / name / "globals.yml"
        if file.is_file():
            found = (yaml.safe_load(file.read_text()) or {}).get("data_dir", found)
    outputs = Path(found)
    if root is not None and not outputs.is_absolute() and root.resolve() != Path.cwd().resolve():
        outputs = root / outputs  # run from a subfolder: the project's data, not ./data
    return outputs


def _read_metrics(path: str) -> dict:
    """The reporting pipeline's test_metrics.json, or an error saying how to make one."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"no metrics file at '{file}': it holds the validated operating point; run "
            "`kedro run --pipelines reporting` first (with the --env and --params the "
            "classifier was trained with), or pass --metrics PATH"
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
    return read_text_csv(file, str(file))


def _check_output(path: str | None, option: str) -> None:
    """Before any work: an output path must be a file name in a folder that exists."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{option} '{path}' is a folder; give a file name, e.g. {path}/out.csv")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{option} '{path}': no folder '{target.parent}' to write it in")


def _check_outputs_differ(csv: str | None, rejects: str | None) -> None:
    """--csv and --rejects must be two files: the rejects overwrote the predictions."""
    if csv and rejects and Path(csv).resolve() == Path(rejects).resolve():
        raise ValueError(f"--csv and --rejects both name '{csv}'; give two files")


def latest_version(path: str) -> str:
    """``path`` itself, or for a catalog entry with ``versioned: true`` (which keeps
    ``<file>/<version>/<file>``, the version a sortable timestamp) its latest version."""
    folder = Path(path)
    if folder.is_dir():
        versions = sorted(folder.glob(f"*/{folder.name}"))
        if versions:
            return str(versions[-1])
    return path


def _metrics_beside(checkpoint: str) -> Path | None:
    """The test_metrics.json of the data folder holding ``checkpoint`` (DATA/06_models/x.pt
    -> DATA/08_reporting/test_metrics.json), where there is one."""
    folder = Path(checkpoint).absolute().parent  # "classifier.pt" run in 06_models too
    beside = folder.parent / "08_reporting" / "test_metrics.json"
    return beside if folder.name == "06_models" and beside.is_file() else None


def _load_classifier(path: str) -> dict:
    """The checkpoint at ``path``, checked to be a classifier (the error names the file)."""
    checkpoint = load_checkpoint(path)
    try:
        require_kind(checkpoint, CHECKPOINT_KIND)
    except ValueError as error:
        raise ValueError(f"'{path}': {error} (the classifier is 06_models/classifier.pt)") from None
    return checkpoint


def _predict(args: argparse.Namespace) -> int:
    try:
        _check_output(args.csv, "--csv")
        _check_output(args.rejects, "--rejects")
        _check_outputs_differ(args.csv, args.rejects)
        try:
            device = resolve_device(args.device)
        except RuntimeError as error:  # torch's, for a name it does not know
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            if first.startswith("Expected one of"):  # torch's list of every backend it knows
                first = "not a device torch knows"
            raise ValueError(
                f"--device {args.device}: {first} (use auto, cpu, cuda, cuda:N or mps)"
            ) from None
        if args.checkpoint is not None and args.metrics is None:
            beside = _metrics_beside(args.checkpoint)
            args.metrics = str(beside) if beside else None
        if args.checkpoint is None or args.metrics is None:
            outputs = data_dir(args.env)
            args.checkpoint = args.checkpoint or str(outputs / "06_models" / "classifier.pt")
            args.metrics = args.metrics or str(outputs / "08_reporting" / "test_metrics.json")
        args.checkpoint = latest_version(args.checkpoint)
        args.metrics = latest_version(args.metrics)
        if not Path(args.checkpoint).is_file():
            run = f"kedro run --env {args.env}" if args.env else "kedro run"
            raise FileNotFoundError(
                f"no checkpoint at '{args.checkpoint}': train one with `{run}` (or "
                f"`{run} --pipelines classifier_training`), or pass --checkpoint PATH"
                + ("" if args.env else " (or --env ENV for another environment's outputs)")
            )
        checkpoint = _load_classifier(args.checkpoint)
        metrics = _read_metrics(args.metrics)
        try:
            predictions, rejects, _ = predict_images(
                checkpoint,
                metrics.get("operating_point") or {},
                file_loaders(args.paths),
                device=device,
                config=InferenceConfig(
                    tta=args.tta,
                    batch_size=args.batch_size,
                    chunk_size=args.chunk_size or None,
                    progress=False,
                ),
                metadata=_read_metadata(args.metadata),
            )
        except OperatingPointMismatch as error:  # named with both files
            raise ValueError(
                f"--metrics '{args.metrics}' does not fit --checkpoint '{args.checkpoint}': {error}"
            ) from None
    except (FileNotFoundError, UnreadableFolderError, ValueError) as error:
        print(f"skin-lesion predict: {error}", file=sys.stderr)
        return 2
    if len(predictions):
        shown = predictions[["image", "predicted", "p_mel", "melanoma_flag"]].copy()
        shown["confidence"] = predictions.filter(like="p_").max(axis=1).round(3)
        shown["p_mel"] = shown["p_mel"].round(3)
        if (predictions["metadata"] != "unused").any():  # a classifier that fuses metadata
            shown["metadata"] = predictions["metadata"]
        print(shown.to_string(index=False))
    copies = rejects["reason"].str.startswith(IDENTICAL_COPY)
    for row in rejects[~copies].itertuples():
        print(f"rejected {row.image}: {row.reason}", file=sys.stderr)
    if copies.any():  # Kaggle's folder holds every image twice: one line, not 10,015
        print(
            f"set aside {int(copies.sum())} byte-identical cop{'y' if copies.sum() == 1 else 'ies'}"
            f" of images classified under another name (e.g. {rejects[copies].iloc[0]['image']})"
            + ("; listed in --rejects" if args.rejects else "; --rejects PATH lists them"),
            file=sys.stderr,
        )
    try:
        # Through a temporary file and a rename: a full disk or a kill mid-write left the
        # file cut short (a previous one already gone), which reads as a shorter table.
        if args.csv:
            atomic_write(args.csv, lambda file: predictions.to_csv(file, index=False))
        if args.rejects:
            atomic_write(args.rejects, lambda file: rejects.to_csv(file, index=False))
    except OSError as error:
        print(f"skin-lesion predict: cannot write the output: {error}", file=sys.stderr)
        return 2
    if not len(predictions):
        print(
            f"skin-lesion predict: no image could be classified ({len(rejects)} rejected, "
            "reasons above)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
