"""One image file to one raw face in TensorFlow ops, as the photo path makes a face of a photo.

:func:`to_gray` and :func:`to_face` give a file's uint8 (48, 48, 1) face: OpenCV's decoding and
gray weights, then area averaging down to 48x48 (bilinear up), so that a FER2013 face written as
PNG reads back with the same pixels. :func:`orient` applies an EXIF orientation, and
:func:`detect_and_crop` runs the photo path's face detection and crop on a decoded image. Every
function works in a ``tf.data`` map.

Example:
>>> import tensorflow as tf
>>> png = tf.io.encode_png(tf.fill([96, 64, 3], tf.constant(200, tf.uint8)))
>>> face = to_face(orient(to_gray(png), 1))
>>> face.shape, int(face[0, 0, 0])
(TensorShape([48, 48, 1]), 200)
"""

from __future__ import annotations

import threading

import numpy as np

from keras_fer.data.csv_format import IMAGE_SHAPE

# OpenCV's gray weights for 8-bit images in its fixed-point form (R, G, B) / 2**14, so that gray
# values equal cv2.cvtColor's exactly.
_GRAY_WEIGHTS = (4899, 9617, 1868)
_GRAY_SHIFT = 14


def decode(contents, channels=0):
    """Encoded image -> uint8 (H, W, C): the first frame of a GIF, JPEGs decoded as OpenCV decodes them."""
    import tensorflow as tf

    # decode_image decodes JPEGs with the fast integer DCT, up to 5 levels away from OpenCV's
    # (libjpeg's default, accurate DCT); the accurate one gives OpenCV's pixels exactly.
    return tf.cond(
        tf.io.is_jpeg(contents),
        lambda: tf.io.decode_jpeg(contents, channels=channels, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(contents, channels=channels, dtype=tf.uint8, expand_animations=False),
    )


def to_gray(contents):
    """Encoded image -> uint8 (H, W, 1) gray: OpenCV's weights for color, alpha dropped."""
    import tensorflow as tf

    image = decode(contents)

    def from_color():
        rgb = tf.cast(image[..., :3], tf.int32)
        weighted = rgb[..., 0:1] * _GRAY_WEIGHTS[0] + rgb[..., 1:2] * _GRAY_WEIGHTS[1] + rgb[..., 2:3] * _GRAY_WEIGHTS[2]
        return tf.cast(tf.bitwise.right_shift(weighted + (1 << (_GRAY_SHIFT - 1)), _GRAY_SHIFT), tf.uint8)

    # 1 channel is gray, 2 is gray + alpha; 3 and 4 are RGB(A), palettes decoded to them.
    return tf.cond(tf.shape(image)[-1] >= 3, from_color, lambda: image[..., :1])


def orient(image, orientation):
    """Applies an EXIF orientation (1-8) as Pillow's ImageOps.exif_transpose does, so photos come upright."""
    import tensorflow as tf

    def transpose():
        return tf.transpose(image, [1, 0, 2])

    branches = [
        lambda: image,  # 1: upright
        lambda: image[:, ::-1],  # 2: mirrored
        lambda: image[::-1, ::-1],  # 3: upside down
        lambda: image[::-1],  # 4: flipped
        transpose,  # 5
        lambda: tf.image.rot90(image, 3),  # 6: turned 90 degrees clockwise to be upright
        lambda: transpose()[::-1, ::-1],  # 7: transverse
        lambda: tf.image.rot90(image, 1),  # 8: turned 90 degrees counter-clockwise
    ]
    return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), branches)


def to_face(gray):
    """uint8 (H, W, 1) -> uint8 (48, 48, 1): area averaging down (the photo path's INTER_AREA), bilinear up."""
    import tensorflow as tf

    size = IMAGE_SHAPE[:2]
    shape = tf.shape(gray)
    smaller = tf.reduce_any(shape[:2] < size)
    resized = tf.cond(
        smaller,
        lambda: tf.image.resize(gray, size, method="bilinear"),
        lambda: tf.image.resize(gray, size, method="area"),
    )
    face = tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8)
    return tf.ensure_shape(face, IMAGE_SHAPE)


def detect_and_crop(rgb):
    """uint8 RGB (H, W, 3) -> (uint8 (48, 48, 1) face, bool found): the photo path's largest face, cropped.

    An image without a face gives a black face and ``found`` False, for the caller to drop.
    """
    import tensorflow as tf

    face, found = tf.numpy_function(_FACE_FINDER.crop, [rgb], (tf.uint8, tf.bool), stateful=False)
    return tf.ensure_shape(face, IMAGE_SHAPE), tf.ensure_shape(found, ())


class _FaceFinder:
    """The photo path's front end on one RGB image: largest face, FER2013 framing, eyes levelled.

    One detector per thread: tf.data calls this from several threads, and a detector's
    interpreter must not run two images at once.
    """

    def __init__(self):
        self._local = threading.local()

    def crop(self, rgb: np.ndarray) -> tuple[np.ndarray, np.bool_]:
        from keras_fer.faces import DEFAULT_SECOND_DETECTOR, crop_face, detect_with_fallback, make_detector

        if not hasattr(self._local, "detectors"):
            self._local.detectors = make_detector(), make_detector(DEFAULT_SECOND_DETECTOR)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        found = detect_with_fallback(bgr, *self._local.detectors)  # largest first
        if not found:
            return np.zeros(IMAGE_SHAPE, np.uint8), np.bool_(False)
        return crop_face(bgr, found[0], channels=1, align=True), np.bool_(True)


_FACE_FINDER = _FaceFinder()
