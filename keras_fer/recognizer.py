"""The Python API: find the faces in an image and give each one's box and class probabilities.

Example:
>>> import keras_fer
>>> recognizer = keras_fer.FaceExpressionRecognizer()  # the shipped FER2013 model
>>> faces = recognizer.recognize("photo.jpg")  # doctest: +SKIP
>>> faces[0].box, faces[0].label, faces[0].probabilities["Happy"]  # doctest: +SKIP
((164, 57, 92, 92), 'Happy', 0.93)
"""

import dataclasses
import os

import cv2
import numpy as np

from keras_fer.classifiers import load_classifier
from keras_fer.faces import (
    DEFAULT_DETECTOR,
    DEFAULT_SECOND_DETECTOR,
    DetectedFace,
    ImageError,
    crop_face,
    crop_views,
    detect_with_fallback,
    make_detector,
    read_image,
)

COLOR_ORDERS = ("bgr", "rgb")
# The smallest face the detector looks for by default: its tiles and pyramid cost grow fast below it.
DEFAULT_MIN_FACE_SIZE = 40


@dataclasses.dataclass(frozen=True)
class FaceExpression:
    """One face of an image and its expression.

    Attributes:
        box: (x, y, width, height) of the face in the image, in pixels, as the detector gave it.
        probabilities: {class name: probability}, in the model's class order.
        face: uint8 (48, 48, C), the crop the model saw (the first of its framing views).
        landmarks: {name: (x, y)} of the detector's landmarks (eyes, nose, mouth, ...), in
            pixels; empty for a detector without them.
    """

    box: tuple
    probabilities: dict
    face: np.ndarray = dataclasses.field(repr=False, compare=False)
    landmarks: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self):
        """The most probable class name."""
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self):
        """{"box": [x, y, w, h], "label": ..., "probabilities": {...}, "landmarks": {...}}, JSON-ready.

        "landmarks" is present only when the detector gives them.
        """
        record = {"box": list(self.box), "label": self.label,
                  "probabilities": {name: round(float(p), 6) for name, p in self.probabilities.items()}}
        if self.landmarks:
            record["landmarks"] = {name: [round(float(x), 1), round(float(y), 1)]
                                   for name, (x, y) in self.landmarks.items()}
        return record


