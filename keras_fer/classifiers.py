"""Face classifiers over the model formats: `.keras` files, shipped presets, SavedModels, `.tflite`.

Every classifier takes raw faces, uint8 (N, 48, 48, 1 or 3), and returns float32 class
probabilities (N, K), with the class names in output order. `load_classifier` picks the
back-end from what it is given: a preset name (`keras_fer.pretrained.available()`), a
`.keras` file, a `.tflite` file or a SavedModel directory.
"""

import json
import os

import numpy as np

from keras_fer.data import IMAGE_SHAPE
from keras_fer.models import STAGE_BLOCKS
from keras_fer.serving import CLASS_NAMES_METADATA, ENCODED_SIGNATURE, PIXELS_SIGNATURE

# The layers whose outputs are the four stages' mask gates F * W, in every network with masks.
STAGE_GATE_LAYERS = tuple(f"stage{index}_mask_gate" for index in range(1, len(STAGE_BLOCKS) + 1))

FACE_SIZE = IMAGE_SHAPE[:2]
# Faces a call to a model takes at most. A network's activations grow with its batch: the `ferplus`
# ensemble took 8.8 GiB of peak RSS for PublicTest's 3,396 faces in one Keras call, and 1.7 GiB in
# calls of 256 (a throwaway measurement with resource.getrusage).
MAX_BATCH = 256


def in_batches(call, items, num_classes):
    """`call` over `items` at most `MAX_BATCH` at a time -> float32 (N, num_classes); (0, K) for none."""
    if len(items) == 0:
        return np.zeros((0, num_classes), np.float32)
    return np.concatenate([call(items[start:start + MAX_BATCH]) for start in range(0, len(items), MAX_BATCH)])


class ModelError(Exception):
    """A model cannot be loaded, or does not take raw 48x48 faces."""


class Classifier:
    """Classifies batches of raw faces.

    Attributes:
        path: the model file or directory.
        class_names: tuple of K names, in the order of the probabilities.
        channels: 1 (gray) or 3 (RGB), the channels of the faces the model takes.
    """

    def __init__(self, path, class_names, channels):
        self.path = path
        self.class_names = tuple(class_names)
        self.channels = channels

    def classify(self, faces):
        """uint8 (N, 48, 48, channels) faces -> float32 (N, K) class probabilities, `MAX_BATCH` faces a call."""
        return in_batches(self.classify_batch, faces, len(self.class_names))

    def classify_batch(self, faces):
        """`classify` for at most `MAX_BATCH` faces: one call to the model."""
        raise NotImplementedError


def check_face_input(path, shape):
    """Raises ModelError unless `shape` is (batch, 48, 48, 1 or 3); returns the channels."""
    shape = tuple(None if size is None or size < 0 else int(size) for size in shape)
    if len(shape) != 4 or shape[1:3] != FACE_SIZE or shape[3] not in (1, 3):
        raise ModelError(
            f"{path}: the model takes inputs of shape {shape}, but predict.py and export.py feed "
            f"raw faces (batch, {FACE_SIZE[0]}, {FACE_SIZE[1]}, 1 or 3), uint8 0-255. Use a model "
            "built with include_preprocessing=True."
        )
    return shape[3]


class KerasClassifier(Classifier):
    """A `.keras` file saved by training, or a Keras model in memory (a shipped preset)."""

    def __init__(self, path, class_names=None, model=None):
        """Loads `path`, or, when `model` is given, wraps that model (`path` then names it)."""
        import keras

        if model is None:
            try:
                model = keras.saving.load_model(path, compile=False)
            except Exception as error:  # Keras raises many types for a bad file; all mean the same here.
                raise ModelError(f"{path}: cannot load the Keras model: {error}") from error
        self.model = model
        channels = check_face_input(path, self.model.input_shape)
        num_classes = self.model.output_shape[-1]
        super().__init__(path, resolve_class_names(path, num_classes, class_names), channels)

    def classify_batch(self, faces):
        return np.asarray(self.model.predict_on_batch(faces.astype(np.float32)), np.float32)

    def mask_networks(self):
        """The networks whose stage masks `stage_gates` reads: the model, or each network of an ensemble.

        Returns:
            list of `keras.Model`s, each holding the layers `stage1_mask_gate` to `stage4_mask_gate`.
        Raises:
            ModelError: no network of the model has masks.
        """
        import keras

        candidates = [self.model] + [layer for layer in self.model.layers if isinstance(layer, keras.Model)]
        networks = [network for network in candidates
                    if set(STAGE_GATE_LAYERS) <= {layer.name for layer in network.layers}]
        if not networks:
            raise ModelError(f"{self.path}: the model has no stage masks (built with use_masks=False).")
        return networks

    def stage_gates(self, face):
        """The mean over channels of each stage's mask gate F * W for one face, for each network.

        The masks end in a softmax over channels, so the mean of a mask itself is 1/C at
        every pixel; the gate F * W (what the mask adds to the features F) shows where the
        mask amplifies the stage's features. An ensemble's networks each have masks of their
        own, so each gets its own maps.

        Returns:
            {network name: list of four float32 (h_i, w_i) maps, stage 1 first}, one entry per
            network of `mask_networks` (an ensemble's in member order: `member1`, ...).
        Raises:
            ModelError: the model has no masks (`mask_networks`).
        """
        import keras

        gates = {}
        for network in self.mask_networks():
            probe = keras.Model(network.input, [network.get_layer(name).output for name in STAGE_GATE_LAYERS])
            outputs = probe.predict_on_batch(face[None].astype(np.float32))
            gates[network.name] = [np.asarray(output[0], np.float32).mean(axis=-1) for output in outputs]
        return gates


