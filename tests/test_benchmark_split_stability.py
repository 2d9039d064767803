"""benchmarks/split_stability.py: the comparison it reports must be able to go either way."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchmarks import split_stability

from skin_lesion.splits import SplitConfig, split_by_lesion


def _metadata_csv(folder: Path, lesions: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    dx = rng.choice(
        split_stability.CLASSES, size=lesions, p=[0.04, 0.05, 0.1, 0.02, 0.1, 0.67, 0.02]
    )
    rows = [
        {"lesion_id": f"HAM_{i:07d}", "image_id": f"ISIC_{i:05d}_{j}", "dx": d}
        for i, d in enumerate(dx)
        for j in range(rng.choice([1, 1, 2, 3]))
    ]
    frame = pd.DataFrame(rows)
    frame.assign(age=50, sex="male", localization="back").to_csv(
        folder / "HAM10000_metadata.csv", index=False
    )
    return frame


def test_permuted_reference_is_the_earlier_assignment_and_moves_far_more(tmp_path: Path) -> None:
    _metadata_csv(tmp_path)
    out = tmp_path / "results" / "split-stability.json"
    assert split_stability.main(["--data", str(tmp_path), "--trials", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {(r["change"], r["assignment"]): r for r in result["rows"]}
    assert {c for c, _ in rows} == set(split_stability.CHANGES)
    for change in split_stability.CHANGES:
        hashed, permuted = rows[change, "hashed"], rows[change, "permuted"]
        assert hashed["split"]["max"] <= 10, (change, hashed)
        assert hashed["test_to_train"]["max"] == 0
        # The earlier assignment reshuffles a class: many times more images move.
        assert permuted["split"]["median"] > 10 * max(hashed["split"]["median"], 1), change
    table = out.with_suffix(".md").read_text()
    assert "| image removed | hashed |" in table and "`HAM10000_metadata.csv`" in table


def test_moved_counts_split_test_to_train_and_fold_changes() -> None:
    before = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "split": ["train", "test", "val", "train"],
            "fold": [0, -1, 1, 2],
        }
    )
    after = before.assign(split=["train", "train", "val", "train"], fold=[0, 3, 2, 2]).iloc[:3]
    assert split_stability.moved(before, after) == {"split": 1, "test_to_train": 1, "fold": 1}


def test_hashed_row_is_the_project_split(tmp_path: Path) -> None:
    frame = _metadata_csv(tmp_path)
    metadata, name, _ = split_stability.read_metadata(tmp_path)
    assert name == "HAM10000_metadata.csv" and len(metadata) == len(frame)
    result = split_stability.run(metadata, trials=1)
    ours = split_by_lesion(metadata, SplitConfig(), split_stability.SEED)
    assert result["split_images"]["hashed"] == [
        int((ours["split"] == s).sum()) for s in ("train", "val", "test")
    ]


def test_missing_metadata_and_unknown_diagnosis_are_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no HAM10000_metadata"):
        split_stability.main(["--data", str(tmp_path)])
    _metadata_csv(tmp_path).assign(dx="MEL").to_csv(tmp_path / "HAM10000_metadata.csv")
    with pytest.raises(SystemExit, match=r"outside .*\['MEL'\]"):
        split_stability.main(["--data", str(tmp_path)])


def test_half_medians_are_shown_not_rounded() -> None:
    # An even number of trials gives medians halfway between two counts: 712.5 was shown as
    # 712 and 1.5 as 2 (round half to even).
    cell = {"median": 712.5, "max": 1018}
    row = {"change": "label corrected", "assignment": "permuted"}
    row |= {"split": {"median": 1.5, "max": 2}, "test_to_train": cell}
    row |= {"fold": {"median": 6086.0, "max": 6742}}
    result = {
        "data": "d", "images": 1, "lesions": 1, "metadata": "m.csv",
        "metadata_sha256": "0" * 64, "seed": 42, "trials": 2, "rows": [row],
    }  # fmt: skip
    line = split_stability.markdown(result).splitlines()[-1]
    assert line == "| label corrected | permuted | 1.5 / 2 | 712.5 / 1,018 | 6,086 / 6,742 |"


def test_lesions_are_drawn_uniformly_and_each_change_has_its_own_stream() -> None:
    # One lesion of 1,000 images among 10 of one: drawn as the lesion of a random image
    # (before the fix) it came up about 99% of the time; uniformly, 1 in 11.
    rows = [("HAM_big", f"ISIC_{i:05d}") for i in range(1000)]
    rows += [(f"HAM_{k}", f"ISIC_9{k:04d}") for k in range(10)]
    metadata = pd.DataFrame(rows, columns=["lesion_id", "image_id"]).assign(dx="nv", label=5)
    rng = split_stability.changes_rng("lesion removed")
    removed_big = [
        len(split_stability.change(metadata, "lesion removed", rng)) == 10 for _ in range(220)
    ]
    assert 0.03 < np.mean(removed_big) < 0.2
    # Paired streams made "image removed" and "lesion removed" the same change for every
    # one-image lesion.
    firsts = {k: split_stability.changes_rng(k).integers(10**9) for k in split_stability.CHANGES}
    assert len(set(firsts.values())) == len(split_stability.CHANGES)


def test_a_trial_with_other_settings_is_refused_before_it_replaces_a_result(tmp_path: Path):
    _metadata_csv(tmp_path)
    out = tmp_path / "results" / "split-stability.json"
    assert split_stability.main(["--data", str(tmp_path), "--trials", "2", "--out", str(out)]) == 0
    before = out.read_text()
    with pytest.raises(SystemExit, match=r"trials 2 there, 1 now\); pass another --out"):
        split_stability.main(["--data", str(tmp_path), "--trials", "1", "--out", str(out)])
    assert out.read_text() == before
