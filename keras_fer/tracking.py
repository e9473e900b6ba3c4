"""Faces followed across video frames: an IoU tracker with constant-velocity prediction, and smoothing.

A track is one face over time. The tracker is told about every frame (`IoUTracker.step`): on a
frame with a detection round, every detected face joins the live track whose predicted box
overlaps it most (intersection over union, greedy from the best pair). A face that overlaps no
track enough joins the nearest one of about its size whose center is within two sides of its
own (a face that starts moving fast has no velocity yet, and between two detection rounds moves
further than overlap allows). Any other face starts a new track;
on the frames between, and when a track's face is missed, the track is *carried*: its last
face moves on at the track's velocity (pixels a frame, measured between its detections). A
track that no detection joins for `max_missed` detection rounds in a row ends, as does a
carried track whose center leaves the frame; an id is never reused.

Example:
>>> tracker = IoUTracker()
>>> tracker.update([(10, 10, 50, 50)])
[(0, (10, 10, 50, 50))]
>>> tracker.update([(14, 12, 50, 50), (200, 40, 60, 60)])
[(0, (14, 12, 50, 50)), (1, (200, 40, 60, 60))]
"""

import collections
import dataclasses

import numpy as np

from keras_fer.faces import DetectedFace, iou

# Weight of the newest measurement in a track's velocity (the rest is its previous velocity).
VELOCITY_SMOOTHING = 0.5
# BlazeFace scores real faces in video frames at 0.9 and more, and its false faces (patterns on
# clothes, textures, compression artefacts) at 0.5-0.6, some in two rounds in a row.
CONFIRM_SCORE = 0.75
CONFIRM_ROUNDS = 3
# A face that overlaps no track may join one whose predicted center is this many of its sides
# away at most, if their sides differ by this ratio at most. An IoU of 0.3 between boxes of one
# size allows a shift of 0.54 sides only: a 100-pixel face moving 80 pixels a round (20 a frame,
# detection every 4th) started a new track each round and left ghosts carried where it had
# been, and so did a 46-pixel face moving 48 pixels a round (1.04 sides).
MAX_CENTER_SHIFT = 2.0
MAX_SIDE_RATIO = 1.5


def center(box):
    """The center (x, y) of an (x, y, width, height) box."""
    x, y, width, height = box
    return np.array([x + width / 2, y + height / 2])


def center_shift(box, reference):
    """The distance between the centers of two boxes in sides of `reference`, or inf when their
    sides differ by more than `MAX_SIDE_RATIO`."""
    side, reference_side = max(box[2:]), max(reference[2:])
    if max(side, reference_side) > MAX_SIDE_RATIO * min(side, reference_side):
        return float("inf")
    return float(np.linalg.norm(center(box) - center(reference))) / reference_side


@dataclasses.dataclass
class Track:
    """A live track: its last detected face, the frame of that detection, velocity and misses."""

    face: DetectedFace
    frame: int
    velocity: np.ndarray
    missed: int = 0
    confirmed: bool = True
    hits: int = 1

    def predicted(self, frame):
        """The track's face at `frame`, moved on from its last detection at its velocity."""
        dx, dy = self.velocity * (frame - self.frame)
        return self.face.shifted(dx, dy) if dx or dy else self.face


@dataclasses.dataclass(frozen=True)
class TrackedDetection:
    """One track in one frame: its id, its face, and whether the face was carried (not detected)."""

    track: int
    face: DetectedFace
    carried: bool


