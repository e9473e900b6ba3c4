"""Which framings of a detected face to average (`keras_fer.faces.crop_views`), measured on Training faces.

FER2013 faces are placed in 640x480 frames (`benchmarks.face_frames`), found once by the default
detector, and each face found is cropped several ways around its aligned crop: the box framing,
zoomed out and in, shifted by 5% of the side each way. The shipped model classifies every crop,
and the report gives the accuracy of each framing alone and of averages of their probabilities.
The choice in `keras_fer.faces.framing.VIEW_ZOOMS` was made on the Training split (the
default), so that PublicTest (`benchmarks.photo_path`) only measures it:

    python tools/framing_views.py                         # 600 Training faces, docs/results/framing_views.json
    python tools/framing_views.py --split PublicTest --output /tmp/framing_views_publictest.json
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # benchmarks/ is not part of the installed package

from benchmarks.common import DATA_FILE, report_header, write_report  # noqa: E402
from benchmarks.face_frames import best_match, placed_faces  # noqa: E402

OUTPUT = REPO_ROOT / "docs" / "results" / "framing_views.json"
# Each framing: (zoom about the crop's centre, shift right, shift down) in crop sides, after the aligned crop.
ZOOMS_AND_SHIFTS = {"zoom 0.92": (0.92, 0.0, 0.0), "zoom 1.08": (1.08, 0.0, 0.0),
                    "right 0.05": (1.0, 0.05, 0.0), "left 0.05": (1.0, -0.05, 0.0),
                    "down 0.05": (1.0, 0.0, 0.05), "up 0.05": (1.0, 0.0, -0.05)}
AVERAGES = {
    "aligned + box": ("aligned", "box"),
    "aligned + zooms": ("aligned", "zoom 0.92", "zoom 1.08"),
    "aligned + shifts": ("aligned", "right 0.05", "left 0.05", "down 0.05", "up 0.05"),
    "aligned + box + zooms (crop_views)": ("aligned", "box", "zoom 0.92", "zoom 1.08"),
    "all eight": ("aligned", "box", *ZOOMS_AND_SHIFTS),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/framing_views.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--split", default="Training", help="split whose faces are placed (default Training)")
    parser.add_argument("--faces", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    import cv2

    from keras_fer.data import read_fer2013
    from keras_fer.faces.framing import FACE_SIDE, crop_transform, warp_square, zoomed
    from keras_fer.recognizer import FaceExpressionRecognizer

    images, labels = read_fer2013(args.data, usage=args.split)
    chosen = np.random.default_rng(args.seed).choice(len(images), args.faces, replace=False)
    frames = list(placed_faces(images[chosen], labels[chosen], seed=args.seed))
    recognizer = FaceExpressionRecognizer()
    matches = [best_match(recognizer.detector.detect(frame.image), frame.box) for frame in frames]
    found = [(frame, match) for frame, match in zip(frames, matches) if match is not None]
    targets = np.array([frame.label for frame, _ in found])
    whole = recognizer.classifier.classify(images[chosen]).argmax(axis=1) == labels[chosen]

    framings = {"aligned": lambda face: crop_transform(face, align=True),
                "box": lambda face: crop_transform(face, align=False)}
    for name, (zoom, right, down) in ZOOMS_AND_SHIFTS.items():
        # Zoomed about the crop's centre (keras_fer.faces.framing.zoomed), then shifted, in crop sides.
        framings[name] = lambda face, z=zoom, r=right, d=down: (
            zoomed(crop_transform(face), z) + np.array([[0, 0, r * FACE_SIDE], [0, 0, d * FACE_SIDE]]))
    probabilities = {}
    for name, transform in framings.items():
        crops = np.stack([cv2.cvtColor(warp_square(frame.image, transform(face), FACE_SIDE), cv2.COLOR_BGR2GRAY)[..., None]
                          for frame, face in found])
        probabilities[name] = recognizer.classifier.classify(crops)

    def accuracy(names):
        return round(float((sum(probabilities[name] for name in names).argmax(axis=1) == targets).mean()), 4)

    report = report_header(["keras_fer/faces", "keras_fer/recognizer.py", "tools/framing_views.py",
                            "benchmarks/face_frames.py"])
    report.update({
        "split": args.split, "faces": args.faces, "seed": args.seed, "found": len(found),
        "whole_crop_accuracy_of_found_faces": round(float(whole[[match is not None for match in matches]].mean()), 4),
        "accuracy_of_found_faces": {**{name: accuracy([name]) for name in framings},
                                    **{name: accuracy(names) for name, names in AVERAGES.items()}},
    })
    for name, value in report["accuracy_of_found_faces"].items():
        print(f"{name}: {100 * value:.1f}%")
    write_report(report, args.output)


if __name__ == "__main__":
    main()
