"""The TFDS builder: prepares TFRecords from a manual CSV; tfds.load gives the splits."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_fer.data import CLASS_NAMES, FER2013FormatError, read_fer2013, write_synthetic_fer2013
from keras_fer.data.tfds_fer2013 import KerasFer2013


def load_all(split, **kwargs):
    examples = list(tfds.as_numpy(tfds.load("keras_fer2013", split=split, as_supervised=True, **kwargs)))
    return np.stack([image for image, _ in examples]), np.array([label for _, label in examples])


def sort_by_pixels(images, labels):
    order = np.lexsort(images.reshape(len(images), -1).T)
    return images[order], labels[order]


def test_load_gives_the_three_splits_of_the_csv(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    csv_path = write_synthetic_fer2013(manual_dir / "fer2013.csv.gz", {"Training": 3, "PublicTest": 2, "PrivateTest": 1}, seed=4)
    download = {"download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))}
    builder = KerasFer2013(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(**download)
    assert builder.info.features["label"].names == list(CLASS_NAMES)
    assert {name: split.num_examples for name, split in builder.info.splits.items()} == {
        "train": 21, "public_test": 14, "private_test": 7,
    }  # fmt: skip
    for split, usage in (("train", "Training"), ("public_test", "PublicTest"), ("private_test", "PrivateTest")):
        images, labels = load_all(split, data_dir=str(tmp_path / "tfds"), download_and_prepare_kwargs=download)
        assert images.shape[1:] == (48, 48, 1) and images.dtype == np.uint8
        expected = sort_by_pixels(*read_fer2013(csv_path, usage=usage))
        for found, wanted in zip(sort_by_pixels(images, labels), expected):
            np.testing.assert_array_equal(found, wanted)


def test_absent_split_is_not_generated(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    write_synthetic_fer2013(manual_dir / "fer2013.csv", {"Training": 1, "PublicTest": 1}, seed=4)
    builder = KerasFer2013(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    assert set(builder.info.splits) == {"train", "public_test"}
    with pytest.raises(ValueError, match="private_test"):
        builder.as_dataset(split="private_test")


def test_missing_or_bad_manual_file(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    (manual_dir / "fer2013.zip").write_bytes(b"not extracted")
    config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(FileNotFoundError, match="neither fer2013.csv nor fer2013.csv.gz is in the manual directory"):
        KerasFer2013(data_dir=str(tmp_path / "tfds")).download_and_prepare(download_config=config)
    (manual_dir / "fer2013.csv").write_text("emotion,pixels,Usage\n9,1 2,Training\n")
    with pytest.raises(FER2013FormatError, match=f"^{manual_dir / 'fer2013.csv'}:2: emotion 9 is outside 0-6"):
        KerasFer2013(data_dir=str(tmp_path / "tfds")).download_and_prepare(download_config=config)


def test_builder_reads_a_quoted_reordered_spreadsheet_export(tmp_path):
    """icml_face_data.csv's header, every field quoted, CRLF, a BOM and trailing blank lines."""
    original = write_synthetic_fer2013(tmp_path / "original.csv", {"Training": 2, "PublicTest": 1}, seed=5)
    rows = [line.split(",") for line in Path(original).read_text().splitlines()[1:]]
    export = csv_text([["emotion", " Usage", " pixels"], *[[e, u, p] for e, p, u in rows]]) + "\r\n\r\n"
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    (manual_dir / "fer2013.csv").write_bytes(export.encode("utf-8-sig"))
    download = {"download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))}
    KerasFer2013(data_dir=str(tmp_path / "tfds")).download_and_prepare(**download)
    images, labels = load_all("train", data_dir=str(tmp_path / "tfds"), download_and_prepare_kwargs=download)
    for found, wanted in zip(sort_by_pixels(images, labels), sort_by_pixels(*read_fer2013(original, usage="Training"))):
        np.testing.assert_array_equal(found, wanted)


def csv_text(rows):
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    return out.getvalue()
