"""Faces followed across video frames: an IoU tracker and a moving average of probabilities.

A track is one face over time. Each detection round, every detected box joins the live track
whose last box overlaps it most (intersection over union, greedy from the best pair), or
starts a new track; a track that no detection joins for `max_missed` rounds in a row ends.
Between detection rounds the tracks keep their last box.

Example:
>>> tracker = IoUTracker()
>>> tracker.update([(10, 10, 50, 50)])
[(0, (10, 10, 50, 50))]
>>> tracker.update([(14, 12, 50, 50), (200, 40, 60, 60)])
[(0, (14, 12, 50, 50)), (1, (200, 40, 60, 60))]
"""

import collections

import numpy as np


def iou(box_a, box_b):
    """Intersection over union of two (x, y, width, height) boxes, 0 to 1."""
    ax, ay, aw, ah = box_a
    bx, by, bw, bh = box_b
    overlap_w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    overlap_h = max(0, min(ay + ah, by + bh) - max(ay, by))
    overlap = overlap_w * overlap_h
    union = aw * ah + bw * bh - overlap
    return overlap / union if union > 0 else 0.0


class IoUTracker:
    """Gives each detected face box a track id that stays the same across frames.

    Args:
        min_iou: the least overlap with a track's last box for a detection to join it.
        max_missed: detection rounds a track may go unmatched before it ends.

    Example:
    >>> tracker = IoUTracker(max_missed=0)
    >>> tracker.update([(0, 0, 10, 10)]); tracker.update([])
    [(0, (0, 0, 10, 10))]
    []
    """

    def __init__(self, min_iou=0.3, max_missed=2):
        if not 0.0 < min_iou <= 1.0:
            raise ValueError(f"`min_iou` must be in (0, 1]. Received: min_iou={min_iou!r}")
        if not isinstance(max_missed, int) or max_missed < 0:
            raise ValueError(f"`max_missed` must be a non-negative integer. Received: max_missed={max_missed!r}")
        self.min_iou = min_iou
        self.max_missed = max_missed
        self._boxes = {}  # track id -> last box
        self._missed = {}  # track id -> detection rounds since it was last matched
        self._next_id = 0

    @property
    def tracks(self):
        """[(track id, box)] of the live tracks, by id."""
        return sorted(self._boxes.items())

    def update(self, boxes):
        """Matches one detection round's boxes to the tracks; returns [(track id, box)] of the matched and new.

        Unmatched tracks are carried (not returned) until they have missed `max_missed` rounds.
        """
        pairs = sorted(
            ((iou(box, last), index, track) for index, box in enumerate(boxes) for track, last in self._boxes.items()),
            reverse=True,
        )
        assigned, matched = {}, set()
        for overlap, index, track in pairs:
            if overlap < self.min_iou:
                break
            if index not in assigned and track not in matched:
                assigned[index] = track
                matched.add(track)
        for track in list(self._boxes):
            if track not in matched:
                self._missed[track] += 1
                if self._missed[track] > self.max_missed:
                    del self._boxes[track], self._missed[track]
        result = []
        for index, box in enumerate(boxes):
            track = assigned.get(index)
            if track is None:
                track, self._next_id = self._next_id, self._next_id + 1
            self._boxes[track], self._missed[track] = tuple(box), 0
            result.append((track, tuple(box)))
        return sorted(result)


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
