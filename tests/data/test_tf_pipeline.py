"""The tf.data pipeline: same data as the NumPy reader, batching, shuffling, caching."""

import numpy as np
import pytest
import tensorflow as tf

from keras_fer.data import fer2013_dataset, read_fer2013


def concatenate(dataset):
    images, labels = zip(*((x.numpy(), y.numpy()) for x, y in dataset))
    return np.concatenate(images), np.concatenate(labels)


def test_yields_raw_uint8_faces_and_int32_labels(small_csv):
    dataset = fer2013_dataset(small_csv, batch_size=5)
    assert dataset.element_spec == (
        tf.TensorSpec((None, 48, 48, 1), tf.uint8),
        tf.TensorSpec((None,), tf.int32),
    )
    assert dataset.cardinality().numpy() == 6  # 28 Training rows in batches of 5


@pytest.mark.parametrize("usage", ["Training", "PrivateTest", ["PublicTest", "PrivateTest"]])
def test_same_rows_as_the_numpy_reader(small_csv, usage):
    images, labels = concatenate(fer2013_dataset(small_csv, usage=usage, batch_size=8))
    expected_images, expected_labels = read_fer2013(small_csv, usage=usage)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_drop_remainder_gives_full_batches_only(small_csv):
    batch_sizes = [len(y) for _, y in fer2013_dataset(small_csv, batch_size=5, drop_remainder=True)]
    assert batch_sizes == [5] * 5
    assert fer2013_dataset(small_csv, batch_size=5, drop_remainder=True).element_spec[0].shape[0] == 5


def test_shuffle_permutes_rows_reproducibly_and_differently_each_epoch(small_csv):
    expected_images, expected_labels = read_fer2013(small_csv)
    dataset = fer2013_dataset(small_csv, batch_size=100, shuffle=True, seed=3)
    first_epoch, second_epoch = concatenate(dataset), concatenate(dataset)
    again = concatenate(fer2013_dataset(small_csv, batch_size=100, shuffle=True, seed=3))
    np.testing.assert_array_equal(first_epoch[0], again[0])
    assert not np.array_equal(first_epoch[1], second_epoch[1])
    for images, labels in (first_epoch, second_epoch):
        assert not np.array_equal(labels, expected_labels)
        # The same (image, label) pairs, in another order.
        order = np.lexsort(images.reshape(len(images), -1).T)
        expected_order = np.lexsort(expected_images.reshape(len(images), -1).T)
        np.testing.assert_array_equal(images[order], expected_images[expected_order])
        np.testing.assert_array_equal(labels[order], expected_labels[expected_order])


def test_repeat_and_cache(small_csv):
    dataset = fer2013_dataset(small_csv, batch_size=7, repeat=True, cache=True)
    labels = np.concatenate([y.numpy() for _, y in dataset.take(8)])
    once = read_fer2013(small_csv)[1]
    np.testing.assert_array_equal(labels, np.concatenate([once, once]))


def test_real_file_same_images_and_labels_as_the_numpy_reader(real_csv, real_training_and_public):
    images, labels = concatenate(fer2013_dataset(real_csv, usage=["Training", "PublicTest"], batch_size=1024))
    expected_images, expected_labels = real_training_and_public
    assert images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(images, expected_images)
