"""Labels the faces in photos with a trained model: `.keras`, SavedModel or `.tflite`.

Every face that OpenCV's bundled Haar cascade finds is cropped, converted to a 48x48 gray
(or RGB, as the model wants) face and classified; one JSON line is printed per face. A file
that cannot be read, holds no face, or a model that cannot be loaded gives a message naming
the file, and the other files are still processed; the exit status is 1 if any file failed.

    python predict.py --model runs/quickstart/best.keras photo.jpg other.png
    python predict.py --model runs/quickstart/export/keras_fer --annotate out/ photo.jpg
    python predict.py --model runs/quickstart/best.keras --masks out/ photo.jpg
"""

import argparse
import json
import os
import sys

import cv2
import numpy as np

from keras_fer.data import IMAGE_SHAPE
from keras_fer.models import STAGE_BLOCKS
from keras_fer.serving import ENCODED_SIGNATURE, PIXELS_SIGNATURE

FACE_SIZE = IMAGE_SHAPE[:2]
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# FER2013 faces are cropped a little wider than the Haar box, which stops at the brows.
FACE_MARGIN = 0.1
CLASS_NAMES_METADATA = "class_names"


class ModelError(Exception):
    """A model cannot be loaded, or does not take raw 48x48 faces."""


class ImageError(Exception):
    """An image cannot be read or decoded, or holds no face."""


