"""48x48 face crops framed the way FER2013 frames its faces, aligned where landmarks exist.

FER2013's faces were cropped by another detector with its own margins, so each detector's box
is mapped to FER2013's frame with constants measured on real FER2013 Training faces
(`python tools/face_framing.py`, docs/results/face_framing.json):

* box framing: the frame's center lies `dx`, `dy` box sides from the box's center and its side
  is `side` box sides (box side: sqrt(width * height));
* aligned framing, for a face with eye and mouth landmarks: the image is rotated so that the
  eye line is level, scaled so that the eyes and the mouth lie as far apart as in FER2013's
  median face, and moved so that their middle falls where it does there.

A box given by hand (`DetectedFace.detector` None, such as the whole image) is cropped as it is.
Every crop is one affine warp with the edges replicated, so that a face at the border of a
photo keeps its proportions; a large face is warped at up to 4 times the crop's size and then
shrunk with area averaging, as a resize would.

Example:
>>> import numpy as np
>>> from keras_fer.faces.detection import DetectedFace
>>> image = np.zeros((200, 200, 3), "uint8")
>>> face = DetectedFace((50, 40, 100, 100), detector="cascade")
>>> crop_face(image, face, channels=3).shape
(48, 48, 3)
"""

import math

import cv2
import numpy as np

FACE_SIDE = 48
# Measured by tools/face_framing.py on 600 FER2013 Training faces (docs/results/face_framing.json):
# medians of the true frame against each detector's box, in box sides.
BOX_FRAMING = {
    "blazeface": {"dx": 0.000, "dy": -0.082, "side": 1.167},
    "mtcnn": {"dx": 0.019, "dy": -0.004, "side": 1.097},
    "cascade": {"dx": 0.000, "dy": 0.003, "side": 1.008},
}
# The same faces' landmarks in FER2013's 48x48 frame: the eyes' midpoint, their distance and the
# mouth's center (medians). FER2013's eye lines are level to within about 5 degrees (quartiles).
LANDMARK_FRAMING = {
    "blazeface": {"eye_middle": (24.32, 18.86), "eye_distance": 17.82, "mouth": (24.27, 37.29)},
    "mtcnn": {"eye_middle": (23.76, 18.00), "eye_distance": 18.00, "mouth": (23.77, 37.20)},
}
# The most a crop is warped above its final size before area averaging shrinks it.
MAX_OVERSAMPLING = 4
# `crop_views`' zooms of the face's crop about its centre. Chosen among zooms, shifts and the two
# framings on 600 FER2013 *Training* faces placed in frames (docs/deploy.md, "Framing views"), so
# that PublicTest only measures the choice.
VIEW_ZOOMS = (0.92, 1.08)


def crop_transform(face, align=True):
    """The 2x3 affine matrix from image pixels to the 48x48 crop of `face`.

    Args:
        face: a `DetectedFace`.
        align: level the eyes and frame by the landmarks when the face has them (and its
            detector's landmark framing is known); otherwise frame by the box.
    """
    framing = LANDMARK_FRAMING.get(face.detector)
    if align and framing is not None and face.eyes is not None and face.mouth is not None:
        return landmark_transform(face, framing)
    x, y, width, height = face.box
    box = BOX_FRAMING.get(face.detector, {"dx": 0.0, "dy": 0.0, "side": None})
    unit = math.sqrt(width * height)
    center_x = x + width / 2 + box["dx"] * unit
    center_y = y + height / 2 + box["dy"] * unit
    if box["side"] is None:  # a box given by hand is the crop, stretched if it is not square
        scale_x, scale_y = FACE_SIDE / width, FACE_SIDE / height
    else:
        scale_x = scale_y = FACE_SIDE / (box["side"] * unit)
    return np.array([[scale_x, 0.0, FACE_SIDE / 2 - scale_x * center_x],
                     [0.0, scale_y, FACE_SIDE / 2 - scale_y * center_y]])


