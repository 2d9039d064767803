"""Encode HAM10000's patient metadata (age, sex, localization) as features for fusion.

A classifier with metadata fusion joins these features to the image features before its
head. The encoder is fitted on the training rows only, so that no statistic of the
validation or test rows leaks into training, and stores nothing but JSON-able values, so
that a checkpoint can carry it and rebuild the exact same features at inference.

Features, in this order (see :attr:`MetadataEncoder.feature_names`):

* ``age``: standardised age, ``(age - mean) / std`` with the training mean and population
  standard deviation (as sklearn's ``StandardScaler``); ``0`` (the training mean) when the
  age is missing.
* ``age_missing``: ``1`` when the age is missing, else ``0``. With the imputed ``0`` above
  this is the missing-indicator method: the model can tell "unknown" from "average".
* ``sex=<value>``: one-hot over a fixed vocabulary (``female``, ``male``, ``unknown``).
* ``localization=<value>``: one-hot over the localizations seen in training, then
  ``unknown``.

Text values are compared after stripping spaces and lower-casing; an empty or missing value
counts as ``unknown``, which is how HAM10000 itself records a value nobody knows. A value
outside the vocabulary (a sex other than the three, or a localization that training never
saw) is also encoded as ``unknown`` rather than rejected, because metadata validation has
already decided which rows are usable; every such value is counted in a logged warning, so
none is changed silently.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from skin_lesion import config

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("age", "sex", "localization")
UNKNOWN = "unknown"
SEX_VOCABULARY = ("female", "male", UNKNOWN)
# How many offending values an error message lists before giving the count of the rest.
SHOWN_IN_ERRORS = 5


@dataclass(frozen=True)
class MetadataEncoder:
    """A fitted metadata encoder; build it with :func:`fit_metadata_encoder`.

    Attributes:
        age_mean: Mean training age, in years.
        age_std: Population standard deviation of the training ages; positive (``1.0``
            when every training age is the same, as in sklearn's ``StandardScaler``).
        sex_vocabulary: The one-hot categories of ``sex``; must contain ``unknown``.
        localization_vocabulary: The one-hot categories of ``localization``; must
            contain ``unknown``.
        age_min: Youngest known training age, so that inference can say when an age lies
            outside what the model saw (None in checkpoints from before it was recorded).
        age_max: Oldest known training age (likewise).
    """

    age_mean: float
    age_std: float
    sex_vocabulary: tuple[str, ...] = SEX_VOCABULARY
    localization_vocabulary: tuple[str, ...] = (UNKNOWN,)
    age_min: float | None = None
    age_max: float | None = None

    def __post_init__(self) -> None:
        """Check the statistics and vocabularies, naming the bad value."""
        if not math.isfinite(self.age_mean):
            raise ValueError(f"age_mean must be finite, got {self.age_mean}")
        if not (math.isfinite(self.age_std) and self.age_std > 0):
            raise ValueError(f"age_std must be finite and positive, got {self.age_std}")
        if (self.age_min is None) != (self.age_max is None) or (
            self.age_min is not None and not self.age_min <= self.age_max
        ):
            raise ValueError(
                f"age_min and age_max must both be set, with age_min <= age_max, or both be "
                f"None; got {self.age_min} and {self.age_max}"
            )
        for name in ("sex_vocabulary", "localization_vocabulary"):
            vocabulary = getattr(self, name)
            if UNKNOWN not in vocabulary:
                raise ValueError(f"{name} must contain {UNKNOWN!r}, got {list(vocabulary)}")
            repeated = sorted({v for v in vocabulary if vocabulary.count(v) > 1})
            if repeated:
                raise ValueError(f"{name} repeats {repeated}: {list(vocabulary)}")
            odd = [v for v in vocabulary if v != _normalise_text(v)]
            if odd:
                raise ValueError(
                    f"{name} entries must be stripped lower-case text, got {odd} in "
                    f"{list(vocabulary)}"
                )

    @property
    def feature_names(self) -> list[str]:
        """The name of each output column, in order."""
        return [
            "age",
            "age_missing",
            *(f"sex={value}" for value in self.sex_vocabulary),
            *(f"localization={value}" for value in self.localization_vocabulary),
        ]

    @property
    def num_features(self) -> int:
        """The number of output columns ``F``."""
        return 2 + len(self.sex_vocabulary) + len(self.localization_vocabulary)

    def transform(self, frame: pd.DataFrame, *, warn: bool = True) -> np.ndarray:
        """Encode metadata rows as features.

        Args:
            frame: Rows with columns ``age`` (number, NaN or ``""`` when missing), ``sex``
                and ``localization``; other columns are ignored.
            warn: Warn about sexes and sites outside the vocabularies (encoded as unknown),
                naming the rows (:meth:`warn_unseen`); False leaves that to the caller.

        Returns:
            A float32 array of shape ``(len(frame), num_features)``, rows in frame order,
            columns as in :attr:`feature_names`.

        Raises:
            ValueError: Naming the columns when one is missing, or naming the rows and
                values of ages that are not numbers, not finite or negative.
        """
        _check_columns(frame)
        ages = _parse_ages(frame["age"])
        missing = np.isnan(ages)
        scaled = np.where(missing, 0.0, (ages - self.age_mean) / self.age_std)
        sex = _one_hot(frame["sex"], self.sex_vocabulary)
        place = _one_hot(frame["localization"], self.localization_vocabulary)
        if warn:
            self.warn_unseen(frame)
        return np.column_stack([scaled, missing, sex, place]).astype(np.float32)

    def warn_unseen(self, frame: pd.DataFrame) -> None:
        """One warning per column counting the values outside its vocabulary (encoded as
        ``unknown``) and naming the first rows that hold them: by image where ``frame`` is
        indexed by ``image`` (inference) or has an ``image_id`` column, else by position."""
        if frame.index.name == "image":
            where, kind = frame.index.astype(str), "image(s)"
        elif "image_id" in frame.columns:
            where, kind = frame["image_id"].astype(str), "image_id(s)"
        else:
            where, kind = pd.Index([str(k) for k in range(len(frame))]), "row(s)"
        for column, vocabulary in (
            ("sex", self.sex_vocabulary),
            ("localization", self.localization_vocabulary),
        ):
            values = _normalise_column(frame[column])
            outside = ~values.isin(vocabulary).to_numpy()
            if outside.any():
                named = list(np.asarray(where)[outside][:SHOWN_IN_ERRORS])
                more = int(outside.sum()) - len(named)
                logger.warning(
                    "%d %s value(s) outside %s encoded as %r: %s (%s %s%s)",
                    int(outside.sum()),
                    column,
                    list(vocabulary),
                    UNKNOWN,
                    values[outside].value_counts().to_dict(),
                    kind,
                    ", ".join(named),
                    f" and {more} more" if more > 0 else "",
                )

    def to_dict(self) -> dict[str, Any]:
        """The encoder as plain JSON-able values; :meth:`from_dict` rebuilds it exactly."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetadataEncoder:
        """Rebuild an encoder from :meth:`to_dict`'s output (e.g. read from a checkpoint).

        Raises:
            ValueError: (a :class:`skin_lesion.config.ConfigError`) naming unknown or
                missing keys and values of the wrong kind, or the value that fails the
                checks of the encoder itself.
        """
        return config.from_dict(cls, data, path="metadata_encoder")


def separator(data: bytes) -> str:
    """``\\t`` for a tab-separated file (Harvard Dataverse serves HAM10000's metadata as
    ``HAM10000_metadata.tab``), ``;`` for a semicolon-separated one (a spreadsheet's CSV in
    a locale whose decimal mark is a comma), else ``,``: that separator and no comma in the
    header line. (A ``;`` file was read as one column: the error blamed a value "past the
    last column" on the first row holding a comma, such as an age ``75,0``.)"""
    header = data.split(b"\n", 1)[0]
    if b"," in header:
        return ","
    return "\t" if b"\t" in header else ";" if b";" in header else ","


def header_width(data: bytes, name: str, sep: str = ",", encoding: str = "utf-8") -> int | None:
    """The number of fields in a delimited file's header, after checking every row has as many.

    pandas reads a data row with more fields than the header in one of two ways, neither
    of them what a user of the metadata expects: when the first data row is the longer one
    (with ``index_col=False``, which keeps image ids out of the index), the extra values of
    every row are dropped with nothing but a ``ParserWarning``; when a later row is, the
    whole read fails, even when the extra field is only a trailing separator. Reading with
    ``usecols=range(width)`` makes both the same, so a caller that passes it accepts
    trailing empty fields anywhere and loses no value, because this check refuses a row
    whose extra fields hold anything.

    Args:
        data: The whole file.
        name: How to name the file in the error.
        sep: The one-character field separator.
        encoding: The file's text encoding (a UTF-8 byte-order mark is skipped).

    Returns:
        The header's field count, or None when the file cannot be scanned (empty, an
        unknown encoding, or not CSV): pandas then raises its own error.

    Raises:
        ValueError: Naming ``name``, the line and byte, when the file is not text in
            ``encoding`` (a spreadsheet's Windows-1252 export read as UTF-8).
        ValueError: Naming ``name``, the line, the field counts and the values, for the
            first row with a non-empty field past the header's last, or with fewer fields
            than the header (pandas fills the missing ones with empty values, so a row
            missing its localization would read as one of unknown site). A blank line is
            not a row.
        ValueError: Naming ``name`` and the lines, for a value that runs over lines (an
            unclosed quote swallows the rows up to the next quote into one field; no
            HAM10000 value holds a line break).
    """
    if encoding.replace("-", "").replace("_", "").lower() == "utf8":
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(_undecodable(data, name, encoding, error)) from None
    except LookupError:
        return None  # an unknown encoding: pandas names it
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        header = next(rows, None)
        if header is None:
            return None
        width = len(header)
        # A header ending in separators names no column there: rows may stop before them.
        named = len(header) - next(
            (k for k, field in enumerate(reversed(header)) if field.strip()), len(header)
        )
        previous = rows.line_num
        for row in rows:
            first, previous = previous + 1, rows.line_num
            if not any(value.strip() for value in row):
                continue  # a blank line (spaces and tabs too) is no row
            spanning = next((value for value in row if "\n" in value or "\r" in value), None)
            if spanning is not None:
                raise ValueError(
                    f"'{name}' lines {first}-{rows.line_num}: one value runs over "
                    f"{rows.line_num - first + 1} lines ({spanning[:120]!r}), so the rows "
                    "in it would be read as part of one field and not as rows. An unclosed "
                    'quote ("): remove it, or close it on its own line'
                )
            if len(row) < named:
                raise ValueError(
                    f"'{name}' line {rows.line_num}: {len(row)} fields but the header has "
                    f"{named}, so a value is missing and the ones after it would be read "
                    f"into the wrong columns ({row}). Write an empty field as nothing "
                    "between two separators"
                )
            extra = [value for value in row[width:] if value.strip()]
            if extra:
                raise ValueError(
                    f"'{name}' line {rows.line_num}: {len(row)} fields but the header has "
                    f"{width}; the values {extra} past the last column would be lost. Quote "
                    "a value that contains the separator, or give the extra column a name "
                    "in the header"
                )
    except csv.Error:
        return None
    return width


def _undecodable(data: bytes, name: str, encoding: str, error: UnicodeDecodeError) -> str:
    """Where in ``data`` the first byte ``encoding`` cannot decode lies, for the error."""
    start = data.rfind(b"\n", 0, error.start) + 1
    end = data.find(b"\n", error.start)
    line = data.count(b"\n", 0, error.start) + 1
    shown = data[start : end if end >= 0 else len(data)].decode(encoding, errors="replace")
    codec = "UTF-8" if encoding == "utf-8-sig" else encoding
    return (
        f"'{name}' is not {codec} text: line {line}, byte {error.start - start + 1} "
        f"({data[error.start : error.end]!r}) cannot be decoded ({shown.strip()[:120]!r}). "
        "Save the file as UTF-8 (a spreadsheet's 'CSV UTF-8'); another encoding, e.g. "
        "Latin-1 or Windows-1252, is not guessed"
    )


def read_text_csv(source: Any, name: str) -> pd.DataFrame:
    """A CSV with every cell as text (empty cells as ``""``), as metadata is read for checks.

    Reading text leaves the type checks to the code that can name a bad value (``"forty"``
    as an age), instead of pandas silently turning it into NaN. A tab-separated file
    (Dataverse's ``.tab``) is read as such (:func:`separator`). Rows ending in a trailing
    comma are read as if it were not there; a row with a value past the header's last
    column, or with fewer fields than the header, is refused (:func:`header_width`).

    Args:
        source: A path or an open binary file.
        name: How to name the file in the error.

    Raises:
        ValueError: Naming ``name``, when the file is empty, not a readable CSV, or has a
            row with more values than the header has columns, or fewer fields.
    """
    if hasattr(source, "read"):
        data = source.read()
    else:
        with open(source, "rb") as file:
            data = file.read()
    sep = separator(data)
    width = header_width(data, name, sep)
    try:
        # index_col=False: rows ending in a comma must not turn image ids into the index.
        return pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            index_col=False,
            usecols=None if width is None else range(width),
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"'{name}' is not a readable CSV ({error})") from error


