"""The accuracy benchmark's bookkeeping: overrides, dataset hash, per-seed and summary files."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from benchmarks import accuracy

from skin_lesion.lineage import split_fingerprint


def _metrics(balanced: float) -> dict:
    """A ``test_metrics.json`` shaped like the reporting pipeline's."""
    boot = {"low": balanced - 0.05, "high": balanced + 0.05}
    return {
        "test_images": 30,
        "test_lesions": 25,
        "test": {"balanced_accuracy": balanced, "macro_f1": 0.5, "macro_auc": 0.9, "accuracy": 0.8},
        "melanoma": {
            "argmax": {"sensitivity": 0.6},
            "validated_threshold": {"sensitivity": 0.9, "specificity": 0.7, "threshold": 0.1},
        },
        "bootstrap": {
            key: boot
            for key in (
                "balanced_accuracy",
                "macro_f1",
                "macro_auc",
                "melanoma_sensitivity",
                "melanoma_sensitivity_at_threshold",
            )
        },
    }


def test_nest_builds_the_dicts_kedro_params_would() -> None:
    flat = {"a.b": 1, "a.c.d": None, "e": False}
    assert accuracy.nest(flat) == {"a": {"b": 1, "c": {"d": None}}, "e": False}


def test_parse_overrides_reads_yaml_values_and_names_a_bad_pair() -> None:
    parsed = accuracy.parse_overrides(["x.y=3", "z=null", "w=false", "s=focal"])
    assert parsed == {"x.y": 3, "z": None, "w": False, "s": "focal"}
    with pytest.raises(SystemExit, match="'oops'"):
        accuracy.parse_overrides(["oops"])
    # Kedro's comma-separated form too; a comma inside a value stays there.
    assert accuracy.parse_overrides(["a.b=1,c.d=2, e=x", "f=[1,2]", "g=[u, v]"]) == {
        "a.b": 1,
        "c.d": 2,
        "e": "x",
        "f": [1, 2],
        "g": ["u", "v"],
    }
    with pytest.raises(SystemExit, match=r"--params 'g=\[u': the value is not YAML"):
        accuracy.parse_overrides(["g=[u"])
    assert accuracy.parse_overrides(["a=1,oops"]) == {"a": "1,oops"}  # no key=: a value


def test_ablations_name_parameters_that_exist() -> None:
    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "base"
    params = {}
    for path in conf.glob("parameters*.yml"):
        params.update(yaml.safe_load(path.read_text()))
    for name, overrides in accuracy.ABLATIONS.items():
        for key in overrides:
            node = params
            for part in key.split("."):
                assert part in node, f"ablation {name}: {key} is not a base parameter"
                node = node[part]


def test_dataset_hash_changes_with_metadata_and_image_list(tmp_path: Path) -> None:
    (tmp_path / "HAM10000_metadata.csv").write_text("image_id,dx\nA,nv\n")
    (tmp_path / "part_1").mkdir()
    (tmp_path / "part_1" / "A.jpg").write_bytes(b"x")
    first = accuracy.dataset_sha256(tmp_path)
    assert first == accuracy.dataset_sha256(tmp_path)
    (tmp_path / "part_1" / "B.jpg").write_bytes(b"y")
    second = accuracy.dataset_sha256(tmp_path)
    assert second != first
    (tmp_path / "HAM10000_metadata.csv").write_text("image_id,dx\nA,mel\n")
    assert accuracy.dataset_sha256(tmp_path) not in {first, second}
    with pytest.raises(FileNotFoundError, match=r"HAM10000_metadata\.csv"):
        accuracy.dataset_sha256(tmp_path / "part_1")


class _Killed(Exception):
    """A stage's process killed (a time limit): the command dies with it."""


def _write_seed(
    results: Path,
    seed: int,
    balanced: float,
    device: str = "cpu",
    name: str = "run",
    val: float | None = None,
    fold: int | None = None,
    tta: str | None = None,
    split: str | None = None,
    code: dict | None = None,
    parameters: dict | None = None,
    packages: dict | None = None,
    split_seed: int | None = None,
    test_images: int = 30,
) -> None:
    # An ablation run is filed as <setting>-<ablation>[-cv] and flips that one choice.
    named = [a for a in accuracy.ABLATIONS if name.endswith((f"-{a}", f"-{a}-cv", f"-{a}-splits"))]
    ablation = max(named, key=len, default=None)  # no-metadata-fusion, not metadata-fusion
    record = {
        "setting": "cpu-quick",
        "env": "cpu_quick",
        "ablation": ablation,
        "overrides": accuracy.ABLATIONS.get(ablation, {}),
        "data": "demo",
        "data_sha256": "ab" * 32,
        "device": device,
        "packages": packages or {"torch": "x"},
        "seed": seed,
        "stages": [
            {
                "pipeline": "classifier_training",
                "seconds": 10.0 + seed,
                "peak_host_mib": 100.0,
                "peak_gpu_mib": None,
            },
        ],
        "metrics": accuracy.seed_summary(
            _metrics(balanced) | ({"operating_point": {"tta": tta}} if tta else {})
        ),
    }
    if val is not None:
        record["validation"] = {"balanced_accuracy": val, "macro_f1": val - 0.1, "selected": {}}
        if split is not None:
            record["validation"]["split_sha256"] = split
    if fold is not None:
        record["fold"] = fold
    if split_seed is not None:
        record["split_seed"] = split_seed
    record["metrics"]["test_images"] = test_images
    if code is not None:
        record["code"] = code
    if parameters is not None:
        record["parameters"] = parameters
    folder = results / "accuracy" / name
    folder.mkdir(parents=True, exist_ok=True)
    label = (
        f"fold{fold}"
        if fold is not None
        else f"split{split_seed}"
        if split_seed is not None
        else f"seed{seed}"
    )
    (folder / f"{label}.json").write_text(json.dumps(record))


def test_aggregate_gives_mean_sd_and_per_seed_intervals(tmp_path: Path) -> None:
    for seed, balanced in enumerate([0.6, 0.7, 0.8]):
        _write_seed(tmp_path, seed, balanced)
    result = accuracy.aggregate("run", tmp_path)
    entry = result["metrics"]["balanced_accuracy"]
    assert entry["mean"] == pytest.approx(0.7)
    assert entry["sd"] == pytest.approx(0.1)
    assert entry["ci95_per_seed"][2] == pytest.approx([0.75, 0.85])
    assert result["stages"]["classifier_training"]["seconds_mean"] == 11.0
    assert json.loads((tmp_path / "accuracy-run.json").read_text()) == result
    table = (tmp_path / "accuracy-run.md").read_text()
    assert "| balanced_accuracy | 0.700 ± 0.100 |" in table
    assert result["validation"] == {}  # seed files from before validation was recorded
    assert "Validation" not in table
    # A report from before the bootstrap said its confidence and stratification: 95%, plain.
    assert result["bootstrap"] == {"confidence": 0.95, "stratified": False}
    assert "| per seed [lesion-bootstrap 95% CI] |" in table
    # Before specificity was bootstrapped: no interval for it, and none made up.
    assert "ci95_per_seed" not in result["metrics"]["mel_specificity_threshold"]


def test_the_table_names_the_intervals_confidence_and_stratification(tmp_path: Path) -> None:
    metrics = _metrics(0.7)
    for entry in metrics["bootstrap"].values():
        entry.update(confidence=0.9, stratified=True)
    metrics["bootstrap"]["melanoma_specificity_at_threshold"] = {"low": 0.6, "high": 0.8}
    summary = accuracy.seed_summary(metrics)
    assert summary["bootstrap"] == {"confidence": 0.9, "stratified": True}
    assert summary["mel_specificity_threshold"] == {"value": 0.7, "ci95": [0.6, 0.8]}
    result = {"seeds": [0], "metrics": {}, "bootstrap": summary["bootstrap"]}
    assert accuracy.interval_label(result["bootstrap"]) == "stratified lesion-bootstrap 90% CI"
    assert accuracy.interval_label(None) == "lesion-bootstrap 95% CI"


def test_aggregate_reports_validation_when_every_seed_has_it(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.6, val=0.5)
    _write_seed(tmp_path, 1, 0.7, val=0.7)
    result = accuracy.aggregate("run", tmp_path)
    assert result["validation"]["balanced_accuracy"]["mean"] == pytest.approx(0.6)
    assert result["validation"]["macro_f1"]["per_seed"] == pytest.approx([0.4, 0.6])
    table = (tmp_path / "accuracy-run.md").read_text()
    assert "Validation, at the epoch each seed kept: balanced_accuracy 0.600 ± 0.141" in table


def _code(commit: str, src: str = "s1", changed: int = 0) -> dict:
    changes = [f" M src/m{i}.py" for i in range(changed)]
    return {
        "commit": commit * 40,
        "src_tree": src,
        "conf_tree": "c1",
        "changed": changed,
        "changes": changes,
    }


def test_aggregate_names_packages_that_differ_between_seeds(tmp_path: Path) -> None:
    # A seed added to a run later (another machine, other wheels) was filed under the
    # first seed's versions without a word.
    _write_seed(tmp_path, 0, 0.6, packages={"torch": "2.11", "timm": "1.0"})
    _write_seed(tmp_path, 1, 0.7, packages={"torch": "2.14", "timm": "1.0"})
    result = accuracy.aggregate("run", tmp_path)
    assert result["packages_line"] == (
        "Packages differ between the seeds: seed 0: torch 2.11; seed 1: torch 2.14."
    )
    assert result["packages_line"] in (tmp_path / "accuracy-run.md").read_text()
    # A package only the first seed recorded counts as well as one only a later seed did.
    fewer = tmp_path / "fewer"
    _write_seed(fewer, 0, 0.6, packages={"torch": "2.14", "kornia": "0.9"})
    _write_seed(fewer, 1, 0.7, packages={"torch": "2.14"})
    assert accuracy.aggregate("run", fewer)["packages_line"] == (
        "Packages differ between the seeds: seed 0: kornia 0.9; seed 1: kornia not recorded."
    )
    same = tmp_path / "same"
    for seed in (0, 1):
        _write_seed(same, seed, 0.6, packages={"torch": "2.14"})
    assert accuracy.aggregate("run", same)["packages_line"] is None


def test_aggregate_names_the_code_the_seeds_ran(tmp_path: Path) -> None:
    def line(*codes: dict | None) -> str | None:
        results = tmp_path / str(len(list(tmp_path.iterdir())))
        for seed, code in enumerate(codes):
            _write_seed(results, seed, 0.6 + seed / 10, code=code)
        result = accuracy.aggregate("run", results)
        table = (results / "accuracy-run.md").read_text()
        assert (result["code_line"] in table) if result["code_line"] else "Code:" not in table
        return result["code_line"]

    # Commits that differ only in documentation ran the same code.
    assert line(_code("a"), _code("b")) == (
        "Code: commits `aaaaaaaaaa`, `bbbbbbbbbb` (same src and conf)."
    )
    assert line(_code("a"), _code("a")) == "Code: commit `aaaaaaaaaa`."
    assert line(_code("a"), _code("b", src="s2")) == (
        "Code: the seeds ran different src or conf (seed 0 `aaaaaaaaaa`, seed 1 `bbbbbbbbbb`)."
    )
    assert line(_code("a"), _code("a", changed=2)) == (
        "Code: commit `aaaaaaaaaa`; uncommitted changes in seed 1."
    )
    assert line(_code("a"), None) == "Code: not recorded for seed 1 (run before it was)."
    # A copy without git and without a matching CODE_VERSION.json: named by its src tree.
    copy = {**_code("a", src="f" * 40), "commit": None, "changed": None, "stamp": "none"}
    assert line(_code("a"), copy) == (
        "Code: the seeds ran different src or conf"
        " (seed 0 `aaaaaaaaaa`, seed 1 `no git, src tree ffffffffff`)."
    )
    assert line(None, None) is None  # runs from before code was recorded: tables unchanged


