"""The FER2013 CSV format and the validation rules that every reader shares.

A FER2013 file is Kaggle's ``fer2013.csv``, plain or gzip-compressed::

    emotion,pixels,Usage
    0,70 80 82 72 58 ... (2304 values),Training

* ``emotion``: the class index 0-6, see :data:`CLASS_NAMES`.
* ``pixels``: 48*48 = 2304 decimal integers 0-255 (no sign, no leading
  zeros), row-major, separated by single spaces.
* ``Usage``: one of :data:`USAGES`.

The dialects in circulation are all accepted:

* the header names the three columns in any order, with spaces around the
  names allowed (``icml_face_data.csv`` has ``emotion, Usage, pixels``);
* any field may be quoted as RFC 4180 writers do (``3,"70 80 ...",Training``),
  with the quote as the field's first character; spaces around an unquoted
  field are dropped;
* a UTF-8 byte-order mark before the header, LF or CRLF line endings, and
  blank lines at the end of the file.

Everything else is an error (:class:`FER2013FormatError`) that names the file,
the 1-based line and the problem; a blank line between rows is one. Both
readers (NumPy and ``tf.data``) and the TFDS builder go through
:func:`iter_rows`, so a file that one of them accepts, all accept.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

CLASS_NAMES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
USAGES = ("Training", "PublicTest", "PrivateTest")
COLUMNS = ("emotion", "pixels", "Usage")

_UTF8_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_EMOTION_CODES = {str(code).encode(): code for code in range(len(CLASS_NAMES))}
_USAGE_CODES = {name.encode(): code for code, name in enumerate(USAGES)}
# One value 0-255, written as Kaggle writes it (no sign, no leading zeros:
# allowing them doubles the matching time). The whole field is matched at once
# because a compiled regex is several times faster than splitting and
# converting 2304 tokens in Python.
_PIXEL_VALUE = rb"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PIXELS_FIELD = re.compile(rb"(?:%s ){%d}%s" % (_PIXEL_VALUE, NUM_PIXELS - 1, _PIXEL_VALUE))


class FER2013FormatError(ValueError):
    """A FER2013 (or FERPlus) file breaks the format.

    Attributes:
        path: the file, as given.
        line: the 1-based line number, as an editor shows it.
        what: the problem, without the location.
    """

    def __init__(self, path: str | os.PathLike, line: int, what: str):
        super().__init__(f"{os.fspath(path)}:{line}: {what}")
        self.path = os.fspath(path)
        self.line = line
        self.what = what


class Row(NamedTuple):
    """One validated data row: ``pixels`` is still the raw field (bytes)."""

    line: int
    emotion: int
    usage: int  # index into USAGES
    pixels: bytes


class Columns(NamedTuple):
    """Where the header puts each column (0-based positions)."""

    emotion: int
    pixels: int
    usage: int


def is_gzip(path: str | os.PathLike) -> bool:
    """True if the file starts with the gzip magic bytes (the suffix is not trusted)."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """Yields ``(line number, line)`` with the ``\\n`` or ``\\r\\n`` removed.

    A line is yielded only once the read behind it succeeded, so a truncated
    gzip stream is reported as such and not as a short last row.
    """
    opener = gzip.open if is_gzip(path) else open
    line_no, pending = 0, None
    try:
        with opener(path, "rb") as f:
            for line_no, raw in enumerate(f, start=1):
                if pending is not None:
                    yield pending
                pending = line_no, _strip_newline(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise FER2013FormatError(path, line_no + 1 if pending else 1, f"gzip data is truncated or corrupt ({e})") from e
    if pending is not None:
        yield pending


def _strip_newline(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def parse_header(path: str | os.PathLike, line: bytes) -> Columns:
    """Finds the three columns in the header line (line 1)."""
    line = line.removeprefix(_UTF8_BOM)
    names = [name.decode("utf-8", "replace") for name in split_fields(path, 1, line)]
    expected = ",".join(COLUMNS)
    if names[0].isdigit():
        raise FER2013FormatError(path, 1, f"missing header: expected '{expected}', found a data row")
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise FER2013FormatError(
            path, 1, f"header lacks column(s) {', '.join(map(repr, missing))}: expected '{expected}', found {_show(line)}"
        )
    if len(names) != len(COLUMNS):
        # Extra fields would go unvalidated, and could hold quotes that the
        # in-graph CSV decoder rejects in the middle of training.
        raise FER2013FormatError(path, 1, f"expected exactly the columns '{expected}' (in any order), found {_show(line)}")
    return Columns(*(names.index(name) for name in COLUMNS))


def parse_row(path: str | os.PathLike, line_no: int, line: bytes, columns: Columns) -> Row:
    """Validates one data line against the shared rules; raises :class:`FER2013FormatError`."""
    fields = split_fields(path, line_no, line)
    if len(fields) != len(COLUMNS):
        raise FER2013FormatError(path, line_no, f"expected {len(COLUMNS)} comma-separated fields, found {len(fields)}")
    emotion = _EMOTION_CODES.get(fields[columns.emotion])
    if emotion is None:
        raise FER2013FormatError(path, line_no, _describe_bad_emotion(fields[columns.emotion]))
    usage = _USAGE_CODES.get(fields[columns.usage])
    if usage is None:
        raise FER2013FormatError(
            path, line_no, f"unknown Usage {_show(fields[columns.usage])}: expected one of {', '.join(USAGES)}"
        )
    pixels = fields[columns.pixels]
    if not _PIXELS_FIELD.fullmatch(pixels):
        raise FER2013FormatError(path, line_no, _describe_bad_pixels(pixels))
    return Row(line_no, emotion, usage, pixels)


def split_fields(path: str | os.PathLike, line_no: int, line: bytes) -> list[bytes]:
    """The fields of one line, unquoted (RFC 4180) and stripped of surrounding spaces.

    Raises:
        FER2013FormatError: broken quoting, or a quote that does not start its field.
    """
    if b'"' not in line:
        return [field.strip(b" ") for field in line.split(b",")]
    try:
        # latin-1 maps every byte to one character and back, so no byte is lost.
        fields = next(csv.reader([line.decode("latin-1")], strict=True))
    except csv.Error as e:
        raise FER2013FormatError(path, line_no, f"broken quoting ({e}); a quoted field must end with its quote") from e
    for position, field in enumerate(fields, start=1):
        if field.startswith(" ") and field.lstrip(" ").startswith('"'):
            raise FER2013FormatError(
                path, line_no, f"field {position} has a quote after a space: a quoted field must start with its quote (RFC 4180)"
            )
    return [field.strip(" ").encode("latin-1") for field in fields]


def iter_rows(path: str | os.PathLike, bad_rows: list[FER2013FormatError] | None = None) -> Iterator[Row]:
    """Yields every valid data row of a FER2013 file, in file order.

    Args:
        path: plain or gzip CSV.
        bad_rows: ``None`` to raise on the first bad row; a list to skip bad
            rows instead, appending one error per skipped row. A bad header,
            an empty file or a broken gzip stream always raise.
    """
    lines = iter_lines(path)
    columns = _read_header_line(path, lines)
    # Blank lines are fine at the end of the file only, which is known once a
    # row follows them (an error) or the file ends (none).
    blank_lines: list[int] = []
    for line_no, line in lines:
        if not line.strip():
            blank_lines.append(line_no)
            continue
        errors = [FER2013FormatError(path, blank, "empty line (blank lines may only end the file)") for blank in blank_lines]
        blank_lines = []
        try:
            row = parse_row(path, line_no, line, columns)
        except FER2013FormatError as error:
            errors.append(error)
            row = None
        if errors and bad_rows is None:
            raise errors[0]
        if errors:
            bad_rows.extend(errors)
        if row is not None:
            yield row


def read_header(path: str | os.PathLike) -> Columns:
    """The column layout of a file, from its first line."""
    return _read_header_line(path, iter_lines(path))


def _read_header_line(path: str | os.PathLike, lines: Iterator[tuple[int, bytes]]) -> Columns:
    first = next(lines, None)
    if first is None:
        raise FER2013FormatError(path, 1, f"empty file: expected the header '{','.join(COLUMNS)}'")
    return parse_header(path, first[1])


def decode_pixel_fields(fields: list[bytes]) -> np.ndarray:
    """Validated pixel fields -> uint8 images of shape (len(fields), 48, 48, 1)."""
    if not fields:
        return np.zeros((0, *IMAGE_SHAPE), np.uint8)
    values = np.fromstring(b" ".join(fields), dtype=np.uint8, sep=" ")
    return values.reshape(len(fields), *IMAGE_SHAPE)


def write_fer2013_csv(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, usages: Sequence[str]
) -> str:
    """Writes faces in the exact Kaggle format; gzip (no name, mtime 0) if ``path`` ends in ``.gz``.

    Args:
        path: the file to write.
        images: uint8 (N, 48, 48) or (N, 48, 48, 1).
        labels: int (N,), class indices.
        usages: N names from :data:`USAGES`.

    Returns:
        ``path``, as a string.
    """
    path = os.fspath(path)
    unknown = set(usages) - set(USAGES)
    if unknown or not len(images) == len(labels) == len(usages):
        raise ValueError(
            f"write_fer2013_csv: expected as many images, labels and usages (one of {USAGES}); "
            f"got {len(images)}, {len(labels)}, {len(usages)}, unknown usages {sorted(unknown)}"
        )
    pixels = np.asarray(images, np.uint8).reshape(len(images), NUM_PIXELS)
    with open(path, "wb") as raw, (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.endswith(".gz") else raw
    ) as f:
        f.write((",".join(COLUMNS) + "\n").encode())
        for row, label, usage in zip(pixels, labels, usages):
            f.write(f"{label},{' '.join(map(str, row.tolist()))},{usage}\n".encode())
    return path


def _show(field: bytes, limit: int = 40) -> str:
    text = field.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _describe_bad_emotion(field: bytes) -> str:
    if field.removeprefix(b"-").isdigit():
        return f"emotion {int(field)} is outside 0-{len(CLASS_NAMES) - 1}"
    return f"emotion {_show(field)} is not an integer"


def _describe_bad_pixels(field: bytes) -> str:
    """Says what is wrong with a pixels field that failed the fast check."""
    tokens = field.split(b" ")
    for position, token in enumerate(tokens, start=1):
        if not token:
            return f"pixel {position} is empty (pixels must be separated by single spaces)"
        if not token.isdigit():
            return f"pixel {position} is {_show(token)}, not an integer"
        if int(token) > 255:
            return f"pixel {position} is {int(token)}, outside 0-255"
        if len(token) > 1 and token.startswith(b"0"):
            return f"pixel {position} is {_show(token)}, written with a leading zero"
    return f"expected {NUM_PIXELS} pixel values, found {len(tokens)}"
