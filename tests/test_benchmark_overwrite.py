"""benchmarks/overwrite.py: the check every benchmark makes before it replaces a result."""

import json
from pathlib import Path

import pytest
from benchmarks.overwrite import check_not_overwriting, recorded_at_top


def test_only_a_setting_recorded_with_another_value_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    check_not_overwriting(path, {"batch": 4}, flag="--out")  # nothing there
    path.write_text(json.dumps({"settings": {"batch": 4, "cache": [32, 40]}}))
    # A key the file does not record (added later) is unknown, not another setting; a tuple
    # is compared as the list JSON keeps.
    check_not_overwriting(path, {"batch": 4, "cache": (32, 40), "threads": 2}, flag="--out")
    with pytest.raises(SystemExit) as exc:
        check_not_overwriting(path, {"batch": 8, "cache": (32, 48)}, flag="--out")
    assert str(exc.value) == (
        f"{path} holds a measurement with other settings (batch 4 there, 8 now, cache [32, 40] "
        "there, [32, 48] now); pass another --out to keep both, or move it aside"
    )
    path.write_text(json.dumps({"batch": 4}))
    with pytest.raises(SystemExit, match=r"holds a baseline .*batch 4 there, 8 now.*--results-dir"):
        check_not_overwriting(
            path, {"batch": 8}, flag="--results-dir", recorded=recorded_at_top, what="a baseline"
        )


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_file_that_is_not_a_result_is_named_not_replaced(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match=rf"{path} is there but .*; pass another --out"):
        check_not_overwriting(path, {"batch": 4}, flag="--out")
    assert path.read_text() == text
