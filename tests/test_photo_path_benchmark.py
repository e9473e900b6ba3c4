"""benchmarks/photo_path.py's summary: the figures that the photo-path goal is judged on."""

import numpy as np
import pytest

from benchmarks.face_frames import PlacedFace
from benchmarks.photo_path import summarize


def frames_of(labels, sides, backgrounds):
    return [PlacedFace(image=None, box=(0, 0, side, side), label=label, background=background, index=index)
            for index, (label, side, background) in enumerate(zip(labels, sides, backgrounds))]


def test_summary_counts_found_right_and_the_paired_gap_against_both_label_sets():
    labels = [0, 1, 2, 3, 4, 5]
    frames = frames_of(labels, [50, 60, 100, 150, 160, 190], ["flat", "flat", "coffee", "coffee", "cat", "cat"])
    # Found by the benchmark's rule and labelled: right, wrong, right, right; two faces not found,
    # one of them found (and labelled right) by the overlap rule only, which misses the third.
    rows = [{"center": 0, "iou": 0, "false_faces": 0, "seconds": 0.1},
            {"center": 2, "iou": 2, "false_faces": 1, "seconds": 0.2},
            {"center": 2, "iou": None, "false_faces": 0, "seconds": 0.1},
            {"center": 3, "iou": 3, "false_faces": 0, "seconds": 0.1},
            {"center": None, "iou": 4, "false_faces": 0, "seconds": 0.3},
            {"center": None, "iou": None, "false_faces": 2, "seconds": 0.1}]
    whole_predicted = np.array([0, 1, 2, 0, 4, 5])  # right but for the fourth face
    # FERPlus's majority: the second face's is class 2, the last has none among the seven classes.
    ferplus = np.array([0, 2, 2, 3, 4, -1])

    entry = summarize(rows, frames, whole_predicted, ferplus)

    assert entry["found"] == pytest.approx(4 / 6, abs=1e-4)
    assert entry["found_by_iou_rule"] == pytest.approx(4 / 6, abs=1e-4)
    assert entry["found_by_background"] == {"flat": 1.0, "photograph": 0.5}
    assert entry["photo_path_accuracy"] == pytest.approx(3 / 6, abs=1e-4)
    assert entry["photo_path_accuracy_by_iou_rule"] == pytest.approx(3 / 6, abs=1e-4)
    assert entry["whole_crop_accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    # Per-face differences (whole right - photo right): 0, 1, 0, -1, 1, 1.
    differences = np.array([0, 1, 0, -1, 1, 1])
    assert entry["gap_points"] == pytest.approx(100 * differences.mean(), abs=0.01)
    assert entry["gap_standard_error_points"] == pytest.approx(
        100 * differences.std(ddof=1) / np.sqrt(6), abs=0.01)
    # Against FERPlus, on the five faces with a majority: the photo path is right on faces 1, 2, 3, 4;
    # the whole crops on faces 1, 3, 5.
    assert entry["ferplus_majority"] == {"faces": 5, "photo_path_accuracy": 0.8, "whole_crop_accuracy": 0.6}
    assert entry["false_faces_per_frame"] == pytest.approx(0.5)
