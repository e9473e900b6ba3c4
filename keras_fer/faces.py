"""Faces in photos: reading an image file, finding frontal faces, cropping them as FER2013 faces.

Detection is OpenCV's bundled Haar cascade for frontal faces; a crop is the detected box
widened by `FACE_MARGIN`, resized to 48x48 and made gray (or RGB, as a model wants).
"""

import os

import cv2
import numpy as np

from keras_fer.data import IMAGE_SHAPE

FACE_SIZE = IMAGE_SHAPE[:2]
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# FER2013 faces are cropped a little wider than the Haar box, which stops at the brows.
FACE_MARGIN = 0.1


class ImageError(Exception):
    """An image cannot be read or decoded, or holds no face."""


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
