"""Validate HAM10000 metadata against the image files, and the policy for bad rows.

Every problem becomes a row of a rejection table (``image_id, file, stage, reason``), so
that whatever is set aside can be written to a report: nothing valid is dropped, and
nothing invalid disappears without a trace.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import pandas as pd

from skin_lesion.images import IMAGE_SUFFIXES, caused_by_os_error

logger = logging.getLogger(__name__)

# A localization on fewer valid rows than this, at least this similar (difflib's ratio) to a
# more common one, gets a warning: a typo is a site of its own to metadata fusion.
RARE_LOCALIZATION = 5
TYPO_SIMILARITY = 0.7
# HAM10000's 15 localization values: never a typo, however rare in a subset of it.
HAM10000_SITES = frozenset(
    {"abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand"}
    | {"lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity"}
)
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
REJECTION_COLUMNS = ("image_id", "file", "stage", "reason")
# How the reason of a file set aside as a byte-identical copy begins (the kept file follows).
IDENTICAL_COPY = "identical copy of "
# Stages that set aside a file, never a metadata row: reported, never fatal.
REPORT_ONLY_STAGES = ("unmatched_file", "duplicate_file")
# Threads reading files to compare copies (I/O and hashing release the GIL).
COMPARE_THREADS = 8
# How many offending rows an error message lists before giving the count of the rest.
SHOWN_IN_ERRORS = 5


@dataclass(frozen=True)
class MetadataConfig:
    """What counts as a valid metadata row.

    Attributes:
        sexes: Allowed values of ``sex`` (HAM10000 uses male, female, unknown).
        min_age: Smallest plausible age in years.
        max_age: Largest plausible age in years.
    """

    sexes: tuple[str, ...] = ("male", "female", "unknown")
    min_age: float = 0.0
    max_age: float = 120.0

    def __post_init__(self) -> None:
        if not self.sexes:
            raise ValueError("sexes must name at least one allowed value")
        if not 0 <= self.min_age <= self.max_age:
            raise ValueError(
                f"ages must satisfy 0 <= min_age <= max_age, got min_age={self.min_age!r}, "
                f"max_age={self.max_age!r}"
            )


class InvalidDataError(ValueError):
    """Input rows or files that fail validation, named in the message."""


def empty_rejections() -> pd.DataFrame:
    """An empty rejection table with the standard columns."""
    return pd.DataFrame({column: pd.Series(dtype=str) for column in REJECTION_COLUMNS})


def index_image_files(files: Iterable[str]) -> dict[str, list[str]]:
    """Group image file paths by image_id (the file name without its extension).

    Args:
        files: Paths relative to the dataset folder, e.g. ``part_1/ISIC_0024306.jpg``.

    Returns:
        ``{image_id: [paths...]}``; more than one path means a duplicate file.
    """
    by_id: dict[str, list[str]] = {}
    for file in files:
        by_id.setdefault(PurePosixPath(file).stem, []).append(file)
    return by_id


def _digest(path: str, read: Callable[[], bytes]) -> tuple[str, str | None]:
    """The file's SHA-256 and None; for a file that cannot be read, a token no other file
    shares (so it is never set aside as a copy of another) and the read error, instead of
    the error stopping the whole run here."""
    try:
        return hashlib.sha256(read()).hexdigest(), None
    except Exception as exc:
        if not caused_by_os_error(exc):
            raise
        return f"unreadable: {path}", f"cannot read file: {exc}"


def set_aside_identical_copies(
    files: Mapping[str, Callable[[], bytes]], listed_in: str = "rejected_images"
) -> tuple[list[str], pd.DataFrame]:
    """Keep one file where several with the same image_id hold the same bytes.

    Kaggle's HAM10000 (``kmader/skin-cancer-mnist-ham10000``) unpacks every image twice, in
    ``HAM10000_images_part_N/`` and ``ham10000_images_part_N/``. Byte-identical copies are
    one image: the first path in sorted order is kept and the others are reported (stage
    ``duplicate_file``, never fatal), also where another file of that name differs. Files
    whose bytes differ are all kept here (one of each set of identical ones), so that
    validation rejects their image_id naming each: which one is right is not ours to guess.

    Args:
        files: Relative path -> a callable returning the file's bytes.

    Returns:
        ``(paths, rejections)``: every path but the identical copies set aside, sorted, and
        one rejection row per copy set aside, and per file of a shared image_id that cannot
        be read (kept in ``paths``: its image_id is then refused as having several files;
        the row gives the read error).
    """
    by_id = index_image_files(sorted(files))
    shared = [paths for paths in by_id.values() if len(paths) > 1]
    if not shared:
        return sorted(files), empty_rejections()
    logger.info("comparing the bytes of %d image_id(s) found in several files", len(shared))
    to_read = [path for paths in shared for path in paths]
    with ThreadPoolExecutor(max_workers=COMPARE_THREADS) as pool:
        read = dict(zip(to_read, pool.map(lambda path: _digest(path, files[path]), to_read)))
    digests = {path: digest for path, (digest, _) in read.items()}
    # A copy that cannot be read is kept (its image_id is then refused as having several
    # files: which is right is not ours to guess), and listed with its read error, which
    # the refusal alone ("different bytes") hid.
    unreadable = {path: error for path, (_, error) in read.items() if error is not None}
    if unreadable:
        logger.warning(
            "%d image file(s) sharing an image_id with another file cannot be read (e.g. %s: "
            "%s); listed in %s",
            len(unreadable), *next(iter(unreadable.items())), listed_in,
        )  # fmt: skip
    dropped: list[tuple[str, str, str]] = []
    for paths in shared:
        by_digest: dict[str, list[str]] = {}
        for path in paths:
            by_digest.setdefault(digests[path], []).append(path)
        for same in by_digest.values():  # each set of identical bytes: its first path kept
            dropped += [(PurePosixPath(same[0]).stem, path, same[0]) for path in same[1:]]
    if dropped:
        logger.warning(
            "%d image file(s) are byte-identical copies of another file with the same name "
            "(e.g. %s = %s, as Kaggle's download holds every image twice): each image is "
            "used once; the copies are listed in %s",
            len(dropped),
            dropped[0][1],
            dropped[0][2],
            listed_in,
        )
    rejections = pd.DataFrame(
        {
            "image_id": [image_id for image_id, _, _ in dropped]
            + [PurePosixPath(path).stem for path in unreadable],
            "file": [path for _, path, _ in dropped] + list(unreadable),
            "stage": "duplicate_file",
            "reason": [f"{IDENTICAL_COPY}{kept}; not used" for _, _, kept in dropped]
            + list(unreadable.values()),
        },
        columns=list(REJECTION_COLUMNS),
    )
    set_aside = {path for _, path, _ in dropped}
    return [path for path in sorted(files) if path not in set_aside], rejections


def _stripped_text(raw: pd.DataFrame) -> pd.DataFrame:
    """Every cell as text, stripped, empty where missing; index 0..n-1."""
    return raw.reset_index(drop=True).fillna("").astype(str).apply(lambda c: c.str.strip())


def count_rows(raw: pd.DataFrame) -> int:
    """The metadata rows ``validate_metadata`` checks: those with a value in some column once
    stripped (a blank line, or one of only spaces and commas, is no row)."""
    return int(_stripped_text(raw).ne("").any(axis=1).sum())


def validate_metadata(
    raw: pd.DataFrame,
    image_files: Iterable[str],
    classes: Sequence[str],
    config: MetadataConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every metadata row and match it to exactly one image file.

    Args:
        raw: The metadata CSV with every cell as text (empty cells as ``""``).
        image_files: Relative paths of the image files found.
        classes: The allowed diagnoses, in label order.
        config: Allowed sexes and ages.

    Returns:
        ``(valid, rejections)``. ``valid`` holds the good rows in their original order with
        typed columns: ``age`` float (NaN when empty), ``label`` (index into ``classes``),
        ``file`` (the image's relative path) and ``row`` (the CSV line number).
        ``rejections`` holds one row per invalid metadata row (stage ``metadata``) and one
        per image file without a metadata row (stage ``unmatched_file``).

    Raises:
        InvalidDataError: When required columns are missing (no row can be checked then).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise InvalidDataError(
            f"Metadata is missing required column(s) {missing}; found {list(raw.columns)}. "
            f"Expected HAM10000's columns {list(REQUIRED_COLUMNS)}."
        )
    text = _stripped_text(raw)
    frame = text.loc[:, list(REQUIRED_COLUMNS)].copy()
    # CSV line: the header is line 1, and blank lines were read as empty rows (then dropped).
    # A row with a value in any column is checked (one with only extra columns filled is
    # rejected for its empty image_id, dx, ..., not dropped unseen).
    frame.insert(0, "row", frame.index.to_numpy() + 2)
    frame = frame[text.ne("").any(axis=1)]
    files = index_image_files(image_files)
    reasons: dict[int, list[str]] = {i: [] for i in frame.index}

    for i, row in frame.iterrows():
        for reason in _row_problems(row, classes, config, files):
            reasons[i].append(reason)
    _flag_duplicates(frame, reasons)
    _flag_mixed_lesions(frame, reasons, classes)

    bad = [i for i, found in reasons.items() if found]
    good = frame.drop(index=bad)
    valid = good.assign(
        age=pd.to_numeric(good["age"].replace("", math.nan)).astype(float),
        label=good["dx"].map({name: k for k, name in enumerate(classes)}).astype("int64"),
        file=good["image_id"].map(lambda image_id: files[image_id][0]),
    ).reset_index(drop=True)
    rejected = pd.DataFrame(
        {
            "image_id": frame.loc[bad, "image_id"].to_numpy(),
            "file": [";".join(files.get(frame.at[i, "image_id"], [])) for i in bad],
            "stage": "metadata",
            "reason": [f"line {frame.at[i, 'row']}: " + "; ".join(reasons[i]) for i in bad],
        }
    )
    known = set(frame["image_id"])
    unmatched = sorted(
        (f, image_id) for image_id, fs in files.items() if image_id not in known for f in fs
    )
    orphans = pd.DataFrame(
        {
            "image_id": [image_id for _, image_id in unmatched],
            "file": [f for f, _ in unmatched],
            "stage": "unmatched_file",
            "reason": "image file has no metadata row; not used",
        }
    )
    rejections = pd.concat([empty_rejections(), rejected, orphans], ignore_index=True)
    _warn_rare_localizations(valid)
    _warn_zero_ages(valid)
    return valid, rejections


def _warn_zero_ages(valid: pd.DataFrame) -> None:
    """Age 0 is a valid age, kept; but HAM10000's rows of age 0 (nevi, keratoses, vascular
    lesions, some histology-confirmed) look like placeholders for an unknown age, which
    metadata fusion would read as newborns. Say how many, by class, and how to treat them."""
    zero = valid[valid["age"].eq(0)]
    if len(zero):
        logger.warning(
            "%d valid row(s) have age 0 (%s; first lines %s): kept as 0 years, which metadata "
            "fusion reads as a newborn; if they stand for an unknown age, blank it in the "
            "metadata file",
            len(zero),
            ", ".join(f"{dx} {n}" for dx, n in zero["dx"].value_counts().sort_index().items()),
            ", ".join(str(line) for line in zero["row"].head(5)),
        )


def _warn_rare_localizations(valid: pd.DataFrame) -> None:
    """Warn of a localization on fewer than ``RARE_LOCALIZATION`` valid rows that reads like
    a more common one (``bakc`` for ``back``), naming both and the lines: metadata fusion's
    one-hot encoding makes a typo a site of its own. Not an error, and a rare site unlike any
    other (HAM10000's ``acral``) is not named: another data set may have rare sites."""
    sites = valid["localization"].str.lower()
    counts = sites[sites.ne("")].value_counts()
    found = []
    for site, n in counts[counts < RARE_LOCALIZATION].items():
        if site in HAM10000_SITES:
            continue
        common = [str(other) for other, m in counts.items() if m > n]
        close = difflib.get_close_matches(str(site), common, n=1, cutoff=TYPO_SIMILARITY)
        if close:
            lines = valid.loc[sites.eq(site), "row"].astype(str).tolist()
            found.append(
                f"{site!r} on line{'s' if n > 1 else ''} {', '.join(lines[:3])}"
                f"{', ...' if n > 3 else ''} (like {close[0]!r}, on {counts[close[0]]:,} rows)"
            )
    if found:
        logger.warning(
            "%d rare localization value(s) read like a common one: %s. Metadata fusion "
            "encodes each value as a site of its own: correct a typo in the metadata",
            len(found),
            "; ".join(found),
        )


def _age_value(text: str) -> float:
    """An age cell as a number, parsed as the valid rows' ages are typed (``pd.to_numeric``);
    NaN when that refuses it. Python's ``float`` accepts more (``1_2``, Arabic-Indic digits),
    which then passed the check and stopped the typing with an error naming no line."""
    try:
        return float(pd.to_numeric(text))
    except (ValueError, TypeError):
        return math.nan


def _age_key(text: str) -> str:
    """An age cell as it compares: its number where it is one, else its text."""
    age = _age_value(text) if text else math.nan
    return repr(age) if math.isfinite(age) else text


def _row_problems(
    row: pd.Series, classes: Sequence[str], config: MetadataConfig, files: dict[str, list[str]]
) -> list[str]:
    """Everything wrong with one metadata row on its own."""
    problems = []
    if not row["image_id"]:
        problems.append("empty image_id")
    if not row["lesion_id"]:
        problems.append("empty lesion_id")
    if row["dx"] not in classes:
        problems.append(f"dx {row['dx']!r} is not one of {list(classes)}")
    if row["sex"] not in config.sexes:
        problems.append(f"sex {row['sex']!r} is not one of {list(config.sexes)}")
    if row["age"]:
        age = _age_value(row["age"])
        if not math.isfinite(age):
            problems.append(f"age {row['age']!r} is not a number (leave it empty if unknown)")
        elif not config.min_age <= age <= config.max_age:
            problems.append(f"age {age:g} is outside [{config.min_age:g}, {config.max_age:g}]")
    if row["image_id"]:
        found = files.get(row["image_id"], [])
        if not found:
            problems.append(
                f"no image file for this image_id (only {'/'.join(IMAGE_SUFFIXES)} files are read)"
            )
        elif len(found) > 1:
            problems.append(
                f"{len(found)} image files for this image_id: {', '.join(found)} "
                "(their bytes differ, or one cannot be read: keep the right one)"
            )
    return problems


def _flag_duplicates(frame: pd.DataFrame, reasons: dict[int, list[str]]) -> None:
    """Flag repeated image_ids: exact repeats after the first, or every conflicting copy.
    Ages compare as numbers (``50`` and ``50.0`` are one age), the rest as text."""
    repeated = frame[frame["image_id"].ne("") & frame["image_id"].duplicated(keep=False)]
    for _, group in repeated.groupby("image_id", sort=False):
        columns = list(REQUIRED_COLUMNS)
        same = group[columns].assign(age=[_age_key(a) for a in group["age"]])
        identical = len(same.drop_duplicates()) == 1
        lines = ", ".join(str(r) for r in group["row"])
        if identical:
            first = group["row"].iloc[0]
            for i in group.index[1:]:
                reasons[i].append(f"duplicate of line {first}")
        else:
            for i in group.index:
                reasons[i].append(f"image_id appears on lines {lines} with different values")


def _flag_mixed_lesions(
    frame: pd.DataFrame, reasons: dict[int, list[str]], classes: Sequence[str]
) -> None:
    """Flag lesions whose images carry different diagnoses (a lesion has one diagnosis).

    Only diagnoses among ``classes`` count: a row with a typo (``MEL``) is rejected for it
    alone, not with the lesion's other images, whose diagnosis agrees."""
    named = frame[frame["lesion_id"].ne("") & frame["dx"].isin(list(classes))]
    counts = named.groupby("lesion_id")["dx"].nunique()
    for lesion_id in counts[counts > 1].index:
        members = named[named["lesion_id"] == lesion_id]
        diagnoses = ", ".join(sorted(members["dx"].unique()))
        for i in members.index:
            reasons[i].append(f"lesion {lesion_id} has several diagnoses ({diagnoses})")


def require_every_class(
    kept: pd.DataFrame, classes: Sequence[str], what: str, rejected: int
) -> None:
    """Stop when a class has nothing left to train on, before any output is overwritten.

    Under ``on_invalid: drop``, a broken metadata file or image folder could otherwise set
    every row aside, replace a good image cache with an empty one, and fail only later, in
    the split, with an error that names neither.

    Args:
        kept: The rows still valid, with a ``dx`` column.
        classes: The class names.
        what: What was checked, for the message (e.g. ``"metadata rows"``).
        rejected: How many were set aside at this step.

    Raises:
        InvalidDataError: Naming each class without a row.
    """
    counts = kept["dx"].value_counts() if len(kept) else pd.Series(dtype=int)
    empty = [c for c in classes if counts.get(c, 0) == 0]
    if not empty:
        return
    rejected_note = (
        f" ({rejected} {what} were set aside; see the warning above)" if rejected else ""
    )
    raise InvalidDataError(
        f"no valid {what} left for class(es) {empty} of {list(classes)}, "
        f"{len(kept)} valid in all{rejected_note}: every class needs images to split and "
        "train on. Fix the data (HAM10000_metadata.csv and the image folders), or set "
        "`classes` to the diagnoses the data has."
    )


def enforce_policy(
    rejections: pd.DataFrame,
    on_invalid: Literal["raise", "drop"],
    what: str,
    total: int,
) -> None:
    """Raise on rejected rows under ``raise``; under ``drop`` log them and go on.

    Args:
        rejections: Rows set aside (standard rejection columns). Rows of the stages in
            ``REPORT_ONLY_STAGES`` (``unmatched_file``, ``duplicate_file``) are only
            reported, never fatal: they drop no metadata row.
        on_invalid: ``raise`` or ``drop``.
        what: What was checked, for the message (e.g. ``"metadata rows"``).
        total: How many items were checked, for the message.

    Raises:
        InvalidDataError: Under ``raise`` when any fatal rejection exists, naming the first
            few and the count.
        ValueError: When ``on_invalid`` is neither ``raise`` nor ``drop``.
    """
    if on_invalid not in ("raise", "drop"):
        raise ValueError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
    unmatched = rejections[rejections["stage"] == "unmatched_file"]
    if len(unmatched):
        logger.warning(
            "%d image file(s) have no metadata row and are not used, e.g. %s "
            "(listed in rejected_images)",
            len(unmatched),
            ", ".join(unmatched["file"].head(SHOWN_IN_ERRORS)),
        )
    fatal = rejections[~rejections["stage"].isin(REPORT_ONLY_STAGES)]
    if fatal.empty:
        return
    # A file that did not decode is named by its path too: the image_id alone leaves the
    # user to find which of the part folders (or Kaggle's lower-case copies) holds it.
    shown = "\n".join(
        f"  {r.image_id or '<empty image_id>'}"
        + (f" ({r.file})" if r.stage == "decode" and isinstance(r.file, str) and r.file else "")
        + f": {r.reason}"
        for r in fatal.head(SHOWN_IN_ERRORS).itertuples()
    )
    more = len(fatal) - SHOWN_IN_ERRORS
    summary = f"{len(fatal)} of {total} {what} are invalid"
    listing = shown + (f"\n  ... and {more} more" if more > 0 else "")
    if on_invalid == "raise":
        raise InvalidDataError(
            f"{summary}:\n{listing}\nFix them, or set `data_processing.on_invalid: drop` "
            "to set them aside in rejected_images and go on."
        )
    logger.warning("%s and were set aside (see rejected_images):\n%s", summary, listing)
