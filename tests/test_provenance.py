"""Tests for skin_lesion.provenance: order-free dataset hashes, environment and CPU name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from skin_lesion import provenance
from skin_lesion.provenance import cpu_name, dataset_fingerprint, environment_info


def _metadata() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lesion_id": ["HAM_1", "HAM_1", "HAM_2", "HAM_3", "HAM_4"],
            "image_id": ["ISIC_5", "ISIC_2", "ISIC_3", "ISIC_1", "ISIC_4"],
            "dx": ["mel", "mel", "nv", "bkl", "nv"],
            "age": [45.0, 45.0, None, 60.0, 30.0],
            "sex": ["male", "male", "female", "unknown", "female"],
        }
    )


def test_fingerprint_ignores_row_and_column_order() -> None:
    metadata = _metadata()
    shuffled = metadata.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled = shuffled[list(reversed(shuffled.columns))]
    first, second = dataset_fingerprint(metadata), dataset_fingerprint(shuffled)
    assert first == second
    assert first["images"] == 5 and first["lesions"] == 4
    assert re.fullmatch(r"[0-9a-f]{64}", first["metadata_sha256"])


def test_fingerprint_changes_with_one_value() -> None:
    metadata = _metadata()
    changed = metadata.copy()
    changed.loc[2, "dx"] = "mel"
    before, after = dataset_fingerprint(metadata), dataset_fingerprint(changed)
    assert after["metadata_sha256"] != before["metadata_sha256"]
    assert after["image_ids_sha256"] == before["image_ids_sha256"]


def test_fingerprint_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="lesion_id"):
        dataset_fingerprint(pd.DataFrame({"image_id": ["ISIC_1"]}))


def test_environment_info_records_versions_and_device() -> None:
    import torch

    info = environment_info(device="cuda:0")
    assert info["device"] == "cuda:0"
    assert info["torch_build"] == str(torch.__version__)
    assert info["packages"]["torch"] == str(torch.__version__).split("+")[0]
    assert set(info["packages"]) >= {"numpy", "pandas", "kedro", "scikit-learn", "timm"}
    assert info["cuda_available"] == torch.cuda.is_available()
    assert info["cpu"] and info["cpu"] == cpu_name() and info["cpu_cores"] == os.cpu_count()
    assert info["torch_threads"] == torch.get_num_threads()
    json.dumps(info)  # JSON-ready, so it can be saved next to the run


def test_cpu_name_reads_the_model_from_cpuinfo(tmp_path: Path, monkeypatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU 9000 @ 3GHz\n")
    real_path = provenance.Path
    monkeypatch.setattr(
        provenance, "Path", lambda p: real_path(cpuinfo) if p == "/proc/cpuinfo" else real_path(p)
    )
    assert provenance.cpu_name() == "Example CPU 9000 @ 3GHz"
    # A bare name shared by several generations gets the family and model numbers.
    cpuinfo.write_text("cpu family\t: 23\nmodel\t\t: 49\nmodel name\t: AMD EPYC\n")
    assert provenance.cpu_name() == "AMD EPYC (family 23, model 49)"
    cpuinfo.write_text("processor\t: 0\n")  # no model name: fall back to platform
    assert provenance.cpu_name() == (
        provenance.platform.processor() or provenance.platform.machine()
    )


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_names_the_commit_the_code_trees_and_uncommitted_code(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    files = ("src/pkg/mod.py", "conf/base/p.yml", "benchmarks/b.py", "README.md")
    for rel in files:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    first = provenance.code_version(repo / "src" / "pkg" / "mod.py")
    assert first == {
        "commit": _git(repo, "rev-parse", "HEAD"),
        "src_tree": _git(repo, "rev-parse", "HEAD:src"),
        "conf_tree": _git(repo, "rev-parse", "HEAD:conf"),
        "changed": 0,
        "changes": [],
    }
    # A commit of documentation only: another commit, the same code.
    (repo / "README.md").write_text("docs\n")
    _git(repo, "commit", "-q", "-am", "docs")
    second = provenance.code_version(repo)
    assert second["commit"] != first["commit"]
    assert (second["src_tree"], second["conf_tree"]) == (first["src_tree"], first["conf_tree"])
    # Uncommitted code is listed, new files too; documentation and benchmark results are not.
    (repo / "src" / "pkg" / "mod.py").write_text("x = 2\n")
    (repo / "src" / "pkg" / "new.py").write_text("y = 1\n")
    (repo / "README.md").write_text("more docs\n")
    (repo / "benchmarks" / "NOTES.md").write_text("notes\n")
    (repo / "benchmarks" / "results").mkdir()
    (repo / "benchmarks" / "results" / "r.json").write_text("{}")
    third = provenance.code_version(repo)
    assert third["commit"] == second["commit"] and third["changed"] == 2
    assert sorted(line[3:] for line in third["changes"]) == ["src/pkg/mod.py", "src/pkg/new.py"]
    # A long list is cut, with the count of the rest; ``changed`` keeps the total.
    for i in range(25):
        (repo / "conf" / f"extra{i}.yml").write_text("a: 1\n")
    many = provenance.code_version(repo)
    assert many["changed"] == 27 and len(many["changes"]) == 21
    assert many["changes"][-1] == "... and 7 more"
    # Outside a git checkout (an installed package) there is nothing to name.
    (tmp_path / "plain").mkdir()
    assert provenance.code_version(tmp_path / "plain") is None


def test_code_version_of_a_project_inside_a_larger_repository(tmp_path: Path) -> None:
    """Checked at the repository's top, the project had no src there: no trees, and its
    uncommitted changes were not seen (``changed`` 0)."""
    repo = tmp_path / "mono"
    project = repo / "proj"
    for rel in ("pyproject.toml", "src/pkg/mod.py", "conf/base/p.yml", "other/src/x.py"):
        where = (project if not rel.startswith("other") else repo) / rel
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    clean = provenance.code_version(project / "src" / "pkg")
    assert clean["src_tree"] == _git(repo, "rev-parse", "HEAD:proj/src")
    assert clean["conf_tree"] == _git(repo, "rev-parse", "HEAD:proj/conf")
    assert clean["changed"] == 0
    (project / "src" / "pkg" / "mod.py").write_text("x = 2\n")
    (repo / "other" / "src" / "x.py").write_text("x = 2\n")  # not this project's code
    edited = provenance.code_version(project / "src" / "pkg")
    assert edited["changed"] == 1 and edited["changes"] == [" M proj/src/pkg/mod.py"]
    # The stamp goes beside the project's src and conf, where a copy of it looks.
    assert provenance.stamp(project / "src") == project / provenance.STAMP_FILE


def test_environment_info_names_this_package_s_commit() -> None:
    code = provenance.code_version()
    info = environment_info()
    assert info["code_commit"] == (code and code["commit"])
    assert info["code_changes"] == (code and code["changed"])


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_copy_without_git_is_named_by_its_trees_and_a_verified_stamp(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    files = {
        "pyproject.toml": "[project]\n",
        "src/pkg/mod.py": "x = 1\n",
        "src/pkg/sub/a.py": "a = 1\n",  # folder "sub" sorts as "sub/" against "sub.py"
        "src/pkg/sub.py": "s = 1\n",
        "src/pkg/run.sh": "#!/bin/sh\n",
        "conf/base/p.yml": "a: 1\n",
        "conf/local/.gitkeep": "",
        "benchmarks/b.py": "b = 1\n",
    }
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (repo / "src/pkg/run.sh").chmod(0o755)
    (repo / ".gitignore").write_text(
        "__pycache__/\n*.py[cod]\n*.egg-info/\nconf/local/**\n!conf/local/.gitkeep\n"
    )
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    # What git ignores does not count: caches, build metadata, local credentials, empty dirs.
    (repo / "src/pkg/__pycache__").mkdir()
    (repo / "src/pkg/__pycache__/mod.cpython-311.pyc").write_bytes(b"\0")
    (repo / "src/pkg.egg-info").mkdir()
    (repo / "src/pkg.egg-info/PKG-INFO").write_text("Name: pkg\n")
    (repo / "conf/local/credentials.yml").write_text("secret: 1\n")
    (repo / "src/empty").mkdir()
    for folder in ("src", "conf"):
        assert provenance.tree_hash(repo / folder, repo) == _git(
            repo, "rev-parse", f"HEAD:{folder}"
        )

    stamp_file = provenance.stamp(repo / "src")
    assert stamp_file == repo / provenance.STAMP_FILE
    in_git = provenance.code_version(repo)
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    code = provenance.code_version(copy / "src" / "pkg" / "mod.py")
    assert code == {**in_git, "stamp": "verified"}
    # An edit after the stamp: the commit is no longer claimed, the trees still say what ran.
    (copy / "src/pkg/mod.py").write_text("x = 2\n")
    edited = provenance.code_version(copy)
    assert edited["commit"] is None and edited["changed"] is None
    assert edited["stamp"].startswith(f"src differ from {provenance.STAMP_FILE} (made at commit")
    assert edited["src_tree"] != in_git["src_tree"]
    assert edited["conf_tree"] == in_git["conf_tree"]
    (copy / "src/pkg/mod.py").write_text("x = 1\n")
    assert provenance.code_version(copy)["stamp"] == "verified"
    # The benchmark scripts count too; their results and documentation do not.
    (copy / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (copy / "benchmarks" / "results" / "r.json").write_text("{}")
    (copy / "benchmarks" / "NOTES.md").write_text("notes\n")
    assert provenance.code_version(copy)["stamp"] == "verified"
    (copy / "benchmarks" / "b.py").write_text("changed = True\n")
    moved = provenance.code_version(copy)
    assert moved["commit"] is None and moved["stamp"].startswith("benchmarks differ from")
    # No stamp at all; an unreadable one; not a project at all.
    (copy / provenance.STAMP_FILE).unlink()
    assert provenance.code_version(copy)["stamp"].startswith("no git checkout and no")
    (copy / provenance.STAMP_FILE).write_text("{not json")
    assert "unreadable" in provenance.code_version(copy)["stamp"]
    (tmp_path / "plain" / "src").mkdir(parents=True)
    assert provenance.code_version(tmp_path / "plain" / "src") is None
    with pytest.raises(RuntimeError, match="not in a git checkout"):
        provenance.stamp(copy)


def test_this_checkout_s_file_trees_are_git_s_trees() -> None:
    """tree_hash of this project's src and conf as on disk equals git's, edits included."""
    root = Path(provenance.__file__).resolve().parents[2]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs git and a git checkout")
    index = root / ".git" / "tree-hash-test-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    try:
        for args in (["read-tree", "HEAD"], ["add", "-A", "src", "conf"]):
            subprocess.run(["git", "-C", str(root), *args], check=True, env=env)
        tree = subprocess.run(
            ["git", "-C", str(root), "write-tree"],
            check=True,
            env=env,
            capture_output=True,
            text=True,
        ).stdout.strip()
    finally:
        index.unlink(missing_ok=True)
    for folder in ("src", "conf"):
        expected = subprocess.run(
            ["git", "-C", str(root), "rev-parse", f"{tree}:{folder}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert provenance.tree_hash(root / folder, root) == expected, folder


def test_device_slug_keeps_two_gpus_apart() -> None:
    """Benchmark files are named by it: an H100 run must not overwrite an H200 record."""
    assert provenance.device_slug("cuda", "NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert provenance.device_slug("cuda", "NVIDIA H200") == "h200"
    assert provenance.device_slug("cpu", "AMD EPYC 9R45") == "cpu"
