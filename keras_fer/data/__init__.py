"""FER2013 data and image folders: readers, labels, synthetic faces, TFDS builder and a checking CLI.

The data side delivers raw faces, ``(uint8 (N, 48, 48, 1), int32 (N,))``; the
model does scaling, resizing, gray->RGB and augmentation. On a Keras
backend other than TensorFlow (the GPU machine's JAX), importing this package does not load
TensorFlow: :func:`fer2013_dataset`, :func:`folder_dataset`
and :func:`read_image_folder` load it on first use, and the TFDS builder lives in
:mod:`keras_fer.data.tfds_fer2013`.
"""

from keras_fer.data.csv_format import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    USAGES,
    FER2013FormatError,
    write_fer2013_csv,
)
from keras_fer.data.ferplus import FERPLUS8_CLASS_NAMES
from keras_fer.data.folder_layout import CLASS_SYNONYMS, SPLIT_SYNONYMS, FolderFormatError
from keras_fer.data.folders import (
    ImageFolder,
    count_image_folder,
    folder_class_names,
    parse_class_map,
    folder_dataset,
    is_image_folder,
    read_image_folder,
    scan_image_folder,
)
from keras_fer.data.numpy_reader import read_fer2013
from keras_fer.data.selection import LABEL_MODES, class_names, count_fer2013
from keras_fer.data.synthetic import synthetic_faces, write_synthetic_fer2013

__all__ = [
    "CLASS_NAMES",
    "CLASS_SYNONYMS",
    "FERPLUS8_CLASS_NAMES",
    "IMAGE_SHAPE",
    "LABEL_MODES",
    "SPLIT_SYNONYMS",
    "USAGES",
    "FER2013FormatError",
    "FolderFormatError",
    "ImageFolder",
    "class_names",
    "count_fer2013",
    "count_image_folder",
    "fer2013_dataset",
    "folder_class_names",
    "parse_class_map",
    "folder_dataset",
    "is_image_folder",
    "read_fer2013",
    "read_image_folder",
    "scan_image_folder",
    "synthetic_faces",
    "write_fer2013_csv",
    "write_synthetic_fer2013",
]


def __getattr__(name: str):
    # PEP 562: TensorFlow is imported only when the tf.data pipeline is used.
    if name == "fer2013_dataset":
        from keras_fer.data.tf_pipeline import fer2013_dataset

        return fer2013_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
