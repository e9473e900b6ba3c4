"""The photo path on real faces: FER2013 PublicTest faces placed in 640x480 frames, found, cropped, classified.

Each face is upscaled to 48-200 pixels and pasted on a flat gray or on one of scikit-image's
photographs (`benchmarks.face_frames`). For every detector, with and without alignment, the
whole photo path runs on each frame (`FaceExpressionRecognizer.recognize`: detection, crops,
the shipped model), and the report gives

* found: the share of faces with a detection whose center lies inside the true frame and whose
  side is at least a quarter of the frame's (`benchmarks.face_frames.finds`), overall, by face side
  and by background; and, in the JSON only, by the earlier rule (an intersection over union of at
  least 0.3 with the true frame), which misses the faces FER2013 frames loosely;
* photo-path accuracy: the share of all faces whose detection is labelled right (a missed face
  counts as wrong), against the whole-crop accuracy: the same model on the same 48x48 faces; the
  gap between them with its standard error (the faces are paired, so it is the standard error
  of the mean of per-face differences);
* the same two accuracies against FERPlus's majority labels (ten annotators a face, from the
  shared `fer2013new.csv`), on the faces whose majority is one of the seven FER2013 classes.
  FER2013's own labels disagree with that majority on about a third of PublicTest, so this tells
  a loss of expression recognition apart from a loss on labels that people do not give;
* false faces a frame: detections that find no face;
* the time per frame (median and 90th percentile of the whole call).

Every variant averages each face over its framing views (`keras_fer.faces.crop_views`), the
default. The default detector runs with the photo path's default second detector (MTCNN, which
looks where BlazeFace finds no face) and alone; aligned with the second detector, it is also run
classifying one crop a face. Every other detector runs alone.

    python -m benchmarks.photo_path                  # all 3,589 PublicTest faces, about 55 minutes on 2 cores
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


def summarize(rows, frames, whole_predicted, ferplus):
    """The report entry of one variant, from its rows, the whole crops' predicted classes and the faces'
    FERPlus majority labels (-1 where there is none among the FER2013 classes)."""
    from keras_fer.evaluation import paired_comparison

    labels = np.array([frame.label for frame in frames])
    whole_correct = whole_predicted == labels
    # The class each rule's match was labelled, -1 where that rule found no face.
    predicted, predicted_by_iou = (np.array([-1 if row[rule] is None else row[rule] for row in rows])
                                   for rule in ("center", "iou"))
    found, found_by_iou = predicted >= 0, predicted_by_iou >= 0
    correct, correct_by_iou = predicted == labels, predicted_by_iou == labels
    # The points the photo path loses against the whole crops, face by face.
    gap = paired_comparison(whole_correct, correct)
    judged = ferplus >= 0
    sides = np.array([frame.box[2] for frame in frames])
    flat = np.array([frame.background == "flat" for frame in frames])
    return {
        "found": round(float(found.mean()), 4),
        "found_by_side": {f"{low}-{high - 1}": round(float(found[(sides >= low) & (sides < high)].mean()), 4)
                          for low, high in SIDE_BINS},
        "found_by_background": {"flat": round(float(found[flat].mean()), 4),
                                "photograph": round(float(found[~flat].mean()), 4)},
        "photo_path_accuracy": round(float(correct.mean()), 4),
        "gap_points": round(gap["gain_points"], 2),
        "gap_standard_error_points": round(gap["standard_error_points"], 2),
        "ferplus_majority": {"faces": int(judged.sum()),
                             "photo_path_accuracy": round(float((predicted[judged] == ferplus[judged]).mean()), 4),
                             "whole_crop_accuracy": round(float((whole_predicted[judged] == ferplus[judged]).mean()), 4)},
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
             "gap, points (s.e.) | FERPlus majority: photo path / whole crop | false faces a frame | ms a frame (median) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, entry in variants.items():
        detector, align, views = name.split("/")
        plus = entry["ferplus_majority"]
        lines.append(f"| {detector} | {align} | {views} | {100 * entry['found']:.1f}% | {100 * entry['found_by_side']['48-79']:.1f}% "
                     f"| {100 * entry['photo_path_accuracy']:.1f}% | {100 * entry['whole_crop_accuracy']:.1f}% | "
                     f"{entry['gap_points']:.1f} ({entry['gap_standard_error_points']:.1f}) | "
                     f"{100 * plus['photo_path_accuracy']:.1f}% / {100 * plus['whole_crop_accuracy']:.1f}% | "
                     f"{entry['false_faces_per_frame']:.2f} | {entry['seconds_per_frame']['median_ms']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="FER2013 CSV (default: the shared file)")
    parser.add_argument("--faces", type=int, default=None,
                        help="PublicTest faces chosen at random, one a frame (default: all 3,589)")
    parser.add_argument("--ferplus", type=Path, default=DATA_FILE.parent / "fer2013new.csv",
                        help="FERPlus vote file, row-aligned with --data (default: the shared file)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the faces chosen and their frames")
    parser.add_argument("--detectors", nargs="+", default=None, help="detectors to run (default: all)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    from keras_fer.data import read_fer2013
    from keras_fer.data.csv_format import USAGES
    from keras_fer.data.ferplus import ferplus_labels
    from keras_fer.data.row_index import index_fer2013
    from keras_fer.faces import DEFAULT_DETECTOR, DEFAULT_SECOND_DETECTOR, DETECTORS, make_detector
    from keras_fer.recognizer import FaceExpressionRecognizer

    report = report_header(["keras_fer/faces", "keras_fer/recognizer.py", "benchmarks/photo_path.py",
                            "benchmarks/face_frames.py"])
    images, labels = read_fer2013(args.data, usage="PublicTest")
    index = index_fer2013(args.data)
    ferplus = ferplus_labels(args.ferplus, index)[index.usages == USAGES.index("PublicTest")]
    faces = len(images) if args.faces is None else min(args.faces, len(images))
    chosen = np.random.default_rng(args.seed).choice(len(images), faces, replace=False)
    frames = list(placed_faces(images[chosen], labels[chosen], seed=args.seed))
    recognizer = FaceExpressionRecognizer()
    whole_predicted = recognizer.classifier.classify(images[chosen]).argmax(axis=1)
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
                    entry = summarize(run_variant(variant, frames), frames, whole_predicted, ferplus[chosen])
                    label = f"{name} then {second}" if second else name
                    report["variants"][f"{label}/{'yes' if align else 'no'}/{'views' if views else 'one crop'}"] = entry
                    print(f"{label} aligned={align} views={views}: {entry}", flush=True)
    report["table"] = markdown(report["variants"])
    print(report["table"])
    write_report(report, args.output)


if __name__ == "__main__":
    main()
