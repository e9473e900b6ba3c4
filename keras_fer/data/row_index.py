"""A validated index of a FER2013 file: line, class and split of every row, no pixels.

Building it is the up-front validating pass: it reads the whole file once
through the shared rules of :mod:`keras_fer.data.csv_format`, so a bad file
fails here, before any training step. The index is small (a few bytes per row)
and cached per file, so the training and the validation datasets of one file
share one pass.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

import numpy as np

from keras_fer.data.csv_format import FER2013FormatError, Row, iter_rows

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class RowIndex:
    """Where the valid rows of a FER2013 file are and what they hold.

    Attributes:
        path: the file.
        lines: int64 (N,), the 1-based line of each valid data row.
        emotions: int8 (N,), the FER2013 class 0-6 of each row.
        usages: int8 (N,), the split of each row as an index into ``USAGES``.
        skipped: the errors of the rows skipped as bad (empty unless skipping
            was asked for).
    """

    path: str
    lines: np.ndarray
    emotions: np.ndarray
    usages: np.ndarray
    skipped: tuple[FER2013FormatError, ...]

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def last_line(self) -> int:
        """The last line that holds a data row, valid or skipped."""
        return max([int(self.lines[-1]) if len(self) else 1] + [error.line for error in self.skipped])


def scan_fer2013(
    path: str | os.PathLike, skip_bad_rows: bool = False, on_row: Callable[[Row], None] | None = None
) -> RowIndex:
    """Reads and validates a whole file, calling ``on_row`` for each valid row.

    The index is remembered, so that :func:`index_fer2013` of the same file
    does not scan it again.

    Raises:
        FER2013FormatError: on the first bad row (unless ``skip_bad_rows``),
            a bad header, an empty file, a broken gzip stream, or a file with
            no valid data row.
    """
    path = os.fspath(path)
    key = _cache_key(path, skip_bad_rows)
    bad_rows: list[FER2013FormatError] | None = [] if skip_bad_rows else None
    lines, emotions, usages = [], [], []
    for row in iter_rows(path, bad_rows):
        lines.append(row.line)
        emotions.append(row.emotion)
        usages.append(row.usage)
        if on_row is not None:
            on_row(row)
    skipped = tuple(bad_rows or ())
    if not lines:
        raise FER2013FormatError(path, 2 + len(skipped), "no valid data rows after the header")
    if skipped:
        logger.warning(
            "%s: skipped %d bad rows on lines %s (first: %s)",
            path, len(skipped), ", ".join(str(error.line) for error in skipped), skipped[0].what,
        )
    index = RowIndex(
        path=path,
        lines=np.asarray(lines, np.int64),
        emotions=np.asarray(emotions, np.int8),
        usages=np.asarray(usages, np.int8),
        skipped=skipped,
    )
    _remember(key, index)
    return index


def index_fer2013(path: str | os.PathLike, skip_bad_rows: bool = False) -> RowIndex:
    """The :class:`RowIndex` of a file, scanned once per (file version, mode) in this process."""
    cached = _INDEX_CACHE.get(_cache_key(path, skip_bad_rows))
    return cached if cached is not None else scan_fer2013(path, skip_bad_rows)


# The last few indexes, by (absolute path, size, mtime, skip_bad_rows): size and mtime
# are in the key so that an edited file is scanned again.
_INDEX_CACHE: dict[tuple[str, int, int, bool], RowIndex] = {}
_INDEX_CACHE_SIZE = 8


def _cache_key(path: str | os.PathLike, skip_bad_rows: bool) -> tuple[str, int, int, bool]:
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns, skip_bad_rows


def _remember(key: tuple[str, int, int, bool], index: RowIndex) -> None:
    _INDEX_CACHE.pop(key, None)
    _INDEX_CACHE[key] = index
    while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
        del _INDEX_CACHE[next(iter(_INDEX_CACHE))]
