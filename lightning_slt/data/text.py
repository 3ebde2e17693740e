"""Reading line-aligned text files (plain or gzip), with errors that name the file and line.

Files are read whole and decoded strictly as UTF-8 so that a bad byte is reported with its line
number instead of turning into a replacement character that silently changes the data. Lines
are split on ``\\n`` only: ``str.splitlines`` would also split on U+2028, U+0085 and friends,
which occur in real corpora and would shift every later line against the other side.
"""

import gzip
import zlib
from pathlib import Path

from lightning_slt.data.errors import (
    CorpusEncodingError,
    CorpusNotFoundError,
    EmptyCorpusError,
    MisalignedCorpusError,
)

_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # little- and big-endian (a UTF-32 LE mark starts like UTF-16 LE)


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file (gzip-compressed or not), without line endings.

    Raises:
        CorpusNotFoundError: the file does not exist, or is a folder or a device (a pipe is read,
            as the shell's ``<(zcat file.gz)`` gives one).
        CorpusEncodingError: the file is not valid UTF-8 (message gives the line), UTF-16, binary
            (a NUL byte) or a broken gzip.
    """
    path = Path(path)
    if path.is_dir():
        raise CorpusNotFoundError(f"{path} is a folder, not a text file: give the path of a file in it, one sentence "
                                  "per line.")
    if path.exists() and not (path.is_file() or path.is_fifo()):  # a pipe is read: `--input <(zcat x.gz)`
        raise CorpusNotFoundError(f"{path} is not a regular file (a device or a socket), so it cannot be read as "
                                  "text: give a text file, one sentence per line.")
    if not path.exists():
        raise CorpusNotFoundError(
            f"corpus file not found: {path}. Check the path (train_files/valid_files/test_files/"
            "predict_files, or the data root set by LIGHTNING_SLT_DATA)."
        )
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise CorpusEncodingError(
                f"{path}: not a valid gzip file ({err}). The file is truncated or corrupted: "
                "download or copy it again."
            ) from None
    return decode_lines(data, str(path))


def decode_lines(data: bytes, where: str) -> list[str]:
    """The lines of UTF-8 text ``data`` (read from ``where``, named in errors), as ``read_lines``.

    Raises:
        CorpusEncodingError: invalid UTF-8 (the line is named); UTF-16 (a UTF-16 byte-order mark, or
            a NUL byte, which UTF-8 text never holds but UTF-16 of ASCII is full of: decoded as UTF-8
            it would be one garbled sentence per character pair, and lines would shift); a binary
            file (NUL); or old-Mac CR-only line endings, which would make the whole file one line.
    """
    if data[:2] in _UTF16_BOMS:
        raise CorpusEncodingError(
            f"{where}: UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8. Text must be UTF-8: "
            "convert it, e.g. `iconv -f utf-16 -t utf-8 in > out`."
        )
    nul = data.find(b"\0")
    if nul >= 0:  # valid UTF-8, but never text: UTF-16 without a byte-order mark, or a binary file
        line = data.count(b"\n", 0, nul) + 1
        raise CorpusEncodingError(
            f"{where}, line {line}: a NUL byte (\\x00), which text never holds: this is UTF-16 text without a "
            "byte-order mark or a binary file, not UTF-8 text. Convert UTF-16 with `iconv -f utf-16le -t utf-8 in > "
            "out`, or give the text file meant."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CorpusEncodingError(
            f"{where}, line {line}: invalid UTF-8 ({err.reason}, byte {data[err.start:err.start + 1]!r}). "
            "Text must be UTF-8: convert the file, e.g. `iconv -f latin1 -t utf-8 in > out`."
        ) from None
    if "\n" not in text and "\r" in text.rstrip("\r"):
        raise CorpusEncodingError(
            f"{where}: lines end in CR only (old Mac line endings), so the whole file would be one line of "
            f"{text.rstrip(chr(13)).count(chr(13)) + 1} sentences. Convert it to LF line endings, e.g. `tr '\\r' '\\n' < in > out`."
        )
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first sentence
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start an empty one
    return [line.removesuffix("\r") for line in lines]


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> tuple[list[str], list[str]]:
    """The two sides of a parallel corpus; line i of one is the translation of line i of the other.

    Raises:
        CorpusNotFoundError, CorpusEncodingError: see ``read_lines``.
        MisalignedCorpusError: the files have different line counts (both names and counts given).
        EmptyCorpusError: both files are empty.
    """
    src_lines = read_lines(src_path)
    tgt_lines = read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        longer, extra = (src_path, src_lines) if len(src_lines) > len(tgt_lines) else (tgt_path, tgt_lines)
        tail = extra[min(len(src_lines), len(tgt_lines)):]
        blank = (f" The last {len(tail)} line(s) of {longer} are empty: delete them if they are only blank lines at "
                 "its end." if not any(line.strip() for line in tail) else "")
        raise MisalignedCorpusError(
            f"misaligned parallel files: {src_path} has {len(src_lines)} lines but {tgt_path} has "
            f"{len(tgt_lines)} lines.{blank} Line i of one file must translate line i of the other: check "
            "that both files belong to the same corpus and split and neither was cut or re-wrapped."
        )
    if not src_lines:
        raise EmptyCorpusError(
            f"empty corpus: {src_path} and {tgt_path} hold no lines. Point the data module at "
            "files with one sentence per line."
        )
    return src_lines, tgt_lines


def read_monolingual(path: str | Path) -> list[str]:
    """Lines of a single (source-side) file, refusing an empty one; used for prediction."""
    lines = read_lines(path)
    if not lines:
        raise EmptyCorpusError(f"empty corpus: {path} holds no lines. Give a file with one sentence per line.")
    return lines
