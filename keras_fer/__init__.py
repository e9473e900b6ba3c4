"""keras-fer: ResNet34 with ECA-U-Net masks for facial expression recognition, in Keras 3.

Importing the package registers its layers and loss, so that every `.keras` file this
project saves loads with `keras.saving.load_model`. `keras_fer.pretrained.load("fer2013")`
gives the shipped FER2013 model, and `keras_fer.FaceExpressionRecognizer()` finds and labels
the faces of an image with it.
"""

import importlib

from keras_fer.tensorflow_logs import filtered_start_up_logs

with filtered_start_up_logs():
    # Keras imports its backend; TensorFlow's start-up lines are held to TF_CPP_MIN_LOG_LEVEL.
    importlib.import_module("keras")

from keras_fer import layers, losses, pretrained  # noqa: F401, E402  (layers and losses: registration)

__version__ = "0.1.0"


def __getattr__(name):
    # PEP 562: the recognizer imports OpenCV, loaded only when the API is used.
    if name == "FaceExpressionRecognizer":
        from keras_fer.recognizer import FaceExpressionRecognizer

        return FaceExpressionRecognizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
