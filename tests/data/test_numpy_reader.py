"""The NumPy reader: split selection, and the exact contents of the real file."""

import gzip

import numpy as np
import pytest

from keras_fer.data import CLASS_NAMES, count_fer2013, read_fer2013

TRAINING_PER_CLASS = {"Angry": 3995, "Disgust": 436, "Fear": 4097, "Happy": 7215, "Sad": 4830, "Surprise": 3171, "Neutral": 4965}
PUBLIC_TEST_PER_CLASS = dict(zip(CLASS_NAMES, [467, 56, 496, 895, 653, 415, 607]))


def test_reads_the_selected_splits_in_file_order(small_csv):
    lines = small_csv.read_text().splitlines()[1:]
    for usage in ("Training", "PublicTest", ["PublicTest", "PrivateTest"]):
        wanted = [usage] if isinstance(usage, str) else usage
        rows = [line.split(",") for line in lines if line.split(",")[2] in wanted]
        images, labels = read_fer2013(small_csv, usage=usage)
        assert images.dtype == np.uint8 and images.shape == (len(rows), 48, 48, 1)
        assert labels.dtype == np.int32
        np.testing.assert_array_equal(labels, [int(row[0]) for row in rows])
        np.testing.assert_array_equal(images.reshape(len(rows), -1), [[int(v) for v in row[1].split()] for row in rows])


@pytest.mark.parametrize("usage", ["Validation", [], ["Training", "test"]])
def test_rejects_unknown_usage(small_csv, usage):
    with pytest.raises(ValueError, match="usage must be one or more of Training, PublicTest, PrivateTest"):
        read_fer2013(small_csv, usage=usage)


def test_a_split_absent_from_the_file_is_an_error(tmp_path):
    from fer_test_files import HEADER, pixel_field, write_csv

    path = write_csv(tmp_path / "fer2013.csv", [HEADER, f"3,{pixel_field(0)},Training"])
    with pytest.raises(ValueError, match="no rows with Usage 'PrivateTest'"):
        read_fer2013(path, usage="PrivateTest")


def test_ferplus_modes_need_the_vote_file(small_csv):
    with pytest.raises(ValueError, match="needs ferplus_path"):
        read_fer2013(small_csv, labels="ferplus")
    with pytest.raises(ValueError, match="labels must be one of fer2013, ferplus, ferplus8"):
        read_fer2013(small_csv, labels="fer2013plus")


def test_real_file_counts_are_exact(real_csv, real_training_and_public):
    counts = count_fer2013(real_csv)
    assert counts["rows"] == 32298 and counts["skipped_lines"] == []
    assert set(counts["splits"]) == {"Training", "PublicTest"}
    assert counts["splits"]["Training"]["rows"] == 28709
    assert counts["splits"]["Training"]["classes"] == TRAINING_PER_CLASS
    assert counts["splits"]["PublicTest"]["rows"] == 3589
    assert counts["splits"]["PublicTest"]["classes"] == PUBLIC_TEST_PER_CLASS
    _, labels = real_training_and_public
    # Training rows come first in the file.
    assert np.bincount(labels[:28709]).tolist() == list(TRAINING_PER_CLASS.values())
    assert np.bincount(labels[28709:]).tolist() == list(PUBLIC_TEST_PER_CLASS.values())


def test_real_file_first_image(real_csv, real_training_and_public):
    images, labels = real_training_and_public
    assert images.shape == (32298, 48, 48, 1)
    assert images[0, 0, :5, 0].tolist() == [70, 80, 82, 72, 58]
    with gzip.open(real_csv, "rt") as f:
        next(f)
        emotion, pixels, usage = next(f).rstrip("\n").split(",")
    assert (labels[0], usage) == (int(emotion), "Training")
    np.testing.assert_array_equal(images[0].ravel(), np.array(pixels.split(), dtype=np.uint8))
