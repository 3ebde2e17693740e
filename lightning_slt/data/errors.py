"""Errors of the data pipeline.

Each one subclasses the built-in a caller would naturally catch (``FileNotFoundError`` for
files that are not there, ``ValueError`` for content that is wrong), plus ``DataError`` so that
one ``except DataError`` catches them all. Messages say what is wrong, where (file and line)
and how to fix it, because they are raised before training and read by a person.
"""


class DataError(Exception):
    """Base class of every error raised by ``lightning_slt.data``."""


class CorpusNotFoundError(DataError, FileNotFoundError):
    """A corpus file (or a whole corpus under the data root) does not exist."""


class LocalOnlyCorpusError(CorpusNotFoundError):
    """The corpus split is missing and cannot be downloaded: it was rebuilt locally, not copied."""


class DownloadError(DataError, OSError):
    """Fetching an upstream file failed (network, HTTP status, bad URL)."""


class ChecksumError(DataError, ValueError):
    """A downloaded (or already present) file does not have the expected sha256."""


class MisalignedCorpusError(DataError, ValueError):
    """The two sides of a parallel corpus have different numbers of lines."""


class EmptyCorpusError(DataError, ValueError):
    """A corpus file holds no lines."""


class CorpusEncodingError(DataError, ValueError):
    """A corpus file is not valid UTF-8 (or not a valid gzip file)."""


class ExampleTooLongError(DataError, ValueError):
    """One example alone needs more tokens than a batch may hold."""