def view_transforms(face, align=True):
    """The 2x3 transforms of `crop_views`: the crop's own, the box framing's, and the crop zoomed by VIEW_ZOOMS."""
    transform = crop_transform(face, align)
    box = crop_transform(face, align=False)
    views = [transform] + ([box] if not np.allclose(box, transform) else [])
    return views + [zoomed(transform, zoom) for zoom in VIEW_ZOOMS]


def zoomed(transform, zoom):
    """The 2x3 crop transform followed by a zoom about the 48x48 crop's centre (below 1 shows more)."""
    center = FACE_SIDE / 2
    return np.hstack([zoom * transform[:, :2], (zoom * transform[:, 2] + (1 - zoom) * center)[:, None]])


def landmark_transform(face, framing):
    """The similarity that levels the eyes and puts eyes and mouth where FER2013's median face has them."""
    left, right = face.eyes
    mouth = face.mouth
    eye_middle = (left + right) / 2
    dx, dy = right - left
    angle = math.atan2(dy, dx)
    measured = math.hypot(math.hypot(dx, dy), np.linalg.norm(mouth - eye_middle))
    target_mouth = np.asarray(framing["mouth"])
    target_middle = np.asarray(framing["eye_middle"])
    target = math.hypot(framing["eye_distance"], np.linalg.norm(target_mouth - target_middle))
    scale = target / measured
    cos, sin = scale * math.cos(angle), scale * math.sin(angle)
    linear = np.array([[cos, sin], [-sin, cos]])  # rotates the eye line to level, and scales
    anchor = (eye_middle + mouth) / 2
    shift = (target_middle + target_mouth) / 2 - linear @ anchor
    return np.hstack([linear, shift[:, None]])


def warp_square(image, transform, side):
    """The `side` x `side` image that the 2x3 `transform` maps `image` to, edges replicated.

    A transform that shrinks is warped at up to `MAX_OVERSAMPLING` times `side` and then area
    averaged down, as a resize would, instead of sampling every few pixels.
    """
    oversampling = int(min(max(math.ceil(1.0 / abs(np.linalg.det(transform[:, :2])) ** 0.5), 1), MAX_OVERSAMPLING))
    warped = cv2.warpAffine(image, transform * oversampling, (side * oversampling,) * 2, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    if oversampling > 1:
        warped = cv2.resize(warped, (side, side), interpolation=cv2.INTER_AREA)
    return warped


def crop_face(image, face, channels, align=True):
    """The face as uint8 (48, 48, channels): gray for 1 channel, RGB for 3.

    Args:
        image: uint8 BGR (H, W, 3).
        face: a `DetectedFace`.
        channels: 1 or 3, as the model wants.
        align: see `crop_transform`.
    """
    return _as_channels(warp_square(image, crop_transform(face, align), FACE_SIDE), channels)


def crop_views(image, face, channels, align=True):
    """The face framed several ways, uint8 (V, 48, 48, channels), `crop_face`'s crop first.

    A detector's box or landmarks place FER2013's frame a few percent off, differently from
    face to face, and the classifier is less accurate on such a frame than on FER2013's own.
    Its probabilities averaged over the crop, the box framing (where the crop is aligned by
    landmarks) and the crop zoomed out and in (`VIEW_ZOOMS`) depend less on that miss.

    Args:
        image, face, channels, align: as in `crop_face`.

    Example:
    >>> import numpy as np
    >>> from keras_fer.faces.detection import DetectedFace
    >>> face = DetectedFace((50, 40, 100, 100), detector="cascade")
    >>> crop_views(np.zeros((200, 200, 3), "uint8"), face, channels=1).shape
    (3, 48, 48, 1)
    """
    return np.stack([_as_channels(warp_square(image, transform, FACE_SIDE), channels)
                     for transform in view_transforms(face, align)])


def _as_channels(crop, channels):
    """A BGR crop as gray (48, 48, 1) or RGB (48, 48, 3)."""
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 or 3. Received: channels={channels!r}")
    if channels == 1:
        return cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[..., None]
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
