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
    assert not dataset.exists()
    with pytest.raises(DatasetError, match=r"HAM10000_metadata.tab' exists.*Kaggle.*make demo"):
        dataset.load()


def test_rows_ending_in_a_comma_keep_their_columns(tmp_path):
    path = tmp_path / "HAM10000_metadata.csv"
    header, *rows = CSV.splitlines()
    path.write_text("\n".join([header, *(row + "," for row in rows)]) + "\n")
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert list(frame["image_id"]) == ["ISIC_0027419", "ISIC_0027420"]
    assert list(frame.index) == [0, 1]


def test_blank_lines_are_read_as_empty_rows_so_row_k_is_line_k_plus_2(tmp_path):
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    path.write_text(f"{header}\n{first}\n\n\n{second}\n")
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert frame.loc[3, "image_id"] == "ISIC_0027420"  # line 5 of the file
    assert (frame.loc[[1, 2]].fillna("") == "").all(axis=None)


@pytest.mark.parametrize("name", ["HAM10000_metadata.tab", "HAM10000_metadata.csv"])
def test_reads_dataverse_tab_separated_metadata(tmp_path, name):
    """Dataverse's default download: tab-separated, quoted, with an extra dataset column;
    found beside the missing .csv, or saved under the .csv name."""
    lines = [line.split(",") for line in CSV.splitlines()]
    tab = "\n".join(
        "\t".join([*(f'"{cell}"' if cell and i else cell for cell in row), extra])
        for i, (row, extra) in enumerate(zip(lines, ["dataset", '"vidir_modern"', '"rosendahl"']))
    )
    (tmp_path / name).write_text(tab + "\n")
    dataset = RawMetadataDataset(filepath=str(tmp_path / "HAM10000_metadata.csv"))
    assert dataset.exists()  # what load reads: the pre-run checks ask exists() first
    assert dataset.read_path().endswith(name)  # the file named in a stale-data message
    frame = dataset.load()
    assert list(frame.columns) == [*CSV.split("\n")[0].split(","), "dataset"]
    assert frame.loc[0, "image_id"] == "ISIC_0027419" and frame.loc[1, "age"] == ""
    assert frame.loc[1, "dataset"] == "rosendahl"


def test_a_trailing_comma_on_some_rows_only_is_read_as_if_absent(tmp_path):
    """pandas fails on a later row with one field more than the first ("Expected 7
    fields"), even when the extra field is empty."""
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    path.write_text(f"{header}\n{first}\n{second},\n")
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert list(frame.columns) == header.split(",")
    assert frame.to_dict("records")[1]["localization"] == "back"


@pytest.mark.parametrize("long_row", [0, 1])
def test_a_value_past_the_last_column_is_refused_naming_the_line(tmp_path, long_row):
    """On the first data row pandas would drop ``extra`` (and every later row's) with only a
    ParserWarning; the error names the line and the value instead."""
    path = tmp_path / "HAM10000_metadata.csv"
    header, *rows = CSV.splitlines()
    rows[long_row] += ",extra"
    path.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(
        DatasetError,
        match=rf"HAM10000_metadata.csv' line {long_row + 2}: 8 fields but the header has 7; "
        r"the values \['extra'\] past the last column would be lost",
    ):
        RawMetadataDataset(filepath=str(path)).load()


def test_a_quoted_separator_is_one_value_not_an_extra_field(tmp_path):
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    path.write_text(f'{header}\n{first[: -len("scalp")]}"scalp, left"\n{second}\n')
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert frame.loc[0, "localization"] == "scalp, left"


def test_a_row_with_fewer_fields_than_the_header_is_refused_naming_the_line(tmp_path):
    """pandas would fill the missing localization with "", read as an unknown site."""
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    path.write_text(f"{header}\n{first}\n\n{second.rsplit(',', 1)[0]}\n")
    with pytest.raises(DatasetError, match=r"line 4: 6 fields but the header has 7"):
        RawMetadataDataset(filepath=str(path)).load()


def test_whitespace_lines_and_a_header_ending_in_a_comma_still_read(tmp_path):
    """Neither is a short row: a blank line (spaces too) is no row, and a header's trailing
    separator names no column a row must reach."""
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    path.write_text(f"{header}\n{first}\n   \n{second}\n")
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert frame.loc[2, "image_id"] == "ISIC_0027420"  # line 4, the spaces read as row 1
    path.write_text(f"{header},\n{first}\n{second},\n")
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert list(frame["image_id"]) == ["ISIC_0027419", "ISIC_0027420"]


def test_a_file_not_in_utf8_is_refused_naming_its_line(tmp_path):
    """A spreadsheet's Windows-1252 export: pandas said only "can't decode byte 0xe9 in
    position N"; the error names the line, the byte and the row."""
    path = tmp_path / "HAM10000_metadata.csv"
    path.write_bytes(CSV.replace("back", "caf\xe9").encode("latin-1"))
    with pytest.raises(
        DatasetError,
        match=r"HAM10000 metadata '.*HAM10000_metadata.csv' is not UTF-8 text: line 3, byte 51 "
        r"\(b'\\xe9'\) cannot be decoded \('HAM_0000119,.*,caf\ufffd'\)\. Save the file as UTF-8",
    ):
        RawMetadataDataset(filepath=str(path)).load()
    # The same file read as Latin-1 when the catalog says so (load_args encoding).
    frame = RawMetadataDataset(filepath=str(path), load_args={"encoding": "latin-1"}).load()
    assert frame.loc[1, "localization"] == "caf\xe9"
    # A UTF-8 byte-order mark is no error.
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode())
    assert RawMetadataDataset(filepath=str(path)).load().columns[0] == "lesion_id"


def test_an_unclosed_quote_is_refused_naming_the_lines_not_read_as_one_value(tmp_path):
    """csv and pandas read a stray quote as a field running to the next quote: the rows
    between became part of one row's localization, and were neither validated nor
    rejected."""
    path = tmp_path / "HAM10000_metadata.csv"
    header, first, second = CSV.splitlines()
    third = second.replace("ISIC_0027420", "ISIC_0027421")
    stray = first[: -len("scalp")] + '"scalp'
    path.write_text(f'{header}\n{stray}\n{second}\n{third}"\n')
    with pytest.raises(DatasetError, match=r"lines 2-4: one value runs over 3 lines"):
        RawMetadataDataset(filepath=str(path)).load()


def test_a_semicolon_separated_export_is_read_as_such(tmp_path):
    """A spreadsheet's CSV where the decimal mark is a comma: the error blamed a value "past
    the last column" on the first row with an age ``80,0``, naming no separator."""
    path = tmp_path / "HAM10000_metadata.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.replace(",", ";").replace("80.0", "80").encode())
    frame = RawMetadataDataset(filepath=str(path)).load()
    assert list(frame.columns) == CSV.splitlines()[0].split(",")
    assert frame.loc[0, "age"] == "80" and frame.loc[1, "localization"] == "back"
