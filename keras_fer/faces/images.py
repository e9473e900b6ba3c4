"""Faces in photos: reading an image file, finding frontal faces, cropping them as FER2013 faces.

Detection is OpenCV's bundled Haar cascade for frontal faces; a crop is the detected box
widened by `FACE_MARGIN`, resized to 48x48 and made gray (or RGB, as a model wants).
"""

import functools
import io
import os
import warnings

import cv2
import numpy as np

from keras_fer.data import IMAGE_SHAPE

FACE_SIZE = IMAGE_SHAPE[:2]
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# FER2013 faces are cropped a little wider than the Haar box, which stops at the brows.
FACE_MARGIN = 0.1
# The most pixels an image may have once decoded: above any phone camera (a 200-megapixel
# sensor writes 12.5 MP JPEGs by default) and 150 MB as BGR. A 20,000 x 20,000 image would take
# 1.2 GB; a JPEG that large is decoded at 1/2, 1/4 or 1/8 of its size instead, anything else refused.
MAX_IMAGE_PIXELS = 50_000_000
JPEG_REDUCED_READS = ((2, cv2.IMREAD_REDUCED_COLOR_2), (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8))


class ImageError(Exception):
    """An image cannot be read or decoded, or holds no face."""


def read_image(path):
    """The photo at `path` as uint8 BGR (H, W, 3), upright.

    Any format OpenCV decodes; EXIF orientation is applied, 16-bit images are scaled to 8
    bits, gray and palette images made BGR, alpha dropped. An image of more than
    `MAX_IMAGE_PIXELS` is decoded at a reduced size when it is a JPEG and refused otherwise,
    its size read from the header before any pixel is decoded.

    Raises:
        ImageError: the file cannot be read, is empty, is not a decodable image, or is too large.
    """
    try:
        encoded = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ImageError(f"{path}: cannot read the file: {error.strerror}.") from error
    if not encoded.size:
        raise ImageError(f"{path}: the file is empty (0 bytes).")
    flags = cv2.IMREAD_COLOR
    size = header_size(path, encoded)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        flags = reduced_jpeg_read(path, encoded, size)
    image = cv2.imdecode(encoded, flags)
    if image is None:
        raise ImageError(f"{path}: cannot decode the image (truncated or damaged, or not a JPEG, PNG, BMP or "
                         "other format OpenCV reads).")
    return image


def header_size(path, encoded):
    """(width, height) read from an encoded image's header without decoding it; None if unknown.

    Raises:
        ImageError: the header announces more pixels than Pillow will even open (179 million).
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 million pixels on open; the caller judges the size instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(encoded.tobytes())) as image:
                return image.size
    except Image.DecompressionBombError as error:
        raise ImageError(f"{path}: the image is far larger than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels read "
                         f"here ({error}); downscale it first.") from None
    except (OSError, ValueError):  # a format Pillow does not know, or a damaged header: OpenCV decides
        return None


def reduced_jpeg_read(path, encoded, size):
    """The `cv2.imdecode` flags that decode a too-large JPEG within MAX_IMAGE_PIXELS; ImageError otherwise."""
    width, height = size
    too_large = (f"{path}: the image is {width:,} x {height:,} pixels ({width * height / 1e6:,.0f} megapixels), more "
                 f"than the {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels read here; downscale it first")
    if encoded[:3].tobytes() != b"\xff\xd8\xff":
        raise ImageError(too_large + ".")
    for factor, flags in JPEG_REDUCED_READS:
        if (width // factor) * (height // factor) <= MAX_IMAGE_PIXELS:
            return flags
    raise ImageError(too_large + " (even 1/8 of it is too large).")


def detect_faces(image, min_size=24, scale=1.0, pyramid_step=1.1):
    """Boxes (x, y, width, height) of the frontal faces in a BGR photo, largest first.

    Args:
        image: uint8 BGR (H, W, 3).
        min_size: the smallest face side to look for, in pixels of `image`.
        scale: detect on the image resized by this factor (0 < scale <= 1) and scale the boxes
            back: at 0.75 the cascade does about 60% of the work, and finds faces of at
            least `min_size` pixels of the resized image, `min_size / scale` of `image`.
        pyramid_step: the ratio between the face sizes the cascade tries (OpenCV's
            `scaleFactor`); 1.2 takes about 60% of the time of 1.1 and may miss a face that
            falls between two sizes.
    """
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"`scale` must be in (0, 1]. Received: scale={scale!r}")
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    boxes = _cascade().detectMultiScale(cv2.equalizeHist(gray), scaleFactor=pyramid_step, minNeighbors=5,
                                        minSize=(min_size, min_size))
    boxes = [tuple(round(int(v) / scale) for v in box) for box in boxes]
    return sorted(boxes, key=lambda box: -box[2] * box[3])


@functools.cache
def _cascade():
    """The Haar cascade, loaded once per process (loading it takes longer than a detection)."""
    return cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, HAAR_CASCADE))


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
