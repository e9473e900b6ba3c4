"""The training loss: cross-entropy on integer labels, with optional label smoothing.

Keras' `SparseCategoricalCrossentropy` has no label smoothing and `CategoricalCrossentropy`
wants one-hot labels; this loss takes the integer labels the data pipelines produce.
"""

import keras
from keras import ops

from keras_fer.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy between integer labels and predicted probabilities, with label smoothing.

    With smoothing e and K classes, the target of a face of class c is 1 - e + e / K for c and
    e / K for every other class (as `keras.losses.CategoricalCrossentropy`).

    Args:
        label_smoothing: float in [0, 1). 0 is plain sparse categorical cross-entropy.
        name: str, the loss name.

    Example:
    >>> import numpy as np
    >>> loss = SparseCategoricalCrossentropy(label_smoothing=0.1)
    >>> round(float(loss(np.array([0]), np.array([[0.5, 0.5]]))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.0, name="sparse_categorical_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1). Received: label_smoothing={label_smoothing!r}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing})
        return config
