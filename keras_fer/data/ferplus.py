"""FERPlus labels: majority votes, or the share of votes, from Microsoft's ``fer2013new.csv``.

``fer2013new.csv`` has one row per row of the original ``fer2013.csv``, in the
same order (row *i* of one describes row *i* of the other), with the votes of
10 annotators::

    Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF

How a row's votes become a label (the same rule for every split):

* The winner is the column with the most votes among all ten (the eight
  emotions, ``unknown`` and ``NF`` = not a face).
* A tie for the most votes drops the row (no label is better than a coin toss).
* A row won by ``unknown`` or ``NF`` is dropped.
* A row won by ``contempt`` is dropped in the 7-class mode (FER2013 has no
  contempt) and is class 7 in the 8-class mode.
* The FERPlus emotions map onto the FER2013 class indices: anger 0, disgust 1,
  fear 2, happiness 3, sadness 4, surprise 5, neutral 6, contempt 7.

Training may instead aim at a row's share of votes (:func:`vote_shares`, Barsoum et
al.'s "probability" scheme): the same rows are kept, and a face that 6 annotators
call neutral and 4 sad is taught as 0.6 neutral and 0.4 sad.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from keras_fer.data.csv_format import CLASS_NAMES, USAGES, FER2013FormatError
from keras_fer.data.row_index import RowIndex

FERPLUS8_CLASS_NAMES = (*CLASS_NAMES, "Contempt")
FERPLUS_COLUMNS = (
    "Usage", "Image name",
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)  # fmt: skip
VOTE_COLUMNS = FERPLUS_COLUMNS[2:]
DROPPED = -1
_CLASS_NAME_OF_VOTE_COLUMN = {
    "anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happiness": "Happy",
    "sadness": "Sad", "surprise": "Surprise", "neutral": "Neutral", "contempt": "Contempt",
}  # fmt: skip
# The label each vote column stands for (6 3 5 4 0 1 2 7); DROPPED for unknown and not-a-face.
_CLASS_OF_VOTE_COLUMN = np.array(
    [FERPLUS8_CLASS_NAMES.index(_CLASS_NAME_OF_VOTE_COLUMN[c]) if c in _CLASS_NAME_OF_VOTE_COLUMN else DROPPED for c in VOTE_COLUMNS],
    np.int32,
)
_CONTEMPT = FERPLUS8_CLASS_NAMES.index("Contempt")


@dataclasses.dataclass(frozen=True, eq=False)
class FERPlusVotes:
    """The parsed vote file.

    Attributes:
        path: the file.
        lines: int64 (M,), the 1-based line of each data row.
        usages: int8 (M,), each row's split as an index into ``USAGES``.
        votes: int32 (M, 10), the vote counts in :data:`VOTE_COLUMNS` order.
    """

    path: str
    lines: np.ndarray
    usages: np.ndarray
    votes: np.ndarray


def read_ferplus_votes(path: str | os.PathLike) -> FERPlusVotes:
    """Reads and validates ``fer2013new.csv``; raises :class:`FER2013FormatError` naming file and line."""
    expected = ",".join(FERPLUS_COLUMNS)
    lines, usages, votes = [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise FER2013FormatError(path, 1, f"empty file: expected the FERPlus header '{expected}'")
        if tuple(header) != FERPLUS_COLUMNS:
            raise FER2013FormatError(path, 1, f"not a FERPlus header: expected '{expected}', found {','.join(header)!r}")
        for fields in reader:
            line = reader.line_num
            if len(fields) != len(FERPLUS_COLUMNS):
                raise FER2013FormatError(path, line, f"expected {len(FERPLUS_COLUMNS)} fields, found {len(fields)}")
            if fields[0] not in USAGES:
                raise FER2013FormatError(path, line, f"unknown Usage {fields[0]!r}: expected one of {', '.join(USAGES)}")
            for name, count in zip(VOTE_COLUMNS, fields[2:]):
                if not count.isdigit():
                    raise FER2013FormatError(path, line, f"vote count {name}={count!r} is not a non-negative integer")
            lines.append(line)
            usages.append(USAGES.index(fields[0]))
            votes.append([int(count) for count in fields[2:]])
    return FERPlusVotes(
        path=os.fspath(path),
        lines=np.asarray(lines, np.int64),
        usages=np.asarray(usages, np.int8),
        votes=np.asarray(votes, np.int32).reshape(-1, len(VOTE_COLUMNS)),
    )


def majority_labels(votes: np.ndarray, with_contempt: bool = False) -> np.ndarray:
    """Vote counts (M, 10) -> int32 (M,) labels in FER2013 order, :data:`DROPPED` (-1) for dropped rows."""
    winner = np.argmax(votes, axis=1)
    top = votes[np.arange(len(votes)), winner]
    tied = (votes == top[:, None]).sum(axis=1) > 1
    labels = np.where(tied, DROPPED, _CLASS_OF_VOTE_COLUMN[winner])
    if not with_contempt:
        labels = np.where(labels == _CONTEMPT, DROPPED, labels)
    return labels.astype(np.int32)


def check_split_counts(votes: FERPlusVotes, index: RowIndex) -> None:
    """Raises :class:`FER2013FormatError` naming both counts where a split's row counts differ."""
    skipped = len(index.skipped)
    for code, usage in enumerate(USAGES):
        in_csv = int((index.usages == code).sum())
        in_ferplus = int((votes.usages == code).sum())
        if not in_csv or in_ferplus - skipped <= in_csv <= in_ferplus:
            continue
        first = int(np.argmax(votes.usages == code)) if in_ferplus else len(votes.lines) - 1
        raise FER2013FormatError(
            votes.path, int(votes.lines[first]) if len(votes.lines) else 1,
            f"the FERPlus file has {in_ferplus} {usage} rows and {index.path} has {in_csv}"
            + (f" (and {skipped} rows skipped as bad)" if skipped else "")
            + ": a FERPlus file labels a whole fer2013.csv row for row, so it cannot belong to this CSV",
        )


