"""Exports a trained model for deployment; see `keras_fer.export` or `python export.py --help`."""

import sys

from keras_fer.export import main

if __name__ == "__main__":
    sys.exit(main())
