import pandas as pd
import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import RawMetadataDataset

CSV = (
    "lesion_id,image_id,dx,dx_type,age,sex,localization\n"
    "HAM_0000118,ISIC_0027419,bkl,histo,80.0,male,scalp\n"
    "HAM_0000119,ISIC_0027420,nv,follow_up,,unknown,back\n"
)


def test_loads_every_cell_as_text_keeping_empty_cells(tmp_path):
    path = tmp_path / "HAM10000_metadata.csv"
    path.write_text(CSV)
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert frame.loc[0, "age"] == "80.0"
    assert frame.loc[1, "age"] == ""
    assert frame.loc[1, "sex"] == "unknown"
    assert all(pd.api.types.is_string_dtype(dtype) for dtype in frame.dtypes)


def test_round_trip(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text(CSV)
    dataset = RawMetadataDataset(filepath=str(path))
    frame = dataset.load()
    copy = RawMetadataDataset(filepath=str(tmp_path / "copy.csv"))
    copy.save(frame)
    assert copy.load().equals(frame)


def test_missing_file_says_where_to_put_ham10000(tmp_path):
    dataset = RawMetadataDataset(filepath=str(tmp_path / "HAM10000_metadata.csv"))
    with pytest.raises(DatasetError, match=r"does not exist.*Kaggle.*raw_dir=.*make demo"):
        dataset.load()
