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


def test_two_faces_crossing_fast_in_opposite_directions_keep_their_tracks(tmp_path, video_model):
    # 46-pixel faces, 12 pixels a frame from the first frame: 48 pixels a round, more than a side.
    face = astronaut(240)[20:140, 60:180]

    def frame(index):
        canvas = np.full((*CANVAS, 3), 90, np.uint8)
        canvas[60:180, 20 + 12 * index : 140 + 12 * index] = face
        canvas[250:370, 500 - 12 * index : 620 - 12 * index] = face[:, ::-1]
        return canvas

    clip = write_clip(tmp_path / "clip.mp4", (frame(index) for index in range(40)))
    assert main([clip, "--model", video_model, "--csv", str(tmp_path / "e.csv")]) == 0
    rows = rows_of(tmp_path / "e.csv")
    tracks = {}
    for row in rows:
        tracks.setdefault(row["track"], []).append((int(row["frame"]), int(row["x"]), int(row["y"])))
    assert len(tracks) == 2
    upper, lower = sorted(tracks.values(), key=lambda track: track[0][2])
    for track, direction in ((upper, 1), (lower, -1)):
        assert len(track) >= 37 and len({y // 100 for _, _, y in track}) == 1  # one row: no swap
        xs = [x for _, x, _ in track]
        assert all(direction * (b - a) >= -2 for a, b in zip(xs, xs[1:]))


def test_a_face_joins_the_nearest_track_of_its_size_within_two_sides_when_it_overlaps_none():
    tracker = IoUTracker()
    assert tracker.update([(0, 0, 100, 100), (600, 0, 100, 100)]) == [(0, (0, 0, 100, 100)), (1, (600, 0, 100, 100))]
    # 80 pixels on (IoU 0.11): the same faces, now moving 80 pixels a frame.
    assert tracker.update([(80, 0, 100, 100), (680, 10, 100, 100)]) == [(0, (80, 0, 100, 100)),
                                                                          (1, (680, 10, 100, 100))]
    assert tracker.update([(400, 300, 100, 100)]) == [(2, (400, 300, 100, 100))]  # 3.8 sides from any: a new face
    # Track 1's prediction is now (840, 30, 100, 100): a face of its size 0.74 sides off (IoU 0.15)
    # joins it, one of twice its size 0.85 sides off (IoU 0.16) does not.
    same_size = copy.deepcopy(tracker)
    assert same_size.update([(900, 60, 110, 110)]) == [(1, (900, 60, 110, 110))]
    assert tracker.update([(860, 0, 220, 220)]) == [(3, (860, 0, 220, 220))]


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
