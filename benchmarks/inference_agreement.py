"""Do inference's predictions agree with what reporting computed for the same test images?

Usage (after `skin-lesion predict ... --csv predictions.csv` on a folder that holds test images):
    python benchmarks/inference_agreement.py predictions.csv --data-dir data/cpu_quick

Matches the predictions CSV (its ``image`` paths, by file name without extension) to
reporting's ``07_model_output/test_predictions.csv`` in ``--data-dir``, calibrates reporting's
probabilities with the operating point's temperature (``08_reporting/test_metrics.json``) as
inference does, and prints, as JSON, how many test images were matched, the largest absolute
difference of the 7 probabilities, and the share of images with the same predicted class and
the same melanoma flag. Inference must have used the operating point's TTA (the default) for
the two to be comparable. Exits with status 1 when no test image is among the predictions.
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


def agreement(predictions: pd.DataFrame, data_dir: Path) -> dict[str, Any]:
    """The comparison described in the module docstring."""
    test = pd.read_csv(data_dir / "07_model_output" / "test_predictions.csv")
    metrics = json.loads((data_dir / "08_reporting" / "test_metrics.json").read_text())
    point = metrics["operating_point"]
    columns = [c for c in test.columns if c.startswith("p_")]
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
    result = agreement(pd.read_csv(args.predictions), args.data_dir)
    print(json.dumps(result, indent=2))
    if not result["matched"]:
        print("no test image is among the predictions", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
