"""Reads a FER2013 CSV into NumPy arrays, with no TensorFlow (any Keras backend)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_fer.data.csv_format import Row, decode_pixel_fields
from keras_fer.data.row_index import scan_fer2013
from keras_fer.data.selection import check_label_mode, select_rows, usage_codes

# Pixel fields are decoded in chunks so that at most this many raw fields
# (~8 KB each) are held at once, instead of the whole text of the file.
_DECODE_CHUNK = 2048


def read_fer2013(
    path: str | os.PathLike,
    usage: str | Sequence[str] = "Training",
    labels: str = "fer2013",
    ferplus_path: str | os.PathLike | None = None,
    skip_bad_rows: bool = False,
    targets: str = "labels",
) -> tuple[np.ndarray, np.ndarray]:
    """Reads the rows of one or more splits, validating the whole file.

    Args:
        path: ``fer2013.csv`` or ``fer2013.csv.gz``.
        usage: ``"Training"``, ``"PublicTest"``, ``"PrivateTest"`` or a sequence of them.
        labels: ``"fer2013"``, ``"ferplus"`` or ``"ferplus8"`` (see :mod:`keras_fer.data.selection`).
        ferplus_path: ``fer2013new.csv``, needed by the FERPlus modes.
        skip_bad_rows: skip (and log, with their lines) rows that break the
            format instead of raising.
        targets: ``"labels"`` or, in the FERPlus modes, ``"votes"``.

    Returns:
        ``(images, labels)``: uint8 (N, 48, 48, 1) and int32 (N,), in file order;
        with vote targets, float32 (N, K) shares of the votes instead of labels.

    Raises:
        FER2013FormatError: the file (or the FERPlus file) breaks the format;
            the message names file, line and problem.
        ValueError: bad arguments, or no row selected.
    """
    check_label_mode(labels, ferplus_path, targets)
    wanted = usage_codes(usage)
    images = _SplitImages(wanted)
    index = scan_fer2013(path, skip_bad_rows, on_row=images.add)
    positions, row_targets = select_rows(index, usage, labels, ferplus_path, targets)
    # The FERPlus modes drop some rows of the wanted splits: keep the images of
    # the selected positions among all the rows of those splits.
    kept = np.isin(np.flatnonzero(np.isin(index.usages, wanted)), positions)
    return images.finish()[kept], row_targets


class _SplitImages:
    """Collects and decodes the pixels of the rows of some splits, chunk by chunk."""

    def __init__(self, usages: tuple[int, ...]):
        self._usages = frozenset(usages)
        self._pending: list[bytes] = []
        self._decoded: list[np.ndarray] = []

    def add(self, row: Row) -> None:
        if row.usage in self._usages:
            self._pending.append(row.pixels)
            if len(self._pending) == _DECODE_CHUNK:
                self._flush()

    def finish(self) -> np.ndarray:
        """uint8 (N, 48, 48, 1), every added row of the wanted splits."""
        self._flush()
        return np.concatenate(self._decoded)

    def _flush(self) -> None:
        self._decoded.append(decode_pixel_fields(self._pending))
        self._pending = []
