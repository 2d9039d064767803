"""Do inference's predictions agree with what reporting computed for the same test images?

Usage (after `skin-lesion predict ... --csv predictions.csv` on a folder that holds test images):
    python benchmarks/inference_agreement.py predictions.csv --data-dir data/cpu_quick

Matches the predictions CSV (its ``image`` paths, by file name without extension) to
reporting's ``07_model_output/test_predictions.csv`` in ``--data-dir``, calibrates reporting's
probabilities with the operating point's temperature (``08_reporting/test_metrics.json``) as
inference does, and prints, as JSON, how many test images were matched, the largest absolute
difference of the 7 probabilities, and the share of images with the same predicted class and
the same melanoma flag. Inference must have used the operating point's TTA (the default) for
the two to be comparable. Exits with status 1 when no test image is among the predictions; a
missing file, or a CSV without the columns it needs (reporting's ``test_predictions.csv``
passed as the predictions), is refused naming the file and the columns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skin_lesion.calibration import apply_temperature


def _read_csv(path: Path, what: str, needed: list[str]) -> pd.DataFrame:
    """``path`` as a table with the ``needed`` columns.

    Raises:
        SystemExit: Naming the file and what it is, where it is missing, unreadable or lacks
            a needed column.
    """
    if not path.is_file():
        raise SystemExit(f"inference_agreement.py: {what} '{path}' not found")
    try:
        # Ids as text, as the catalog reads them: "000024306" is not the number 24306.
        ids = {"image_id": str, "image": str}
        table = pd.read_csv(path, dtype=ids, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as error:  # pandas' parser errors are ValueErrors
        raise SystemExit(f"inference_agreement.py: {what} '{path}' is not a CSV: {error}") from None
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise SystemExit(
            f"inference_agreement.py: {what} '{path}' has no column {', '.join(missing)} "
            f"(its columns: {', '.join(map(str, table.columns))})"
        )
    return table


def agreement(predictions: pd.DataFrame, data_dir: Path) -> dict[str, Any]:
    """The comparison described in the module docstring.

    Raises:
        SystemExit: Where reporting's files in ``data_dir`` are missing or lack what is
            compared, or ``predictions`` lacks one of reporting's ``p_*`` columns.
    """
    test = _read_csv(
        data_dir / "07_model_output" / "test_predictions.csv",
        "reporting's test predictions",
        ["image_id", "p_mel"],
    )
    metrics_path = data_dir / "08_reporting" / "test_metrics.json"
    if not metrics_path.is_file():
        raise SystemExit(f"inference_agreement.py: reporting's metrics '{metrics_path}' not found")
    point = json.loads(metrics_path.read_text()).get("operating_point") or {}
    lacking = [k for k in ("temperature", "melanoma_threshold") if k not in point]
    if lacking:
        raise SystemExit(
            f"inference_agreement.py: '{metrics_path}' has no operating_point "
            f"{' or '.join(lacking)}"
        )
    columns = [c for c in test.columns if c.startswith("p_")]
    missing = [c for c in columns if c not in predictions.columns]
    if missing:
        raise SystemExit(
            f"inference_agreement.py: the predictions have no {', '.join(missing)} "
            "(reporting's test predictions do)"
        )
    ids = predictions["image"].map(lambda name: Path(str(name)).stem)
    matched = test.merge(predictions.assign(image_id=ids), on="image_id", suffixes=("_r", ""))
    if matched.empty:
        return {"matched": 0}
    expected = apply_temperature(
        matched[[f"{c}_r" for c in columns]].to_numpy(), point["temperature"]
    )
    got = matched[columns].to_numpy()
    mel = columns.index("p_mel")
    flags = expected[:, mel] >= point["melanoma_threshold"]
    return {
        "matched": len(matched),
        "max_abs_difference": float(np.abs(expected - got).max()),
        "same_predicted_class": float((expected.argmax(1) == got.argmax(1)).mean()),
        "same_melanoma_flag": float((flags == matched["melanoma_flag"].to_numpy(bool)).mean()),
        "tta": sorted(set(matched["tta"])) if "tta" in matched else None,
        "operating_point_tta": point.get("tta", "none"),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the agreement as JSON; status 1 when no test image was matched."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path, help="a predictions CSV of skin-lesion predict")
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args(argv)
    # skin-lesion predict's CSV: an image path and melanoma flag a row (reporting's
    # test_predictions.csv, passed instead, has image_id and neither).
    predictions = _read_csv(
        args.predictions, "predictions CSV", ["image", "p_mel", "melanoma_flag"]
    )
    result = agreement(predictions, args.data_dir)
    print(json.dumps(result, indent=2))
    if not result["matched"]:
        print("no test image is among the predictions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
