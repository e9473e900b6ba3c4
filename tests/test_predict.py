"""predict.py: faces in a real photo through the three model formats, pictures, bad input."""

import json
import os

import cv2
import numpy as np
import pytest
from test_export import tiny_export

from keras_fer import predict
from keras_fer.data import CLASS_NAMES, synthetic_faces
from keras_fer.models import build_model
from keras_fer.classifiers import TFLiteClassifier, ModelError, check_face_input, quantized_input_scale

# scikit-image ships this NASA portrait of Eileen Collins: a real photo that no one here drew.
ASTRONAUT = os.path.join(os.path.dirname(pytest.importorskip("skimage.data").__file__), "astronaut.png")
# Where her face is in the 512x512 photo (x from 165 to 290, y from 55 to 180), by eye.
FACE_REGION = (165, 55, 290, 180)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return tiny_export(tmp_path_factory)


def run_predict(capsys, *args):
    """predict.main(args) -> (exit status, JSON lines printed, stderr)."""
    status = predict.main(list(args))
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_finds_and_labels_the_face_in_a_photo_in_every_format(exported, capsys):
    model_base_dir = os.path.dirname(exported["saved_model"])  # TF Serving's base path: latest version
    results = {}
    for model in (exported["keras"], model_base_dir, exported["tflite"]["float32"]):
        status, lines, err = run_predict(capsys, "--model", model, ASTRONAUT)
        assert status == 0, err
        (face,) = lines
        assert face["file"] == ASTRONAUT
        x, y, width, height = face["box"]
        left, top, right, bottom = FACE_REGION
        assert left <= x and top <= y and x + width <= right and y + height <= bottom and width >= 60
        assert list(face["probabilities"]) == list(CLASS_NAMES)
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
        results[model] = face
    keras_face, *others = results.values()
    for face in others:
        assert face["box"] == keras_face["box"] and face["label"] == keras_face["label"]
        for name, p in face["probabilities"].items():
            assert p == pytest.approx(keras_face["probabilities"][name], abs=1e-4)


