"""Labels the faces in photos; see `keras_fer.predict` or `python predict.py --help`."""

import sys

from keras_fer.predict import main

if __name__ == "__main__":
    sys.exit(main())
