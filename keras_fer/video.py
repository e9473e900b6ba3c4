"""Expressions over time: the faces of video files, cameras and streams, tracked and classified.

Frames are read with OpenCV. Faces are detected every `detect_every` frames (the recognizer's
detector, `keras_fer.faces`, optionally on a downscaled frame) and followed by
`keras_fer.tracking.IoUTracker`: between detections, and for a few missed detections, each track
is carried along at its velocity, and its crop follows it (the record's `carried` flag). The
crops of `batch_frames` frames are classified in one call. Memory stays flat on long videos: at
most `batch_frames` frames are held.

Example:
>>> import keras_fer
>>> recognizer = keras_fer.FaceExpressionRecognizer()
>>> for frame in analyze_video(recognizer, "clip.mp4", detect_every=3):  # doctest: +SKIP
...     for face in frame.faces:
...         print(frame.index, round(frame.time_s, 2), face.track, face.label)
0 0.0 0 Happy
"""

import dataclasses
import itertools
import os
import time

import cv2
import numpy as np

from keras_fer.faces import crop_face
from keras_fer.tracking import IoUTracker, ProbabilitySmoother

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")
# OpenCV reports 0, or nonsense such as 90000 (a time base), for sources that do not know their rate.
PLAUSIBLE_FPS = (1.0, 240.0)


class VideoError(Exception):
    """A video source cannot be opened or read."""


def is_video(source):
    """True for a camera index, a stream URL, or a path with a video suffix."""
    if isinstance(source, int):
        return True
    return source.lower().startswith(STREAM_SCHEMES) or os.path.splitext(source)[1].lower() in VIDEO_SUFFIXES


@dataclasses.dataclass
class VideoSource:
    """An opened video.

    Attributes:
        name: how messages name it ("clip.mp4", "camera 0", the URL).
        capture: the `cv2.VideoCapture`.
        fps: frames per second from the container, or None when unknown (most cameras).
        frame_count: frames announced by the container, or None (cameras, streams).
        live: a camera or stream, whose timestamps are wall-clock seconds.
        frames_read: frames read so far.
    """

    name: str
    capture: cv2.VideoCapture
    fps: float | None
    frame_count: int | None
    live: bool
    frames_read: int = 0

    @property
    def ended_early(self):
        """True when reading stopped well before the frames the container announced (a truncated file).

        Some containers estimate their frame count from the duration, so 1% and one frame are allowed.
        """
        return self.frame_count is not None and self.frames_read < 0.99 * self.frame_count - 1

    def read(self):
        """The next frame, uint8 BGR (H, W, 3), or None at the end."""
        ok, frame = self.capture.read()
        if not ok:
            return None
        self.frames_read += 1
        return frame

    def close(self):
        self.capture.release()


def open_video(source):
    """Opens a video file, a camera (int index) or a stream URL.

    Raises:
        VideoError: a missing file, a file OpenCV cannot decode as video, a camera or stream that
            does not open, or a source without a single readable frame.
    """
    if isinstance(source, int):
        name, live = f"camera {source}", True
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise VideoError(f"{name}: cannot open the camera (no camera with that index, or it is in use).")
    else:
        source = os.fspath(source)
        name, live = source, source.lower().startswith(STREAM_SCHEMES)
        if not live and not os.path.isfile(source):
            raise VideoError(f"{source}: no such file.")
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise VideoError(f"{source}: cannot open it as a video (not a video, damaged, or a codec OpenCV's "
                             "FFmpeg lacks).")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return VideoSource(
        name=name,
        capture=capture,
        fps=fps if PLAUSIBLE_FPS[0] <= fps <= PLAUSIBLE_FPS[1] else None,
        frame_count=count if count > 0 and not live else None,
        live=live,
    )


@dataclasses.dataclass(frozen=True)
class TrackedFace:
    """One face in one frame.

    Attributes:
        track: the face's track id, the same across frames.
        box: (x, y, width, height) in the frame, in pixels.
        probabilities: {class name: probability} (smoothed when smoothing is on).
        carried: True when no detection found the face in this frame: the box is the track's
            prediction from its last detection and velocity.
    """

    track: int
    box: tuple
    probabilities: dict
    carried: bool = False

    @property
    def label(self):
        return max(self.probabilities, key=self.probabilities.get)


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    """One processed frame: its index, its time in seconds, the image (BGR) and its faces."""

    index: int
    time_s: float
    image: np.ndarray = dataclasses.field(repr=False)
    faces: tuple


def analyze_video(recognizer, source, detect_every=1, batch_frames=8, smoothing=1, detect_scale=1.0, tracker=None):
    """Yields a `VideoFrame` for every frame of a video, in order, with its tracked faces.

    Args:
        recognizer: a `FaceExpressionRecognizer` (its classifier, detector and alignment are used).
        source: a video path, a camera index, a stream URL, or a `VideoSource` from `open_video`.
        detect_every: run the face detector on every N-th frame; tracks are carried between.
        batch_frames: frames whose faces are classified in one call.
        smoothing: probabilities are the mean over each track's last `smoothing` frames (1: off).
        detect_scale: detect on frames resized by this factor (`keras_fer.faces.FaceDetector.detect`).
        tracker: an `IoUTracker`; a new one by default.
    Raises:
        VideoError: see `open_video`.
    """
    for name, value in (("detect_every", detect_every), ("batch_frames", batch_frames)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    smoother = ProbabilitySmoother(smoothing)
    tracker = tracker or IoUTracker()
    video = source if isinstance(source, VideoSource) else open_video(source)
    pending, started = [], time.monotonic()
    try:
        for index in itertools.count():
            image = video.read()
            if image is None:
                break
            detected = recognizer.detector.detect(image, detect_scale) if index % detect_every == 0 else None
            tracks = tracker.step(detected, bounds=image.shape[1::-1])
            smoother.forget(found.track for found in tracks)
            time_s = time.monotonic() - started if video.live or video.fps is None else index / video.fps
            pending.append((index, time_s, image, tracks))
            if len(pending) == batch_frames:
                yield from _classify(recognizer, smoother, pending)
                pending = []
        if index == 0:
            raise VideoError(f"{video.name}: no frame could be read (an empty or damaged video).")
        yield from _classify(recognizer, smoother, pending)
    finally:
        if video is not source:
            video.close()


def _classify(recognizer, smoother, pending):
    """VideoFrames of pending (index, time, image, [TrackedDetection]), their faces classified in one call."""
    classifier = recognizer.classifier
    # One crop a face, whatever the recognizer's framing_views: the four views cost the defaults
    # their 30 frames/s (16.9 against 30.2 measured, docs/video.md), and a track's consecutive
    # frames already frame its face a little differently each time.
    crops = [crop_face(image, found.face, classifier.channels, recognizer.align)
             for _, _, image, tracks in pending for found in tracks]
    probabilities = iter(classifier.classify(np.stack(crops)) if crops else ())
    for index, time_s, image, tracks in pending:
        faces = tuple(
            TrackedFace(found.track, found.face.box,
                        dict(zip(classifier.class_names, map(float, smoother(found.track, next(probabilities))))),
                        found.carried)
            for found in tracks
        )
        yield VideoFrame(index, time_s, image, faces)
