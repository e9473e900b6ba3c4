"""The photo path on real faces: FER2013 PublicTest faces placed in 640x480 frames, found, cropped, classified.

Each face is upscaled to 48-200 pixels and pasted on a flat gray or on one of scikit-image's
photographs (`benchmarks.face_frames`). For every detector, with and without alignment, the
whole photo path runs on each frame (`FaceExpressionRecognizer.recognize`: detection, crops,
the shipped model), and the report gives

* found: the share of faces with a detection whose center lies inside the true frame and whose
  side is at least a quarter of the frame's (`benchmarks.face_frames.finds`), overall, by face side
  and by background; and, beside it, by the earlier rule (an intersection over union of at least
  0.3 with the true frame), which misses the faces FER2013 frames loosely;
* photo-path accuracy: the share of all faces whose detection is labelled right (a missed face
  counts as wrong), by both rules, against the whole-crop accuracy: the same model on the same
  48x48 faces;
* false faces a frame: detections that find no face;
* the time per frame (median and 90th percentile of the whole call).

Every variant averages each face over its framing views (`keras_fer.faces.crop_views`), the
default. The default detector runs with the photo path's default second detector (MTCNN, which
looks where BlazeFace finds no face) and alone; aligned with the second detector, it is also run
classifying one crop a face. Every other detector runs alone.

    python -m benchmarks.photo_path                  # 600 faces, about 12 minutes on 2 cores
    python -m benchmarks.photo_path --faces 60 --output benchmarks/results/photo_path_quick.json
"""

from __future__ import annotations

import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.common import DATA_FILE, REPO_ROOT, argument_parser, report_header, summarize_seconds, write_report  # noqa: E402,E501
from benchmarks.face_frames import (FACE_SIDES, MATCH_IOU, MATCH_RULES, MIN_SIDE_SHARE, best_match, finds,  # noqa: E402
                                   placed_faces)

OUTPUT = REPO_ROOT / "docs" / "results" / "photo_path.json"
SIDE_BINS = ((48, 80), (80, 130), (130, 201))


def run_variant(recognizer, frames):
    """A row a frame: found and predicted by each rule, false faces, seconds."""
    rows = []
    for frame in frames:
        start = time.perf_counter()
        faces = recognizer.recognize(frame.image)
        seconds = time.perf_counter() - start
        row = {"seconds": seconds, "false_faces": sum(not finds(face.box, frame.box) for face in faces)}
        for rule in MATCH_RULES:
            match = best_match(faces, frame.box, rule)
            row[rule] = None if match is None else recognizer.class_names.index(match.label)
        rows.append(row)
    return rows


def summarize(rows, frames, whole_correct):
    """The report entry of one variant."""
    found, found_by_iou = (np.array([row[rule] is not None for row in rows]) for rule in ("center", "iou"))
    correct, correct_by_iou = (np.array([row[rule] == frame.label for row, frame in zip(rows, frames)])
                               for rule in ("center", "iou"))
    sides = np.array([frame.box[2] for frame in frames])
    flat = np.array([frame.background == "flat" for frame in frames])
    return {
        "found": round(float(found.mean()), 4),
        "found_by_side": {f"{low}-{high - 1}": round(float(found[(sides >= low) & (sides < high)].mean()), 4)
                          for low, high in SIDE_BINS},
        "found_by_background": {"flat": round(float(found[flat].mean()), 4),
                                "photograph": round(float(found[~flat].mean()), 4)},
        "photo_path_accuracy": round(float(correct.mean()), 4),
        "found_by_iou_rule": round(float(found_by_iou.mean()), 4),
        "photo_path_accuracy_by_iou_rule": round(float(correct_by_iou.mean()), 4),
        "whole_crop_accuracy": round(float(whole_correct.mean()), 4),
        "accuracy_of_found_faces": round(float(correct[found].mean()), 4) if found.any() else None,
        "whole_crop_accuracy_of_found_faces": round(float(whole_correct[found].mean()), 4) if found.any() else None,
        "false_faces_per_frame": round(float(np.mean([row["false_faces"] for row in rows])), 3),
        "seconds_per_frame": summarize_seconds([row["seconds"] for row in rows]),
    }


