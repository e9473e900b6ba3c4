"""The time limit and throughput callbacks of `keras_fer.training`, on a tiny dense model."""

import time

import keras
import numpy as np

from keras_fer.training import EpochThroughput, TimeLimit

X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
Y = (X[:, 0] > 0).astype("int32")


class SlowEpochs(keras.callbacks.Callback):
    """Makes every training batch take `seconds`."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        time.sleep(self.seconds)


def tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_time_limit_stops_on_an_epoch_boundary():
    # 4 batches of 0.1 s: epochs of about 0.4 s (more for the first, which traces the step).
    slow = SlowEpochs(0.1)
    history = tiny_model().fit(X, Y, batch_size=16, epochs=50, verbose=0, callbacks=[slow, TimeLimit(2.0 / 60)])
    assert 1 <= len(history.epoch) <= 5
    assert slow.batches == 4 * len(history.epoch)  # whole epochs only


def test_time_limit_stops_inside_an_epoch_that_alone_overruns_it():
    history = tiny_model().fit(
        X, Y, batch_size=1, epochs=5, verbose=0, callbacks=[SlowEpochs(0.05), TimeLimit(0.5 / 60)]
    )
    assert len(history.epoch) == 1  # 64 batches of 0.05 s would take 3.2 s


def test_throughput_counts_training_images_per_second_of_training_time():
    throughput = EpochThroughput(batch_size=16)
    history = tiny_model().fit(
        X, Y, batch_size=16, epochs=2, verbose=0, validation_data=(X, Y),
        callbacks=[SlowEpochs(0.05), throughput],
    )
    for seconds, rate in zip(history.history["train_seconds"], history.history["train_images_per_second"]):
        assert seconds >= 4 * 0.05
        assert abs(rate * seconds - 64) < 64 * 0.05  # 4 batches of 16, to rounding
