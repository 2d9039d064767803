"""``OptionalTableDataset``: a CSV named at run time, or None."""

import pandas as pd
import pytest
from kedro.io import DatasetError

from skin_lesion.datasets import OptionalTableDataset


def test_no_path_loads_none_and_a_file_loads_as_text(tmp_path) -> None:
    assert OptionalTableDataset(filepath=None).load() is None
    assert OptionalTableDataset(filepath="").load() is None
    assert not OptionalTableDataset(filepath=None).exists()
    csv = tmp_path / "meta.csv"
    csv.write_text("image_id,age,sex\nISIC_1,045,\nISIC_2,,male\n")
    table = OptionalTableDataset(filepath=str(csv)).load()
    # Text as written: a leading zero kept, empty cells empty (not NaN).
    assert table.to_dict("list") == {
        "image_id": ["ISIC_1", "ISIC_2"],
        "age": ["045", ""],
        "sex": ["", "male"],
    }


def test_a_missing_or_unreadable_file_is_named(tmp_path) -> None:
    missing = tmp_path / "absent.csv"
    with pytest.raises(DatasetError, match=r"Inference metadata not found: '.*absent\.csv'"):
        OptionalTableDataset(filepath=str(missing), description="Inference metadata").load()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match=r"'.*empty\.csv' is not a readable CSV"):
        OptionalTableDataset(filepath=str(empty)).load()
    with pytest.raises(DatasetError, match="read-only"):
        OptionalTableDataset(filepath=str(empty)).save(pd.DataFrame())


def test_trailing_commas_are_dropped_and_a_value_past_the_header_is_refused(tmp_path) -> None:
    csv = tmp_path / "meta.csv"
    csv.write_text("image_id,age\nISIC_1,45\nISIC_2,50,\n")
    table = OptionalTableDataset(filepath=str(csv)).load()
    assert table.to_dict("list") == {"image_id": ["ISIC_1", "ISIC_2"], "age": ["45", "50"]}
    csv.write_text("image_id,age\nISIC_1,45,male\nISIC_2,50\n")
    with pytest.raises(
        DatasetError,
        match=r"meta\.csv' line 2: 3 fields but the header has 2; the values \['male'\]",
    ):
        OptionalTableDataset(filepath=str(csv)).load()


def test_a_dataverse_tab_separated_table_reads_like_the_csv(tmp_path) -> None:
    """Harvard Dataverse serves HAM10000_metadata.tab, which data_processing reads too."""
    tab = tmp_path / "HAM10000_metadata.tab"
    tab.write_text('image_id\tage\tsex\tdataset\n"ISIC_1"\t45\t"male"\t"rosendahl"\n')
    table = OptionalTableDataset(filepath=str(tab)).load()
    assert table.to_dict("list") == {
        "image_id": ["ISIC_1"],
        "age": ["45"],
        "sex": ["male"],
        "dataset": ["rosendahl"],
    }


def test_a_file_not_in_utf8_is_refused_naming_its_line(tmp_path) -> None:
    csv = tmp_path / "meta.csv"
    csv.write_bytes("image_id,localization\nISIC_1,back\nISIC_2,épaule\n".encode("cp1252"))
    with pytest.raises(DatasetError, match=r"meta\.csv' is not UTF-8 text: line 3, byte 8 "):
        OptionalTableDataset(filepath=str(csv)).load()