class IoUTracker:
    """Gives each detected face a track id that stays the same across frames, and carries faces between.

    Args:
        min_iou: the overlap with a track's predicted box that lets a detection join it; below
            it, a detection of about the track's size joins it only when its center is within
            `MAX_CENTER_SHIFT` sides of the predicted one.
        max_missed: detection rounds a track may go unmatched before it ends. With detection
            every N frames, a face is carried for at most N * (max_missed + 1) - 1 frames.
        confirm_score: a new face of a lower detection score starts a track only once
            `CONFIRM_ROUNDS` detection rounds in a row have found it (0: every face starts a
            track at once).

    Example:
    >>> tracker = IoUTracker(max_missed=0)
    >>> tracker.update([(0, 0, 10, 10)]); tracker.update([])
    [(0, (0, 0, 10, 10))]
    []
    """

    def __init__(self, min_iou=0.3, max_missed=2, confirm_score=CONFIRM_SCORE):
        if not 0.0 <= confirm_score <= 1.0:
            raise ValueError(f"`confirm_score` must be in [0, 1]. Received: confirm_score={confirm_score!r}")
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"`min_iou` must be in (0, 1]. Received: min_iou={min_iou!r}")
        if not isinstance(max_missed, int) or max_missed < 0:
            raise ValueError(f"`max_missed` must be a non-negative integer. Received: max_missed={max_missed!r}")
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.confirm_score = confirm_score
        self._tracks = {}  # track id -> Track
        self._next_id = 0
        self._frame = -1

    @property
    def tracks(self):
        """[(track id, box)] of the live tracks' last detected boxes, by id."""
        return sorted((track, state.face.box) for track, state in self._tracks.items() if state.confirmed)

    def step(self, faces=None, bounds=None):
        """Advances one frame; returns a `TrackedDetection` for every live track, by id.

        Args:
            faces: this frame's detection round, `DetectedFace`s; None on a frame without detection.
            bounds: (width, height) of the frame; a carried track whose center leaves it ends.
        """
        self._frame += 1
        frame = self._frame
        predicted = {track: state.predicted(frame) for track, state in self._tracks.items()}
        assigned = {}
        if faces is not None:
            # Overlapping pairs first, the best overlap first; then near pairs, the nearest first.
            pairs = []
            for index, face in enumerate(faces):
                for track, guess in predicted.items():
                    overlap = iou(face.box, guess.box)
                    if overlap >= self.min_iou:
                        pairs.append(((0, -overlap), index, track))
                    elif (shift := center_shift(face.box, guess.box)) <= MAX_CENTER_SHIFT:
                        pairs.append(((1, shift), index, track))
            for _, index, track in sorted(pairs):
                if index not in assigned and track not in assigned.values():
                    assigned[index] = track
        found = {track: faces[index] for index, track in assigned.items()}
        for track, state in list(self._tracks.items()):
            if track in found:
                elapsed = frame - state.frame
                measured = (center(found[track].box) - center(state.face.box)) / elapsed
                state.velocity = measured if state.hits == 1 else (
                    VELOCITY_SMOOTHING * measured + (1 - VELOCITY_SMOOTHING) * state.velocity)
                state.face, state.frame, state.missed, state.hits = found[track], frame, 0, state.hits + 1
                state.confirmed = state.confirmed or state.hits >= CONFIRM_ROUNDS
                continue
            if faces is not None:
                state.missed += 1
            lost = state.missed > self.max_missed or (state.missed and not state.confirmed)
            if lost or (bounds is not None and not inside(predicted[track].box, bounds)):
                del self._tracks[track]
        for index, face in enumerate(faces or ()):
            if index not in assigned:
                self._tracks[self._next_id] = Track(face, frame, np.zeros(2), confirmed=face.score >= self.confirm_score)
                found[self._next_id] = face
                self._next_id += 1
        return [TrackedDetection(track, found.get(track, predicted.get(track)), track not in found)
                for track, state in sorted(self._tracks.items()) if state.confirmed]

    def update(self, boxes):
        """One detection round of (x, y, width, height) boxes; returns [(track id, box)] of the matched and new.

        Unmatched tracks are carried (not returned) until they have missed `max_missed` rounds.
        """
        faces = [DetectedFace(tuple(box)) for box in boxes]
        return [(found.track, found.face.box) for found in self.step(faces) if not found.carried]


def inside(box, bounds):
    """True when the center of `box` lies within a (width, height) frame."""
    x, y = center(box)
    return 0 <= x < bounds[0] and 0 <= y < bounds[1]


class ProbabilitySmoother:
    """The mean of each track's last `window` probability vectors (window 1: unchanged).

    Args:
        window: frames averaged, the current one included.

    Example:
    >>> smoother = ProbabilitySmoother(window=2)
    >>> smoother(0, [1.0, 0.0]), smoother(0, [0.0, 1.0])
    (array([1., 0.]), array([0.5, 0.5]))
    """

    def __init__(self, window=1):
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"`window` must be a positive integer. Received: window={window!r}")
        self.window = window
        self._recent = collections.defaultdict(lambda: collections.deque(maxlen=window))

    def __call__(self, track, probabilities):
        recent = self._recent[track]
        recent.append(np.asarray(probabilities, np.float64))
        return np.mean(recent, axis=0)

    def forget(self, live_tracks):
        """Drops the history of tracks that have ended, so memory stays bounded on long videos."""
        for track in set(self._recent) - set(live_tracks):
            del self._recent[track]