class FaceExpressionRecognizer:
    """Finds the faces of images, crops them as FER2013 frames its faces, and classifies their expressions.

    Args:
        model: a preset name (default "fer2013", the model shipped in the package), a
            `.keras` file, a `.tflite` file or a SavedModel directory.
        class_names: names in output order, overriding those the model carries.
        min_face_size: the smallest face side, in pixels, the detector looks for.
        num_threads: threads of a `.tflite` model's interpreter (default: every core).
        detector: "blazeface" (the default: MediaPipe's BlazeFace), "mtcnn", "cascade"
            (OpenCV's Haar cascade, the detector of earlier versions), or a
            `keras_fer.faces.FaceDetector` (its own `min_face_size` then applies).
        align: rotate each face so that its eyes are level and frame it by its landmarks, where
            the detector gives them (docs/deploy.md compares the accuracy with and without).
        framing_views: average each detected face's probabilities over several framings of it
            (`keras_fer.faces.crop_views`: the crop, the box framing, the crop zoomed out and in),
            which makes them depend less on where the detector put the face's frame
            (docs/deploy.md, "Framing views"); False classifies the one crop. Photos only: the
            video loop classifies one crop a face, for speed.
        second_detector: a detector that looks again where `detector` finds no face in a
            photo, by name or as a `FaceDetector`. The default, "mtcnn", found a quarter of the
            faces in frames where BlazeFace found nothing, and costs nothing where BlazeFace finds
            a face (docs/deploy.md, "Two detectors"). None, or the same detector as `detector`,
            runs `detector` alone. Photos only: the video loop runs `detector` alone, for speed.

    Example:
    >>> import numpy as np
    >>> recognizer = FaceExpressionRecognizer()
    >>> recognizer.recognize(np.zeros((120, 160, 3), "uint8"))  # a black image has no face
    []
    """

    def __init__(self, model="fer2013", class_names=None, min_face_size=DEFAULT_MIN_FACE_SIZE, num_threads=None,
                 detector=DEFAULT_DETECTOR, align=True, framing_views=True, second_detector=DEFAULT_SECOND_DETECTOR):
        self.detector = make_detector(detector, min_face_size)
        second_name = getattr(second_detector, "name", second_detector)
        self.second_detector = (None if second_detector is None or second_name == self.detector.name
                                else make_detector(second_detector, self.detector.min_face_size))
        self.classifier = load_classifier(os.fspath(model), class_names, num_threads)
        self.align = bool(align)
        self.framing_views = bool(framing_views)

    @property
    def min_face_size(self):
        return self.detector.min_face_size

    @property
    def class_names(self):
        return self.classifier.class_names

    def recognize(self, image, color_order="bgr", whole_image=False):
        """The faces of one image with their expressions, largest face first.

        Args:
            image: a path (any format OpenCV reads), or a uint8 array: (H, W, 3) color in
                `color_order`, (H, W, 4) with alpha, or (H, W) / (H, W, 1) gray.
            color_order: "bgr" (OpenCV's order, the default) or "rgb" (PIL, matplotlib,
                scikit-image) for color arrays.
            whole_image: the image is a face crop already: classify it whole, no detection.
        Returns:
            list of `FaceExpression`; empty when no face is found.
        Raises:
            ImageError: an unreadable file or an array that is not an image.
        """
        bgr = self._as_bgr(image, color_order)
        height, width = bgr.shape[:2]
        found = [DetectedFace((0, 0, width, height))] if whole_image else self.detect(bgr)
        if not found:
            return []
        # A whole image is a crop already: one view, nothing to reframe.
        views = [crop_face(bgr, face, self.classifier.channels, self.align)[None] if whole_image
                 else self.face_views(bgr, face) for face in found]
        crops, probabilities = self.classify_views(views)
        return [
            FaceExpression(tuple(face.box), dict(zip(self.class_names, map(float, row))), crop, face.landmarks)
            for face, row, crop in zip(found, probabilities, crops)
        ]

    __call__ = recognize

    def detect(self, bgr):
        """The faces of a BGR photo, largest first: `detector`'s, or where it finds none, `second_detector`'s."""
        return detect_with_fallback(bgr, self.detector, self.second_detector)

    def face_views(self, bgr, face):
        """uint8 (V, 48, 48, C): the framings of one detected face that its probabilities average.

        `crop_views`' framings with `framing_views`, else the one crop (V = 1); the first is
        always `crop_face`'s crop.
        """
        if self.framing_views:
            return crop_views(bgr, face, self.classifier.channels, self.align)
        return crop_face(bgr, face, self.classifier.channels, self.align)[None]

    def classify_views(self, views):
        """`(crops, probabilities)` of faces given as `face_views` stacks, in one classifier call.

        Returns:
            uint8 (F, 48, 48, C), each face's first view, and (F, K), each face's probabilities
            averaged over its views.
        """
        probabilities = self.classifier.classify(np.concatenate(views))
        ends = np.cumsum([len(face_views) for face_views in views])[:-1]
        return (np.stack([face_views[0] for face_views in views]),
                np.stack([rows.mean(axis=0) for rows in np.split(probabilities, ends)]))

    @staticmethod
    def _as_bgr(image, color_order):
        """The image as uint8 BGR (H, W, 3)."""
        if color_order not in COLOR_ORDERS:
            raise ValueError(f"`color_order` must be one of {COLOR_ORDERS}. Received: color_order={color_order!r}")
        if isinstance(image, (str, os.PathLike)):
            return read_image(os.fspath(image))
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ImageError(f"an image array must be uint8 (0-255); received dtype {array.dtype}")
        if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1):
            return cv2.cvtColor(array.reshape(array.shape[:2]), cv2.COLOR_GRAY2BGR)
        if array.ndim != 3 or array.shape[-1] not in (3, 4):
            raise ImageError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                             f"received shape {array.shape}")
        array = array[..., :3]
        return np.ascontiguousarray(array[..., ::-1] if color_order == "rgb" else array)
