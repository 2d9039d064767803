"""A matplotlib figure saved as PNG that loads back as the PNG file's bytes."""

from __future__ import annotations

from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.matplotlib import MatplotlibDataset

from skin_lesion.report import PNG_SIGNATURE


class PngFigureDataset(MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` for one figure, with ``load`` returning its PNG bytes.

    kedro-datasets' writer cannot load, so a node that embeds saved figures (the HTML
    report) would need them handed over in memory, and a partial run
    (``--from-nodes build_report``) would have nothing to read. Loading the file itself also
    means the report embeds exactly the PNG on disk. Saving is the parent's (``save_args``
    go to ``Figure.savefig``; the figure is closed afterwards).
    """

    def load(self) -> bytes:
        """The saved PNG's bytes; a clear error if it has not been written yet."""
        path = get_filepath_str(self._get_load_path(), self._protocol)
        if not self._fs.exists(path):
            raise DatasetError(
                f"{path} does not exist: run the node that plots it first "
                f"(kedro run --pipeline reporting)"
            )
        with self._fs.open(path, mode="rb") as file:
            data = file.read()
        if not data.startswith(PNG_SIGNATURE):
            raise DatasetError(
                f"{path} is not a PNG file: set save_args.format to png (or leave it unset "
                f"with a .png file name)"
            )
        return data