class SavedModelClassifier(Classifier):
    """A SavedModel written by `keras_fer.export`, or a TF Serving model base directory.

    Given `DIR/NAME` (TF Serving's base path), the highest version below it is loaded.
    """

    def __init__(self, path, class_names=None):
        import tensorflow as tf

        self.version_dir = latest_version_dir(path)
        try:
            self.loaded = tf.saved_model.load(self.version_dir)
        except Exception as error:  # TensorFlow raises several types for a bad directory.
            raise ModelError(f"{path}: cannot load the SavedModel: {error}") from error
        if PIXELS_SIGNATURE not in self.loaded.signatures:
            raise ModelError(f"{path}: the SavedModel has no {PIXELS_SIGNATURE!r} signature.")
        self.pixels = self.loaded.signatures[PIXELS_SIGNATURE]
        (spec,) = self.pixels.structured_input_signature[1].values()
        channels = check_face_input(path, spec.shape)
        stored = getattr(self.loaded, "class_names", None)
        if class_names is None and stored is not None:
            class_names = [name.decode() for name in stored.numpy()]
        num_classes = self.pixels.structured_outputs["probabilities"].shape[-1]
        super().__init__(path, resolve_class_names(path, num_classes, class_names), channels)

    def classify_batch(self, faces):
        (key,) = self.pixels.structured_input_signature[1]
        return self.pixels(**{key: faces})["probabilities"].numpy()

    def classify_encoded(self, encoded_images):
        """Encoded images (list of bytes) -> float32 (N, K), through the bytes signature, `MAX_BATCH` a call."""
        import tensorflow as tf

        signature = self.loaded.signatures[ENCODED_SIGNATURE]
        (key,) = signature.structured_input_signature[1]
        return in_batches(lambda batch: signature(**{key: tf.constant(batch, tf.string)})["probabilities"].numpy(),
                          encoded_images, len(self.class_names))


def latest_version_dir(path):
    """`path` itself if it holds saved_model.pb, else its highest numeric subdirectory that does."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [
        int(name) for name in os.listdir(path)
        if name.isdigit() and os.path.isfile(os.path.join(path, name, "saved_model.pb"))
    ]
    if not versions:
        raise ModelError(f"{path}: no saved_model.pb here nor in a numbered version subdirectory.")
    return os.path.join(path, str(max(versions)))


class TFLiteClassifier(Classifier):
    """A `.tflite` file, run with the LiteRT interpreter; float or quantized inputs and outputs.

    Args:
        path: the `.tflite` file.
        class_names: names in output order, overriding those stored in the file.
        num_threads: interpreter threads; default every core (`os.cpu_count()`), which batches use.
    """

    def __init__(self, path, class_names=None, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        num_threads = os.cpu_count() if num_threads is None else num_threads
        if not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"`num_threads` must be a positive integer. Received: num_threads={num_threads!r}")
        self.num_threads = num_threads
        try:
            interpreter = Interpreter(model_path=path, num_threads=num_threads)
            signatures = interpreter.get_signature_list()
            self.runner = interpreter.get_signature_runner(
                PIXELS_SIGNATURE if PIXELS_SIGNATURE in signatures else next(iter(signatures))
            )
        except (ValueError, RuntimeError, StopIteration) as error:
            raise ModelError(f"{path}: cannot load the TFLite model: {error}") from error
        inputs = self.runner.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{path}: the model has {len(inputs)} inputs; a face classifier has one.")
        (self.input_key, self.input_detail), = inputs.items()
        channels = check_face_input(path, self.input_detail["shape_signature"])
        self.input_scale = quantized_input_scale(path, self.input_detail)
        outputs = self.runner.get_output_details()
        self.output_key = "probabilities" if "probabilities" in outputs else next(iter(outputs))
        self.output_detail = outputs[self.output_key]
        if class_names is None:
            class_names = tflite_class_names(path)
        num_classes = int(self.output_detail["shape_signature"][-1])
        super().__init__(path, resolve_class_names(path, num_classes, class_names), channels)

    def classify_batch(self, faces):
        dtype = self.input_detail["dtype"]
        values = faces.astype(np.float32)
        if self.input_scale is not None:
            scale, zero_point = self.input_scale
            limits = np.iinfo(dtype)
            values = np.clip(np.round(values / scale + zero_point), limits.min, limits.max)
        probabilities = self.runner(**{self.input_key: values.astype(dtype)})[self.output_key]
        scale, zero_point = self.output_detail["quantization"]
        if scale:
            probabilities = (probabilities.astype(np.float32) - zero_point) * scale
        return probabilities.astype(np.float32)


def quantized_input_scale(path, detail):
    """(scale, zero_point) to quantize 0-255 pixels for an integer input, None to feed them as-is.

    Float inputs take the pixels as floats; an unquantized uint8 input takes them as they are
    (the models `keras_fer.export` writes). An integer input with quantization parameters
    takes quantized pixels, which must cover 0-255 without losing more than a gray level.
    """
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype.kind == "f" or (dtype == np.uint8 and not scale):
        return None
    if dtype.kind not in "iu" or not scale:
        raise ModelError(
            f"{path}: the model's input is {dtype.name} without quantization parameters; it cannot "
            "take 0-255 pixels. Convert with inference_input_type=tf.uint8 (or float32)."
        )
    limits = np.iinfo(dtype)
    low, high = (limits.min - zero_point) * scale, (limits.max - zero_point) * scale
    if low > 0.5 or high < 254.5 or scale > 2.0:
        raise ModelError(
            f"{path}: the model's {dtype.name} input is quantized with scale {scale:g} and zero point "
            f"{zero_point}, which represents {low:g}..{high:g}, not raw 0-255 pixels: it was converted "
            "for another preprocessing. Export with keras_fer.export, whose int8 model takes uint8 pixels."
        )
    return scale, zero_point


def tflite_class_names(path):
    """The class names stored in the `.tflite` file's metadata by `keras_fer.export`, or None."""
    from ai_edge_litert import schema_py_generated as schema

    with open(path, "rb") as file:
        buffer = file.read()
    model = schema.Model.GetRootAsModel(buffer, 0)
    for index in range(model.MetadataLength()):
        metadata = model.Metadata(index)
        if metadata.Name().decode() == CLASS_NAMES_METADATA:
            return json.loads(model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes())
    return None


