"""keras-fer: ResNet34 with ECA-U-Net masks for facial expression recognition, in Keras 3.

Importing the package registers its layers and loss, so that every `.keras` file this
project saves loads with `keras.saving.load_model`.
"""

from keras_fer import layers, losses  # noqa: F401  (registration)

__version__ = "0.1.0"