def fit_metadata_encoder(
    frame: pd.DataFrame, sex_vocabulary: Sequence[str] = SEX_VOCABULARY
) -> MetadataEncoder:
    """Fit the encoder's statistics on the training rows.

    Pass only the training split: the age mean and standard deviation and the localization
    vocabulary all come from ``frame``.

    Args:
        frame: The training rows, with columns ``age``, ``sex`` and ``localization``.
        sex_vocabulary: The one-hot categories of ``sex``; fixed rather than fitted, so
            that every split and every checkpoint has the same columns. Must contain
            ``unknown``.

    Returns:
        The fitted encoder. Its localization vocabulary is the sorted set of localizations
        in ``frame`` other than ``unknown``, followed by ``unknown``.

    Raises:
        ValueError: Naming the columns when one is missing, when ``frame`` has no known
            age to fit on, or naming the rows and values of ages that are not valid.
    """
    _check_columns(frame)
    ages = _parse_ages(frame["age"])
    known = ages[~np.isnan(ages)]
    if known.size == 0:
        raise ValueError(
            f"Cannot fit the age scaling: none of the {len(frame)} training rows has an age"
        )
    std = float(known.std())  # population std (ddof=0), as sklearn's StandardScaler
    seen = set(_normalise_column(frame["localization"])) - {UNKNOWN}
    return MetadataEncoder(
        age_mean=float(known.mean()),
        age_std=std if std > 0 else 1.0,
        sex_vocabulary=tuple(sex_vocabulary),
        localization_vocabulary=(*sorted(seen), UNKNOWN),
        age_min=float(known.min()),
        age_max=float(known.max()),
    )


