"""Which framings of a detected face to average (`keras_fer.faces.crop_views`), measured on Training faces.

FER2013 faces are placed in 640x480 frames (`benchmarks.face_frames`), found once by the default
detector, and each face found is cropped several ways around its aligned crop: the box framing,
zoomed out and in, shifted by 5% of the side each way. The shipped model classifies every crop,
and the report gives the accuracy of each framing alone and of averages of their probabilities.
The choice in `keras_fer.faces.framing.VIEW_ZOOMS` is made on the Training split (the
default), so that PublicTest (`benchmarks.photo_path`) only measures it.

The shipped model was trained on every Training face and knows each one's exact frame, which
favours the framing nearest FER2013's own. `--model` with `--unseen-by` measures instead with a
model trained on part of Training only (an image folder), on Training faces it never saw:

    python tools/framing_views.py                         # 600 Training faces, the shipped model
    python tools/framing_views.py --model runs/ferplus_folder_scratch/best.keras --labels ferplus8 \
        --unseen-by runs/ferplus_folder/train --output docs/results/framing_views_unseen.json
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
ZOOMS_AND_SHIFTS = {"zoom 0.85": (0.85, 0.0, 0.0), "zoom 0.92": (0.92, 0.0, 0.0), "zoom 1.08": (1.08, 0.0, 0.0),
                    "zoom 1.15": (1.15, 0.0, 0.0),
                    "right 0.05": (1.0, 0.05, 0.0), "left 0.05": (1.0, -0.05, 0.0),
                    "down 0.05": (1.0, 0.0, 0.05), "up 0.05": (1.0, 0.0, -0.05)}
AVERAGES = {
    "aligned + box": ("aligned", "box"),
    "aligned + zooms": ("aligned", "zoom 0.92", "zoom 1.08"),
    "aligned + shifts": ("aligned", "right 0.05", "left 0.05", "down 0.05", "up 0.05"),
    "aligned + box + zooms (crop_views)": ("aligned", "box", "zoom 0.92", "zoom 1.08"),
    "aligned + box + wide zooms": ("aligned", "box", "zoom 0.85", "zoom 1.15"),
    "aligned + box + both zooms": ("aligned", "box", "zoom 0.85", "zoom 0.92", "zoom 1.08", "zoom 1.15"),
    "aligned + box + zooms + shifts": ("aligned", "box", "zoom 0.92", "zoom 1.08", "right 0.05", "left 0.05",
                                      "down 0.05", "up 0.05"),
    "all ten": ("aligned", "box", *ZOOMS_AND_SHIFTS),
}


def unseen_rows(images, folder):
    """Indices of the (N, 48, 48, 1) faces whose pixels are in no image file under `folder`."""
    import cv2

    seen = {cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).tobytes() for path in Path(folder).rglob("*.png")}
    return np.array([index for index, face in enumerate(images) if face.tobytes() not in seen])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/framing_views.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--split", default="Training", help="split whose faces are placed (default Training)")
    parser.add_argument("--faces", type=int, default=600)
    parser.add_argument("--model", default="fer2013", help="preset or model file that classifies (default fer2013)")
    parser.add_argument("--labels", default="fer2013", choices=("fer2013", "ferplus8"),
                        help="labels of the faces, in the model's class order (default fer2013)")
    parser.add_argument("--ferplus", type=Path, default=DATA_FILE.parent / "fer2013new.csv",
                        help="FERPlus vote file, for --labels ferplus8 (default: the shared file)")
    parser.add_argument("--unseen-by", type=Path, metavar="FOLDER",
                        help="the image folder the model was trained on: only faces in none of its PNG files are placed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    import cv2

    from keras_fer.data import read_fer2013
    from keras_fer.faces.framing import FACE_SIDE, crop_transform, warp_square, zoomed
    from keras_fer.recognizer import FaceExpressionRecognizer

    images, labels = read_fer2013(args.data, usage=args.split, labels=args.labels,
                                  ferplus_path=args.ferplus if args.labels == "ferplus8" else None)
    candidates = np.arange(len(images)) if args.unseen_by is None else unseen_rows(images, args.unseen_by)
    chosen = np.random.default_rng(args.seed).choice(candidates, args.faces, replace=False)
    frames = list(placed_faces(images[chosen], labels[chosen], seed=args.seed))
    recognizer = FaceExpressionRecognizer(args.model)
    matches = [best_match(recognizer.detect(frame.image), frame.box) for frame in frames]
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
        "split": args.split, "faces": args.faces, "seed": args.seed, "model": args.model, "labels": args.labels,
        "unseen_by": None if args.unseen_by is None else str(args.unseen_by), "candidates": len(candidates),
        "found": len(found),
        "whole_crop_accuracy_of_found_faces": round(float(whole[[match is not None for match in matches]].mean()), 4),
        "accuracy_of_found_faces": {**{name: accuracy([name]) for name in framings},
                                    **{name: accuracy(names) for name, names in AVERAGES.items()}},
    })
    for name, value in report["accuracy_of_found_faces"].items():
        print(f"{name}: {100 * value:.1f}%")
    write_report(report, args.output)


if __name__ == "__main__":
    main()
