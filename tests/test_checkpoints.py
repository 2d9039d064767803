import pytest
import torch

from skin_lesion.checkpoints import (
    SUPCON_OFF,
    CheckpointStore,
    describe_encoder_training_device,
    describe_training_device,
    encoder_training_record,
    load_checkpoint,
    save_checkpoint,
    state_fingerprint,
    training_device,
)
from skin_lesion.provenance import cpu_name


def test_save_load_round_trip_weights_only(tmp_path):
    state = {
        "kind": "x",
        "state_dict": {"w": torch.arange(4.0)},
        "epoch": 3,
        "params": {"lr": 0.1, "names": ["a", "b"]},
        "rng": torch.get_rng_state(),
    }
    save_checkpoint(state, tmp_path / "sub" / "c.pt")
    loaded = load_checkpoint(tmp_path / "sub" / "c.pt")
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert loaded["params"] == state["params"] and loaded["epoch"] == 3
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.pt"]
    # The versions it was saved with, added without changing the caller's dict.
    assert loaded["versions"]["torch"] == torch.__version__ and "versions" not in state
    assert set(loaded["versions"]) == {"python", "torch", "timm", "skin_lesion"}


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_missing_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_store_latest_and_clear(tmp_path):
    store = CheckpointStore(tmp_path / "run")
    assert store.latest() is None
    store.save({"epoch": 0, "w": torch.ones(2)})
    store.save({"epoch": 1, "w": torch.zeros(2)})
    assert store.latest()["epoch"] == 1
    store.clear()
    assert store.latest() is None


def test_state_fingerprint_follows_the_weights_across_save_and_load(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    state = {"kind": "classifier", "state_dict": model.state_dict()}
    path = tmp_path / "c.pt"
    save_checkpoint(state, path)
    fingerprint = state_fingerprint(state)
    assert len(fingerprint) == 64 and state_fingerprint(load_checkpoint(path)) == fingerprint
    changed = {k: v.clone() for k, v in model.state_dict().items()}
    changed["0.weight"][0, 0] += 1e-6
    assert state_fingerprint({"state_dict": changed}) != fingerprint
    halved = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    assert state_fingerprint({"state_dict": halved}) != fingerprint  # dtype counts


def test_saved_checkpoints_get_the_umask_permissions(tmp_path) -> None:
    import os
    import stat

    old = os.umask(0o027)
    try:
        save_checkpoint({"x": torch.zeros(1)}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.pt").stat().st_mode) == 0o640


def test_a_replaced_checkpoint_keeps_its_permissions(tmp_path) -> None:
    """As a plain open would: chmod 600 on a checkpoint survives its next save."""
    import stat

    path = tmp_path / "c.pt"
    save_checkpoint({"x": torch.zeros(1)}, path)
    path.chmod(0o600)
    save_checkpoint({"x": torch.ones(1)}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_atomic_writes_reach_the_disk_before_the_rename(tmp_path, monkeypatch) -> None:
    """A power loss after the rename must not leave an empty checkpoint or cache."""
    import os

    from skin_lesion import files

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    files.atomic_write(tmp_path / "x.bin", lambda f: f.write(b"weights"))
    assert (tmp_path / "x.bin").read_bytes() == b"weights"
    assert events == ["fsync file", "rename", "fsync folder"]


def test_atomic_writes_stand_where_the_file_system_offers_no_fsync(tmp_path, monkeypatch) -> None:
    import errno

    from skin_lesion import files

    def no_fsync(fd: int) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(files.os, "fsync", no_fsync)
    files.atomic_write(tmp_path / "x.bin", lambda f: f.write(b"weights"))
    assert (tmp_path / "x.bin").read_bytes() == b"weights"

    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files.os, "fsync", broken_disk)
    with pytest.raises(OSError, match="Input/output error"):
        files.atomic_write(tmp_path / "y.bin", lambda f: f.write(b"weights"))
    assert not (tmp_path / "y.bin").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]


def test_training_device_names_the_gpu_or_the_cpu(monkeypatch):
    assert training_device(torch.device("cpu")) == {"type": "cpu", "name": cpu_name()}
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"GPU of {device}")
    assert training_device(torch.device("cuda:1")) == {"type": "cuda", "name": "GPU of cuda:1"}


def test_training_device_is_described_with_the_torch_it_was_saved_with(tmp_path):
    record = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}
    save_checkpoint({"trained_on": record}, tmp_path / "c.pt")
    described = describe_training_device(load_checkpoint(tmp_path / "c.pt"))
    assert described == f"cuda (NVIDIA H100 80GB HBM3), torch {torch.__version__}"
    assert describe_training_device({"trained_on": record}) == "cuda (NVIDIA H100 80GB HBM3)"
    # A checkpoint from before the device was recorded, or none at all.
    assert describe_training_device({"kind": "classifier", "versions": {}}) == "not recorded"
    assert describe_training_device(None) == "not recorded"


def test_a_classifier_says_where_its_supcon_encoder_was_pretrained(tmp_path):
    """The report named the classifier's device only, not the SupCon encoder's."""
    record = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3"}
    save_checkpoint({"trained_on": record, "history": [{"epoch": 0}]}, tmp_path / "e.pt")
    encoder = load_checkpoint(tmp_path / "e.pt")  # as classifier training reads it
    classifier = {"encoder_trained_on": encoder_training_record(encoder)}
    save_checkpoint(classifier, tmp_path / "c.pt")
    described = describe_encoder_training_device(load_checkpoint(tmp_path / "c.pt"))
    assert described == f"cuda (NVIDIA H100 80GB HBM3), torch {torch.__version__}"
    # SupCon off (or 0 epochs): the initial weights, whose trained_on names a device that
    # trained nothing.
    initial = {"trained_on": record, "history": [], "versions": {"torch": "2.9.1"}}
    assert encoder_training_record(initial) == {"supcon": False}
    off = {"encoder_trained_on": encoder_training_record(initial)}
    assert describe_encoder_training_device(off) == SUPCON_OFF
    assert SUPCON_OFF.startswith("none (contrastive pretraining off")
    # A classifier saved before it recorded this, or an encoder saved before its device was.
    assert describe_encoder_training_device({"trained_on": record}) == "not recorded"
    assert describe_encoder_training_device(None) == "not recorded"
    unrecorded = encoder_training_record({"history": [{"epoch": 0}]})
    assert describe_encoder_training_device({"encoder_trained_on": unrecorded}) == "not recorded"
