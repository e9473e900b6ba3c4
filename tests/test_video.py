"""Videos: a real photograph (scikit-image's astronaut) moved across a 640x480 canvas, written with OpenCV."""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from keras_fer.predict import main
from keras_fer.recognizer import FaceExpressionRecognizer
from keras_fer.tracking import IoUTracker, ProbabilitySmoother
from keras_fer.faces import crop_face
from keras_fer.video import VideoError, analyze_video, open_video
from keras_fer.video_outputs import RECORD_COLUMNS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FPS = 12.5
FRAMES = 20
CANVAS = (480, 640)


def write_video(path, frames, fps=FPS):
    codec = "MJPG" if str(path).endswith(".avi") else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, CANVAS[::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return str(path)


def astronaut_frames(count=FRAMES, size=400):
    """The astronaut sliding right by 6 pixels a frame and slowly growing (a zoom) on a gray canvas."""
    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    for index in range(count):
        side = size + 2 * index
        canvas = np.full((*CANVAS, 3), 90, np.uint8)
        left, top = 6 * index, 10
        canvas[top : top + side, left : left + side] = cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA)
        yield canvas


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "astronaut.avi", astronaut_frames())


@pytest.fixture(scope="module")
def recognizer():
    return FaceExpressionRecognizer("fer2013")


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.reader(file))


def test_one_face_is_one_track_with_timestamps_and_csv_json_and_video_agree(clip, tmp_path):
    outputs = {name: str(tmp_path / name) for name in ("emotions.csv", "emotions.jsonl", "annotated.mp4", "plot.png")}
    status = main([clip, "--model", "fer2013", "--detect-every", "3", "--batch-frames", "4",
                   "--csv", outputs["emotions.csv"], "--jsonl", outputs["emotions.jsonl"],
                   "--video-out", outputs["annotated.mp4"], "--plot", outputs["plot.png"]])
    assert status == 0
    header, *rows = read_csv(outputs["emotions.csv"])
    assert tuple(header) == RECORD_COLUMNS + ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert [int(row[0]) for row in rows] == list(range(FRAMES))  # one face in every frame
    assert {row[2] for row in rows} == {"0"}  # the moving face stays one track
    np.testing.assert_allclose([float(row[1]) for row in rows], np.arange(FRAMES) / FPS, atol=1e-4)
    xs = [int(row[3]) for row in rows]
    assert xs[-1] - xs[0] > 90 and xs == sorted(xs)  # the box follows the face to the right
    with open(outputs["emotions.jsonl"]) as file:
        records = [json.loads(line) for line in file]
    assert len(records) == len(rows)
    for record, row in zip(records, rows):
        assert [record["frame"], record["time_s"], record["track"], *record["box"], record["carried"],
                record["label"]] == [int(row[0]), float(row[1]), int(row[2]), *map(int, row[3:7]), bool(int(row[7])),
                                     row[8]]
        np.testing.assert_allclose(list(record["probabilities"].values()), list(map(float, row[9:])), atol=1e-6)
        assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)
    annotated = cv2.VideoCapture(outputs["annotated.mp4"])
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    assert annotated.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    ok, frame = annotated.read()
    assert ok and frame.shape == (*CANVAS, 3)
    plot = cv2.imread(outputs["plot.png"])
    assert plot is not None and plot.shape[1] > 500


def test_api_frames_match_a_classification_of_each_frame_alone(clip, recognizer):
    frames = list(analyze_video(recognizer, clip, detect_every=1, batch_frames=3))
    assert [frame.index for frame in frames] == list(range(FRAMES))
    # With detection on every frame, a frame's face is the one the detector finds in that image
    # alone, and its probabilities those of its crop classified alone (not in a batch).
    image, face = frames[7].image, frames[7].faces[0]
    detected = recognizer.detector.detect(image)
    assert [face.box] == [found.box for found in detected] and not face.carried
    alone = recognizer.classifier.classify(crop_face(image, detected[0], recognizer.classifier.channels)[None])[0]
    np.testing.assert_allclose(list(face.probabilities.values()), alone, atol=1e-5)


def test_smoothing_is_the_mean_of_the_last_frames_of_a_track(clip, recognizer):
    raw = [frame.faces[0].probabilities for frame in analyze_video(recognizer, clip, detect_every=1)]
    smoothed = [frame.faces[0].probabilities for frame in analyze_video(recognizer, clip, detect_every=1, smoothing=3)]
    raw = np.array([list(p.values()) for p in raw])
    expected = [raw[max(0, i - 2) : i + 1].mean(axis=0) for i in range(FRAMES)]
    np.testing.assert_allclose([list(p.values()) for p in smoothed], expected, atol=1e-6)


