"""Converting a Keras model to the deployment formats: the TF Serving SavedModel and TFLite flat buffers.

The conversion alone, with no parity check and no command line (those are `keras_fer.export`),
so that `keras_fer.pretrained` can convert a preset without loading the export tool.

* `export_saved_model`: TF Serving's SavedModel with two signatures (`keras_fer.serving`).
* `convert_tflite`: that SavedModel's `serving_default` signature as a TFLite flat buffer, in one
  of `QUANTIZATIONS`, the class names in its metadata.

Example:
>>> import keras_fer, tempfile, os
>>> model = keras_fer.pretrained.load("fer2013")
>>> directory = export_saved_model(model, model.class_names, os.path.join(tempfile.mkdtemp(), "1"))  # doctest: +SKIP
>>> len(convert_tflite(directory, "dynamic", model.class_names)) > 0  # doctest: +SKIP
True
"""

import json
import os

import numpy as np

from keras_fer import files
from keras_fer.quantization import convert_int8
from keras_fer.serving import (
    CLASS_NAMES_METADATA,
    ENCODED_INPUT,
    ENCODED_SIGNATURE,
    PIXELS_INPUT,
    PIXELS_SIGNATURE,
)

# "none" is the float32 model; the names follow the TFLite documentation's optimizations.
QUANTIZATIONS = ("none", "float16", "dynamic", "int8", "int16x8")
# The variants whose activations are quantized, calibrated on faces.
CALIBRATED = ("int8", "int16x8")


# ---------------------------------------------------------------------------------------
# SavedModel.


def serving_archive(model, class_names):
    """A `keras.export.ExportArchive` with the two serving signatures and the class names.

    Both signatures run the Keras model in inference mode (augmentation off) and return
    probabilities, the top class index and its name.
    """
    import keras
    import tensorflow as tf

    height, width, channels = model.input_shape[1:]
    names = tf.Variable(list(class_names), trainable=False, name="class_names")

    def classify_pixels(images):
        probabilities = model(tf.cast(images, tf.float32), training=False)
        class_index = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_index": class_index, "class_name": tf.gather(names, class_index)}

    def decode(image_bytes):
        image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
        # "area" averages the pixels a target pixel covers: the right filter for shrinking
        # photos, and the identity for images that are already 48x48.
        image = tf.image.resize(image, (height, width), method="area")
        return tf.cast(tf.round(image), tf.uint8)

    archive = keras.export.ExportArchive()
    # No `archive.track(model)`: add_endpoint already saves the variables the signatures use,
    # and tracking the model as well stored every weight twice (once per Keras variable, once
    # per TensorFlow variable it wraps), a SavedModel twice the size of the `.keras` file.
    archive.class_names = names
    pixels_endpoint = archive.add_endpoint(
        PIXELS_SIGNATURE,
        classify_pixels,
        input_signature=[tf.TensorSpec((None, height, width, channels), tf.uint8, name=PIXELS_INPUT)],
    )

    def classify_encoded(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec((height, width, channels), tf.uint8))
        # A call of the pixels endpoint's function, not a second trace of the network: the
        # SavedModel's graph then holds the network once.
        return pixels_endpoint(images)

    archive.add_endpoint(
        ENCODED_SIGNATURE,
        classify_encoded,
        input_signature=[tf.TensorSpec((None,), tf.string, name=ENCODED_INPUT)],
    )
    return archive


def next_version(model_base_dir):
    """1 + the highest numeric version directory in TF Serving's model base path (1 if none)."""
    if not os.path.isdir(model_base_dir):
        return 1
    return 1 + max((int(name) for name in os.listdir(model_base_dir) if name.isdigit()), default=0)


def export_saved_model(model, class_names, path):
    """Writes the serving SavedModel to `path` (a version directory), complete or not at all; returns `path`.

    TF Serving loads every numeric version directory it sees, so the SavedModel is written to
    `<version>.partial` and renamed once whole.
    """
    with files.replaced_on_success(path) as partial:
        serving_archive(model, class_names).write_out(str(partial), verbose=False)
    return path


# ---------------------------------------------------------------------------------------
# TFLite.


def convert_tflite(saved_model_dir, quantization, class_names, calibration_faces=None):
    """Converts the SavedModel's `serving_default` signature to a TFLite flat buffer.

    Args:
        saved_model_dir: a version directory written by `export_saved_model`.
        quantization: one of QUANTIZATIONS.
        class_names: stored in the model's metadata under CLASS_NAMES_METADATA.
        calibration_faces: uint8 (N, 48, 48, C), needed for the CALIBRATED variants.
    Returns:
        bytes.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[PIXELS_SIGNATURE])
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization in CALIBRATED:
        if calibration_faces is None or not len(calibration_faces):
            raise ValueError(f"{quantization} quantization needs calibration faces.")
        converter.representative_dataset = lambda: ({PIXELS_INPUT: face[None]} for face in calibration_faces)
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    elif quantization == "int16x8":
        # The 16x8 op set has no CAST (uint8 pixels to float): builtins take the ops it lacks.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    flatbuffer = convert_int8(converter, calibration_faces) if quantization == "int8" else converter.convert()
    return add_tflite_metadata(flatbuffer, CLASS_NAMES_METADATA, json.dumps(list(class_names)).encode())


def add_tflite_metadata(flatbuffer, name, value):
    """The TFLite model `flatbuffer` with a metadata entry `name` holding the bytes `value`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(value, np.uint8)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = name
    metadata.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [metadata]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
