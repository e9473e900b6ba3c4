"""Labels the faces in photos; see `keras_fer.predict` or `python predict.py --help`."""

import os
import sys

# Before TensorFlow is imported (by Keras): its C++ start-up chatter hides the results.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_fer.predict import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