def resolve_class_names(path, num_classes, class_names=None):
    """The class names of a model with `num_classes` outputs.

    In order: `class_names` if given; the class_names.json that training writes beside a
    `.keras` file; those of the label mode (`data.labels`) in the `config.yaml` beside it; the FER2013 names for 7
    classes and the FERPlus-8 names for 8.

    Raises:
        ModelError: the names found do not number `num_classes`, or none are known.
    """
    from keras_fer.data import class_names as names_of_label_mode

    written = os.path.join(os.path.dirname(os.path.abspath(path)), "class_names.json")
    if class_names is None and os.path.isfile(written):
        with open(written) as file:
            class_names = json.load(file)
    labels = run_config(path).get("data", {}).get("labels")
    if class_names is None and labels is None:
        labels = {7: "fer2013", 8: "ferplus8"}.get(num_classes)
        if labels is None:
            raise ModelError(f"{path}: {num_classes} classes and no class names; pass --class-names.")
    class_names = tuple(class_names or names_of_label_mode(labels))
    if len(class_names) != num_classes:
        raise ModelError(f"{path}: {len(class_names)} class names {class_names} for {num_classes} model outputs.")
    return class_names


def run_config(model_path):
    """The resolved configuration (dict) that training wrote beside `model_path`, or {}."""
    import yaml

    config_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.yaml")
    if not os.path.isfile(config_path):
        return {}
    with open(config_path) as file:
        return yaml.safe_load(file) or {}


def load_classifier(path, class_names=None, num_threads=None):
    """A `Classifier` for a preset name, a `.keras` file, a `.tflite` file or a SavedModel directory.

    Args:
        path: a name from `keras_fer.pretrained.available()` (when no file of that name
            exists), or the model's path.
        class_names: names in output order, overriding those the model carries.
        num_threads: threads of a `.tflite` model's interpreter (default: every core).
    Raises:
        ModelError: unknown, missing, corrupt or unsupported model.

    Example:
    >>> import numpy as np
    >>> classifier = load_classifier("fer2013")
    >>> classifier.classify(np.zeros((2, 48, 48, 1), "uint8")).shape
    (2, 7)
    """
    from keras_fer import pretrained

    if pretrained.names_a_preset(path):
        try:
            model = pretrained.load(path)
        except pretrained.PresetError as error:
            raise ModelError(str(error)) from error
        return KerasClassifier(f"preset {path}", class_names or model.class_names, model=model)
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file or directory, and not a preset "
                         f"({', '.join(pretrained.available())}).")
    if os.path.isdir(path):
        return SavedModelClassifier(path, class_names)
    if path.endswith(".keras"):
        return KerasClassifier(path, class_names)
    if path.endswith(".tflite"):
        return TFLiteClassifier(path, class_names, num_threads)
    raise ModelError(f"{path}: unknown model format; expected a preset name, a .keras file, a .tflite file "
                     "or a SavedModel directory.")