def test_tracker_keeps_ids_ends_lost_tracks_and_starts_new_ones():
    tracker = IoUTracker(min_iou=0.3, max_missed=1)
    assert tracker.update([(0, 0, 50, 50), (300, 0, 50, 50)]) == [(0, (0, 0, 50, 50)), (1, (300, 0, 50, 50))]
    assert tracker.update([(305, 2, 50, 50)]) == [(1, (305, 2, 50, 50))]  # track 0 missed once: kept
    assert [track for track, _ in tracker.tracks] == [0, 1]
    assert tracker.update([(310, 4, 50, 50)]) == [(1, (310, 4, 50, 50))]  # missed twice: ended
    assert [track for track, _ in tracker.tracks] == [1]
    assert tracker.update([(2, 0, 50, 50), (312, 4, 50, 50)]) == [(1, (312, 4, 50, 50)), (2, (2, 0, 50, 50))]
    with pytest.raises(ValueError, match="Received: max_missed=-1"):
        IoUTracker(max_missed=-1)
    with pytest.raises(ValueError, match="Received: window=0"):
        ProbabilitySmoother(0)


def test_video_without_faces_gives_the_header_only_and_says_so(tmp_path, capsys):
    blank = write_video(tmp_path / "blank.avi", [np.full((*CANVAS, 3), 90, np.uint8)] * 5)
    assert main([blank, "--model", "fer2013", "--csv", str(tmp_path / "e.csv")]) == 0
    assert read_csv(tmp_path / "e.csv") == [list(RECORD_COLUMNS) + ["Angry", "Disgust", "Fear", "Happy", "Sad",
                                                                    "Surprise", "Neutral"]]
    assert f"warning: {blank}: no face found in its 5 frames (blazeface, faces of 40 pixels" in capsys.readouterr().err


def test_bad_videos_each_get_one_line_and_the_others_still_run(clip, tmp_path, capsys):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("these are notes, not a video\n")
    whole = open(clip, "rb").read()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(whole[: len(whole) // 2])
    status = main([str(tmp_path / "missing.mp4"), str(not_video), str(truncated), clip, "--model", "fer2013"])
    out, err = capsys.readouterr()
    assert status == 1
    errors = [line for line in err.splitlines() if line.startswith(("error:", "warning:"))]
    assert errors[0] == f"error: {tmp_path / 'missing.mp4'}: no such file."
    assert errors[1].startswith(f"error: {not_video}: ")
    assert errors[2].startswith(f"warning: {truncated}: the video ended after ")
    assert "2 of 4 inputs failed." in err
    frames = [json.loads(line)["frame"] for line in out.splitlines()]
    # The truncated file's readable frames, then the whole clip's.
    readable = frames.index(0, 1)
    assert 0 < readable < FRAMES and frames[readable:] == list(range(FRAMES))
    with pytest.raises(VideoError, match="camera 97: cannot open the camera"):
        open_video(97)
    assert main(["--camera", "97", "--model", "fer2013"]) == 1
    assert "error: camera 97: cannot open the camera" in capsys.readouterr().err


def test_ctrl_c_leaves_a_valid_csv_and_a_playable_video_of_the_frames_done(clip, tmp_path, monkeypatch):
    from keras_fer.classifiers import KerasClassifier

    calls = {"count": 0}
    classify = KerasClassifier.classify

    def interrupted_on_the_third_batch(self, faces):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt
        return classify(self, faces)

    monkeypatch.setattr(KerasClassifier, "classify", interrupted_on_the_third_batch)
    status = main([clip, "--model", "fer2013", "--batch-frames", "4", "--csv", str(tmp_path / "e.csv"),
                   "--video-out", str(tmp_path / "a.mp4")])
    assert status == 130
    rows = read_csv(tmp_path / "e.csv")[1:]
    assert [int(row[0]) for row in rows] == list(range(8))  # two batches of 4 frames done
    video = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and video.read()[0]


def test_videos_default_to_the_shipped_model_as_a_cached_tflite_file(clip, tmp_path):
    env = dict(os.environ, KERAS_FER_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.run([sys.executable, "predict.py", clip, "--csv", str(tmp_path / "e.csv")], cwd=REPO,
                             env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr
    cached = os.listdir(tmp_path / "cache")
    assert len(cached) == 1 and cached[0].startswith("fer2013-") and cached[0].endswith("-dynamic.tflite")
    rows = read_csv(tmp_path / "e.csv")[1:]
    assert [int(row[0]) for row in rows] == list(range(FRAMES))
