"""Faces in photos and video frames: reading images, detectors with landmarks, FER2013-framed crops.

* `read_image` (`keras_fer.faces.images`): a photo file as uint8 BGR, with clear errors.
* `make_detector` (`keras_fer.faces.detection`): "blazeface" (default), "mtcnn" or "cascade",
  one interface, `DetectedFace`s with box, score and landmarks; `detect_with_fallback` asks a
  second detector where the first finds no face.
* `crop_face` (`keras_fer.faces.framing`): a 48x48 crop framed as FER2013 frames its faces,
  rotated so that the eyes are level where the detector gives landmarks.

Example:
>>> import numpy as np
>>> from keras_fer import faces
>>> image = np.zeros((240, 320, 3), "uint8")
>>> faces.make_detector("cascade").detect(image)
[]
>>> faces.crop_face(image, faces.DetectedFace((100, 60, 80, 80)), channels=1).shape
(48, 48, 1)
"""

from keras_fer.faces.detection import (  # noqa: F401
    DEFAULT_DETECTOR,
    DEFAULT_SECOND_DETECTOR,
    DETECTORS,
    DetectedFace,
    FaceDetector,
    detect_with_fallback,
    iou,
    make_detector,
)
from keras_fer.faces.framing import crop_face, crop_transform, crop_views  # noqa: F401
from keras_fer.faces.images import ImageError, read_image  # noqa: F401
