"""Synthetic faces: Kaggle format, balanced classes, determinism, and expression that shows."""

import csv
import gzip
from collections import Counter

import numpy as np
import pytest

from keras_fer.data import read_fer2013, synthetic_faces, write_synthetic_fer2013


def test_file_is_in_the_exact_fer2013_format(small_csv):
    raw = small_csv.read_bytes()
    assert b"\r" not in raw and raw.endswith(b"\n")
    with open(small_csv, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["emotion", "pixels", "Usage"]
    for emotion, pixels, usage in rows[1:]:
        assert emotion in {"0", "1", "2", "3", "4", "5", "6"}
        values = pixels.split(" ")
        assert len(values) == 2304 and all(v.isdigit() and str(int(v)) == v and int(v) <= 255 for v in values)
        assert usage in {"Training", "PublicTest", "PrivateTest"}
    # Splits in the order of fer2013.csv, each with the asked number per class.
    usages = [usage for _, _, usage in rows[1:]]
    assert usages == ["Training"] * 28 + ["PublicTest"] * 14 + ["PrivateTest"] * 14
    assert Counter((emotion, usage) for emotion, _, usage in rows[1:]) == {
        (str(c), usage): n for c in range(7) for usage, n in (("Training", 4), ("PublicTest", 2), ("PrivateTest", 2))
    }


def test_same_seed_same_bytes_other_seed_other_faces(tmp_path):
    counts = {"Training": 2, "PublicTest": 1}
    first = write_synthetic_fer2013(tmp_path / "a.csv.gz", counts, seed=5)
    second = write_synthetic_fer2013(tmp_path / "b.csv.gz", counts, seed=5)
    other = write_synthetic_fer2013(tmp_path / "c.csv.gz", counts, seed=6)
    assert open(first, "rb").read() == open(second, "rb").read()
    assert open(first, "rb").read() != open(other, "rb").read()
    plain = write_synthetic_fer2013(tmp_path / "a.csv", counts, seed=5)
    assert gzip.decompress(open(first, "rb").read()) == open(plain, "rb").read()
    with pytest.raises(ValueError, match="no rows with Usage 'PrivateTest'"):
        read_fer2013(plain, usage="PrivateTest")


def test_synthetic_faces_are_balanced_deterministic_and_varied():
    images, labels = synthetic_faces(30, seed=2)
    assert images.shape == (30, 48, 48, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
    assert sorted(np.bincount(labels, minlength=7)) == [4, 4, 4, 4, 4, 5, 5]
    again = synthetic_faces(30, seed=2)
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(labels, again[1])
    assert not np.array_equal(images, synthetic_faces(30, seed=3)[0])
    assert len({image.tobytes() for image in images}) == 30
    # Not a class template: faces of one class differ a lot (pose, lighting, noise).
    same_class = images[labels == labels[0]].reshape(-1, 2304).astype(float)
    assert np.abs(same_class[0] - same_class[1]).mean() > 20


def test_expression_is_not_solved_by_a_pixel_template():
    """Nearest class mean on raw pixels stays near chance (1/7): pose, lighting and noise matter."""
    train_images, train_labels = synthetic_faces(700, seed=10)
    test_images, test_labels = synthetic_faces(350, seed=11)

    def nearest_mean_accuracy(train, test):
        means = np.stack([train[train_labels == c].mean(axis=0) for c in range(7)])
        distances = ((test[:, None, :] - means[None]) ** 2).sum(axis=-1)
        return (distances.argmin(axis=1) == test_labels).mean()

    flat = lambda x: x.reshape(len(x), -1).astype(np.float32)  # noqa: E731
    accuracy = nearest_mean_accuracy(flat(train_images), flat(test_images))
    assert accuracy < 0.4


def test_command_line_writes_the_same_file_as_the_function(tmp_path, capsys):
    from keras_fer.data.make_synthetic import main

    main([str(tmp_path / "cli.csv.gz"), "--per-class", "2", "1", "0", "--seed", "7"])
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'cli.csv.gz'}: Training 14, PublicTest 7, PrivateTest 0 rows"
    write_synthetic_fer2013(tmp_path / "function.csv.gz", {"Training": 2, "PublicTest": 1}, seed=7)
    assert (tmp_path / "cli.csv.gz").read_bytes() == (tmp_path / "function.csv.gz").read_bytes()
