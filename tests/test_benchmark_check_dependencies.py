"""benchmarks/check_dependencies.py: the project's own ranges, checked where it is not
installed (a GPU server running it from its folder)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import check_dependencies


def _pyproject(tmp_path: Path, *dependencies: str) -> Path:
    quoted = ", ".join(f'"{d}"' for d in dependencies)
    path = tmp_path / "pyproject.toml"
    path.write_text(f'[project]\nname = "x"\nversion = "0"\ndependencies = [{quoted}]\n')
    return path


def test_missing_and_out_of_range_dependencies_are_named(tmp_path: Path, capsys) -> None:
    pyproject = _pyproject(
        tmp_path,
        "numpy>=1.0",  # fits
        "pandas<1",  # installed, out of range
        "surely-not-a-package-xyz>=2",  # missing
        "kedro-mlflow>=99",  # optional, installed here: its range counts
        "ipywidgets-not-here; python_version < '3'",  # marker excludes it
    )
    found = check_dependencies.problems(pyproject)
    assert len(found) == 3, found
    assert found[0].startswith("pandas ") and found[0].endswith(": outside <1")
    assert found[1] == "surely-not-a-package-xyz: not installed (needs >=2)"
    assert found[2].startswith("kedro-mlflow ") and "outside >=99" in found[2]
    assert check_dependencies.main(["--pyproject", str(pyproject)]) == 1
    assert "[check-dependencies] pandas " in capsys.readouterr().err


def test_this_environment_fits_the_project_and_optional_packages_may_be_absent(
    tmp_path: Path, monkeypatch
) -> None:
    assert check_dependencies.problems(check_dependencies.ROOT / "pyproject.toml") == []
    monkeypatch.setattr(
        check_dependencies,
        "OPTIONAL",
        {**check_dependencies.OPTIONAL, "extra": ("surely-not-a-package-xyz",)},
    )
    pyproject = _pyproject(tmp_path, "surely-not-a-package-xyz>=1")
    assert check_dependencies.problems(pyproject) == []