# ---------------------------------------------------------------------------------------
# Classifiers: one interface over the three model formats.


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
        """uint8 (N, 48, 48, channels) faces -> float32 (N, K) class probabilities."""
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
    """A `.keras` file saved by training."""

    def __init__(self, path, class_names=None):
        import keras

        import keras_fer.layers  # noqa: F401  (registers the custom layers for loading)

        try:
            self.model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for a bad file; all mean the same here.
            raise ModelError(f"{path}: cannot load the Keras model: {error}") from error
        channels = check_face_input(path, self.model.input_shape)
        num_classes = self.model.output_shape[-1]
        super().__init__(path, resolve_class_names(path, num_classes, class_names), channels)

    def classify(self, faces):
        return np.asarray(self.model.predict_on_batch(faces.astype(np.float32)), np.float32)

    def stage_gates(self, face):
        """The mean over channels of each stage's mask gate F * W for one face.

        The masks end in a softmax over channels, so the mean of a mask itself is 1/C at
        every pixel; the gate F * W (what the mask adds to the features F) shows where the
        mask amplifies the stage's features.

        Returns:
            list of four float32 (h_i, w_i) maps, stage 1 first.
        Raises:
            ModelError: the model has no masks.
        """
        import keras

        names = [f"stage{index}_mask_gate" for index in range(1, len(STAGE_BLOCKS) + 1)]
        present = {layer.name for layer in self.model.layers}
        if not set(names) <= present:
            raise ModelError(f"{self.path}: the model has no stage masks (built with use_masks=False).")
        gates = keras.Model(self.model.input, [self.model.get_layer(name).output for name in names])
        outputs = gates.predict_on_batch(face[None].astype(np.float32))
        return [np.asarray(output[0], np.float32).mean(axis=-1) for output in outputs]


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

    def classify(self, faces):
        (key,) = self.pixels.structured_input_signature[1]
        return self.pixels(**{key: faces})["probabilities"].numpy()

    def classify_encoded(self, encoded_images):
        """Encoded images (list of bytes) -> float32 (N, K), through the bytes signature."""
        import tensorflow as tf

        signature = self.loaded.signatures[ENCODED_SIGNATURE]
        (key,) = signature.structured_input_signature[1]
        return signature(**{key: tf.constant(encoded_images, tf.string)})["probabilities"].numpy()


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
    """A `.tflite` file, run with the LiteRT interpreter; float or quantized inputs and outputs."""

    def __init__(self, path, class_names=None):
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=path)
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

    def classify(self, faces):
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

    In order: `class_names` if given; those of the label mode (`data.labels`) in the
    `config.yaml` that training writes beside a `.keras` file; the FER2013 names for 7
    classes and the FERPlus-8 names for 8.

    Raises:
        ModelError: the names found do not number `num_classes`, or none are known.
    """
    from keras_fer.data import class_names as names_of_label_mode

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


def load_classifier(path, class_names=None):
    """A `Classifier` for a `.keras` file, a `.tflite` file or a SavedModel directory.

    Raises:
        ModelError: missing, corrupt or unsupported model.
    """
    if not os.path.exists(path):
        raise ModelError(f"{path}: no such file or directory.")
    if os.path.isdir(path):
        return SavedModelClassifier(path, class_names)
    if path.endswith(".keras"):
        return KerasClassifier(path, class_names)
    if path.endswith(".tflite"):
        return TFLiteClassifier(path, class_names)
    raise ModelError(f"{path}: unknown model format; expected a .keras file, a .tflite file or a SavedModel directory.")


# ---------------------------------------------------------------------------------------
# Faces in photos.


def read_image(path):
    """The photo at `path` as uint8 BGR (H, W, 3). Raises ImageError if it cannot be decoded."""
    try:
        encoded = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read the file: {error.strerror}.") from error
    image = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if encoded.size else None
    if image is None:
        raise ImageError(f"{path}: cannot decode the image (not a JPEG, PNG, BMP or other format OpenCV reads).")
    return image


def detect_faces(image, min_size=24):
    """Boxes (x, y, width, height) of the frontal faces in a BGR photo, largest first."""
    detector = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, HAAR_CASCADE))
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted((tuple(int(v) for v in box) for box in boxes), key=lambda box: -box[2] * box[3])


def crop_face(image, box, channels):
    """The face in `box`, widened by FACE_MARGIN, as uint8 (48, 48, channels)."""
    x, y, width, height = box
    margin_x, margin_y = int(width * FACE_MARGIN), int(height * FACE_MARGIN)
    top, left = max(y - margin_y, 0), max(x - margin_x, 0)
    crop = image[top : y + height + margin_y, left : x + width + margin_x]
    crop = cv2.resize(crop, FACE_SIZE[::-1], interpolation=cv2.INTER_AREA)
    if channels == 1:
        return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None]
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)


def classify_photo(classifier, path, whole_image=False):
    """Finds and classifies the faces of one photo.

    Returns:
        (image BGR, faces uint8 (N, 48, 48, C), list of N result dicts with file, box, label,
        probabilities).
    Raises:
        ImageError: unreadable image, or no face found.
    """
    image = read_image(path)
    boxes = [(0, 0, image.shape[1], image.shape[0])] if whole_image else detect_faces(image)
    if not boxes:
        raise ImageError(f"{path}: no face found (OpenCV Haar cascade, frontal faces of 24 pixels or more).")
    faces = np.stack([crop_face(image, box, classifier.channels) for box in boxes])
    probabilities = classifier.classify(faces)
    results = [
        {
            "file": path,
            "box": list(box),
            "label": classifier.class_names[int(np.argmax(p))],
            "probabilities": {name: round(float(value), 6) for name, value in zip(classifier.class_names, p)},
        }
        for box, p in zip(boxes, probabilities)
    ]
    return image, faces, results


# ---------------------------------------------------------------------------------------
# Pictures: annotated photos and mask overlays.


def annotate(image, results):
    """A copy of the BGR photo with each face's box and label drawn."""
    annotated = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for result in results:
        x, y, width, height = result["box"]
        label = f"{result['label']} {result['probabilities'][result['label']]:.2f}"
        cv2.rectangle(annotated, (x, y), (x + width, y + height), (0, 255, 0), thickness)
        scale = max(0.4, width / 200)
        (text_width, text_height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        text_top = max(y - text_height - baseline, 0)
        cv2.rectangle(annotated, (x, text_top), (x + text_width, text_top + text_height + baseline), (0, 255, 0), -1)
        cv2.putText(annotated, label, (x, text_top + text_height), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)
    return annotated


def mask_overlays(face, gate_maps, tile=192):
    """One BGR strip: the face, then each stage's map as a heat map over it.

    Args:
        face: uint8 (48, 48, C).
        gate_maps: float (h, w) maps, e.g. from `KerasClassifier.stage_gates`.
        tile: side of each picture in pixels.
    """
    gray = face[..., 0] if face.shape[-1] == 1 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    face_tile = cv2.cvtColor(cv2.resize(gray, (tile, tile), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    tiles = [face_tile]
    for stage, gate_map in enumerate(gate_maps, start=1):
        span = float(gate_map.max() - gate_map.min())
        normalized = (gate_map - gate_map.min()) / span if span > 0 else np.zeros_like(gate_map)
        heat = cv2.applyColorMap(
            cv2.resize(np.uint8(255 * normalized), (tile, tile), interpolation=cv2.INTER_LINEAR), cv2.COLORMAP_JET
        )
        overlay = cv2.addWeighted(face_tile, 0.5, heat, 0.5, 0)
        cv2.putText(overlay, f"stage {stage}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        tiles.append(overlay)
    return np.concatenate(tiles, axis=1)


def write_image(directory, path, suffix, image):
    """Writes `image` as DIRECTORY/<stem of path><suffix>.png; returns the written path."""
    os.makedirs(directory, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    out_path = os.path.join(directory, f"{stem}{suffix}.png")
    if not cv2.imwrite(out_path, image):
        raise ImageError(f"{out_path}: cannot write the image.")
    return out_path


# ---------------------------------------------------------------------------------------
# Command line.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Find the faces in photos and print one JSON line per face: file, box, label, probabilities.",
    )
    parser.add_argument("--model", required=True, help="a .keras file, a SavedModel directory or a .tflite file")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photos (any format OpenCV reads)")
    parser.add_argument("--annotate", metavar="DIR", help="write each photo with boxes and labels drawn to DIR")
    parser.add_argument(
        "--masks", metavar="DIR",
        help="write, for the largest face of each photo, the four stage mask gates over the face (.keras only)",
    )
    parser.add_argument(
        "--whole-image", action="store_true", help="the images are face crops already: classify them whole"
    )
    parser.add_argument("--class-names", help="comma-separated class names, overriding those of the model")
    return parser.parse_args(argv)


def predict_file(classifier, path, args):
    """Classifies one photo, prints its JSON lines and writes the requested pictures."""
    image, faces, results = classify_photo(classifier, path, args.whole_image)
    for result in results:
        print(json.dumps(result), flush=True)
    if args.annotate:
        write_image(args.annotate, path, "_annotated", annotate(image, results))
    if args.masks:
        write_image(args.masks, path, "_masks", mask_overlays(faces[0], classifier.stage_gates(faces[0])))


def main(argv=None):
    """Runs predict.py; returns the exit status (0 if every file was processed, else 1)."""
    args = parse_args(argv)
    class_names = args.class_names.split(",") if args.class_names else None
    try:
        classifier = load_classifier(args.model, class_names)
        if args.masks and not isinstance(classifier, KerasClassifier):
            raise ModelError(f"{args.model}: --masks needs a .keras model (the stage masks are not exported).")
    except ModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    failed = 0
    for path in args.images:
        try:
            predict_file(classifier, path, args)
        except (ImageError, ModelError) as error:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(args.images)} files failed.", file=sys.stderr)
    return 1 if failed else 0
