"""The Python API and predict.py with the shipped model: a real photo, array layouts, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_predict import ASTRONAUT, FACE_REGION

import keras_fer
from keras_fer.faces import ImageError

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recognizer():
    return keras_fer.FaceExpressionRecognizer()


def inside_face_region(box):
    x, y, width, height = box
    centre_x, centre_y = x + width / 2, y + height / 2
    left, top, right, bottom = FACE_REGION
    return left <= centre_x <= right and top <= centre_y <= bottom


def test_a_path_and_an_rgb_or_bgr_array_give_the_same_face(recognizer):
    rgb = cv2.cvtColor(cv2.imread(ASTRONAUT), cv2.COLOR_BGR2RGB)
    from_path = recognizer.recognize(ASTRONAUT)
    from_rgb = recognizer.recognize(rgb, color_order="rgb")
    from_bgr = recognizer(np.ascontiguousarray(rgb[..., ::-1]))
    assert len(from_path) == 1 and inside_face_region(from_path[0].box)
    for faces in (from_rgb, from_bgr):
        assert [face.box for face in faces] == [from_path[0].box]
        np.testing.assert_allclose(list(faces[0].probabilities.values()),
                                   list(from_path[0].probabilities.values()), atol=1e-6)
    face = from_path[0]
    assert tuple(face.probabilities) == recognizer.class_names
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.face.shape == (48, 48, 1)
    assert json.loads(json.dumps(face.to_dict()))["box"] == list(face.box)


def test_an_rgb_array_read_as_bgr_is_a_different_image(recognizer):
    # Guards the colour handling: swapping red and blue must change the gray face the model sees.
    rgb = cv2.cvtColor(cv2.imread(ASTRONAUT), cv2.COLOR_BGR2RGB)
    right, wrong = recognizer(rgb, color_order="rgb"), recognizer(rgb, color_order="bgr")
    assert right and wrong and not np.array_equal(right[0].face, wrong[0].face)


def test_gray_and_rgba_arrays_are_accepted(recognizer):
    bgr = cv2.imread(ASTRONAUT)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rgba = np.concatenate([bgr[..., ::-1], np.full(bgr.shape[:2] + (1,), 255, np.uint8)], axis=-1)
    assert inside_face_region(recognizer(gray)[0].box)
    assert inside_face_region(recognizer(gray[..., None])[0].box)
    assert inside_face_region(recognizer(rgba, color_order="rgb")[0].box)


def test_an_image_without_a_face_gives_no_faces(recognizer):
    assert recognizer(np.full((240, 320, 3), 127, np.uint8)) == []


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((64, 64, 3), np.float32), "must be uint8"),
        (np.zeros((64, 64, 2), np.uint8), r"received shape \(64, 64, 2\)"),
        (np.zeros((2, 64, 64, 3), np.uint8), r"received shape \(2, 64, 64, 3\)"),
    ],
)
def test_an_array_that_is_not_an_image_is_refused(recognizer, image, message):
    with pytest.raises(ImageError, match=message):
        recognizer(image)


def test_bad_arguments_are_quoted(recognizer, tmp_path):
    with pytest.raises(ValueError, match="color_order='hsv'"):
        recognizer(ASTRONAUT, color_order="hsv")
    with pytest.raises(ValueError, match="min_face_size=0"):
        keras_fer.FaceExpressionRecognizer(min_face_size=0)
    with pytest.raises(ImageError, match="cannot read the file"):
        recognizer(tmp_path / "missing.jpg")


def test_predict_py_without_a_model_labels_a_photo_with_the_shipped_model():
    # A fresh process, as a user runs it after `pip install`: no training, no --model.
    result = subprocess.run([sys.executable, "predict.py", ASTRONAUT], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.splitlines()
    face = json.loads(line)
    assert face["file"] == ASTRONAUT and inside_face_region(face["box"])
    assert face["label"] in keras_fer.pretrained.metadata("fer2013")["class_names"]
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_a_saved_model_loads_in_a_process_that_imports_only_keras_fer(tmp_path):
    from keras_fer.models import build_model

    build_model(input_size=32, width=4).save(tmp_path / "model.keras")
    script = "import keras, keras_fer; print(keras.saving.load_model('model.keras').name)"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "keras_fer"
