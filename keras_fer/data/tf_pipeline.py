"""The ``tf.data`` input pipeline: FER2013 CSV -> batches of raw faces.

The data side stops at raw faces, ``(uint8 (B, 48, 48, 1), int32 (B,))``;
scaling, resizing, gray->RGB and augmentation are layers of the model.

How it works:

1. :func:`index_fer2013` validates the whole file with the shared rules
   (cached per file), so a bad file fails when the dataset is built, before
   ``model.fit`` takes a batch, with file and line in the message. It also
   gives each line's split and label (FER2013 or FERPlus).
2. ``TextLineDataset`` streams the lines (plain or gzip), zipped with a
   per-line keep flag and label; the lines of other splits and rows that the
   label mode drops are filtered out.
3. The pixel strings are parsed inside the graph (``tf.strings.split`` +
   ``tf.strings.to_number``), a chunk of rows per parallel map call, then
   prefetched. (A second ``tf.io.decode_csv`` with space as the delimiter, or
   byte arithmetic on ``tf.io.decode_raw``, measured no faster in the pipeline.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_fer.data.csv_format import IMAGE_SHAPE, is_gzip, read_header
from keras_fer.data.row_index import index_fer2013
from keras_fer.data.selection import check_label_mode, select_rows

# Rows decoded per map call: large enough to amortise the per-call overhead,
# small enough that the parallel calls keep every core busy.
_DECODE_CHUNK = 256
_READ_BUFFER_BYTES = 4 << 20


def fer2013_dataset(
    path: str | os.PathLike,
    usage: str | Sequence[str] = "Training",
    batch_size: int = 64,
    labels: str = "fer2013",
    ferplus_path: str | os.PathLike | None = None,
    targets: str = "labels",
    shuffle: bool = False,
    seed: int | None = None,
    cache: bool = False,
    repeat: bool = False,
    drop_remainder: bool = False,
    skip_bad_rows: bool = False,
    shuffle_buffer: int | None = None,
) -> tf.data.Dataset:
    """Batches of raw faces from a FER2013 CSV (plain or gzip).

    Args:
        path: ``fer2013.csv`` or ``fer2013.csv.gz``.
        usage: a split name or a sequence of them.
        batch_size: rows per batch.
        labels: ``"fer2013"``, ``"ferplus"`` or ``"ferplus8"``.
        ferplus_path: ``fer2013new.csv``, for the FERPlus modes.
        targets: ``"labels"`` (int32 classes) or, in the FERPlus modes,
            ``"votes"`` (float32 shares of the votes, one column a class).
        shuffle: shuffle rows, differently each epoch.
        seed: shuffle seed (with ``shuffle``).
        cache: keep the decoded images in memory after the first pass
            (2.3 KB per image; 66 MB for the Training split).
        repeat: repeat forever.
        drop_remainder: drop the last, smaller batch.
        skip_bad_rows: skip (and log) rows that break the format instead of raising.
        shuffle_buffer: rows held by the shuffle buffer; default all the
            selected rows, an exact shuffle (2.3 KB per row).

    Returns:
        A dataset of ``(images uint8 (B, 48, 48, 1), labels int32 (B,))``,
        or with vote targets ``(images, float32 (B, K))``, whose cardinality is known (unless ``repeat``).

    Raises:
        FER2013FormatError: the file breaks the format (raised here, up front).
        ValueError: bad arguments, or no row selected.
    """
    check_label_mode(labels, ferplus_path, targets)
    path = os.fspath(path)
    index = index_fer2013(path, skip_bad_rows)
    positions, row_targets = select_rows(index, usage, labels, ferplus_path, targets)
    pixels_column = read_header(path).pixels

    # One entry per data line (line 2 onwards), bad and blank lines included,
    # so that they zip with the lines TextLineDataset yields.
    num_lines = index.last_line - 1
    keep = np.zeros(num_lines, bool)
    line_targets = np.zeros((num_lines, *row_targets.shape[1:]), row_targets.dtype)
    keep[index.lines[positions] - 2] = True
    line_targets[index.lines[positions] - 2] = row_targets

    lines = tf.data.TextLineDataset(
        path, compression_type="GZIP" if is_gzip(path) else "", buffer_size=_READ_BUFFER_BYTES
    ).skip(1)
    rows = tf.data.Dataset.zip(
        lines, tf.data.Dataset.from_tensor_slices(keep), tf.data.Dataset.from_tensor_slices(line_targets)
    )
    rows = rows.filter(_is_kept).map(_drop_keep_flag)

    def decode(lines: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(n,) CSV lines -> uint8 (n, 48, 48, 1) images."""
        # decode_csv unquotes RFC 4180 fields; the shared rules allow spaces around a field.
        pixel_fields = tf.strings.strip(tf.io.decode_csv(lines, record_defaults=[""], select_cols=[pixels_column])[0])
        values = tf.strings.to_number(tf.strings.split(pixel_fields, " ").flat_values, tf.int32)
        return tf.cast(tf.reshape(values, (-1, *IMAGE_SHAPE)), tf.uint8), labels

    faces = rows.batch(_DECODE_CHUNK).map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    faces = faces.apply(tf.data.experimental.assert_cardinality(len(positions)))
    if cache:
        faces = faces.cache()
    if shuffle:
        faces = faces.shuffle(shuffle_buffer or len(positions), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        faces = faces.repeat()
    return faces.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _is_kept(line: tf.Tensor, keep: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
    return keep


def _drop_keep_flag(line: tf.Tensor, keep: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return line, label