def _check_columns(frame: pd.DataFrame) -> None:
    """Raise a ValueError naming the required columns that ``frame`` lacks."""
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"Metadata frame is missing column(s) {missing}; found {list(frame.columns)}, "
            f"need {list(REQUIRED_COLUMNS)}"
        )


def _parse_ages(column: pd.Series) -> np.ndarray:
    """Ages as float64 with NaN where missing (NaN, None or blank text).

    Anything else that is not a finite non-negative number is an error, not a missing age:
    turning ``"forty"`` into NaN would drop a value without a trace.
    """
    blank = column.isna() | column.astype(str).str.strip().eq("")
    numbers = pd.to_numeric(column.where(~blank, np.nan), errors="coerce").astype(float)
    bad = ~blank & ~(np.isfinite(numbers) & (numbers >= 0))
    if bad.any():
        shown = ", ".join(f"row {i}: {v!r}" for i, v in column[bad].head(SHOWN_IN_ERRORS).items())
        more = int(bad.sum()) - SHOWN_IN_ERRORS
        raise ValueError(
            f"{int(bad.sum())} age value(s) are not finite non-negative numbers "
            f"(leave an unknown age empty): {shown}" + (f" and {more} more" if more > 0 else "")
        )
    return numbers.to_numpy(dtype=np.float64)


def _normalise_text(value: str) -> str:
    """Stripped, lower-case text; empty text means ``unknown``."""
    text = value.strip().lower()
    return text or UNKNOWN


def _normalise_column(column: pd.Series) -> pd.Series:
    """Apply :func:`_normalise_text` to a column, missing values becoming ``unknown``."""
    return column.where(column.notna(), "").astype(str).map(_normalise_text)


def _one_hot(column: pd.Series, vocabulary: Sequence[str]) -> np.ndarray:
    """One-hot encode ``column`` over ``vocabulary``; values outside it count as unknown."""
    values = _normalise_column(column)
    index = {value: k for k, value in enumerate(vocabulary)}
    positions = values.map(index).fillna(index[UNKNOWN]).to_numpy(dtype=np.int64)
    return np.eye(len(vocabulary), dtype=np.float32)[positions]
