"""Evaluation: metrics against an independent computation, TTA views, evaluate.py end to end."""

import json

import numpy as np
import pandas as pd
import pytest

from keras_fer.data import CLASS_NAMES, read_fer2013, write_synthetic_fer2013
from keras_fer.evaluation import classification_metrics, main, paired_comparison, predict_probabilities, tta_views
from keras_fer.models import build_model


def reference_metrics(labels, predictions, num_classes):
    """Per-class figures from their definitions, one class at a time, with pandas."""
    frame = pd.DataFrame({"true": labels, "predicted": predictions})
    counts = pd.crosstab(frame["true"], frame["predicted"]).reindex(
        index=range(num_classes), columns=range(num_classes), fill_value=0)
    per_class = []
    for k in range(num_classes):
        tp = int(((frame["true"] == k) & (frame["predicted"] == k)).sum())
        predicted, actual = int((frame["predicted"] == k).sum()), int((frame["true"] == k).sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append((precision, recall, f1, actual))
    return counts.to_numpy(), per_class, float((frame["true"] == frame["predicted"]).mean())


def assert_matches_reference(report, labels, predictions):
    counts, per_class, accuracy = reference_metrics(labels, predictions, len(CLASS_NAMES))
    assert report["accuracy"] == pytest.approx(accuracy)
    assert np.array_equal(report["confusion_matrix"]["counts"], counts)
    with np.errstate(invalid="ignore"):
        normalized = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    np.testing.assert_allclose(report["confusion_matrix"]["normalized"], normalized)
    for name, (precision, recall, f1, support) in zip(CLASS_NAMES, per_class):
        figures = report["per_class"][name]
        assert (figures["precision"], figures["recall"], figures["f1"]) == pytest.approx((precision, recall, f1))
        assert figures["support"] == support
    assert report["macro_f1"] == pytest.approx(np.mean([f1 for _, _, f1, _ in per_class]))


def test_metrics_match_an_independent_computation():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, 500)  # class 6 never occurs: its recall and F1 are 0
    predictions = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 7, 500))
    predictions[predictions == 1] = 2  # class 1 is never predicted: precision 0
    report = classification_metrics(labels, predictions, CLASS_NAMES)
    assert_matches_reference(report, labels, predictions)
    assert report["per_class"]["Disgust"]["precision"] == 0.0
    assert report["confusion_matrix"]["normalized"][6] == [0.0] * 7


def test_ten_crop_views_are_corner_and_center_crops_with_mirrors():
    # Pixel value = 48 * row + column, so every crop is recognizable by its top-left value.
    image = (np.arange(48 * 48, dtype=np.float32).reshape(1, 48, 48, 1)) / 10
    views = list(tta_views(image, "ten-crop", crop_size=44))
    assert len(views) == 10 and all(view.shape == image.shape for view in views)
    corners = [view[0, 0, 0, 0] for view in views[0::2]]
    expected = [0, 4, 48 * 4, 48 * 4 + 4, 48 * 2 + 2]
    np.testing.assert_allclose(corners, np.array(expected) / 10, atol=0.6)
    for plain, mirrored in zip(views[0::2], views[1::2]):
        np.testing.assert_array_equal(mirrored, plain[:, :, ::-1])
    assert len(list(tta_views(image, "flip"))) == 2


def test_tta_averages_the_probabilities_of_the_views():
    model = build_model(input_size=32, width=4, use_masks=False, augmentation=None)
    faces = np.random.default_rng(0).integers(0, 256, (6, 48, 48, 1), dtype=np.uint8)
    plain = model.predict(faces.astype("float32"), verbose=0)
    mirrored = model.predict(faces[:, :, ::-1].astype("float32"), verbose=0)
    np.testing.assert_allclose(predict_probabilities(model, faces, tta="flip"), (plain + mirrored) / 2, rtol=1e-5)


@pytest.fixture(scope="module")
def saved_model_and_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluation")
    data = write_synthetic_fer2013(folder / "faces.csv", {"Training": 2, "PublicTest": 12}, seed=5)
    model = build_model(input_size=32, width=4, use_masks=False, augmentation=None)
    model.save(folder / "model.keras")
    return folder, data, model


def test_evaluate_cli_writes_metrics_of_the_models_predictions_and_the_figure(saved_model_and_data, tmp_path):
    folder, data, model = saved_model_and_data
    main(["--model", str(folder / "model.keras"), "--data", data, "--split", "PublicTest",
          "--output-dir", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    images, labels = read_fer2013(data, "PublicTest")
    predictions = model.predict(images, verbose=0).argmax(-1)
    assert report["num_images"] == 84 and report["split"] == "PublicTest" and report["tta"] is None
    assert_matches_reference(report, labels, predictions)
    png = (tmp_path / "out" / "confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_evaluate_cli_rejects_bad_input_before_work(saved_model_and_data, tmp_path, capsys):
    folder, data, _ = saved_model_and_data
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    base = ["--data", data, "--split", "PublicTest"]
    cases = [
        (["--model", str(not_a_model), "--output-dir", str(tmp_path / "a")], "not a Keras model file"),
        (["--model", str(folder / "model.keras"), "--data", str(tmp_path / "missing.csv"),
          "--output-dir", str(tmp_path / "b")], "missing.csv: no such file"),
        (["--model", str(folder / "model.keras"), "--split", "PrivateTest", "--output-dir", str(tmp_path / "c")],
         "has no PrivateTest rows"),
        (["--model", str(folder / "model.keras"), "--labels", "folders", "--output-dir", str(tmp_path / "d")],
         "--labels folders takes an image folder's classes, but --data .* is a CSV"),
    ]
    for arguments, message in cases:
        with pytest.raises(SystemExit, match=message):
            main(base + arguments)
    assert not any((tmp_path / name).exists() for name in "abcd")

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "metrics.json").write_text("earlier results")
    with pytest.raises(SystemExit, match="not empty; choose another directory or pass --overwrite"):
        main(["--model", str(folder / "model.keras"), *base, "--output-dir", str(occupied)])
    assert (occupied / "metrics.json").read_text() == "earlier results"
    main(["--model", str(folder / "model.keras"), *base, "--output-dir", str(occupied), "--overwrite", "--tta"])
    assert json.loads((occupied / "metrics.json").read_text())["tta"] == "ten-crop"


def test_the_paired_comparison_counts_faces_won_and_lost_and_the_error_of_the_mean_difference():
    correct = np.array([True, True, False, True, False, True])
    baseline = np.array([True, False, False, False, True, True])
    result = paired_comparison(correct, baseline)
    # Differences per face: 0, +1, 0, +1, -1, 0. Mean 1/6; sample s.d. sqrt((3 * (1/6)^2 + 2 * (5/6)^2
    # + (7/6)^2) / 5) = sqrt(17/30), over sqrt(6).
    assert result["gain_points"] == pytest.approx(100 / 6)
    assert result["standard_error_points"] == pytest.approx(100 * np.sqrt(17 / 30) / np.sqrt(6))
    assert (result["right_where_baseline_wrong"], result["wrong_where_baseline_right"]) == (2, 1)
    with pytest.raises(ValueError, match=r"shapes \(6,\) and \(5,\)"):
        paired_comparison(correct, baseline[:5])
