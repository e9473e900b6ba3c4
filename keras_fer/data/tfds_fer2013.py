"""A TensorFlow Datasets builder for FER2013, from a CSV the user downloaded.

Importing this module registers the dataset ``keras_fer2013``::

    import tensorflow_datasets as tfds
    import keras_fer.data.tfds_fer2013  # noqa: F401 (registers the builder)

    train = tfds.load(
        "keras_fer2013", split="train", as_supervised=True,
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir="~/fer2013")
        },
    )

The first load validates the CSV with the shared rules, then writes TFRecords
under ``data_dir``; later loads read those. Kept separate from
``keras_fer.data`` because ``tensorflow_datasets`` is slow to import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from keras_fer.data.csv_format import CLASS_NAMES, IMAGE_SHAPE, USAGES, decode_pixel_fields, iter_rows
from keras_fer.data.row_index import index_fer2013

# TFDS split name of each Usage.
SPLIT_OF_USAGE = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}
MANUAL_FILE_NAMES = ("fer2013.csv", "fer2013.csv.gz")


class KerasFer2013(tfds.core.GeneratorBasedBuilder):
    """FER2013: 48x48 grayscale faces in 7 expression classes (Kaggle ``fer2013.csv``).

    Splits: ``train`` (Usage Training), ``public_test`` (PublicTest) and
    ``private_test`` (PrivateTest). A split with no rows in the CSV is not
    generated, so asking for it fails with TFDS's unknown-split error.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: the FER2013 emotion labels, 3 splits by Usage."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download fer2013.csv (the Kaggle "Challenges in Representation Learning:
    Facial Expression Recognition Challenge" data, header emotion,pixels,Usage)
    and put it, plain or gzip-compressed as fer2013.csv.gz, in the manual
    directory (by default ~/tensorflow_datasets/downloads/manual/, or pass
    download_config=tfds.download.DownloadConfig(manual_dir=...)).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=IMAGE_SHAPE, dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        path = find_manual_csv(os.fspath(dl_manager.manual_dir))
        # Validates the whole file before any TFRecord is written.
        present = set(index_fer2013(path).usages.tolist())
        return {
            SPLIT_OF_USAGE[usage]: self._generate_examples(path, code)
            for code, usage in enumerate(USAGES)
            if code in present
        }

    def _generate_examples(self, path: str, usage: int) -> Iterator[tuple[int, dict]]:
        """Yields ``(CSV line number, {"image": uint8 (48, 48, 1), "label": int})`` for one split."""
        for row in iter_rows(path):
            if row.usage == usage:
                yield row.line, {"image": decode_pixel_fields([row.pixels])[0], "label": row.emotion}


def find_manual_csv(manual_dir: str) -> str:
    """The FER2013 CSV in the manual directory; FileNotFoundError with the instructions if absent."""
    for name in MANUAL_FILE_NAMES:
        path = os.path.join(manual_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"neither {' nor '.join(MANUAL_FILE_NAMES)} is in the manual directory {manual_dir}.\n"
        + KerasFer2013.MANUAL_DOWNLOAD_INSTRUCTIONS
    )