def vote_shares(votes: np.ndarray, with_contempt: bool = False) -> np.ndarray:
    """Vote counts (M, 10) -> float32 (M, K) shares of each class's votes, in FER2013 order.

    Only the votes for the K classes count (K = 8 with contempt, else 7): unknown, not-a-face
    and, in the 7-class mode, contempt votes are left out, and the rest sum to 1. A row with no
    vote for any of the K classes is all zeros (its majority label drops it anyway).
    """
    classes = len(FERPLUS8_CLASS_NAMES) if with_contempt else len(CLASS_NAMES)
    counts = np.zeros((len(votes), classes), np.float32)
    for column, label in enumerate(_CLASS_OF_VOTE_COLUMN):
        if 0 <= label < classes:
            counts[:, label] = votes[:, column]
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def ferplus_labels(ferplus_path: str | os.PathLike, index: RowIndex, with_contempt: bool = False) -> np.ndarray:
    """FERPlus majority labels for the rows of a FER2013 file.

    Data row *i* of the CSV (counted from line 2, skipped bad rows included)
    takes the votes of data row *i* of the FERPlus file. A FERPlus file
    describes a whole ``fer2013.csv``, so it can label a CSV only when:

    * every split the CSV has holds as many rows in the CSV as in the FERPlus
      file (a CSV may lack whole splits at its end: the shared Training +
      PublicTest file goes with the full FERPlus file; rows skipped as bad
      may make the CSV's counts smaller by at most their number), and
    * the Usage of every CSV row matches that of its FERPlus row.

    Returns:
        int32 (len(index),), aligned with ``index``: a class index, or -1 for a
        dropped row.

    Raises:
        FER2013FormatError: naming the FERPlus file and line where it does not
            align with the CSV.
    """
    return majority_labels(aligned_votes(ferplus_path, index), with_contempt)


def aligned_votes(ferplus_path: str | os.PathLike, index: RowIndex) -> np.ndarray:
    """int32 (len(index), 10): the FERPlus votes of each row of a FER2013 file, checked as
    :func:`ferplus_labels` describes (raises :class:`FER2013FormatError` where they do not align)."""
    votes = read_ferplus_votes(ferplus_path)
    rows = index.lines - 2
    past_end = rows >= len(votes.usages)
    if past_end.any():
        csv_line = int(index.lines[np.argmax(past_end)])
        raise FER2013FormatError(
            votes.path, int(votes.lines[-1]) + 1 if len(votes.lines) else 2,
            f"the FERPlus file ends after {len(votes.usages)} rows, but {index.path}:{csv_line} is a data row: "
            "the FERPlus file must be row-aligned with the CSV",
        )
    mismatch = votes.usages[rows] != index.usages
    if mismatch.any():
        first = int(np.argmax(mismatch))
        row = int(rows[first])
        raise FER2013FormatError(
            votes.path, int(votes.lines[row]),
            f"Usage {USAGES[votes.usages[row]]} does not match {USAGES[index.usages[first]]} on "
            f"{index.path}:{index.lines[first]}: the FERPlus file must be row-aligned with the CSV",
        )
    check_split_counts(votes, index)
    return votes.votes[rows]
