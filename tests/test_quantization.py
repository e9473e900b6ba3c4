"""int8 activation ranges chosen by quantization error (keras_fer.quantization).

The whole int8 path on the model trained on real faces is checked in test_pretrained.py.
"""

import numpy as np
import pytest

from keras_fer.quantization import HISTOGRAM_BINS, RANGE_FACTORS, range_factor, value_histogram


def test_values_that_fill_their_range_keep_it():
    values = np.random.default_rng(0).uniform(0, 4, size=100_000)
    assert range_factor(value_histogram(values, 0, 4), 0, 4) == 1.0


def test_one_outlier_does_not_set_the_step_of_a_million_small_values():
    values = np.concatenate([np.random.default_rng(0).uniform(0, 0.5, size=1_000_000), [10.0]])
    factor = range_factor(value_histogram(values, 0, 10), 0, 10)
    # The bulk ends at 0.05 of the range: the best range keeps it whole and clips the outlier, which
    # costs its squared distance to the edge, so not right at the bulk's end.
    assert 0.05 < factor < 0.6


def test_a_signed_tensor_with_heavy_tails_is_narrowed_on_both_sides():
    values = np.random.default_rng(0).standard_t(df=2, size=200_000)
    low, high = float(values.min()), float(values.max())
    factor = range_factor(value_histogram(values, low, high), low, high)
    assert RANGE_FACTORS[0] <= factor < 1.0
    clipped = (values < factor * low) | (values > factor * high)
    assert 0 < clipped.sum() < 10


def test_an_empty_histogram_keeps_the_calibrated_range():
    assert range_factor(np.zeros(HISTOGRAM_BINS), -1.0, 1.0) == 1.0


@pytest.mark.parametrize("low, high", [(0.5, 2.0), (-2.0, -0.5), (1.0, 1.0)])
def test_a_range_without_zero_is_refused_quoting_it(low, high):
    with pytest.raises(ValueError, match=f"low={low!r}, high={high!r}"):
        range_factor(np.ones(HISTOGRAM_BINS), low, high)


def test_a_histogram_with_other_bins_is_refused_quoting_its_shape():
    with pytest.raises(ValueError, match=r"Received shape: \(10,\)"):
        range_factor(np.ones(10), 0.0, 1.0)


OUTLIER = 4 * 255


def test_tightened_ranges_lie_inside_the_calibrated_ones_and_narrow_the_heavy_tailed():
    import keras
    import tensorflow as tf
    from tensorflow.lite.tools import flatbuffer_utils

    from keras_fer.quantization import calibrated_ranges, tighten_ranges

    # A million pixels in [0, 255] and one at 1020, which sets the calibrated maximum. Clipping it
    # costs its squared distance to the new edge, so only a tensor of this many values gains.
    faces = np.random.default_rng(0).integers(0, 256, size=(100, 100, 100, 1)).astype("float32")
    faces[0, 0, 0] = OUTLIER
    model = keras.Sequential([keras.Input((100, 100, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([face[None]] for face in faces)
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()

    def ranges_of(flatbuffer):
        return calibrated_ranges(flatbuffer_utils.convert_bytearray_to_object(flatbuffer))

    before, after = ranges_of(calibrated), ranges_of(tighten_ranges(calibrated, faces))
    assert before.keys() == after.keys()
    for index, (low, high) in after.items():
        assert before[index][0] <= low <= 0 <= high <= before[index][1]
    # The input tensor holds the outlier face: its range shrinks to the bulk of the pixels.
    (input_index,) = [index for index, (low, high) in before.items() if high == OUTLIER]
    assert 255 <= after[input_index][1] < 0.5 * OUTLIER
