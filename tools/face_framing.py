"""Measures how FER2013 frames its faces, as each detector sees them; writes docs/results/face_framing.json.

FER2013 Training faces are placed in 640x480 frames (`benchmarks.face_frames`), where each face's
true 48x48 frame is known. Each detector runs on every frame; for the detection that overlaps
the true frame with an IoU of at least 0.3 (not the benchmark's looser rule, which also takes
the faces that FER2013 frames loosely: they are not how it frames a face) it records

* the box framing: the true frame's center offset from the box's center and its side, in units
  of the box's side (sqrt(width * height));
* where its landmarks fall in the 48x48 frame: the eyes' midpoint, their distance and the
  mouth's center, and the angle of the eye line (how level FER2013's faces are).

The medians are the framing constants of `keras_fer.faces.framing` (a test checks that they
agree). Training faces only: PublicTest stays for the benchmark.

    python tools/face_framing.py --faces 600        # about 4 minutes on 2 cores
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.common import DATA_FILE, report_header, write_report  # noqa: E402
from benchmarks.face_frames import best_match, placed_faces  # noqa: E402

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "results" / "face_framing.json"


def box_framing(face, true_box):
    """(dx, dy, side) of the true frame against a detected box, in units of the box's side."""
    x, y, width, height = face.box
    unit = math.sqrt(width * height)
    tx, ty, side, _ = true_box
    return ((tx + side / 2 - x - width / 2) / unit, (ty + side / 2 - y - height / 2) / unit, side / unit)


def landmark_framing(face, true_box):
    """(eye midpoint x, y, eye distance, mouth x, y, eye-line angle in degrees) in the 48-pixel frame."""
    tx, ty, side, _ = true_box
    to_frame = 48.0 / side
    left, right = face.eyes
    mouth = face.mouth
    middle = ((left + right) / 2 - (tx, ty)) * to_frame
    mouth = (mouth - (tx, ty)) * to_frame
    dx, dy = right - left
    return (*middle, float(np.hypot(dx, dy) * to_frame), *mouth, math.degrees(math.atan2(dy, dx)))


def measure(detector, frames):
    """{"faces", "matched", "box", "landmarks"} medians (and quartiles) over the matched faces."""
    boxes, landmarks = [], []
    for frame in frames:
        face = best_match(detector.detect(frame.image), frame.box, rule="iou")
        if face is None:
            continue
        boxes.append(box_framing(face, frame.box))
        if face.eyes is not None:
            landmarks.append(landmark_framing(face, frame.box))
    summary = lambda values, names: {  # noqa: E731
        name: {"median": round(float(np.median(column)), 4),
               "quartiles": [round(float(q), 4) for q in np.percentile(column, [25, 75])]}
        for name, column in zip(names, np.asarray(values).T)
    }
    result = {"faces": len(frames), "matched": len(boxes), "box": summary(boxes, ("dx", "dy", "side"))}
    if landmarks:
        result["landmarks"] = summary(landmarks, ("eye_middle_x", "eye_middle_y", "eye_distance", "mouth_x",
                                                  "mouth_y", "eye_angle_degrees"))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA_FILE), help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--faces", type=int, default=600, help="Training faces measured (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    from keras_fer.data import read_fer2013
    from keras_fer.faces import DETECTORS, make_detector

    report = report_header(["keras_fer/faces", "tools/face_framing.py", "benchmarks/face_frames.py"])
    images, labels = read_fer2013(args.data, usage="Training")
    chosen = np.random.default_rng(args.seed).choice(len(images), args.faces, replace=False)
    frames = list(placed_faces(images[chosen], labels[chosen], seed=args.seed))
    report["detectors"] = {}
    for name in DETECTORS:
        report["detectors"][name] = measure(make_detector(name, min_face_size=40), frames)
        print(name, json.dumps(report["detectors"][name]), flush=True)
    write_report(report, args.output)


if __name__ == "__main__":
    main()
