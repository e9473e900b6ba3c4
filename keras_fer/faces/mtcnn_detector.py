"""MTCNN (Zhang et al. 2016) from the `mtcnn` package, behind the `FaceDetector` interface.

The package (MIT) runs its three TensorFlow networks with the weights inside its wheel. Its
pyramid is only right for its default smallest face of 20 pixels (a larger `min_face_size`
finds nothing in mtcnn 1.0.0), so a larger smallest face is asked for by shrinking the image
until that face is 20 pixels, which is also what makes it faster.
"""

import functools

import cv2

from keras_fer.faces.detection import DetectedFace, FaceDetector

MTCNN_MIN_FACE = 20
# Thresholds of the three stages, lower than the package's (0.6, 0.7, 0.8): on FER2013 faces in
# frames recall rose from 88% to 91% for 0.1 false faces a frame (benchmarks/photo_path.py).
THRESHOLDS = {"threshold_pnet": 0.6, "threshold_rnet": 0.7, "threshold_onet": 0.7}


@functools.cache
def _mtcnn():
    """The three networks, built once per process."""
    from mtcnn import MTCNN

    return MTCNN(device="CPU:0")


class MTCNNDetector(FaceDetector):
    """MTCNN: boxes with five landmarks (eyes, nose, mouth corners).

    Example:
    >>> import numpy as np
    >>> MTCNNDetector(min_face_size=40).detect(np.zeros((120, 160, 3), "uint8"))
    []
    """

    name = "mtcnn"
    gives_landmarks = True

    def _detect(self, image, min_face_size):
        shrink = min(MTCNN_MIN_FACE / min_face_size, 1.0)
        if shrink < 1.0:
            image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        found = _mtcnn().detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), **THRESHOLDS)
        faces = []
        for face in found:
            # mtcnn names the eyes from the subject's view in some versions; name them by x instead.
            points = face["keypoints"]
            eyes = sorted([tuple(map(float, points["left_eye"])), tuple(map(float, points["right_eye"]))])
            mouth = sorted([tuple(map(float, points["mouth_left"])), tuple(map(float, points["mouth_right"]))])
            landmarks = {"left_eye": eyes[0], "right_eye": eyes[1], "nose": tuple(map(float, points["nose"])),
                         "mouth_left": mouth[0], "mouth_right": mouth[1]}
            faces.append(DetectedFace(tuple(int(v) for v in face["box"]), float(face["confidence"]),
                                      landmarks).scaled(1.0 / shrink))
        return faces