def markdown(variants):
    """The report's table, as docs/deploy.md shows it."""
    lines = ["| detector | aligned | classified | found | found, 48-79 px | photo-path accuracy | whole-crop accuracy | "
             "false faces a frame | ms a frame (median) | found, IoU rule | photo-path accuracy, IoU rule |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, entry in variants.items():
        detector, align, views = name.split("/")
        lines.append(f"| {detector} | {align} | {views} | {100 * entry['found']:.1f}% | {100 * entry['found_by_side']['48-79']:.1f}% "
                     f"| {100 * entry['photo_path_accuracy']:.1f}% | {100 * entry['whole_crop_accuracy']:.1f}% | "
                     f"{entry['false_faces_per_frame']:.2f} | {entry['seconds_per_frame']['median_ms']:.0f} | "
                     f"{100 * entry['found_by_iou_rule']:.1f}% | {100 * entry['photo_path_accuracy_by_iou_rule']:.1f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--faces", type=int, default=600, help="PublicTest faces, one a frame (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the faces chosen and their frames")
    parser.add_argument("--detectors", nargs="+", default=None, help="detectors to run (default: all)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    from keras_fer.data import read_fer2013
    from keras_fer.faces import DEFAULT_DETECTOR, DEFAULT_SECOND_DETECTOR, DETECTORS, make_detector
    from keras_fer.recognizer import FaceExpressionRecognizer

    report = report_header(["keras_fer/faces", "keras_fer/recognizer.py", "benchmarks/photo_path.py",
                            "benchmarks/face_frames.py"])
    images, labels = read_fer2013(args.data, usage="PublicTest")
    chosen = np.random.default_rng(args.seed).choice(len(images), min(args.faces, len(images)), replace=False)
    frames = list(placed_faces(images[chosen], labels[chosen], seed=args.seed))
    recognizer = FaceExpressionRecognizer()
    whole = recognizer.classifier.classify(images[chosen])
    whole_correct = whole.argmax(axis=1) == labels[chosen]
    report["setup"] = {"faces": len(frames), "split": "PublicTest", "seed": args.seed, "face_sides": FACE_SIDES,
                       "model": "preset fer2013 (Keras)", "match": {"min_side_share": round(MIN_SIDE_SHARE, 4),
                                                                     "earlier_rule_iou": MATCH_IOU},
                       "min_face_size": recognizer.min_face_size}
    report["variants"] = {}
    for name in args.detectors or DETECTORS:
        detector = make_detector(name, recognizer.min_face_size)
        # The default detector with the default second detector (the photo path's default), and alone.
        for second in (DEFAULT_SECOND_DETECTOR, None) if name == DEFAULT_DETECTOR else (None,):
            for align in (True, False) if detector.gives_landmarks else (False,):
                # The framing views (the default) everywhere; the one crop beside them for the default.
                for views in (True, False) if name == DEFAULT_DETECTOR and second and align else (True,):
                    variant = FaceExpressionRecognizer(detector=detector, align=align, framing_views=views,
                                                       second_detector=second)
                    variant.recognize(frames[0].image)  # warm-up: graph tracing, interpreter allocation
                    entry = summarize(run_variant(variant, frames), frames, whole_correct)
                    label = f"{name} then {second}" if second else name
                    report["variants"][f"{label}/{'yes' if align else 'no'}/{'views' if views else 'one crop'}"] = entry
                    print(f"{label} aligned={align} views={views}: {entry}", flush=True)
    report["table"] = markdown(report["variants"])
    print(report["table"])
    write_report(report, args.output)


if __name__ == "__main__":
    main()