def test_code_record_names_a_package_imported_from_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    here = accuracy.code_record()
    assert here == accuracy.code_version(accuracy.ROOT)  # the suite runs this checkout's src
    monkeypatch.setattr(accuracy, "ROOT", tmp_path)  # scripts and conf from another tree
    moved = accuracy.code_record()
    assert moved["package"] == str(Path(accuracy.skin_lesion.__file__).resolve().parent)
    assert moved["package_commit"] == (here or {}).get("commit")
    assert "skin_lesion is imported from" in capsys.readouterr().err


def test_device_names_a_thread_count_other_than_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accuracy.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    usual = accuracy.device_name()
    assert usual.endswith(f"2 cores, {torch.backends.cpu.get_cpu_capability()}")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # OMP_NUM_THREADS=1
    assert accuracy.device_name() == f"{usual}, 1 torch thread"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert accuracy.device_name() == f"{usual}, 4 torch threads"


def test_aggregate_refuses_to_mix_devices(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.6, device="cpu")
    _write_seed(tmp_path, 1, 0.7, device="NVIDIA H100")
    with pytest.raises(SystemExit, match="'device'"):
        accuracy.aggregate("run", tmp_path)


@pytest.mark.parametrize("env", ["cpu_quick", "gpu_full"])
def test_an_ablation_that_changes_nothing_in_the_setting_is_refused(env: str) -> None:
    params = accuracy.setting_parameters(env)
    refused, accepted = [], []
    for name in accuracy.ABLATIONS:
        try:
            accuracy.check_ablation(name, env, params)
            accepted.append(name)
        except SystemExit as error:
            assert name in str(error) and env in str(error)
            refused.append(name)
    # Each on/off pair has exactly one member that changes the setting.
    for pair in (("contrastive", "no-contrastive"), ("metadata-fusion", "no-metadata-fusion")):
        assert len(set(pair) & set(accepted)) == 1, (env, pair, accepted)
    assert {"cross-entropy", "weighted-sampling"} <= set(accepted)
    # Both settings run SupCon; cpu_quick fuses metadata, gpu_full does not.
    assert "no-contrastive" in accepted and "contrastive" in refused
    assert ("metadata-fusion" in accepted) == (env == "gpu_full")


def test_check_ablation_names_a_parameter_the_setting_lacks() -> None:
    with pytest.raises(SystemExit, match=r"contrastive_pretraining\.enabled is not a parameter"):
        accuracy.check_ablation("contrastive", "cpu_quick", {"contrastive_pretraining": {}})


def test_compare_pairs_each_ablation_with_the_setting_seed_by_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for seed, balanced in enumerate([0.70, 0.60, 0.80]):
        _write_seed(tmp_path, seed, balanced, name="cpu-quick")
    # Seeds 0 and 2 only; seed 2 of the setting is its best, so pairing matters.
    _write_seed(tmp_path, 0, 0.75, name="cpu-quick-cross-entropy")
    _write_seed(tmp_path, 2, 0.78, name="cpu-quick-cross-entropy")
    for seed, val in [(0, 0.60), (1, 0.62), (2, 0.64)]:
        _write_seed(tmp_path, seed, 0.7, name="cpu-quick-no-metadata-fusion", val=val + 0.05)
        _write_seed(tmp_path, seed, [0.70, 0.60, 0.80][seed], name="cpu-quick", val=val)
    _write_seed(tmp_path, 5, 0.9, name="cpu-quick-weighted-sampling")  # no seed in common
    result = accuracy.compare("cpu-quick", tmp_path)
    assert (
        "cpu-quick-weighted-sampling left out: its seeds [5] share none" in capsys.readouterr().err
    )
    assert [row["ablation"] for row in result["ablations"]] == [
        "cross-entropy",
        "no-metadata-fusion",
    ]
    entry = result["ablations"][0]["balanced_accuracy"]
    assert result["ablations"][0]["seeds"] == [0, 2]
    # Validation is compared only where both runs recorded it.
    assert "val_balanced_accuracy" not in result["ablations"][0]
    val = result["ablations"][1]["val_balanced_accuracy"]
    assert val["delta_per_seed"] == pytest.approx([0.05, 0.05, 0.05])
    # Validation macro-F1 beside it (the fixture writes macro_f1 = balanced - 0.1).
    val_f1 = result["ablations"][1]["val_macro_f1"]
    assert val_f1["mean"] == pytest.approx(0.57) and val_f1["delta_mean"] == pytest.approx(0.05)
    assert entry["mean"] == pytest.approx(0.765)
    assert entry["baseline_mean"] == pytest.approx(0.75)
    assert entry["delta_per_seed"] == pytest.approx([0.05, -0.02])
    assert entry["delta_mean"] == pytest.approx(0.015)
    assert result["baseline_sd"]["balanced_accuracy"] == pytest.approx(0.1)
    assert result["baseline_sd"]["val_balanced_accuracy"] == pytest.approx(0.02)
    table = (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()
    assert "| cross-entropy | 0, 2 | 0.765 (+0.015; [+0.050, -0.020])" in table
    assert table.splitlines()[4].endswith("| not recorded |")
    assert val["seeds"] == [0, 1, 2]
    assert "0.670 (+0.050; [+0.050, +0.050, +0.050]) | 0.570 (+0.050; [" in table
    assert "balanced_accuracy (validation) 0.020, macro_f1 (validation) 0.020." in table
    assert "| balanced_accuracy (validation) | macro_f1 (validation) |" in table
    assert json.loads((tmp_path / "accuracy-cpu-quick-ablations.json").read_text()) == result


def test_compare_pairs_runs_filed_under_a_name_and_only_true_pairs(tmp_path: Path) -> None:
    """``--name`` runs (another machine's repeat) pair with ``<name>-<ablation>`` runs, and a
    pair must differ in the ablation's choice and nothing else."""
    _write_seed(tmp_path, 0, 0.70, name="cpu-quick-rerun")
    _write_seed(tmp_path, 0, 0.66, name="cpu-quick-rerun-no-metadata-fusion")
    _write_seed(tmp_path, 0, 0.90, name="cpu-quick-no-metadata-fusion")  # not this baseline
    (result,) = accuracy.compare_all("cpu-quick-rerun", tmp_path)
    assert result["setting"] == "cpu-quick-rerun"
    (row,) = result["ablations"]
    assert row["balanced_accuracy"]["delta_per_seed"] == pytest.approx([-0.04])
    assert (tmp_path / "accuracy-cpu-quick-rerun-ablations.md").exists()
    # A run that flipped another choice too is not this ablation's pair.
    path = tmp_path / "accuracy" / "cpu-quick-rerun-no-metadata-fusion" / "seed0.json"
    record = json.loads(path.read_text())
    record["overrides"]["classifier_training.epochs"] = 3
    path.write_text(json.dumps(record))
    with pytest.raises(
        SystemExit, match=r"no-metadata-fusion alone.*'classifier_training\.epochs'"
    ):
        accuracy.compare_all("cpu-quick-rerun", tmp_path)
    # Nor is a run of another ablation filed under this one's name.
    record["overrides"] = accuracy.ABLATIONS["cross-entropy"]
    record["ablation"] = "cross-entropy"
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="ablation 'cross-entropy'"):
        accuracy.compare_all("cpu-quick-rerun", tmp_path)


def test_load_seeds_reads_only_seed_files_and_refuses_two_of_one_seed(tmp_path: Path) -> None:
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick")
    folder = tmp_path / "accuracy" / "cpu-quick"
    (folder / "seed1.old.json").write_text("{}")  # set aside: not a record
    assert list(accuracy.load_seeds("cpu-quick", tmp_path)) == [1]
    (folder / "seed01.json").write_text((folder / "seed1.json").read_text())
    with pytest.raises(SystemExit, match=r"seed01\.json and .*seed1\.json are both seed 1"):
        accuracy.load_seeds("cpu-quick", tmp_path)


