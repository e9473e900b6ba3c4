"""FER2013 data: readers, labels, synthetic faces, TFDS builder and a checking CLI.

The data side delivers raw faces, ``(uint8 (N, 48, 48, 1), int32 (N,))``; the
model does scaling, resizing, gray->RGB and augmentation. Importing this
package does not import TensorFlow: :func:`fer2013_dataset` loads it on first
use, and the TFDS builder lives in :mod:`keras_fer.data.tfds_fer2013`.
"""

from keras_fer.data.csv_format import CLASS_NAMES, IMAGE_SHAPE, USAGES, FER2013FormatError, write_fer2013_csv
from keras_fer.data.ferplus import FERPLUS8_CLASS_NAMES
from keras_fer.data.numpy_reader import read_fer2013
from keras_fer.data.selection import LABEL_MODES, class_names, count_fer2013
from keras_fer.data.synthetic import synthetic_faces, write_synthetic_fer2013

__all__ = [
    "CLASS_NAMES",
    "FERPLUS8_CLASS_NAMES",
    "IMAGE_SHAPE",
    "LABEL_MODES",
    "USAGES",
    "FER2013FormatError",
    "class_names",
    "count_fer2013",
    "fer2013_dataset",
    "read_fer2013",
    "write_fer2013_csv",
    "synthetic_faces",
    "write_synthetic_fer2013",
]


def __getattr__(name: str):
    # PEP 562: TensorFlow is imported only when the tf.data pipeline is used.
    if name == "fer2013_dataset":
        from keras_fer.data.tf_pipeline import fer2013_dataset

        return fer2013_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
