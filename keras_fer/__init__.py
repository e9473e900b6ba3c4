"""keras-fer: ResNet34 with ECA-U-Net masks for facial expression recognition, in Keras 3."""

__version__ = "0.1.0"