def test_annotated_photo_and_mask_overlays(exported, tmp_path, capsys):
    status, (face,), err = run_predict(
        capsys, "--model", exported["keras"], "--annotate", str(tmp_path), "--masks", str(tmp_path), ASTRONAUT
    )
    assert status == 0, err
    photo = cv2.imread(ASTRONAUT)
    annotated = cv2.imread(str(tmp_path / "astronaut_annotated.png"))
    assert annotated.shape == photo.shape
    x, y, width, height = face["box"]
    changed = np.any(annotated != photo, axis=-1)
    assert changed[y + height // 2, x] and changed[y + height, x + width // 2]  # the box's edges
    assert not changed[y + height // 2, x + width // 2]  # the face inside is left as it was
    strip = cv2.imread(str(tmp_path / "astronaut_masks.png"))
    tile = strip.shape[0]
    assert strip.shape == (tile, 5 * tile, 3)
    tiles = [strip[:, i * tile : (i + 1) * tile].astype(int) for i in range(5)]
    # Each stage's overlay differs from the plain face and from the other stages'.
    assert all(np.abs(overlay - tiles[0]).mean() > 5 for overlay in tiles[1:])
    assert all(np.abs(tiles[i] - tiles[j]).mean() > 1 for i in range(1, 5) for j in range(i + 1, 5))


def test_mask_overlays_of_an_ensemble_have_one_strip_per_network(tmp_path, capsys):
    """The FERPlus preset averages two networks, each with masks of its own: each gets its row."""
    status, (face,), err = run_predict(capsys, "--model", "ferplus", "--masks", str(tmp_path), ASTRONAUT)
    assert status == 0, err
    strip = cv2.imread(str(tmp_path / "astronaut_masks.png")).astype(int)
    tile = strip.shape[1] // 5
    assert strip.shape == (2 * tile, 5 * tile, 3)
    rows = [strip[:tile], strip[tile:]]
    # The same face heads both rows, under each network's name.
    assert np.abs(rows[0][tile // 3 :, :tile] - rows[1][tile // 3 :, :tile]).mean() < 1
    assert np.abs(rows[0][: tile // 6, :tile] - rows[1][: tile // 6, :tile]).mean() > 1
    # The two networks' masks differ (stride 2 and stride 1), stage by stage.
    for stage in range(1, 5):
        overlays = [row[:, stage * tile : (stage + 1) * tile] for row in rows]
        assert np.abs(overlays[0] - overlays[1]).mean() > 2


def test_bad_files_are_reported_and_the_others_processed(exported, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff this is not a JPEG")
    no_face = tmp_path / "gradient.png"
    cv2.imwrite(str(no_face), np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1)))
    missing = tmp_path / "missing.png"
    status, lines, err = run_predict(
        capsys, "--model", exported["tflite"]["int8"], str(missing), str(corrupt), ASTRONAUT, str(no_face)
    )
    assert status == 1
    assert [line["file"] for line in lines] == [ASTRONAUT]
    assert f"{missing}: cannot read the file" in err
    assert f"{corrupt}: cannot decode the image" in err
    assert f"{no_face}: no face found" in err and "or --whole-image if the photos are face crops already" in err
    assert "3 of 4 inputs failed" in err


def test_whole_image_faces_match_the_model_on_raw_pixels(exported, tmp_path, capsys):
    """A 48x48 face crop read from PNG reaches the model as exactly those pixels."""
    faces = synthetic_faces(3, seed=7)[0]
    paths = []
    for index, face in enumerate(faces):
        paths.append(str(tmp_path / f"face{index}.png"))
        cv2.imwrite(paths[-1], face)
    model = exported["tflite"]["float32"]
    status, lines, err = run_predict(capsys, "--model", model, "--whole-image", *paths)
    assert status == 0, err
    expected = TFLiteClassifier(model).classify(faces)
    for line, probabilities in zip(lines, expected):
        assert line["box"] == [0, 0, 48, 48]
        np.testing.assert_allclose(list(line["probabilities"].values()), probabilities, atol=1e-5)


def test_model_errors_are_clear(exported, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"TFL3 but not a flat buffer")
    cases = {
        str(tmp_path / "missing.keras"): "no such file or directory",
        str(corrupt): "cannot load the TFLite model",
        str(tmp_path): "no saved_model.pb",
        ASTRONAUT: "unknown model format",
    }
    for model, message in cases.items():
        status, lines, err = run_predict(capsys, "--model", model, ASTRONAUT)
        assert (status, lines) == (1, [])
        assert f"{model}: {message}" in err
    status, _, err = run_predict(capsys, "--model", exported["tflite"]["float32"], "--masks", str(tmp_path), ASTRONAUT)
    assert status == 1 and "--masks needs a .keras model" in err
    no_masks = str(tmp_path / "no_masks.keras")
    build_model(input_size=32, width=4, use_masks=False).save(no_masks)
    status, lines, err = run_predict(capsys, "--model", no_masks, "--masks", str(tmp_path), ASTRONAUT)
    assert (status, lines) == (1, [])  # refused before any photo
    assert f"{no_masks}: the model has no stage masks (built with use_masks=False)" in err
    status, _, err = run_predict(capsys, "--model", exported["keras"], "--class-names", "a,b", ASTRONAUT)
    assert status == 1 and "2 class names ('a', 'b') for 7 model outputs" in err


def test_input_shape_check():
    assert check_face_input("m", (None, 48, 48, 1)) == 1
    assert check_face_input("m", [-1, 48, 48, 3]) == 3
    for shape in ((None, 64, 64, 3), (None, 48, 48, 2), (None, 2304)):
        expected = r"m: the model takes inputs of shape .* feed raw faces \(batch, 48, 48, 1 or 3\)"
        with pytest.raises(ModelError, match=expected):
            check_face_input("m", shape)


def tflite_input(dtype, scale=0.0, zero_point=0):
    return {"dtype": dtype, "quantization": (scale, zero_point)}


def test_tflite_input_quantization():
    # Float and unquantized uint8 inputs take the pixels as they are.
    assert quantized_input_scale("m", tflite_input(np.float32)) is None
    assert quantized_input_scale("m", tflite_input(np.uint8)) is None
    # uint8 or int8 inputs quantized over 0-255 take quantized pixels.
    assert quantized_input_scale("m", tflite_input(np.uint8, 1.0, 0)) == (1.0, 0)
    assert quantized_input_scale("m", tflite_input(np.int8, 1.0, -128)) == (1.0, -128)
    # Quantized for [0, 1] or [-1, 1] inputs: another preprocessing, not raw pixels.
    with pytest.raises(ModelError, match="quantized with scale 0.00392157 .* not raw 0-255 pixels"):
        quantized_input_scale("m", tflite_input(np.uint8, 1 / 255, 0))
    with pytest.raises(ModelError, match="not raw 0-255 pixels"):
        quantized_input_scale("m", tflite_input(np.int8, 1 / 128, 0))
    with pytest.raises(ModelError, match="int8 without quantization parameters"):
        quantized_input_scale("m", tflite_input(np.int8))
