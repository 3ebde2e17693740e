"""The data pipeline's errors: each one is the built-in a caller would catch, and all are DataError."""

import pytest

import lightning_slt.data as data
from lightning_slt.data.errors import (
    ChecksumError,
    CorpusEncodingError,
    CorpusNotFoundError,
    DataError,
    DownloadError,
    EmptyCorpusError,
    ExampleTooLongError,
    LocalOnlyCorpusError,
    MisalignedCorpusError,
)

BUILT_IN = {
    CorpusNotFoundError: FileNotFoundError, LocalOnlyCorpusError: FileNotFoundError, DownloadError: OSError,
    ChecksumError: ValueError, MisalignedCorpusError: ValueError, EmptyCorpusError: ValueError,
    CorpusEncodingError: ValueError, ExampleTooLongError: ValueError,
}


@pytest.mark.parametrize("error", list(BUILT_IN), ids=lambda e: e.__name__)
def test_each_error_is_a_data_error_and_its_built_in(error):
    assert issubclass(error, DataError) and issubclass(error, BUILT_IN[error])
    with pytest.raises(DataError, match="corpus.txt line 3"):
        raise error("corpus.txt line 3: what is wrong and how to fix it")
    assert getattr(data, error.__name__) is error  # exported by lightning_slt.data


def test_local_only_is_a_kind_of_not_found_and_value_errors_are_not_file_errors():
    assert issubclass(LocalOnlyCorpusError, CorpusNotFoundError)
    assert not issubclass(ChecksumError, OSError) and not issubclass(DownloadError, ValueError)
    assert DataError.__bases__ == (Exception,)
