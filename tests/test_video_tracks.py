"""Tracks that hold: clips made from a real photograph (scikit-image's astronaut), run with the video defaults."""

import copy
import csv
import os
from unittest import mock

import cv2
import numpy as np
import pytest
import skimage.data

from keras_fer import pretrained
from keras_fer.faces import DetectedFace
from keras_fer.predict import main
from keras_fer.tracking import IoUTracker

CANVAS = (480, 640)
FPS = 25.0
# The clip: the astronaut at 320 x 320 (her face about 61 pixels), 3 pixels a frame, 75 frames.
PHOTO_SIDE = 320
STEP = 3
FRAMES = 75


def astronaut(side=PHOTO_SIDE):
    return cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (side, side),
                      interpolation=cv2.INTER_AREA)


def frame_with_photo(photo, left, top=80):
    """A flat gray 640x480 canvas with `photo` pasted at (left, top), cut where it leaves the canvas."""
    canvas = np.full((*CANVAS, 3), 90, np.uint8)
    side = photo.shape[0]
    x0, x1 = max(left, 0), min(left + side, CANVAS[1])
    if x1 > x0:
        canvas[top : top + side, x0:x1] = photo[:, x0 - left : x1 - left]
    return canvas


def write_clip(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, CANVAS[::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def video_model(tmp_path_factory):
    """The model the video defaults use: the preset as a dynamic-range TFLite file (in a private cache)."""
    with mock.patch.dict(os.environ, {"KERAS_FER_CACHE": str(tmp_path_factory.mktemp("cache"))}):
        return str(pretrained.tflite_file("fer2013", "dynamic"))


def rows_of(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_one_moving_face_is_one_track_in_nearly_every_frame(tmp_path, video_model):
    photo = astronaut()
    clip = write_clip(tmp_path / "clip.mp4", (frame_with_photo(photo, STEP * index) for index in range(FRAMES)))
    assert main([clip, "--model", video_model, "--csv", str(tmp_path / "e.csv")]) == 0
    rows = rows_of(tmp_path / "e.csv")
    assert len({row["frame"] for row in rows}) >= 72
    assert {row["track"] for row in rows} == {"0"}
    carried = [row for row in rows if row["carried"] == "1"]
    detected = [row for row in rows if row["carried"] == "0"]
    assert carried and detected  # detection every few frames, the crop carried between
    # A carried box follows the face: x grows with the frame, as the photo moves.
    xs = [int(row["x"]) for row in rows]
    assert xs[-1] - xs[0] > 0.8 * STEP * (FRAMES - 1) and all(b >= a - 2 for a, b in zip(xs, xs[1:]))


def test_a_face_that_starts_moving_fast_stays_one_track_without_ghosts(tmp_path, video_model):
    # 12 pixels a frame from the first frame, detection every 4th: 48 pixels a round, 0.8 of the
    # face's side, where boxes of one size overlap by IoU 0.12 only. Each round used to start a
    # new track and carry the old one where the face had been, labelling the background.
    photo = astronaut()
    clip = write_clip(tmp_path / "clip.mp4", (frame_with_photo(photo, 12 * index, top=40) for index in range(40)))
    assert main([clip, "--model", video_model, "--csv", str(tmp_path / "e.csv")]) == 0
    rows = rows_of(tmp_path / "e.csv")
    frames = [row["frame"] for row in rows]
    assert {row["track"] for row in rows} == {"0"}
    assert len(frames) == len(set(frames)) >= 37  # one face a frame, in nearly every frame


def test_a_face_joins_the_nearest_track_of_its_size_within_one_side_when_it_overlaps_none():
    tracker = IoUTracker()
    assert tracker.update([(0, 0, 100, 100), (400, 0, 100, 100)]) == [(0, (0, 0, 100, 100)), (1, (400, 0, 100, 100))]
    # 80 pixels on (IoU 0.11): the same faces; the nearer track wins, not the other one 320 away.
    assert tracker.update([(80, 0, 100, 100), (480, 10, 100, 100)]) == [(0, (80, 0, 100, 100)),
                                                                          (1, (480, 10, 100, 100))]
    # Now tracks 0 and 1 move 80 pixels a frame: their predictions are at 160 and 560.
    assert tracker.update([(300, 0, 100, 100)]) == [(2, (300, 0, 100, 100))]  # 1.4 sides from 160: a new face
    # Track 1's prediction is (640, 30, 100, 100): a face of its size 0.36 sides off joins it, one
    # of twice its size does not.
    same_size = copy.deepcopy(tracker)
    assert same_size.update([(650, 50, 110, 110)]) == [(1, (650, 50, 110, 110))]
    assert tracker.update([(600, 0, 220, 220)]) == [(3, (600, 0, 220, 220))]


def test_a_face_that_leaves_the_frame_and_comes_back_is_a_new_track(tmp_path, video_model):
    photo = astronaut()
    # Out across the right edge at 6 pixels a frame, 20 frames away, then back the same way.
    out = list(range(100, 700, 6))
    lefts = out + [CANVAS[1] + 50] * 20 + out[::-1]
    clip = write_clip(tmp_path / "clip.mp4", (frame_with_photo(photo, left) for left in lefts))
    assert main([clip, "--model", video_model, "--csv", str(tmp_path / "e.csv")]) == 0
    rows = rows_of(tmp_path / "e.csv")
    tracks = sorted({int(row["track"]) for row in rows})
    assert len(tracks) == 2
    away = range(len(out), len(out) + 20)
    assert not [row for row in rows if int(row["frame"]) in away]
    first = [int(row["frame"]) for row in rows if int(row["track"]) == tracks[0]]
    second = [int(row["frame"]) for row in rows if int(row["track"]) == tracks[1]]
    assert max(first) < len(out) <= len(out) + 20 <= min(second)


def test_a_track_is_carried_at_its_velocity_through_missed_detections_then_ends():
    tracker = IoUTracker(max_missed=2)
    face = DetectedFace((100, 100, 60, 60), detector="blazeface")
    tracker.step([face])
    tracker.step([face.shifted(10, 0)])  # 10 pixels a frame to the right
    for frame in range(2, 4):  # two missed rounds: carried on, 10 pixels a frame
        (found,) = tracker.step([])
        assert found.carried and found.track == 0 and found.face.box == (100 + 10 * frame, 100, 60, 60)
    assert tracker.step([]) == []  # a third miss ends it
    (new,) = tracker.step([face.shifted(60, 0)])
    assert new.track == 1 and not new.carried


def test_a_carried_track_ends_when_its_center_leaves_the_frame():
    tracker = IoUTracker(max_missed=5)
    face = DetectedFace((570, 100, 60, 60))
    tracker.step([face], bounds=(640, 480))
    tracker.step([face.shifted(20, 0)], bounds=(640, 480))  # center at 620, 20 pixels a frame to the right
    assert tracker.step(None, bounds=(640, 480)) == []  # predicted at 640: outside


def test_an_unsure_face_makes_a_track_only_when_three_rounds_in_a_row_find_it():
    tracker = IoUTracker(confirm_score=0.75)
    sure, unsure = DetectedFace((0, 0, 60, 60), score=0.95), DetectedFace((300, 0, 60, 60), score=0.55)
    assert [found.track for found in tracker.step([sure, unsure])] == [0]
    assert [found.track for found in tracker.step([sure])] == [0]  # the unsure face is gone: no track
    assert [found.track for found in tracker.step([sure, unsure])] == [0]
    assert [found.track for found in tracker.step([sure, unsure])] == [0]
    assert [(found.track, found.carried) for found in tracker.step([sure, unsure])] == [(0, False), (2, False)]
