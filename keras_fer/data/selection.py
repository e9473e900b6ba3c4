"""Which rows a reader yields and with which labels: splits and label modes.

Both readers call :func:`select_rows` on the same :class:`RowIndex`, so they
agree on rows and labels by construction.

Label modes:

* ``"fer2013"``: the ``emotion`` column, 7 classes (:data:`CLASS_NAMES`);
  drops nothing.
* ``"ferplus"``: FERPlus majority vote, 7 classes; drops ties, rows won by
  unknown / not-a-face, and rows won by contempt.
* ``"ferplus8"``: FERPlus majority vote, 8 classes
  (:data:`FERPLUS8_CLASS_NAMES`, contempt = 7); drops ties and rows won by
  unknown / not-a-face.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_fer.data.csv_format import CLASS_NAMES, USAGES
from keras_fer.data.ferplus import FERPLUS8_CLASS_NAMES, aligned_votes, ferplus_labels, vote_shares
from keras_fer.data.row_index import RowIndex, index_fer2013

LABEL_MODES = ("fer2013", "ferplus", "ferplus8")
TARGET_KINDS = ("labels", "votes")


def class_names(labels: str = "fer2013") -> tuple[str, ...]:
    """The class names of a label mode, indexed by label."""
    if labels not in LABEL_MODES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
    return FERPLUS8_CLASS_NAMES if labels == "ferplus8" else CLASS_NAMES


def check_label_mode(labels: str, ferplus_path: str | os.PathLike | None = None, targets: str = "labels") -> None:
    """Raises ValueError for an unknown mode or targets, a FERPlus mode without its vote file, or
    vote targets without FERPlus votes."""
    class_names(labels)
    if labels != "fer2013" and ferplus_path is None:
        raise ValueError(f"labels={labels!r} needs ferplus_path (the FERPlus vote file fer2013new.csv)")
    if targets not in TARGET_KINDS:
        raise ValueError(f"targets must be one of {', '.join(TARGET_KINDS)}, got {targets!r}")
    if targets == "votes" and labels == "fer2013":
        raise ValueError("targets='votes' needs a FERPlus label mode (ferplus or ferplus8): FER2013 has one "
                         "label a face, no votes")


def usage_codes(usage: str | Sequence[str]) -> tuple[int, ...]:
    """``"Training"`` or ``["PublicTest", "PrivateTest"]`` -> indices into ``USAGES``."""
    names = (usage,) if isinstance(usage, str) else tuple(usage)
    unknown = [name for name in names if name not in USAGES]
    if unknown or not names:
        raise ValueError(f"usage must be one or more of {', '.join(USAGES)}, got {usage!r}")
    return tuple(USAGES.index(name) for name in names)


def row_labels(index: RowIndex, labels: str = "fer2013", ferplus_path: str | os.PathLike | None = None) -> np.ndarray:
    """int32 (len(index),): each row's label in the given mode, -1 where the mode drops the row."""
    check_label_mode(labels, ferplus_path)
    if labels == "fer2013":
        return index.emotions.astype(np.int32)
    return ferplus_labels(ferplus_path, index, with_contempt=labels == "ferplus8")


def select_rows(
    index: RowIndex,
    usage: str | Sequence[str] = "Training",
    labels: str = "fer2013",
    ferplus_path: str | os.PathLike | None = None,
    targets: str = "labels",
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the wanted splits that the label mode keeps, in file order.

    Returns:
        ``(positions, targets)``: int64 (M,) positions into ``index``, and int32
        (M,) labels or, for ``targets="votes"``, float32 (M, K) vote shares.

    Raises:
        ValueError: if no row is left (an empty dataset would train on nothing).
    """
    codes = usage_codes(usage)
    row_targets = row_labels(index, labels, ferplus_path)
    positions = np.flatnonzero(np.isin(index.usages, codes) & (row_targets >= 0))
    if not len(positions):
        raise ValueError(f"{index.path}: no rows with Usage {usage!r} (labels={labels!r})")
    if targets == "votes":
        return positions, vote_shares(aligned_votes(ferplus_path, index)[positions], with_contempt=labels == "ferplus8")
    return positions, row_targets[positions]


def count_fer2013(
    path: str | os.PathLike,
    ferplus_path: str | os.PathLike | None = None,
    labels: str | None = None,
    skip_bad_rows: bool = False,
) -> dict:
    """Validates a file and counts its rows by split and class.

    Args:
        labels: the label mode; default ``"ferplus"`` with a ``ferplus_path``,
            else ``"fer2013"``.

    Returns:
        A JSON-ready dict: ``path``, ``labels``, ``rows`` (valid data rows),
        ``skipped_lines``, and ``splits``: for each split present, ``rows``,
        ``kept`` and ``dropped`` (rows the label mode drops) and ``classes``
        (class name -> count).
    """
    labels = labels or ("ferplus" if ferplus_path is not None else "fer2013")
    index = index_fer2013(path, skip_bad_rows)
    targets = row_labels(index, labels, ferplus_path)
    names = class_names(labels)
    splits = {}
    for code, usage in enumerate(USAGES):
        in_split = index.usages == code
        if not in_split.any():
            continue
        per_class = np.bincount(targets[in_split & (targets >= 0)], minlength=len(names))
        splits[usage] = {
            "rows": int(in_split.sum()),
            "kept": int(per_class.sum()),
            "dropped": int(in_split.sum() - per_class.sum()),
            "classes": dict(zip(names, per_class.tolist())),
        }
    return {
        "path": index.path,
        "labels": labels,
        "rows": len(index),
        "skipped_lines": [error.line for error in index.skipped],
        "splits": splits,
    }
