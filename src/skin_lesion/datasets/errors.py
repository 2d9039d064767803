"""The error our datasets raise for input data that is missing or unreadable as given."""

from kedro.io import DatasetError
from kedro.io.core import get_protocol_and_path


class InputDataError(DatasetError):
    """Data a run reads is not where the catalog says, or not readable; the message says why
    and where it should be (an error in the run's input, not in the code)."""


def local_path(path: str, dataset: str) -> str:
    """``path`` as a local path (a ``file://`` URL unwrapped), or an error naming it.

    Our checkpoint, cache and run-folder datasets write through atomic renames and memory
    maps, which need a local file system; ``Path("s3://b/x.pt")`` quietly made a folder
    named ``s3:`` in the working folder instead.
    """
    protocol, local = get_protocol_and_path(str(path))
    if protocol != "file":
        raise DatasetError(
            f"{dataset} reads and writes local files only, got {path!r} ({protocol}://): "
            "give a local path (or file://)"
        )
    return local
