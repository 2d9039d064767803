"""The error our datasets raise for input data that is missing or unreadable as given."""

from kedro.io import DatasetError


class InputDataError(DatasetError):
    """Data a run reads is not where the catalog says, or not readable; the message says why
    and where it should be (an error in the run's input, not in the code)."""
