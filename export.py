"""Exports a trained model for deployment; see `keras_fer.export` or `python export.py --help`."""

import os
import sys

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides the results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_fer.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