def test_a_run_is_not_filed_over_another_runs_records(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick")
    record = json.loads((tmp_path / "accuracy/cpu-quick/seed0.json").read_text())
    same = {k: record[k] for k in ("setting", "ablation", "overrides", "data_sha256", "device")}
    accuracy.check_not_overwriting("cpu-quick", tmp_path, same)  # a rerun of the same run
    accuracy.check_not_overwriting("cpu-quick-rerun", tmp_path, same)  # nothing there yet
    other = same | {"overrides": {"classifier_training.finetune.epochs": 1}}
    with pytest.raises(SystemExit, match=r"seed 0 has overrides \{\}.*another --name"):
        accuracy.check_not_overwriting("cpu-quick", tmp_path, other)
    with pytest.raises(SystemExit, match="has device 'cpu', this one 'NVIDIA H200'"):
        accuracy.check_not_overwriting("cpu-quick", tmp_path, same | {"device": "NVIDIA H200"})
    # Another kind of run under the name is refused before any work, not at the summary.
    with pytest.raises(SystemExit, match=r"holds a seed run \(seed 0\), this one is a run over"):
        accuracy.check_not_overwriting("cpu-quick", tmp_path, same, "split_seed")


def test_run_parameters_are_the_environments_with_the_overrides_less_the_per_run_ones() -> None:
    plain = accuracy.run_parameters("cpu_quick", {})
    changed = accuracy.run_parameters("cpu_quick", {"classifier_training.finetune.epochs": 2})
    assert plain["classifier_training.finetune.epochs"] == 7  # conf/cpu_quick over conf/base
    assert plain["classifier_training.batch_size"] == 32
    assert plain["classifier_training.early_stopping.metric"] == "balanced_accuracy"  # base's
    assert accuracy.parameter_differences(plain, changed) == (
        ["classifier_training.finetune.epochs"],
        [],
    )
    assert not {"seed", "raw_dir", accuracy.FOLD_KEY} & set(plain)
    assert accuracy.run_parameters("gpu_full", {})["classifier_training.augment.crop_size"] == 224
    # A record from before the stratified bootstrap ran the plain one: a run with it
    # differs (not "a parameter one side lacks, taken to keep the earlier behaviour").
    assert plain["reporting.bootstrap.stratified"] is True
    before = {k: v for k, v in plain.items() if k != "reporting.bootstrap.stratified"}
    assert accuracy.parameter_differences(before, plain) == (
        ["reporting.bootstrap.stratified"],
        [],
    )
    assert accuracy.parameter_differences(
        before, plain | {"reporting.bootstrap.stratified": False}
    ) == ([], [])


def test_seeds_with_intervals_of_different_kinds_are_not_summarised_together(
    tmp_path: Path,
) -> None:
    _write_seed(tmp_path, 0, 0.6)  # a report from before: plain 95% intervals
    _write_seed(tmp_path, 1, 0.7)
    accuracy.aggregate("run", tmp_path)
    record = json.loads((tmp_path / "accuracy" / "run" / "seed1.json").read_text())
    record["metrics"]["bootstrap"] = {"confidence": 0.95, "stratified": True}
    (tmp_path / "accuracy" / "run" / "seed1.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"bootstrap intervals are of different kinds"):
        accuracy.aggregate("run", tmp_path)


def test_a_run_with_other_parameters_is_not_filed_beside_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An edit to conf/ between two seeds of one --name changes no override, but the summary
    would mix two configurations: refused, naming what changed."""
    before = {"a.crop_size": 96, "a.epochs": 7}
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick", parameters=before)
    record = json.loads((tmp_path / "accuracy/cpu-quick/seed0.json").read_text())
    common = {k: record[k] for k in ("setting", "ablation", "overrides", "data_sha256", "device")}
    accuracy.check_not_overwriting("cpu-quick", tmp_path, common | {"parameters": before})
    with pytest.raises(
        SystemExit,
        match=r"seed 0 ran other parameters, recorded: a\.crop_size "
        r"96 there, 128 now\): file this one under another --name",
    ):
        accuracy.check_not_overwriting(
            "cpu-quick", tmp_path, common | {"parameters": {**before, "a.crop_size": 128}}
        )
    # A parameter added since (or removed) is named, not refused: it kept the old behaviour.
    capsys.readouterr()
    accuracy.check_not_overwriting(
        "cpu-quick", tmp_path, common | {"parameters": {**before, "a.scope": "run"}}
    )
    assert "lacks, taken to keep the earlier behaviour: a.scope None there, 'run' now" in (
        capsys.readouterr().err
    )


def _git(repo: Path, *args: str) -> str:
    import subprocess

    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def test_records_from_before_parameters_were_recorded_are_checked_against_their_commits_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(accuracy.ROOT / "conf", repo / "conf", ignore=shutil.ignore_patterns("local"))
    (repo / "conf" / "local").mkdir()
    _git(repo, "init", "-q")
    _git(repo, "add", "conf")
    _git(repo, "commit", "-qm", "96 px")
    first = _git(repo, "rev-parse", "HEAD")
    quick = repo / "conf/cpu_quick/parameters_classifier_training.yml"
    quick.write_text(quick.read_text().replace("epochs: 7", "epochs: 9", 1))
    _git(repo, "commit", "-qam", "9 epochs")
    monkeypatch.setattr(accuracy, "ROOT", repo)
    results = tmp_path / "results"
    code = {"commit": first, "src_tree": "s1", "conf_tree": "c1", "changed": 0, "changes": []}
    _write_seed(results, 0, 0.7, name="cpu-quick", code=code)
    record = json.loads((results / "accuracy/cpu-quick/seed0.json").read_text())
    assert "parameters" not in record
    common = {k: record[k] for k in ("setting", "ablation", "overrides", "data_sha256", "device")}
    now = accuracy.run_parameters("cpu_quick", {}, repo / "conf")
    assert now["classifier_training.finetune.epochs"] == 9
    with pytest.raises(
        SystemExit,
        match=rf"conf at its commit {first[:10]}: classifier_training"
        r"\.finetune\.epochs 7 there, 9 now",
    ):
        accuracy.check_not_overwriting("cpu-quick", results, common | {"parameters": now})
    # With uncommitted changes the commit's conf/ is not what ran: unknown, and said so.
    code |= {"changed": 1, "changes": [" M conf/cpu_quick/parameters_classifier_training.yml"]}
    _write_seed(results, 0, 0.7, name="cpu-quick", code=code)
    accuracy.check_not_overwriting("cpu-quick", results, common | {"parameters": now})
    assert "seed 0 has no record of its parameters" in capsys.readouterr().err


def test_aggregate_and_compare_refuse_records_whose_parameters_differ_beyond_the_ablation(
    tmp_path: Path,
) -> None:
    base = {"classifier_training.sampling": "none", "classifier_training.loss.alpha": "inverse"}
    base |= {"classifier_training.augment.crop_size": 128}
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick", parameters=base)
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick")  # from before: not compared
    _write_seed(tmp_path, 2, 0.7, name="cpu-quick", parameters=base)
    assert accuracy.aggregate("cpu-quick", tmp_path)["seeds"] == [0, 1, 2]
    flipped = base | {"classifier_training.sampling": "inverse"}
    flipped |= {"classifier_training.loss.alpha": "none"}
    _write_seed(tmp_path, 0, 0.72, name="cpu-quick-weighted-sampling", parameters=flipped)
    (row,) = accuracy.compare("cpu-quick", tmp_path)["ablations"]
    assert row["ablation"] == "weighted-sampling"
    wider = flipped | {"classifier_training.augment.crop_size": 96}
    _write_seed(tmp_path, 0, 0.72, name="cpu-quick-weighted-sampling", parameters=wider)
    with pytest.raises(
        SystemExit,
        match=r"in more than weighted-sampling: classifier_training"
        r"\.augment\.crop_size 128 in cpu-quick, 96 in cpu-quick-weighted-samp",
    ):
        accuracy.compare("cpu-quick", tmp_path)
    _write_seed(tmp_path, 2, 0.7, name="cpu-quick", parameters=wider)
    with pytest.raises(
        SystemExit,
        match=r"seed 2 ran other parameters than seed 0 \(classifier_"
        r"training\.augment\.crop_size 128 in seed 0, 96 in seed 2; ",
    ):
        accuracy.aggregate("cpu-quick", tmp_path)


def test_params_may_not_undo_the_ablation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["accuracy.py", "--setting=cpu-quick", "--ablation=cross-entropy", f"--data={tmp_path}"]
    argv += ["--params", "classifier_training.loss.name=focal", f"--results-dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=r"classifier_training\.loss\.name: set by --ablation"):
        accuracy.main()
    assert not (tmp_path / "accuracy").exists()


def test_compare_refuses_a_pair_trained_on_different_splits(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick", val=0.6, split="aa" * 32)
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cross-entropy", val=0.6, split="aa" * 32)
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick", val=0.6, split="bb" * 32)
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy", val=0.6)  # not recorded
    assert accuracy.compare("cpu-quick", tmp_path)["ablations"][0]["seeds"] == [0, 1]
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy", val=0.6, split="cc" * 32)
    with pytest.raises(SystemExit, match=r"seed 1 was trained on another split.*cccccccccccc vs"):
        accuracy.compare("cpu-quick", tmp_path)


def test_aggregate_refuses_seeds_trained_on_different_splits(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.7, val=0.6, split="aa" * 32)
    _write_seed(tmp_path, 1, 0.7, val=0.6)  # from before the split was recorded
    _write_seed(tmp_path, 2, 0.7, val=0.6, split="aa" * 32)
    assert accuracy.aggregate("run", tmp_path)["seeds"] == [0, 1, 2]
    _write_seed(tmp_path, 2, 0.7, val=0.6, split="bb" * 32)
    with pytest.raises(SystemExit, match=r"different splits \(seed 0: aaaaaaaaaaaa, seed 2: bbbb"):
        accuracy.aggregate("run", tmp_path)


def test_compare_refuses_runs_on_different_data(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick")
    _write_seed(tmp_path, 0, 0.7, device="NVIDIA H100", name="cpu-quick-cross-entropy")
    with pytest.raises(SystemExit, match="'device'"):
        accuracy.compare("cpu-quick", tmp_path)
    with pytest.raises(SystemExit, match="no seed results"):
        accuracy.compare("gpu-full", tmp_path)


def _stage_in_this_process(project: Path, env: str, pipeline: str, params: dict, out: Path) -> dict:
    """``accuracy.run_stage`` in the test's own process: ``accuracy.stage_main`` on the same
    JSON ``--params`` a child gets, without the child's ~10 s of imports and start-up. The
    child process itself (its command line, exit code and peak memory) is tested by
    ``test_accuracy_command_runs_an_ablation_through_kedro``."""
    import argparse
    import resource
    import time

    args = argparse.Namespace(
        project=str(project), env=env, pipeline=pipeline, params=json.dumps(params), out=out
    )
    start = time.perf_counter()
    accuracy.stage_main(args)
    seconds = time.perf_counter() - start
    stage = json.loads(out.read_text())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "pipeline": pipeline,
        "seconds": round(seconds, 1),
        "peak_host_mib": round(peak, 1),
        "peak_gpu_mib": stage["peak_gpu_mib"],
        "timing": stage["timing"],
    }


def _stages_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each stage's Kedro session in the test's own process (``_stage_in_this_process``)."""
    monkeypatch.setattr(accuracy, "run_stage", _stage_in_this_process)


@pytest.mark.slow
def test_accuracy_command_runs_an_ablation_through_kedro(
    demo_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One seed of an ablation on generated data: the training stage, and the reporting of
    the resumed run, each in its own Kedro process as the command runs every stage (the
    stages before training run in this one, to save a child's ~10 s start-up each; so do
    --rescore's: the child processes are tested by then)."""
    import sys

    import torch

    monkeypatch.setitem(accuracy.SETTINGS, "test", "test")  # the suite's tiny environment
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    work, results = tmp_path / "work", tmp_path / "results"
    argv = ["accuracy.py", "--setting", "test", "--ablation", "cross-entropy", "--seeds", "3"]
    argv += ["--data", str(demo_raw_dir), "--work-dir", str(work), "--results-dir", str(results)]
    argv += ["--params", "contrastive_pretraining.enabled=false"]  # saves time; tests --params
    # The first attempt dies as the reporting starts (a time limit); --resume finishes it on
    # the training outputs left in the project, without training again.
    real_stage = accuracy.run_stage

    def killed_at_reporting(project: Path, env: str, pipeline: str, *args) -> dict:
        if pipeline == "reporting":
            raise _Killed(pipeline)
        if pipeline in ("data_processing", "contrastive_pretraining"):
            return _stage_in_this_process(project, env, pipeline, *args)
        return real_stage(project, env, pipeline, *args)

    monkeypatch.setattr(accuracy, "run_stage", killed_at_reporting)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(_Killed):
        accuracy.main()
    monkeypatch.setattr(accuracy, "run_stage", real_stage)
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    accuracy.main()

    record = json.loads((results / "accuracy" / "test-cross-entropy" / "seed3.json").read_text())
    assert record["resumed"] == [
        "data_processing",
        "contrastive_pretraining",
        "classifier_training",
    ]
    assert record["overrides"] == {
        "classifier_training.loss.name": "weighted_cross_entropy",
        "contrastive_pretraining.enabled": False,
    }
    assert record["data_sha256"] == accuracy.dataset_sha256(demo_raw_dir)
    # The recorded parameters are the ones the stages ran with (the checkpoint's own copy).
    assert record["parameters"] == accuracy.run_parameters("test", record["overrides"])
    assert [s["pipeline"] for s in record["stages"]] == [
        "data_processing",
        "contrastive_pretraining",
        "classifier_training",
        "reporting",
    ]
    assert all(s["seconds"] > 0 and s["peak_host_mib"] > 0 for s in record["stages"])
    # Where each stage's time went, node by node, as its own Kedro run timed it.
    timing = {s["pipeline"]: s["timing"] for s in record["stages"]}
    assert set(timing["classifier_training"]["nodes"]) == {"train_classifier"}
    assert "image_cache" in timing["classifier_training"]["loads"]
    assert {"predict_test", "evaluate_test", "build_report"} <= set(timing["reporting"]["nodes"])
    assert all(
        0 <= t <= s["seconds"] for s in record["stages"] for t in s["timing"]["nodes"].values()
    )
    for label in ("balanced_accuracy", "macro_auc", "mel_sensitivity_threshold"):
        assert 0.0 <= record["metrics"][label]["value"] <= 1.0
    # The override and the seed reached the child's Kedro session: the checkpoint says so.
    checkpoint = torch.load(
        work / "test-cross-entropy" / "data" / "test" / "06_models" / "classifier.pt",
        weights_only=True,
    )
    assert checkpoint["params"]["classifier_training"]["loss"]["name"] == "weighted_cross_entropy"
    assert checkpoint["params"]["seed"] == 3
    ran = accuracy.flatten({"classifier_training": checkpoint["params"]["classifier_training"]})
    assert ran == {k: v for k, v in record["parameters"].items() if k in ran}
    assert len(ran) > 30
    assert (
        record["validation"]["balanced_accuracy"]
        == checkpoint["metrics"]["val"]["balanced_accuracy"]
    )
    assert record["validation"]["selected"]["phase"] in {"warmup", "finetune"}
    # Every epoch of both phases, as the run's training history has them; the kept one among them.
    history = json.loads(
        (work / "test-cross-entropy/data/test/08_reporting/training_history.json").read_text()
    )
    epochs = record["validation"]["epochs"]
    assert [(e["phase"], e["epoch"]) for e in epochs] == [(h["phase"], h["epoch"]) for h in history]
    assert set(epochs[0]) == set(accuracy.EPOCH_FIELDS)
    selected = record["validation"]["selected"]
    assert any((e["phase"], e["epoch"]) == (selected["phase"], selected["epoch"]) for e in epochs)
    splits = pd.read_parquet(next(work.rglob("splits.parquet")))
    assert record["validation"]["split_sha256"] == split_fingerprint(splits)
    summary = json.loads((results / "accuracy-test-cross-entropy.json").read_text())
    assert summary["seeds"] == [3] and summary["ablation"] == "cross-entropy"
    nodes = summary["stages"]["reporting"]["node_seconds_mean"]
    assert list(nodes.values()) == sorted(nodes.values(), reverse=True)
    assert (
        "Slowest nodes (wall s, mean): data_processing: "
        in (results / "accuracy-test-cross-entropy.md").read_text()
    )
    # The code that ran: this checkout's commit (None only outside a git checkout).
    code = accuracy.code_version(accuracy.ROOT)
    keys = ("commit", "src_tree", "conf_tree")
    if code is None:
        assert record["code"] is None
    else:
        assert {k: record["code"][k] for k in keys} == {k: code[k] for k in keys}
    assert summary["code"] == {"3": record["code"]}

    # --rescore reruns the reporting on the kept training outputs, not on what lies in the
    # data folder now: remove the checkpoint and spoil the saved test figures.
    kept = work / "test-cross-entropy" / "kept" / "seed3"
    assert (kept / "06_models" / "classifier.pt").exists()
    (work / "test-cross-entropy" / "data" / "test" / "06_models" / "classifier.pt").unlink()
    spoiled = {**record, "metrics": {}}
    (results / "accuracy" / "test-cross-entropy" / "seed3.json").write_text(json.dumps(spoiled))
    _stages_in_this_process(monkeypatch)  # the child processes ran above
    monkeypatch.setattr(sys, "argv", [*argv, "--rescore"])
    accuracy.main()
    rescored = json.loads((results / "accuracy" / "test-cross-entropy" / "seed3.json").read_text())
    assert rescored["metrics"] == record["metrics"]  # same checkpoint, same deterministic report
    assert rescored["stages"] == record["stages"]  # training's own record stays
    assert [s["pipeline"] for s in rescored["rescored"]["stages"]] == [
        "data_processing",
        "reporting",
    ]
    # Another seed has no record to rescore; a run with other overrides is not this one.
    monkeypatch.setattr(sys, "argv", [*argv[:6], "4", *argv[7:], "--rescore"])
    with pytest.raises(SystemExit, match=r"seed4\.json does not exist"):
        accuracy.main()
    monkeypatch.setattr(sys, "argv", [*argv, "classifier_training.epochs=1", "--rescore"])
    with pytest.raises(SystemExit, match="was run with overrides"):
        accuracy.main()


def test_restore_outputs_names_a_run_without_kept_outputs_and_leaves_no_stale_file(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    (project / "conf" / "x").mkdir(parents=True)
    (project / "conf" / "x" / "globals.yml").write_text("data_dir: data\n")
    data = project / "data"
    for relative in accuracy.KEPT[:3]:
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        (data / relative).write_text(f"run a: {relative}")
    accuracy.keep_outputs(project, "x", "seed0")
    # Run b had no validation predictions (say) but its folder holds a later run's.
    (data / accuracy.KEPT[2]).unlink()
    accuracy.keep_outputs(project, "x", "seed1")
    (data / accuracy.KEPT[2]).write_text("run c")
    accuracy.restore_outputs(project, "x", "seed1")
    assert not (data / accuracy.KEPT[2]).exists()
    accuracy.restore_outputs(project, "x", "seed0")
    assert (data / accuracy.KEPT[2]).read_text() == f"run a: {accuracy.KEPT[2]}"
    with pytest.raises(SystemExit, match="no kept training outputs"):
        accuracy.restore_outputs(project, "x", "seed2")


def test_compare_takes_validation_from_the_seeds_that_recorded_it(tmp_path: Path) -> None:
    for seed in (0, 1, 2):
        _write_seed(tmp_path, seed, 0.7, name="cpu-quick", val=0.6)
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cross-entropy")  # before validation existed
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy", val=0.64)
    _write_seed(tmp_path, 2, 0.7, name="cpu-quick-cross-entropy", val=0.62)
    row = accuracy.compare("cpu-quick", tmp_path)["ablations"][0]
    assert row["seeds"] == [0, 1, 2]
    assert row["val_balanced_accuracy"]["seeds"] == [1, 2]
    assert row["val_balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.04, 0.02])
    table = (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()
    assert "| 0.630 (+0.030; [+0.040, +0.020]) on seeds 1, 2 only |" in table


def test_aggregate_over_cross_validation_folds(tmp_path: Path) -> None:
    for fold, balanced in enumerate([0.6, 0.7, 0.8, 0.7, 0.7]):
        _write_seed(tmp_path, 0, balanced, name="run-cv", fold=fold, val=0.5 + fold / 100)
    result = accuracy.aggregate("run-cv", tmp_path)
    assert result["folds"] == [0, 1, 2, 3, 4] and result["seeds"] == [0] * 5
    assert result["metrics"]["balanced_accuracy"]["mean"] == pytest.approx(0.7)
    assert result["validation"]["balanced_accuracy"]["per_seed"] == pytest.approx(
        [0.50, 0.51, 0.52, 0.53, 0.54]
    )
    table = (tmp_path / "accuracy-run-cv.md").read_text()
    assert "cross-validation folds [0, 1, 2, 3, 4]" in table and "training seed [0]" in table
    assert "| metric (test) | mean ± sd over 5 folds | per fold [" in table
    assert "at the epoch each fold kept" in table
    # Seed runs keep their wording and record no folds.
    _write_seed(tmp_path, 0, 0.6)
    assert accuracy.aggregate("run", tmp_path)["folds"] is None


def test_a_folder_mixing_seed_and_fold_files_is_refused(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.6, name="mixed")
    _write_seed(tmp_path, 0, 0.7, name="mixed", fold=1)
    with pytest.raises(SystemExit, match=r"holds seed\*\.json, fold\*\.json files"):
        accuracy.aggregate("mixed", tmp_path)
    _write_seed(tmp_path, 0, 0.7, name="draws", split_seed=3)
    _write_seed(tmp_path, 0, 0.7, name="draws", fold=2)
    with pytest.raises(
        SystemExit, match=r"holds fold\*\.json, split\*\.json files .*over split draws"
    ):
        accuracy.aggregate("draws", tmp_path)


def test_aggregate_over_split_draws_gives_each_draws_test_split(tmp_path: Path) -> None:
    """A run over split draws: one record per split seed, each scored on its own test split,
    summarised over draws with each draw's test size."""
    for k, (balanced, size) in {1: (0.6, 30), 2: (0.7, 28), 42: (0.8, 31)}.items():
        _write_seed(tmp_path, 0, balanced, name="draws", split_seed=k, val=0.5, test_images=size)
    result = accuracy.aggregate("draws", tmp_path)
    assert result["split_seeds"] == [1, 2, 42] and result["seeds"] == [0, 0, 0]
    assert result["folds"] is None and result["test_images"] == [30, 28, 31]
    assert result["metrics"]["balanced_accuracy"]["sd"] == pytest.approx(0.1)
    table = (tmp_path / "accuracy-draws.md").read_text()
    assert "test splits 30, 28, 31 images of 25, 25, 25 lesions (by split seed)" in table
    assert "split draws [1, 2, 42] (`data_processing.split.seed`" in table
    assert "training seed [0]" in table
    assert "| metric (test) | mean ± sd over 3 split seeds | per split seed [" in table
    assert "at the epoch each split seed kept" in table
    # Seed and fold runs record no split seeds.
    assert "split_seeds" not in accuracy.aggregate("run-cv", _folds(tmp_path))


def _folds(tmp_path: Path) -> Path:
    results = tmp_path / "cv"
    for fold in (0, 1):
        _write_seed(results, 0, 0.7, name="run-cv", fold=fold)
    return results


def test_check_split_seeds_refuses_what_cannot_run() -> None:
    accuracy.check_split_seeds([1, 2, 42], [0], {}, None)
    with pytest.raises(SystemExit, match=r"one --seeds value, got \[0, 1\]"):
        accuracy.check_split_seeds([1], [0, 1], {}, None)
    with pytest.raises(SystemExit, match=r"sets data_processing\.split\.seed itself; drop it"):
        accuracy.check_split_seeds([1], [0], {accuracy.SPLIT_SEED_KEY: 3}, None)
    with pytest.raises(SystemExit, match="each must appear once"):
        accuracy.check_split_seeds([1, 1], [0], {}, None)
    with pytest.raises(SystemExit, match="SupCon stage is tied to its split"):
        accuracy.check_split_seeds([1], [0], {}, "cpu-quick")


def test_compare_sets_each_ablation_over_split_draws_beside_the_setting(tmp_path: Path) -> None:
    for k, (base, ablated) in {1: (0.70, 0.73), 2: (0.65, 0.66)}.items():
        _write_seed(tmp_path, 0, base, name="cpu-quick-splits", split_seed=k, val=0.6)
        _write_seed(
            tmp_path, 0, ablated, name="cpu-quick-cross-entropy-splits", split_seed=k, val=0.6
        )
    (result,) = accuracy.compare_all("cpu-quick", tmp_path)
    (row,) = result["ablations"]
    assert row["ablation"] == "cross-entropy" and row["split_seeds"] == [1, 2]
    assert row["balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.03, 0.01])
    table = (tmp_path / "accuracy-cpu-quick-splits-ablations.md").read_text()
    assert (
        "**Ablations of cpu-quick**, runs over split draws (training seed [0]) paired by" in table
    )
    assert "| ablation | split seeds |" in table


def test_compare_runs_pairs_cross_validation_runs_by_fold(tmp_path: Path) -> None:
    for fold, (ours, theirs) in enumerate([(0.72, 0.70), (0.66, 0.65)]):
        _write_seed(tmp_path, 3, theirs, name="cv", fold=fold, val=0.6)
        _write_seed(tmp_path, 3, ours, name="cv-other", fold=fold, val=0.6)
    (row,) = accuracy.compare_runs("cv", "cv-other", tmp_path)["ablations"]
    assert row["folds"] == [0, 1]
    table = (tmp_path / "accuracy-cv-other-vs-cv.md").read_text()
    assert "cross-validation runs (training seed [3]) paired by fold," in table


def test_compare_runs_pairs_split_draws_by_split_seed(tmp_path: Path) -> None:
    for k, (ours, theirs) in {1: (0.72, 0.70), 2: (0.66, 0.65)}.items():
        _write_seed(tmp_path, 0, theirs, name="draws", split_seed=k, val=0.6, split=f"{k}" * 64)
        _write_seed(tmp_path, 0, ours, name="other", split_seed=k, val=0.6, split=f"{k}" * 64)
    (row,) = accuracy.compare_runs("draws", "other", tmp_path)["ablations"]
    assert row["split_seeds"] == [1, 2]
    assert row["balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.02, 0.01])
    table = (tmp_path / "accuracy-other-vs-draws.md").read_text()
    assert "| parameters changed | split seeds |" in table
    assert (
        "**other against draws**, runs over split draws (training seed [0]) paired by split"
        in table
    )
    assert "Split-to-split spread of draws itself (sd over split seeds [1, 2])" in table
    # Another training seed on the same draw does not pair; nor a seed run with draws.
    _write_seed(tmp_path, 5, 0.7, name="seed5", split_seed=1, val=0.6, split="1" * 64)
    with pytest.raises(SystemExit, match=r"seed5 split seed 1 differs from draws in 'seed'"):
        accuracy.compare_runs("draws", "seed5", tmp_path)
    _write_seed(tmp_path, 1, 0.7, name="seeds", val=0.6)
    with pytest.raises(SystemExit, match=r"seeds is a seed run, draws a run over split draws"):
        accuracy.compare_runs("draws", "seeds", tmp_path)


def test_aggregate_names_the_fold_that_differs(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.6, name="cv", fold=0)
    _write_seed(tmp_path, 0, 0.7, name="cv", fold=3, device="NVIDIA H100")
    with pytest.raises(SystemExit, match="fold 3 differs from fold 0 in 'device'"):
        accuracy.aggregate("cv", tmp_path)


def test_check_folds_refuses_what_cannot_run() -> None:
    params = accuracy.setting_parameters("cpu_quick")
    assert params["data_processing"]["split"]["folds"] == 5
    accuracy.check_folds([0, 1, 2, 3, 4], [0], {}, params)
    with pytest.raises(SystemExit, match=r"one --seeds value, got \[0, 1\]"):
        accuracy.check_folds([0], [0, 1], {}, params)
    with pytest.raises(SystemExit, match="drop it from --params"):
        accuracy.check_folds([0], [0], {accuracy.FOLD_KEY: 1}, params)
    with pytest.raises(SystemExit, match=r"lie in 0..4 \(data_processing.split.folds is 5\)"):
        accuracy.check_folds([0, 5], [0], {}, params)
    with pytest.raises(SystemExit, match="appear once"):
        accuracy.check_folds([1, 1], [0], {}, params)
    with pytest.raises(SystemExit, match="folds is 3"):
        accuracy.check_folds([3], [0], {"data_processing.split.folds": 3}, params)


def test_with_split_keeps_the_other_data_processing_overrides() -> None:
    params = {"raw_dir": "x", "data_processing": {"split": {"folds": 4}, "workers": 1}}
    assert accuracy._with_split(params, "validation_fold", 2) == {
        "raw_dir": "x",
        "data_processing": {"split": {"folds": 4, "validation_fold": 2}, "workers": 1},
    }
    assert "validation_fold" not in params["data_processing"]["split"]  # not mutated


@pytest.mark.slow
def test_accuracy_command_cross_validates_through_kedro(
    demo_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One fold on generated data: the fold reaches data_processing's split through the
    stage's --params (stages run in this process; the child is tested above).
    (The order of stages over several folds is checked without Kedro, below.)"""
    import sys

    import pandas as pd

    monkeypatch.setitem(accuracy.SETTINGS, "test", "test")
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    work, results = tmp_path / "work", tmp_path / "results"
    _stages_in_this_process(monkeypatch)
    argv = ["accuracy.py", "--setting", "test", "--folds", "3", "--seeds", "2"]
    argv += ["--data", str(demo_raw_dir), "--work-dir", str(work), "--results-dir", str(results)]
    argv += ["--params", "contrastive_pretraining.enabled=false"]
    monkeypatch.setattr(sys, "argv", argv)
    accuracy.main()

    folder = results / "accuracy" / "test-cv"
    assert sorted(p.name for p in folder.iterdir()) == ["fold3.json"]
    record = json.loads((folder / "fold3.json").read_text())
    assert record["fold"] == 3 and record["seed"] == 2
    assert [s["pipeline"] for s in record["stages"]] == [
        "data_processing",
        *accuracy.TRAINING_PIPELINES,
    ]
    assert "data_processing.split.validation_fold" not in record["overrides"]
    # The fold's split is on disk: fold 3 validates, the others train.
    splits = pd.read_parquet(
        work / "test-cv" / "data" / "test" / "05_model_input" / "splits.parquet"
    )
    assert set(splits.loc[splits["fold"] == 3, "split"]) == {"val"}
    assert set(splits.loc[splits["fold"].isin([0, 1, 2, 4]), "split"]) == {"train"}
    summary = json.loads((results / "accuracy-test-cv.json").read_text())
    assert summary["folds"] == [3] and summary["seeds"] == [2]


@pytest.mark.slow
def test_accuracy_command_draws_other_splits_through_kedro(
    demo_raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One split draw on generated data: the split seed reaches data_processing's split
    through the stage's --params (stages run in this process), and the training stages
    accept the splits it drew (they check them against it). (The order of stages over
    several draws is checked without Kedro, below.)"""
    import sys

    monkeypatch.setitem(accuracy.SETTINGS, "test", "test")
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    work, results = tmp_path / "work", tmp_path / "results"
    _stages_in_this_process(monkeypatch)
    argv = ["accuracy.py", "--setting", "test", "--split-seeds", "5", "--seeds", "2"]
    argv += ["--data", str(demo_raw_dir), "--work-dir", str(work), "--results-dir", str(results)]
    argv += ["--params", "contrastive_pretraining.enabled=false"]
    monkeypatch.setattr(sys, "argv", argv)
    accuracy.main()

    folder = results / "accuracy" / "test-splits"
    assert sorted(p.name for p in folder.iterdir()) == ["split5.json"]
    record = json.loads((folder / "split5.json").read_text())
    assert record["split_seed"] == 5 and record["seed"] == 2
    assert [s["pipeline"] for s in record["stages"]] == [
        "data_processing",
        *accuracy.TRAINING_PIPELINES,
    ]
    assert accuracy.SPLIT_SEED_KEY not in record["overrides"]
    # The split on disk was drawn with seed 5, not the training seed 2 or the default 42.
    model_input = work / "test-splits" / "data" / "test" / "05_model_input"
    summary = json.loads((model_input / "split_summary.json").read_text())
    assert summary["settings"]["seed"] == 5
    assert "hashed from (seed 5, lesion_id)" in summary["protocol"]
    result = json.loads((results / "accuracy-test-splits.json").read_text())
    assert result["split_seeds"] == [5] and result["seeds"] == [2]
    table = (results / "accuracy-test-splits.md").read_text()
    assert "split draws [5] (`data_processing.split.seed`" in table


class _Calls(list):
    """The stages the stand-in ran, and the encoder each classifier_training started from."""

    def __init__(self) -> None:
        super().__init__()
        self.encoders: list = []
        self.split_seeds: list = []  # data_processing.split.seed each stage saw

    def clear(self) -> None:
        super().clear()
        self.encoders.clear()
        self.split_seeds.clear()


def _fake_kedro(monkeypatch: pytest.MonkeyPatch, kill_at: tuple | None = None) -> list:
    """Replace the Kedro stages by a stand-in that records each call and writes the files the
    command reads back; ``kill_at=(pipeline, seed)`` dies there once, as a killed run would."""
    calls = _Calls()
    killed: list = []

    def fake_stage(project: Path, env: str, pipeline: str, params: dict, out: Path) -> dict:
        fold = params.get("data_processing", {}).get("split", {}).get("validation_fold")
        if kill_at is not None and kill_at == (pipeline, params.get("seed", fold)) and not killed:
            killed.append(pipeline)
            raise _Killed(pipeline)
        calls.append((pipeline, params.get("seed"), fold))
        calls.split_seeds.append(params.get("data_processing", {}).get("split", {}).get("seed"))
        folder = accuracy.data_dir(project, env)
        (folder / "08_reporting").mkdir(parents=True, exist_ok=True)
        (folder / accuracy.KEPT[0]).parent.mkdir(parents=True, exist_ok=True)
        (folder / "08_reporting" / "test_metrics.json").write_text(json.dumps(_metrics(0.7)))
        if pipeline == "classifier_training":
            (folder / accuracy.KEPT[0]).write_text(f"trained seed {params['seed']}")
            # Which encoder the classifier started from (--pretraining-from's copy, or its own).
            encoder = folder / accuracy.PRETRAINING_KEPT[0]
            calls.encoders.append(encoder.read_text() if encoder.exists() else None)
        if pipeline == "contrastive_pretraining":
            for relative in accuracy.PRETRAINING_KEPT:
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_text(f"{project.name} pretrained seed {params['seed']}")
        return {"pipeline": pipeline, "seconds": 1.0, "peak_host_mib": 1.0, "peak_gpu_mib": None}

    monkeypatch.setattr(accuracy, "run_stage", fake_stage)
    monkeypatch.setattr(
        accuracy,
        "validation_summary",
        lambda path, history=None, pretraining_history=None: {
            "balanced_accuracy": 0.7,
            "macro_f1": 0.6,
            "from": path.read_text(),
        },
    )
    monkeypatch.setattr(accuracy, "device_name", lambda: "cpu")
    return calls


def _ham(tmp_path: Path) -> Path:
    data = tmp_path / "ham"
    data.mkdir()
    (data / "HAM10000_metadata.csv").write_text("image_id\n")
    return data


@pytest.mark.parametrize(
    "mode",
    ["seeds", "folds", "split seeds", "rescore seeds", "rescore folds", "rescore split seeds"],
)
def test_the_command_runs_the_stages_each_mode_needs_in_order(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds split once; folds and split draws split again each; a rescore trains nothing.
    Kedro is replaced by a stand-in that records each stage and writes what the command reads
    back."""
    import sys

    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    calls = _fake_kedro(monkeypatch)
    runs = {
        "folds": ["--folds", "1", "3", "--seeds", "2"],
        "split seeds": ["--split-seeds", "7", "4", "--seeds", "2"],
    }.get(mode.removeprefix("rescore "), ["--seeds", "0", "1"])
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data), *runs]
    argv += ["--work-dir", str(work), "--results-dir", str(results)]
    if mode.startswith("rescore"):
        monkeypatch.setattr(sys, "argv", argv)
        accuracy.main()  # the runs to rescore
        calls.clear()
        argv.append("--rescore")
    monkeypatch.setattr(sys, "argv", argv)
    accuracy.main()

    train = [(p, s) for p, s, _ in calls]
    folds = [fold for p, _, fold in calls if p == "data_processing"]
    trained = [*accuracy.TRAINING_PIPELINES]
    expected = {
        "seeds": [("data_processing", None)]
        + [(p, 0) for p in trained]
        + [(p, 1) for p in trained],
        "folds": [("data_processing", None)]
        + [(p, 2) for p in trained]
        + [("data_processing", None)]
        + [(p, 2) for p in trained],
        "rescore seeds": [("data_processing", None), ("reporting", 0), ("reporting", 1)],
        "rescore folds": [("data_processing", None), ("reporting", 2)] * 2,
    }
    expected["split seeds"] = expected["folds"]
    expected["rescore split seeds"] = expected["rescore folds"]
    assert train == expected[mode]
    assert folds == ([1, 3] if "folds" in mode else [None] * len(folds))
    # Every stage of a split draw sees its split seed (the training stages check the splits
    # against it); other runs leave the environment's (null).
    drawn = [7] * (len(calls) // 2) + [4] * (len(calls) // 2) if "split" in mode else []
    assert calls.split_seeds == (drawn or [None] * len(calls))
    name, labels = {
        "folds": ("cpu-quick-cv", [("fold1", 2), ("fold3", 2)]),
        "split seeds": ("cpu-quick-splits", [("split7", 2), ("split4", 2)]),
    }.get(mode.removeprefix("rescore "), ("cpu-quick", [("seed0", 0), ("seed1", 1)]))
    for label, seed in labels:
        record = json.loads((results / "accuracy" / name / f"{label}.json").read_text())
        assert record.get("split_seed") == (int(label[5:]) if "split" in mode else None)
        # Each record's validation is read from its own run's classifier, kept beside it.
        assert record["validation"]["from"] == f"trained seed {seed}"
        kept = work / name / "kept" / label / accuracy.KEPT[0]
        assert kept.read_text() == f"trained seed {seed}"
        assert ("rescored" in record) == mode.startswith("rescore")


@pytest.mark.parametrize(
    ("kill_at", "rerun"),
    [
        # Killed in seed 1's training: seed 0 stays recorded, seed 1 keeps its pretraining
        # and the split; only what did not finish runs again.
        (
            ("classifier_training", 1),
            [("classifier_training", 1, None), ("reporting", 1, None)],
        ),
        # Killed in the split: nothing finished, everything runs.
        (
            ("data_processing", None),
            [("data_processing", None, None)]
            + [(p, s, None) for s in (0, 1) for p in accuracy.TRAINING_PIPELINES],
        ),
        # Killed in seed 0's reporting: its training is not repeated.
        (
            ("reporting", 0),
            [("reporting", 0, None)] + [(p, 1, None) for p in accuracy.TRAINING_PIPELINES],
        ),
    ],
)
def test_resume_finishes_an_interrupted_run_without_repeating_finished_stages(
    kill_at: tuple, rerun: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data), "--seeds", "0", "1"]
    argv += ["--work-dir", str(work), "--results-dir", str(results)]
    calls = _fake_kedro(monkeypatch, kill_at)
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(_Killed):
        accuracy.main()
    folder = results / "accuracy" / "cpu-quick"
    before = {p.name: p.read_text() for p in folder.glob("*.json")} if folder.exists() else {}
    interrupted = list(calls)

    calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    accuracy.main()

    assert calls == rerun
    for name, text in before.items():  # a seed recorded before the kill is kept as it was
        assert (folder / name).read_text() == text
    records = {k: json.loads((folder / f"seed{k}.json").read_text()) for k in (0, 1)}
    # Each record lists every stage of its seed once, in order, and names the carried ones.
    for seed, record in records.items():
        pipelines = [s["pipeline"] for s in record["stages"]]
        expected = ["data_processing"] if seed == 0 else []
        assert pipelines == [*expected, *accuracy.TRAINING_PIPELINES]
        carried = [
            p for p, s, _ in interrupted if s == seed or (p == "data_processing" and seed == 0)
        ]
        if f"seed{seed}.json" in before or not carried:
            assert "resumed" not in record
        else:
            assert record["resumed"] == carried
        assert record["validation"]["from"] == f"trained seed {seed}"
    # The whole run is now recorded: resuming again runs nothing.
    calls.clear()
    accuracy.main()
    assert calls == []


def test_resume_of_split_draws_keeps_the_cut_draws_split_and_makes_the_next_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in the first draw's classifier: resuming trains that draw on the split it made
    (not made again), then makes and trains the second draw's."""
    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data)]
    argv += ["--split-seeds", "7", "4", "--seeds", "2"]
    argv += ["--work-dir", str(work), "--results-dir", str(results)]
    calls = _fake_kedro(monkeypatch, ("classifier_training", 2))
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(_Killed):
        accuracy.main()
    assert calls.split_seeds == [7, 7]  # data_processing and SupCon of draw 7 finished
    calls.clear()
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    accuracy.main()
    trained = list(accuracy.TRAINING_PIPELINES)
    assert [p for p, _, _ in calls] == [*trained[1:], "data_processing", *trained]
    assert calls.split_seeds == [7, 7, 4, 4, 4, 4]
    folder = results / "accuracy" / "cpu-quick-splits"
    record = json.loads((folder / "split7.json").read_text())
    assert record["resumed"] == ["data_processing", "contrastive_pretraining"]
    assert [s["pipeline"] for s in record["stages"]] == ["data_processing", *trained]
    assert json.loads((folder / "split4.json").read_text())["split_seed"] == 4


def test_resume_refuses_what_an_interrupted_run_of_other_code_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data), "--seeds", "0", "1"]
    argv += ["--work-dir", str(work), "--results-dir", str(results)]
    calls = _fake_kedro(monkeypatch, ("reporting", 1))
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(_Killed):
        accuracy.main()
    calls.clear()
    # Other code since: neither the half-run seed's outputs nor the recorded seed are its.
    monkeypatch.setattr(accuracy, "code_record", lambda: {"commit": "other"})
    monkeypatch.setattr(sys, "argv", [*argv, "--resume"])
    with pytest.raises(SystemExit, match=r"progress\.json was left by a run with other code"):
        accuracy.main()
    (work / "cpu-quick" / accuracy.PROGRESS).unlink()
    with pytest.raises(SystemExit, match=r"seed0\.json was recorded with other code"):
        accuracy.main()
    assert calls == []
    monkeypatch.setattr(sys, "argv", [*argv, "--resume", "--rescore"])
    with pytest.raises(SystemExit, match="--rescore trains nothing"):
        accuracy.main()


def test_compare_pairs_cross_validation_ablations_fold_by_fold(tmp_path: Path) -> None:
    for fold, balanced in enumerate([0.70, 0.60, 0.80]):
        _write_seed(tmp_path, 0, balanced, name="cpu-quick-cv", fold=fold, val=0.6)
    _write_seed(tmp_path, 0, 0.75, name="cpu-quick-cross-entropy-cv", fold=0, val=0.62)
    _write_seed(tmp_path, 0, 0.78, name="cpu-quick-cross-entropy-cv", fold=2, val=0.63)
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick")  # a seed baseline with no ablation
    (result,) = accuracy.compare_all("cpu-quick", tmp_path)
    row = result["ablations"][0]
    assert row["ablation"] == "cross-entropy" and row["folds"] == [0, 2]
    assert row["balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.05, -0.02])
    assert row["val_balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.02, 0.03])
    assert result["baseline_folds"] == [0, 1, 2] and result["training_seed"] == [0]
    table = (tmp_path / "accuracy-cpu-quick-cv-ablations.md").read_text()
    assert "paired by fold" in table and "| ablation | folds |" in table
    assert "| cross-entropy | 0, 2 | 0.765 (+0.015; [+0.050, -0.020])" in table
    assert "Fold-to-fold spread of cpu-quick itself (sd over folds [0, 1, 2])" in table
    assert json.loads((tmp_path / "accuracy-cpu-quick-cv-ablations.json").read_text()) == result
    # The seed runs have no ablation, so no seed table was written.
    assert not (tmp_path / "accuracy-cpu-quick-ablations.md").exists()


def test_compare_all_runs_each_kind_present_and_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"nothing to compare.*cpu-quick-<ablation>-cv/"):
        accuracy.compare_all("cpu-quick", tmp_path)
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cv", fold=0)
    with pytest.raises(SystemExit, match="nothing to compare"):
        accuracy.compare_all("cpu-quick", tmp_path)  # a baseline alone
    _write_seed(tmp_path, 0, 0.6, name="cpu-quick-weighted-sampling-cv", fold=0)
    assert [r["unit"] for r in accuracy.compare_all("cpu-quick", tmp_path)] == ["fold"]
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick")
    _write_seed(tmp_path, 1, 0.6, name="cpu-quick-weighted-sampling")
    assert [r["unit"] for r in accuracy.compare_all("cpu-quick", tmp_path)] == ["seed", "fold"]


def test_compare_refuses_folds_trained_with_different_seeds(tmp_path: Path) -> None:
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cv", fold=1)
    _write_seed(tmp_path, 3, 0.7, name="cpu-quick-no-metadata-fusion-cv", fold=1)
    with pytest.raises(SystemExit, match=r"fold 1 differs from cpu-quick-cv in 'seed' \(3 vs 0\)"):
        accuracy.compare("cpu-quick", tmp_path, cv=True)
    # A seed run filed under a -cv name is not a cross-validation run.
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cross-entropy-cv")
    with pytest.raises(SystemExit, match="holds no fold results"):
        accuracy.compare("cpu-quick", tmp_path, cv=True)


def test_runs_scored_before_tta_consistent_reporting_are_named(tmp_path: Path) -> None:
    """A report without the operating point's TTA fitted its threshold on single-view val."""
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick")  # an old report
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick", tta="flips")
    result = accuracy.aggregate("cpu-quick", tmp_path)
    assert result["single_view_threshold"] == [0]
    table = (tmp_path / "accuracy-cpu-quick.md").read_text()
    assert "Seeds [0]: the melanoma threshold (and its temperature) fitted on single-view" in table
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick-cross-entropy", tta="flips")
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy")
    compared = accuracy.compare("cpu-quick", tmp_path)
    assert compared["single_view_threshold"] == {
        "cpu-quick": [0],
        "cpu-quick-cross-entropy": [1],
    }
    table = (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()
    assert (
        "mel_sensitivity_threshold of cpu-quick seeds [0]; cpu-quick-cross-entropy seeds [1]"
        in table
    )
    # Neither seed shares its protocol: no threshold change is taken, the others are.
    row = compared["ablations"][0]
    assert row["mel_sensitivity_threshold"] is None
    assert row["balanced_accuracy"]["delta_per_seed"] == [0.0, 0.0]
    assert "not comparable (reporting protocols differ)" in table
    # Seed 1 shares it once the ablation's seed 1 is rescored: the change is on seed 1 only.
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy", tta="flips")
    row = accuracy.compare("cpu-quick", tmp_path)["ablations"][0]
    assert row["mel_sensitivity_threshold"]["seeds"] == [1]
    assert len(row["mel_sensitivity_threshold"]["delta_per_seed"]) == 1
    table = (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()
    assert "on seed 1 only" in table
    # Every run scored the new way: no note.
    _write_seed(tmp_path, 0, 0.7, name="cpu-quick", tta="none")
    _write_seed(tmp_path, 1, 0.7, name="cpu-quick-cross-entropy", tta="none")
    assert accuracy.aggregate("cpu-quick", tmp_path)["single_view_threshold"] == []
    assert accuracy.compare("cpu-quick", tmp_path)["single_view_threshold"] == {}
    assert "single-view" not in (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()


def test_the_throwaway_project_keeps_the_telemetry_refusal(tmp_path: Path) -> None:
    project = accuracy.make_project(tmp_path / "run", "cpu_quick")

    assert (project / ".telemetry").read_text().strip() == "consent: false"
    assert (project / "conf" / "cpu_quick").is_dir() and (project / "pyproject.toml").is_file()


def _pretraining_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """A fake-Kedro ``cpu-quick`` run of seeds 0 and 1 (the source), and the argv of its
    ``cross-entropy`` ablation taking its pretraining."""
    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    calls = _fake_kedro(monkeypatch)
    common = ["--data", str(data), "--seeds", "0", "1"]
    common += ["--work-dir", str(work), "--results-dir", str(results)]
    monkeypatch.setattr(sys, "argv", ["accuracy.py", "--setting", "cpu-quick", *common])
    accuracy.main()
    calls.clear()
    argv = ["accuracy.py", "--setting", "cpu-quick", "--ablation", "cross-entropy", *common]
    return calls, [*argv, "--pretraining-from", "cpu-quick"]


def test_pretraining_from_takes_each_seeds_encoder_instead_of_training_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, argv = _pretraining_run(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "argv", argv)
    accuracy.main()

    # No SupCon stage; each seed's classifier starts from the source's encoder of that seed.
    assert [c[0] for c in calls] == ["data_processing"] + [
        "classifier_training",
        "reporting",
    ] * 2
    assert calls.encoders == ["cpu-quick pretrained seed 0", "cpu-quick pretrained seed 1"]
    results = tmp_path / "results"
    for seed in (0, 1):
        record = json.loads(
            (results / "accuracy/cpu-quick-cross-entropy" / f"seed{seed}.json").read_text()
        )
        assert record["pretraining_from"] == f"cpu-quick/seed{seed}"
        assert "contrastive_pretraining" not in [s["pipeline"] for s in record["stages"]]
    summary = (results / "accuracy-cpu-quick-cross-entropy.md").read_text()
    assert "SupCon pretraining not trained in this run for seeds [0, 1]" in summary
    assert "`cpu-quick` (`--pretraining-from`)" in summary
    assert "| contrastive_pretraining |" not in summary
    # Without the flag the ablation trains its own, and says nothing of a source.
    calls.clear()
    monkeypatch.setattr(sys, "argv", argv[:-2])
    accuracy.main()
    assert [c[0] for c in calls].count("contrastive_pretraining") == 2
    assert (
        "not trained in this run"
        not in (results / "accuracy-cpu-quick-cross-entropy.md").read_text()
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # An override the split or SupCon reads: the source's encoder is not this run's.
        (
            ["--params", "contrastive_pretraining.epochs=3"],
            "contrastive_pretraining.epochs changes",
        ),
        (["--params", "data_processing.split.seed=7"], "data_processing.split.seed changes"),
        # A seed the source never ran.
        (["--seeds", "0", "5"], "no record .*seed5.json; run cpu-quick for seed5 first"),
        (["--rescore"], "--rescore trains nothing"),
    ],
)
def test_pretraining_from_refuses_what_it_cannot_reuse(
    change: list, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, argv = _pretraining_run(tmp_path, monkeypatch)
    if change[0] == "--seeds":
        at = argv.index("--seeds")
        argv = [*argv[:at], *change, *argv[at + 3 :]]
    else:
        argv = [*argv, *change]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=message):
        accuracy.main()
    assert calls == []


def test_pretraining_from_refuses_a_source_of_other_code_or_without_its_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, argv = _pretraining_run(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(accuracy, "code_record", lambda: {"commit": "other"})
    with pytest.raises(SystemExit, match=r"seed0\.json ran other code \(src_tree '.*not this"):
        accuracy.main()
    monkeypatch.undo()
    calls = _fake_kedro(monkeypatch)
    monkeypatch.setattr(sys, "argv", argv)
    encoder = tmp_path / "work/cpu-quick/kept/seed1" / accuracy.PRETRAINING_KEPT[0]
    encoder.unlink()
    with pytest.raises(SystemExit, match=r"seed1 lacks 06_models/pretrained_encoder\.pt"):
        accuracy.main()
    monkeypatch.setattr(sys, "argv", [*argv[:-1], "cpu-quick-cross-entropy"])
    with pytest.raises(SystemExit, match="that is this run itself"):
        accuracy.main()
    assert calls == []


def test_pretraining_from_takes_a_source_of_another_commit_with_the_same_src_and_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that touched only documentation (or another environment's files) does not stop
    the reuse; other src, an uncommitted src change or another SupCon parameter does."""
    calls, argv = _pretraining_run(tmp_path, monkeypatch)
    path = tmp_path / "results/accuracy/cpu-quick/seed0.json"
    record = json.loads(path.read_text())
    code = record["code"] or {"src_tree": "s", "conf_tree": "c", "changed": 0, "changes": []}
    docs_only = {**code, "commit": "d" * 40, "conf_tree": "another", "changed": 0, "changes": []}
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(accuracy, "code_record", lambda: {**docs_only, "commit": "e" * 40})
    for seed in (0, 1):
        source = tmp_path / f"results/accuracy/cpu-quick/seed{seed}.json"
        source.write_text(json.dumps({**json.loads(source.read_text()), "code": docs_only}))
    accuracy.main()
    assert calls.encoders == ["cpu-quick pretrained seed 0", "cpu-quick pretrained seed 1"]
    refusals = [
        ({"src_tree": "other"}, None, r"seed0\.json ran other code \(src_tree 'other'"),
        (
            {"changed": 1, "changes": [" M src/skin_lesion/pretraining.py"]},
            None,
            r"uncommitted changes under src \( M src/skin_lesion/pretraining\.py\)",
        ),
        (
            {},
            {"contrastive_pretraining.temperature": 0.5},
            r"ran other parameters \(recorded: contrastive_pretraining\.temperature 0\.5 there",
        ),
    ]
    for change, parameters, message in refusals:
        saved = json.loads(path.read_text())
        changed = {**saved, "code": {**docs_only, **change}}
        if parameters:
            changed["parameters"] = {**saved["parameters"], **parameters}
        path.write_text(json.dumps(changed))
        with pytest.raises(SystemExit, match=message):
            accuracy.main()
        path.write_text(json.dumps(saved))
    # A classifier parameter of the source's own is no reason to refuse its encoder.
    saved = json.loads(path.read_text())
    other = {**saved["parameters"], "classifier_training.finetune.epochs": 99}
    path.write_text(json.dumps({**saved, "parameters": other}))
    accuracy.main()


def test_records_and_summary_give_test_recall_per_class(tmp_path: Path) -> None:
    """What balanced accuracy averages, class by class: where a shortfall comes from."""
    for seed, recalls in enumerate([(0.2, 0.9), (0.4, 0.7)]):
        metrics = _metrics(0.6)
        metrics["test"]["per_class"] = {
            name: {"precision": 0.5, "recall": recall, "f1": 0.4, "support": n, "auc": 0.9}
            for name, recall, n in zip(("df", "nv"), recalls, (12, 800))
        }
        metrics["test"]["confusion_matrix"] = [[1, 2], [3, 4]]
        summary = accuracy.seed_summary(metrics)
        assert summary["per_class"]["df"] == {
            "recall": recalls[0],
            "precision": 0.5,
            "f1": 0.4,
            "support": 12,
        }
        assert summary["confusion_matrix"] == [[1, 2], [3, 4]]
        _write_seed(tmp_path, seed, 0.6)
        path = tmp_path / "accuracy" / "run" / f"seed{seed}.json"
        record = json.loads(path.read_text())
        record["metrics"] = summary
        path.write_text(json.dumps(record))
    result = accuracy.aggregate("run", tmp_path)
    assert result["per_class_recall"]["df"]["mean"] == pytest.approx(0.3)
    assert result["per_class_recall"]["nv"]["per_seed"] == [0.9, 0.7]
    table = (tmp_path / "accuracy-run.md").read_text()
    assert (
        "Test recall per class, mean over the seeds (test images): df 0.300 (12), nv 0.800 (800)."
        in table
    )
    # A seed from before per-class figures: no line rather than a mean over some seeds.
    _write_seed(tmp_path, 2, 0.6)
    result = accuracy.aggregate("run", tmp_path)
    assert result["per_class_recall"] == {}
    assert "recall per class" not in (tmp_path / "accuracy-run.md").read_text()


def test_a_run_started_beside_others_says_so_in_its_records_and_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, results, data = tmp_path / "work", tmp_path / "results", _ham(tmp_path)
    _fake_kedro(monkeypatch)
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data)]
    argv += ["--work-dir", str(work), "--results-dir", str(results)]
    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "0"])
    accuracy.main()  # alone: nothing said
    seed0 = json.loads((results / "accuracy/cpu-quick/seed0.json").read_text())
    assert "concurrent" not in seed0
    assert "runs started together" not in (results / "accuracy-cpu-quick.md").read_text()

    monkeypatch.setattr(sys, "argv", [*argv, "--seeds", "1", "--concurrent", "4"])
    accuracy.main()
    seed1 = json.loads((results / "accuracy/cpu-quick/seed1.json").read_text())
    assert seed1["concurrent"] == 4
    summary = (results / "accuracy-cpu-quick.md").read_text()
    assert "Wall times of seeds [1] were measured with up to 4 runs started together" in summary
    assert json.loads((results / "accuracy-cpu-quick.json").read_text())["concurrent"] == {"1": 4}


def test_concurrent_must_count_at_least_this_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _ham(tmp_path)
    argv = ["accuracy.py", "--setting", "cpu-quick", "--data", str(data), "--concurrent", "0"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="--concurrent 0: expected 1 or more"):
        accuracy.main()


@pytest.mark.parametrize(
    ("selected", "words"),
    [
        ({"phase": "warmup", "epoch": 0, "ema": False}, "warm-up epoch 0"),
        ({"phase": "finetune", "epoch": 5, "ema": True}, "fine-tuning epoch 5 (EMA)"),
        ({}, "not recorded"),
    ],
)
def test_kept_epoch_in_words(selected: dict, words: str) -> None:
    assert accuracy.kept_epoch(selected) == words


def test_summary_names_the_epoch_each_seed_kept(tmp_path: Path) -> None:
    for seed, phase in ((0, "warmup"), (1, "finetune")):
        _write_seed(tmp_path, seed, 0.7, val=0.6)
        path = tmp_path / "accuracy/run" / f"seed{seed}.json"
        record = json.loads(path.read_text())
        record["validation"]["selected"] = {"phase": phase, "epoch": 2 * seed, "ema": seed == 1}
        path.write_text(json.dumps(record))
    result = accuracy.aggregate("run", tmp_path)
    assert result["kept_epochs"]["0"]["phase"] == "warmup"
    summary = (tmp_path / "accuracy-run.md").read_text()
    assert (
        "Epoch kept on validation, by seed: 0 warm-up epoch 0; 1 fine-tuning epoch 2 (EMA)."
        in summary
    )
    # Records without the choice (``selected`` empty) say nothing of it.
    _write_seed(tmp_path, 0, 0.7, val=0.6, name="old")
    assert "Epoch kept" not in accuracy.markdown("old", accuracy.aggregate("old", tmp_path))


def test_summary_gives_each_seeds_supcon_knn_monitor(tmp_path: Path) -> None:
    curves = {0: [0.30, 0.45, 0.41], 1: [None, 0.38, 0.52]}  # seed 1 scored every 2nd epoch
    for seed, curve in curves.items():
        _write_seed(tmp_path, seed, 0.7, val=0.6)
        path = tmp_path / "accuracy/run" / f"seed{seed}.json"
        record = json.loads(path.read_text())
        record["validation"]["pretraining_epochs"] = [
            {"epoch": e, "loss": 5.0 - e, "val_knn_balanced_accuracy": v}
            for e, v in enumerate(curve)
        ]
        path.write_text(json.dumps(record))
    result = accuracy.aggregate("run", tmp_path)
    assert result["supcon_knn"]["0"] == {"last": 0.41, "best": 0.45, "best_epoch": 2, "epochs": 3}
    assert result["supcon_knn"]["1"] == {"last": 0.52, "best": 0.52, "best_epoch": 3, "epochs": 3}
    summary = (tmp_path / "accuracy-run.md").read_text()
    assert (
        "SupCon validation kNN balanced accuracy (the pretraining monitor), by seed: "
        "0 0.410 after epoch 3 (best 0.450, epoch 2); 1 0.520 after epoch 3 (best 0.520, "
        "epoch 3)." in summary
    )
    # SupCon off (no epochs) or not monitored: nothing said.
    assert accuracy.supcon_knn([]) is None
    assert accuracy.supcon_knn([{"epoch": 0, "loss": 1.0}]) is None
    _write_seed(tmp_path, 0, 0.7, val=0.6, name="old")
    assert "kNN" not in accuracy.markdown("old", accuracy.aggregate("old", tmp_path))


def test_validation_summary_keeps_the_pretraining_monitor(tmp_path: Path) -> None:
    import torch

    torch.save(
        {"metrics": {"val": {"balanced_accuracy": 0.6, "macro_f1": 0.5}}, "selected": {}},
        tmp_path / "classifier.pt",
    )
    history = [
        {"epoch": 0, "loss": 4.0, "lr": 0.1, "val_knn_balanced_accuracy": 0.3, "knn_seconds": 2},
        {"epoch": 1, "loss": 3.5, "lr": 0.05},
    ]
    (tmp_path / "pretraining_history.json").write_text(json.dumps(history))
    summary = accuracy.validation_summary(
        tmp_path / "classifier.pt", None, tmp_path / "pretraining_history.json"
    )
    assert summary["pretraining_epochs"] == [
        {"epoch": 0, "loss": 4.0, "val_knn_balanced_accuracy": 0.3, "val_knn_macro_f1": None},
        {"epoch": 1, "loss": 3.5, "val_knn_balanced_accuracy": None, "val_knn_macro_f1": None},
    ]
    assert "pretraining_epochs" not in accuracy.validation_summary(tmp_path / "classifier.pt")


def test_compare_runs_pairs_any_two_runs_and_names_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare-runs: seed-by-seed pairs of two named runs, the table naming each parameter
    (and the code) that differs, and a refusal where the pair is not one."""
    base_p = {"contrastive_pretraining.epochs": 2, "seed": 42}
    longer = {"contrastive_pretraining.epochs": 3, "seed": 42, "new.key": 1}
    code = {"commit": "a" * 40, "src_tree": "1" * 40}
    for seed, (ours, theirs) in enumerate([(0.72, 0.70), (0.69, 0.71), (0.75, 0.70)]):
        _write_seed(
            tmp_path, seed, theirs, name="base", val=theirs - 0.01, code=code, parameters=base_p
        )
        _write_seed(tmp_path, seed, ours, name="supcon-3ep", val=ours, code=code, parameters=longer)
    _write_seed(tmp_path, 7, 0.9, name="supcon-3ep", val=0.9, parameters=longer)  # unpaired
    monkeypatch.setattr(
        sys,
        "argv",
        ["accuracy.py", "--compare-runs", "base", "supcon-3ep", "--results-dir", str(tmp_path)],
    )
    accuracy.main()
    table = capsys.readouterr().out
    result = json.loads((tmp_path / "accuracy-supcon-3ep-vs-base.json").read_text())
    (row,) = result["ablations"]
    assert row["seeds"] == [0, 1, 2] and row["run"] == "supcon-3ep"
    assert row["ablation"] == "contrastive_pretraining.epochs 2 -> 3; new.key unset -> 1"
    assert row["balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.02, -0.02, 0.05])
    assert row["val_balanced_accuracy"]["delta_per_seed"] == pytest.approx([0.03, -0.01, 0.06])
    assert result["setting"] == "base"
    assert "**supcon-3ep against base** on cpu" in table
    assert "| parameters changed | seeds |" in table
    assert "| contrastive_pretraining.epochs 2 -> 3; new.key unset -> 1 | 0, 1, 2 | 0.720" in table
    assert table.strip() == (tmp_path / "accuracy-supcon-3ep-vs-base.md").read_text().strip()

    # A code change is a change, named by its commits.
    other = {"commit": "b" * 40, "src_tree": "2" * 40}
    _write_seed(tmp_path, 1, 0.71, name="base", val=0.70, code=other, parameters=base_p)
    with pytest.raises(SystemExit, match=r"differ from base in different ways"):
        accuracy.compare_runs("base", "supcon-3ep", tmp_path)
    for seed in (0, 2):
        _write_seed(tmp_path, seed, 0.70, name="base", val=0.69, code=other, parameters=base_p)
    (row,) = accuracy.compare_runs("base", "supcon-3ep", tmp_path)["ablations"]
    assert row["ablation"].startswith("code (src/) bbbbbbb -> aaaaaaa; contrastive_")

    # Not a pair: another device, another split, no run, no seed in common.
    _write_seed(tmp_path, 0, 0.7, name="gpu", device="NVIDIA H200", parameters=longer)
    with pytest.raises(SystemExit, match=r"gpu seed 0 differs from base in 'device'"):
        accuracy.compare_runs("base", "gpu", tmp_path)
    _write_seed(tmp_path, 0, 0.7, name="resplit", val=0.6, split="cc" * 32)
    _write_seed(tmp_path, 0, 0.7, name="base-split", val=0.6, split="dd" * 32)
    with pytest.raises(SystemExit, match=r"another split than base-split"):
        accuracy.compare_runs("base-split", "resplit", tmp_path)
    with pytest.raises(SystemExit, match=r"no seed, fold or split results under .*missing"):
        accuracy.compare_runs("base", "missing", tmp_path)
    _write_seed(tmp_path, 9, 0.7, name="elsewhere")
    with pytest.raises(SystemExit, match=r"elsewhere's seeds \[9\] share none with base's"):
        accuracy.compare_runs("base", "elsewhere", tmp_path)


def test_a_comparison_names_the_code_of_its_runs_and_says_when_they_differ(
    tmp_path: Path,
) -> None:
    """An ablation run at a later code paired with the setting's records at an earlier one
    must show in the table, not only in each run's own summary."""
    old = {"commit": "a" * 40, "src_tree": "s1", "conf_tree": "c1", "changed": 0}
    new = {"commit": "b" * 40, "src_tree": "s2", "conf_tree": "c1", "changed": 0}
    for seed in (0, 1):
        _write_seed(tmp_path, seed, 0.7, name="cpu-quick", code=old)
        _write_seed(tmp_path, seed, 0.72, name="cpu-quick-cross-entropy", code=old)
    result = accuracy.compare("cpu-quick", tmp_path)
    assert result["code_line"] == "Code: every run, commit `aaaaaaaaaa`."
    for seed in (0, 1):
        _write_seed(tmp_path, seed, 0.72, name="cpu-quick-cross-entropy", code=new)
    accuracy.compare("cpu-quick", tmp_path)
    table = (tmp_path / "accuracy-cpu-quick-ablations.md").read_text()
    assert table.rstrip().endswith(
        "Code, by run: cpu-quick: commit `aaaaaaaaaa`. "
        "cpu-quick-cross-entropy: commit `bbbbbbbbbb`."
    )


def test_aggregate_gives_a_t_interval_of_the_mean_over_the_runs(tmp_path: Path) -> None:
    """Student's t over the runs (t 4.303 for 3 seeds: 0.7 ± 4.303 * 0.1 / sqrt(3)), cut at
    0 and 1, none for one run, and over folds with the caveat that folds are not independent."""
    for seed, balanced in enumerate([0.6, 0.7, 0.8]):
        _write_seed(tmp_path, seed, balanced)
    result = accuracy.aggregate("run", tmp_path)
    assert result["metrics"]["balanced_accuracy"]["mean_ci95_t"] == pytest.approx(
        [0.4516, 0.9484], abs=1e-4
    )
    table = (tmp_path / "accuracy-run.md").read_text()
    assert (
        "95% t-interval of the mean over the 3 seeds, from their spread alone; each seed's own "
        "test interval comes on top: balanced_accuracy [0.452, 0.948]; "
    ) in table
    assert "not independent" not in table
    # Two far-apart seeds: the interval is cut at 0 and 1, and says so.
    for seed, balanced in enumerate([0.1, 0.9]):
        _write_seed(tmp_path, seed, balanced, name="wide")
    wide = accuracy.aggregate("wide", tmp_path)
    assert wide["metrics"]["balanced_accuracy"]["mean_ci95_t"] == [0.0, 1.0]
    assert (
        "(cut at 0 and 1): balanced_accuracy [0.000, 1.000]"
        in (tmp_path / "accuracy-wide.md").read_text()
    )
    _write_seed(tmp_path, 0, 0.7, name="one")
    one = accuracy.aggregate("one", tmp_path)
    assert "mean_ci95_t" not in one["metrics"]["balanced_accuracy"]
    assert "t-interval" not in (tmp_path / "accuracy-one.md").read_text()
    for fold, balanced in enumerate([0.6, 0.7, 0.8]):
        _write_seed(tmp_path, 0, balanced, name="run-cv", fold=fold)
    accuracy.aggregate("run-cv", tmp_path)
    assert (
        "over the 3 folds, from their spread alone (folds share training images: not "
        in (tmp_path / "accuracy-run-cv.md").read_text()
    )


def test_compare_spread_tests_whether_one_run_spreads_more_than_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--compare-spread: the variance ratio of two runs' figures and its one-sided F-test p
    (the README's split draws against seeds: F = 2.14 on 4 and 2 degrees of freedom, p = 0.34),
    and refusals where the spreads do not compare."""
    draws = [0.6968, 0.6559, 0.6272, 0.6939, 0.6953]
    seeds = [0.6953, 0.6951, 0.6583]
    for k, balanced in zip([1, 2, 3, 4, 42], draws):
        _write_seed(tmp_path, 0, balanced, name="draws", split_seed=k)
    for seed, balanced in enumerate(seeds):
        _write_seed(tmp_path, seed, balanced, name="seeds")
    monkeypatch.setattr(
        sys,
        "argv",
        ["accuracy.py", "--compare-spread", "seeds", "draws", "--results-dir", str(tmp_path)],
    )
    accuracy.main()
    table = capsys.readouterr().out
    result = json.loads((tmp_path / "accuracy-spread-draws-vs-seeds.json").read_text())
    row = result["metrics"]["balanced_accuracy"]
    assert row["f"] == pytest.approx(2.14, abs=0.01)
    assert row["p_one_sided"] == pytest.approx(0.343, abs=0.002)
    assert result["degrees_of_freedom"] == [4, 2]
    assert result["f_critical_5pct"] == pytest.approx(19.25, abs=0.01)
    # Identical other figures in every run: no ratio to speak of.
    assert result["metrics"]["macro_f1"]["f"] is None
    assert "draws is 5 split seeds [1, 2, 3, 4, 42] on cpu; seeds is 3 seeds [0, 1, 2]" in table
    assert "p < 0.05 needs F > 19.2" in table
    assert "| balanced_accuracy | 0.021 | 0.031 | 2.14 | 0.34 |" in table
    assert "| macro_f1 | 0.000 | 0.000 | - | - |" in table
    assert table.strip() == (tmp_path / "accuracy-spread-draws-vs-seeds.md").read_text().strip()
    # The other way round, the ratio inverts and p is large.
    reverse = accuracy.compare_spread("draws", "seeds", tmp_path)["metrics"]["balanced_accuracy"]
    assert reverse["f"] == pytest.approx(1 / 2.14, abs=0.01) and reverse["p_one_sided"] > 0.5

    _write_seed(tmp_path, 0, 0.7, name="single")
    with pytest.raises(SystemExit, match=r"single has 1 seed, fold or split result\(s\)"):
        accuracy.compare_spread("seeds", "single", tmp_path)
    with pytest.raises(SystemExit, match=r"missing has 0 seed"):
        accuracy.compare_spread("missing", "seeds", tmp_path)
    for seed in (0, 1):
        _write_seed(tmp_path, seed, 0.7 + seed / 10, name="other-data")
    path = tmp_path / "accuracy" / "other-data" / "seed1.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "data_sha256": "cd" * 32}))
    with pytest.raises(SystemExit, match=r"other-data seed 1 differs from seeds in 'data_sha256'"):
        accuracy.compare_spread("seeds", "other-data", tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["accuracy.py", "--compare-spread", "seeds", "draws", "--seeds", "0"]
    )
    with pytest.raises(SystemExit, match="--compare-spread takes the two run names alone"):
        accuracy.main()


def test_compare_spread_refuses_a_run_against_itself(tmp_path: Path) -> None:
    """The two names keyed one dict: every row was dropped, and an empty table was written
    as the result (F = 1 by definition, no test to make)."""
    for seed, balanced in enumerate([0.6953, 0.6951, 0.6583]):
        _write_seed(tmp_path, seed, balanced, name="seeds")
    with pytest.raises(SystemExit, match="seeds against itself"):
        accuracy.compare_spread("seeds", "seeds", tmp_path)
    assert not list(tmp_path.glob("accuracy-spread-*"))
